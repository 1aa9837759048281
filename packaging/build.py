"""Build the offline installer bundles: `make package`.

    python packaging/build.py [--variant cpu|gpu|cpu-aarch64|all] [--dist DIR] [--exe]

For each variant, dist/cairn-<version>-<variant>-linux-<arch>.tar.gz holds

    cairn-<version>-<variant>/
        install.sh          installs into a venv with no network (see its --help)
        requirements.txt    Cairn's wheel and packaging/lock-<variant>.txt, all hashed
        wheels/             every wheel requirements.txt names, and nothing else
        cairn.service       the systemd unit install.sh --systemd puts in place
        README.txt          what the site needs and the commands to run
        SHA256SUMS          every file above, checked by install.sh before it installs

The wheelhouse is downloaded with `--require-hashes`, so a bundle can only hold what the
lock says. With --exe it also builds the PyInstaller one-directory executable of the cpu
variant (packaging/exe.py), which needs no Python on the site.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lock import (
    GLIBC_FLOOR,
    PYTHON_VERSION,
    REPO,
    TARGETS,
    Target,
    lock_path,
    read_lock,
    sha256,
)

PACKAGING = REPO / "packaging"
VARIANT_NOTES = {
    "cpu": "ONNX Runtime's CPU build (onnxruntime): runs anywhere, no GPU libraries needed.",
    "gpu": ("ONNX Runtime's GPU build (onnxruntime-gpu). The host must have an NVIDIA driver, "
            "the CUDA 13 libraries (cudart, cuBLAS, cuRAND) and cuDNN 9, on the loader path "
            "(ldconfig or LD_LIBRARY_PATH); without them Cairn runs on CPU and `cairn doctor` says "
            "why CUDA did not load."),
}


def version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def build_wheel(dest: Path) -> Path:
    """Cairn's own wheel, built from the working tree (build isolation: pyproject's
    setuptools, not whatever the venv has)."""
    with tempfile.TemporaryDirectory() as tmp:
        # A copy, so the build's build/ and egg-info never land in the checkout.
        src = Path(tmp) / "src"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
            ".venv", ".git", "dist", "build", "*.egg-info", "__pycache__", ".pytest_cache",
            ".hypothesis", "bench", "tests"))
        pip("wheel", "--quiet", "--no-deps", "-w", str(dest), str(src))
    (wheel,) = dest.glob("cairn-*.whl")
    return wheel


def check_lock(target: Target, path: Path | None = None) -> Path:
    """The lock must pin every direct runtime requirement of pyproject; a stale lock (a
    dependency added but `make lock` not run) fails the build here, not on the site."""
    from packaging.requirements import Requirement

    path = path or lock_path(target)
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `make lock`")
    pins = read_lock(path)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"][target.extra]]
    env = {"platform_system": "Linux", "platform_machine": target.arch, "sys_platform": "linux",
           "python_version": PYTHON_VERSION}
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = req.name.lower().replace("_", "-").replace(".", "-")
        if name not in pins or not req.specifier.contains(pins[name], prereleases=True):
            raise SystemExit(f"{path.name} does not satisfy {text!r} (has {pins.get(name)}): run `make lock`")
    return path


def build_variant(target: Target, dist: Path, wheel: Path) -> Path:
    name = f"cairn-{version()}-{target.name}"
    lock = check_lock(target)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / name
        wheels = root / "wheels"
        wheels.mkdir(parents=True)
        pip("download", "--quiet", "--no-deps", "--require-hashes", *target.platform_args(),
            "-d", str(wheels), "-r", str(lock))
        shutil.copy2(wheel, wheels / wheel.name)
        requirements = (f"# Cairn {version()}, bundle {target.name}: every file in wheels/, hashed.\n"
                        f"cairn[{target.extra}]=={version()} \\\n    --hash=sha256:{sha256(wheel)}\n"
                        + lock.read_text())
        (root / "requirements.txt").write_text(requirements)
        shutil.copy2(PACKAGING / "install.sh", root / "install.sh")
        os.chmod(root / "install.sh", 0o755)
        shutil.copy2(PACKAGING / "cairn.service", root / "cairn.service")
        (root / "README.txt").write_text(readme(target))
        # install.sh reads it: version, bundle name, platform, CPython ABI.
        (root / "VARIANT").write_text(
            f"{version()} {target.name} {target.platform} cp{PYTHON_VERSION.replace('.', '')}\n")
        write_sums(root)
        dist.mkdir(parents=True, exist_ok=True)
        out = dist / f"{name}-{target.platform}.tar.gz"
        partial = out.with_suffix(".partial")
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            tar.add(root, arcname=name, filter=_normalize)
        partial.replace(out)  # never a half-written tarball under the final name
    print(f"{out.relative_to(REPO) if out.is_relative_to(REPO) else out}: "
          f"{out.stat().st_size / 2**20:.0f} MiB")
    return out


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Files owned by root on extraction as root, whoever built the bundle.
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_sums(root: Path) -> None:
    lines = [f"{sha256(p)}  {p.relative_to(root)}" for p in sorted(root.rglob("*"))
             if p.is_file() and p.name != "SHA256SUMS"]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def readme(target: Target) -> str:
    return f"""Cairn {version()}, {target.extra} variant, for Linux {target.arch}

{VARIANT_NOTES[target.extra]}

Needs: Python {PYTHON_VERSION} with venv (Debian/Ubuntu: python3.11-venv), glibc {GLIBC_FLOOR} or newer.
Nothing is downloaded: every package is in wheels/ and checked against its sha256.

Install (as root for /opt/cairn, or any user with --prefix):
    ./install.sh                          # into /opt/cairn; /usr/local/bin/cairn when root
    ./install.sh --prefix ~/cairn         # anywhere else
    ./install.sh --systemd                # and the cairn.service unit, enabled and started
    ./install.sh --python /usr/bin/python3.11
    ./install.sh --rollback               # back to the install before this one
    ./install.sh --uninstall              # the service and the install go; the data stays
Running it again with a newer bundle upgrades in place; the data directory is untouched.

Then:
    cairn doctor                          # is this machine ready, and what to fix
    cairn up                              # server and terminal UI on http://127.0.0.1:5000
    systemctl status cairn                # with --systemd: data in /var/lib/cairn
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--dist", type=Path, default=REPO / "dist")
    parser.add_argument("--exe", action="store_true", help="also the PyInstaller one-directory build (cpu)")
    args = parser.parse_args(argv)
    dist = args.dist.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))
        for name in TARGETS if args.variant == "all" else (args.variant,):
            build_variant(TARGETS[name], dist, wheel)
        if args.exe:
            build_exe_variant(dist, wheel, Path(tmp))
    return 0


def build_exe_variant(dist: Path, wheel: Path, work: Path) -> Path:
    """The PyInstaller build needs Cairn installed with the locked cpu dependencies and
    PyInstaller itself (a build tool, so not in the lock) in a venv of its own."""
    from exe import build_exe

    venv = work / "exe-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    vpip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*vpip, "--require-hashes", "--no-deps", "-r", str(check_lock(TARGETS["cpu"]))], check=True)
    subprocess.run([*vpip, "--no-deps", str(wheel)], check=True)
    subprocess.run([*vpip, "pyinstaller"], check=True)
    return build_exe(dist, version(), python)


if __name__ == "__main__":
    sys.exit(main())
