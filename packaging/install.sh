#!/bin/sh
# Install Cairn from this offline bundle: no network, every file checked against its hash.
#
#   ./install.sh [--prefix DIR] [--systemd] [--python PATH] [--unit-dir DIR] [--no-user]
#   ./install.sh [--prefix DIR] --rollback
#   ./install.sh [--prefix DIR] [--unit-dir DIR] --uninstall
#
# DIR (default /opt/cairn) gets a venv (DIR/venv) and the launcher DIR/bin/cairn; as
# root with the default prefix the launcher is also linked into /usr/local/bin. Running it
# again (a newer bundle) builds the new venv beside the old one and switches only once
# the install succeeded, so a failed upgrade leaves the working install in place.
# --systemd installs cairn.service (user `cairn`, data in /var/lib/cairn) and, where
# systemd runs, enables and starts it. --rollback switches DIR/venv back to the install
# before the current one (run again, it switches forward) and restarts the service.
# --uninstall stops and removes the service and everything under DIR it installed; the
# data directory and the user are kept.
set -eu

BUNDLE=$(cd "$(dirname "$0")" && pwd)
PREFIX=/opt/cairn
SYSTEMD=0
PYTHON=
UNIT_DIR=/etc/systemd/system
MAKE_USER=1
ROLLBACK=0
UNINSTALL=0
NEED_MAJOR=3
NEED_MINOR=11

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }
# Two spellings of one directory (a relative --prefix, a symlinked path) are the same
# install: compared physically, so the install in use is never taken for another.
same_dir() { [ "$(cd "$1" 2>/dev/null && pwd -P)" = "$(cd "$2" 2>/dev/null && pwd -P)" ]; }

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#--prefix=}; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON=$2; shift 2 ;;
        --python=*) PYTHON=${1#--python=}; shift ;;
        --systemd) SYSTEMD=1; shift ;;
        --unit-dir) [ $# -ge 2 ] || die "--unit-dir needs a directory"; UNIT_DIR=$2; shift 2 ;;
        --no-user) MAKE_USER=0; shift ;;
        --rollback) ROLLBACK=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

[ "$ROLLBACK$UNINSTALL" = 11 ] && die "--rollback and --uninstall: choose one"

# -- uninstall: no bundle needed -----------------------------------------------------------
# Only what an install made: the service (when its unit runs this prefix's launcher), the
# PATH link (when it points here), DIR/bin, DIR/venv and DIR/versions. Never the data.
if [ "$UNINSTALL" = 1 ]; then
    [ -L "$PREFIX/venv" ] || die "no Cairn installed by install.sh at $PREFIX (give --prefix DIR)"
    PREFIX=$(cd "$PREFIX" && pwd)
    UNIT="$UNIT_DIR/cairn.service"
    OURS=0
    [ -f "$UNIT" ] && grep -q "^ExecStart=$PREFIX/bin/cairn " "$UNIT" && OURS=1
    if [ "$OURS" = 1 ] && [ "$(id -u)" != 0 ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then
        die "$UNIT runs this install: run as root to remove the service (nothing was changed)"
    fi
    if [ "$OURS" = 1 ]; then
        DATA=$(sed -n 's/^ExecStart=.* --data \([^ ]*\).*/\1/p' "$UNIT")
        if [ "$UNIT_DIR" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
            systemctl disable --now cairn.service  # SIGTERM: every acknowledged write is kept
            rm -f "$UNIT"
            systemctl daemon-reload
        else
            rm -f "$UNIT"
        fi
        say "removed the service: $UNIT${DATA:+ (its data in $DATA is kept)}"
    fi
    LINK=/usr/local/bin/cairn
    if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$PREFIX/bin/cairn" ]; then
        rm -f "$LINK" && say "removed $LINK"
    fi
    rm -rf "$PREFIX/venv" "$PREFIX/venv.next" "$PREFIX/versions" "$PREFIX/bin"
    rmdir "$PREFIX" 2>/dev/null || true  # only when nothing else is in it
    say "uninstalled Cairn from $PREFIX. Kept: data directories (${DATA:-the --data of your runs, else ~/.local/share/cairn}) and the user cairn, if any (userdel cairn)."
    exit 0
fi

# -- rollback: no bundle needed, only the install under DIR ---------------------------------
# Switch DIR/venv to the other venv under DIR/versions (an install keeps the current and
# the previous one), the same atomic rename as an install, after checking that it starts.
if [ "$ROLLBACK" = 1 ]; then
    [ -L "$PREFIX/venv" ] || die "no Cairn installed by install.sh at $PREFIX (give --prefix DIR)"
    CURRENT=$(readlink "$PREFIX/venv")
    BACK=
    for dir in "$PREFIX/versions/"*; do
        # Physical: the link must not depend on how --prefix was spelled this time.
        [ -d "$dir" ] && ! same_dir "$dir" "$CURRENT" && BACK=$(cd "$dir" && pwd -P)
    done
    [ -n "$BACK" ] || die "no previous install under $PREFIX/versions to roll back to (only $CURRENT)"
    "$BACK/bin/cairn" --help >/dev/null 2>&1 || die "the previous install $BACK does not start: nothing was changed"
    ln -sfn "$BACK" "$PREFIX/venv.next"
    mv -T "$PREFIX/venv.next" "$PREFIX/venv"
    say "rolled back: $PREFIX/venv -> $BACK (was $CURRENT; --rollback again switches back)"
    if [ "$(id -u)" = 0 ] && [ -f "$UNIT_DIR/cairn.service" ] && [ -d /run/systemd/system ]; then
        systemctl restart cairn.service
        say "cairn.service restarted on $BACK"
    fi
    exit 0
fi

# -- what this bundle is for, and whether this machine is that ---------------------------
read -r VERSION VARIANT TARGET ABI < "$BUNDLE/VARIANT" || die "$BUNDLE/VARIANT is missing: not a Cairn bundle"
MACHINE="$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m)"
[ "$MACHINE" = linux-arm64 ] && MACHINE=linux-aarch64
[ "$MACHINE" = "$TARGET" ] \
    || die "this bundle is for $TARGET; this machine is $MACHINE. Use the bundle built for it."

if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$(command -v "$candidate"); break; fi
    done
    [ -n "$PYTHON" ] || die "no Python found: install Python $NEED_MAJOR.$NEED_MINOR (Debian/Ubuntu: python3.11 python3.11-venv) or give --python PATH"
fi
[ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null 2>&1 || die "--python $PYTHON: no such program"
FOUND=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
    || die "$PYTHON does not run"
# The wheels are built for one CPython ABI (cp311): older is too old, newer cannot load them.
if [ "$FOUND" != "$NEED_MAJOR.$NEED_MINOR" ]; then
    if [ "${FOUND%%.*}" -lt "$NEED_MAJOR" ] || { [ "${FOUND%%.*}" -eq "$NEED_MAJOR" ] && [ "${FOUND#*.}" -lt "$NEED_MINOR" ]; }; then
        die "Python $FOUND at $PYTHON is too old: Cairn needs Python $NEED_MAJOR.$NEED_MINOR. Install it, or give --python PATH"
    fi
    die "Python $FOUND at $PYTHON cannot use this bundle's wheels, which are built for Python $NEED_MAJOR.$NEED_MINOR ($ABI): give --python PATH to a Python $NEED_MAJOR.$NEED_MINOR"
fi
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$PYTHON has no venv/ensurepip module (Debian/Ubuntu: apt install python3.11-venv)"

# -- the bundle is whole ------------------------------------------------------------------
if command -v sha256sum >/dev/null 2>&1; then
    (cd "$BUNDLE" && sha256sum --check --quiet --strict SHA256SUMS) \
        || die "the bundle's files do not match SHA256SUMS: it is damaged or was changed; copy it again"
fi

if [ "$SYSTEMD" = 1 ] && [ "$(id -u)" != 0 ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then
    die "--systemd installs a system service: run as root (or give --unit-dir for a staging tree)"
fi

# -- the venv -------------------------------------------------------------------------------
mkdir -p "$PREFIX" || die "cannot create $PREFIX (run as root, or give --prefix DIR)"
PREFIX=$(cd "$PREFIX" && pwd)
[ -w "$PREFIX" ] || die "$PREFIX is not writable by $(id -un) (run as root, or give --prefix DIR)"
# Each install gets a venv of its own under DIR/versions and DIR/venv is a symlink to the
# current one, switched only after the new one works: a failed upgrade changes nothing,
# and venv scripts keep the absolute paths they were installed with.
STAMP=$(date +%Y%m%d%H%M%S)
NEW="$PREFIX/versions/$VERSION-$VARIANT-$STAMP"
OLD=$(readlink "$PREFIX/venv" 2>/dev/null || true)
[ -e "$PREFIX/venv" ] && [ ! -L "$PREFIX/venv" ] && die "$PREFIX/venv exists and is not this installer's: move it away"
mkdir -p "$PREFIX/versions"
say "installing Cairn $VERSION ($VARIANT) into $PREFIX with $PYTHON (Python $FOUND)"
"$PYTHON" -m venv "$NEW" || { rm -rf "$NEW"; die "could not create a venv in $NEW"; }
# No index, no cache, hashes required: the bundle's wheels or nothing. PIP_* settings of
# the site (an index URL, a constraints file) must not change what gets installed.
if ! env -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_FIND_LINKS -u PIP_CONSTRAINT \
        PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$NEW/bin/python" -m pip install --quiet --no-index --no-cache-dir \
        --find-links "$BUNDLE/wheels" --require-hashes -r "$BUNDLE/requirements.txt"; then
    rm -rf "$NEW"
    die "pip could not install the bundle (nothing was changed; see pip's message above)"
fi
"$NEW/bin/cairn" --help >/dev/null || { rm -rf "$NEW"; die "the installed cairn does not start (nothing was changed)"; }

ln -sfn "$NEW" "$PREFIX/venv.next"
mv -T "$PREFIX/venv.next" "$PREFIX/venv"  # rename(2): atomic, a running cairn keeps its files
# The previous venv stays (a running server may still import from it, and it is the way
# back: `install.sh --rollback`); older ones go.
for dir in "$PREFIX/versions/"*; do
    same_dir "$dir" "$NEW" || { [ -n "$OLD" ] && same_dir "$dir" "$OLD"; } || rm -rf "$dir"
done
[ -n "$OLD" ] && say "previous install kept: $OLD (install.sh --prefix $PREFIX --rollback goes back to it)"

mkdir -p "$PREFIX/bin"
cat > "$PREFIX/bin/cairn" <<EOF
#!/bin/sh
# Cairn, installed by install.sh from an offline bundle: runs the install DIR/venv points at.
exec "$PREFIX/venv/bin/cairn" "\$@"
EOF
chmod 755 "$PREFIX/bin/cairn"
say "launcher: $PREFIX/bin/cairn"

if [ "$(id -u)" = 0 ] && [ "$PREFIX" = /opt/cairn ] && [ -d /usr/local/bin ]; then
    ln -sf "$PREFIX/bin/cairn" /usr/local/bin/cairn
    say "on PATH: /usr/local/bin/cairn"
fi

# -- the service ------------------------------------------------------------------------
if [ "$SYSTEMD" = 1 ]; then
    if [ "$MAKE_USER" = 1 ] && ! id cairn >/dev/null 2>&1; then
        NOLOGIN=$(command -v nologin || echo /usr/sbin/nologin)
        useradd --system --home-dir /var/lib/cairn --no-create-home --shell "$NOLOGIN" cairn \
            || die "could not create the system user cairn (useradd)"
        say "created system user cairn"
    fi
    mkdir -p "$UNIT_DIR"
    sed "s|/opt/cairn|$PREFIX|g" "$BUNDLE/cairn.service" > "$UNIT_DIR/cairn.service"
    chmod 644 "$UNIT_DIR/cairn.service"
    say "unit: $UNIT_DIR/cairn.service"
    if [ "$UNIT_DIR" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable cairn.service
        # An upgrade: the running server restarts on the new venv (SIGTERM, clean stop).
        systemctl restart cairn.service
        say "cairn.service enabled and (re)started: systemctl status cairn"
    else
        say "systemd is not running here: enable it later with 'systemctl enable --now cairn'"
    fi
fi

say "done. Try: $PREFIX/bin/cairn doctor"
