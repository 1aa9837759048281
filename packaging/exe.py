"""The one-directory executable of Cairn's CPU variant, for a site with no Python.

    python packaging/exe.py --python VENV/bin/python [--dist dist] [--version V] [--smoke]

VENV is a virtual environment where `cairn[cpu]` and `pyinstaller` are installed (the
caller sets it up; this script needs only the standard library). PyInstaller runs there
with packaging/pyinstaller/cairn.spec, which takes Cairn's own modules from that venv's
install of Cairn's wheel. The result is `DIST/cairn-<version>-linux-x86_64-exe.tar.gz` holding

    cairn-<version>/cairn           the program (`./cairn server`, `./cairn doctor`, ...)
    cairn-<version>/_internal/      Python, the libraries, ONNX Runtime
    cairn-<version>/README-EXE.txt  what it is and the oldest glibc it runs on

The glibc it needs is measured, not assumed: the highest GLIBC_x.y symbol version that
any ELF file in the bundle asks for (objdump -T, else readelf), else, with neither tool
installed, the build host's own glibc (`ldd --version`, an upper bound).
`--smoke` unpacks the tarball and runs it as a user would (smoke_check).
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import time
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "packaging" / "pyinstaller" / "cairn.spec"
ARCH = "x86_64"
_GLIBC = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")
_GLIBCXX = re.compile(rb"GLIBCXX_(\d+)\.(\d+)(?:\.(\d+))?")
# Bounds for the smoke check's steps, not measurements: a cold start of the frozen app
# unpacks nothing (one-directory), but imports a lot on a slow disk.
START_S = 120.0
STEP_S = 600.0


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def tarball_name(version: str) -> str:
    return f"cairn-{version}-linux-{ARCH}-exe.tar.gz"


# -- build ----------------------------------------------------------------------------------
def build_exe(dist_dir: Path, version: str, python: Path) -> Path:
    """Build the executable with `python` (a venv with cairn[cpu] and pyinstaller) and
    write the tarball into `dist_dir`; return its path. Prints the glibc it needs."""
    if platform.system() != "Linux" or platform.machine() != ARCH:
        raise SystemExit(f"error: this builds the linux-{ARCH} executable; this machine is "
                         f"{platform.system()} {platform.machine()}")
    probe = subprocess.run([str(python), "-c", "import PyInstaller, onnxruntime, cairn.cli.main"],
                           capture_output=True, text=True, check=False, cwd=tempfile.gettempdir())
    if probe.returncode != 0:
        raise SystemExit(f"error: {python} cannot build Cairn's executable: it needs cairn[cpu] and "
                         f"pyinstaller installed ({(probe.stderr.strip().splitlines() or ['?'])[-1]})")
    dist_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cairn-exe-") as tmp:
        work = Path(tmp)
        subprocess.run(
            [str(python), "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
             "--distpath", str(work / "dist"), "--workpath", str(work / "build"), str(SPEC)],
            cwd=work, check=True,
        )  # fmt: skip
        top = work / f"cairn-{version}"
        (work / "dist" / "cairn").rename(top)
        glibc, how, glibcxx = glibc_needed(top)
        (top / "README-EXE.txt").write_text(readme(version, glibc, how, glibcxx))
        out = dist_dir / tarball_name(version)
        partial = out.with_name(out.name + ".partial")  # never a half-written tarball under the real name
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            tar.add(top, arcname=top.name)
        partial.replace(out)
    cxx = f" and libstdc++ with GLIBCXX_{glibcxx}" if glibcxx else ""
    print(f"{out}: {out.stat().st_size / 1024**2:.0f} MiB, needs glibc >= {glibc} ({how}){cxx}")
    return out


def readme(version: str, glibc: str, how: str, glibcxx: str | None) -> str:
    needs = f"Needs glibc {glibc} or newer ({how})"
    if glibcxx:
        needs += (f",\nand the system's C++ runtime: libstdc++6 with GLIBCXX_{glibcxx} or newer (every\n"
                  "distribution with that glibc has it)")
    return f"""Cairn {version}: one-directory executable (CPU), Linux {ARCH}

{needs}.
Check with `ldd --version`. No Python is needed.

Run it from this directory, or put the directory anywhere and link the program:
    ./cairn --help
    ./cairn doctor                 is this machine ready?
    ./cairn up                     demo data on first start, server and terminal UI
    ./cairn --data DIR server      MLflow REST API, registry, serving on 127.0.0.1:5000
Keep `cairn` and `_internal/` together: the program loads everything from there.
Data lives in $CAIRN_HOME, else ~/.local/share/cairn, unless --data says otherwise.
"""


def _elf_files(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def _highest(found: set[tuple[int, ...]]) -> str | None:
    return ".".join(map(str, max(found))) if found else None


def glibc_needed(root: Path) -> tuple[str, str, str | None]:
    """(highest GLIBC_x.y the ELF files under `root` require, how it was found, highest
    GLIBCXX_3.4.n they require of the system's libstdc++, or None when not measured)."""
    tool = next(([t, *flags] for t, flags in (("objdump", ["-T"]), ("readelf", ["-V", "-W"])) if shutil.which(t)), None)
    if tool is not None:
        files = _elf_files(root)

        def versions(path: Path) -> tuple[set[tuple[int, ...]], set[tuple[int, ...]]]:
            out = subprocess.run([*tool, str(path)], capture_output=True, check=False).stdout
            return ({tuple(int(x) for x in m.groups() if x is not None) for m in _GLIBC.finditer(out)},
                    {tuple(int(x) for x in m.groups() if x is not None) for m in _GLIBCXX.finditer(out)})

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            found = dict(zip(files, pool.map(versions, files)))
        needs = {path: max(glibc) for path, (glibc, _cxx) in found.items() if glibc}
        if needs:
            # Name the file that sets the bar: usually a library copied from the build
            # machine (libpython, libgcc_s), which is what a build on an older
            # distribution would change.
            path, highest = max(needs.items(), key=lambda item: item[1])
            cxx = _highest(set().union(*(c for _g, c in found.values())))
            return (".".join(map(str, highest)),
                    f"the highest GLIBC symbol version its {len(files)} ELF files use, here in {path.name}", cxx)
    out = subprocess.run(["ldd", "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"(\d+\.\d+)\s*$", out.splitlines()[0] if out else "")
    how = "the build machine's glibc; the real minimum may be lower"
    return (m.group(1) if m else platform.libc_ver()[1] or "unknown"), how, None


# -- smoke check ----------------------------------------------------------------------------
def unpack(tarball: Path, into: Path) -> Path:
    """Unpack the tarball into `into`; return the path of the `cairn` program."""
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="tar")  # "tar": keeps the executable bits, refuses ../ paths
    (top,) = [p for p in into.iterdir() if p.is_dir()]
    return top / "cairn"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(exe: Path, *args: str, env: dict) -> str:
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=STEP_S,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0 or "Traceback" in proc.stderr:
        raise RuntimeError(f"`cairn {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


class _Serving:
    """A `cairn ... --port 0` child with its output in a file; `url` once it listens.
    Stopped with SIGTERM (as systemd does) by its PID; it must exit 0."""

    def __init__(self, exe: Path, args: list[str], env: dict, log: Path):
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen([str(exe), *args, "--port", "0"], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"at (http://127\.0\.0\.1:\d+)", log.read_text())
            if m:
                self.url = m.group(1)
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"`cairn {' '.join(args)}` did not start:\n{log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _http(url: str, body: dict | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()


def smoke_check(exe: Path, work: Path) -> list[str]:
    """Run the unpacked program as a user would, on loopback, with a data directory under
    `work`: help, doctor, the demo (scikit-learn models converted to ONNX and registered
    inside the frozen app), the server's /health and a tracking write, and a prediction
    from the registered model. Returns what it checked; raises RuntimeError on a failure."""
    data = work / "data"
    # HOME and CAIRN_HOME under `work`: nothing the check runs can touch the real home.
    env = {**os.environ, "HOME": str(work / "home"), "CAIRN_HOME": str(work / "home" / "cairn")}
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # the frozen app must need none
        env.pop(var, None)
    done = []
    if "server" not in _run(exe, "--help", env=env):
        raise RuntimeError("`cairn --help` does not list the server command")
    done.append("cairn --help")

    doc = json.loads(_run(exe, "--data", str(data), "doctor", "--port", str(_free_port()), "--json", env=env))
    checks = {c["name"]: c for c in doc["checks"]}
    if not doc["healthy"] or checks.get("CPUExecutionProvider", {}).get("status") != "ok":
        raise RuntimeError(f"doctor is not healthy:\n{json.dumps(doc, indent=2)}")
    done.append(f"cairn doctor: healthy, cairn {doc['cairn']}, {checks['ONNX Runtime']['detail']}")

    # The demo autologs scikit-learn models (each converted with skl2onnx and checked
    # against the original) and registers iris: the converter registry, scipy and
    # scikit-learn's compiled parts must all be in the bundle for this to pass.
    _run(exe, "--data", str(data), "demo", env=env)
    runs = json.loads(_run(exe, "--data", str(data), "runs", "list", "--json", env=env))["runs"]
    failed = [t["value"] for r in runs for t in r["data"].get("tags", []) if t["key"] == "cairn.onnx.error"]
    if not runs or failed:
        raise RuntimeError(f"ONNX conversion failed in the frozen app: {failed or 'no runs'}")
    shown = json.loads(_run(exe, "--data", str(data), "models", "show", "iris", "--json", env=env))
    statuses = [v["status"] for v in shown["registered_model"]["latest_versions"]]
    if "READY" not in statuses:
        raise RuntimeError(f"iris was not registered READY: {statuses}")
    done.append(f"cairn demo: {len(runs)} runs, every model converted to ONNX, iris registered READY")

    with _Serving(exe, ["--data", str(data), "server"], env, work / "server.log") as server:
        status, body = _http(f"{server.url}/health")
        if (status, body) != (200, b"OK"):
            raise RuntimeError(f"/health answered {status} {body!r}")
        _status, body = _http(f"{server.url}/api/2.0/mlflow/experiments/create", {"name": "smoke"})
        exp_id = json.loads(body)["experiment_id"]
        code = server.stop()
        if code != 0:
            raise RuntimeError(f"the server exited {code} on SIGTERM:\n{server.log.read_text()}")
    experiments = _run(exe, "--data", str(data), "experiments", "list", "--json", env=env)
    if exp_id not in experiments:
        raise RuntimeError("an experiment created over HTTP is missing after the server stopped")
    done.append("cairn server: /health OK, experiment created over REST, exit 0 on SIGTERM")

    done.append(_ui_check(exe, data, env, work / "ui.typescript"))

    with _Serving(exe, ["--data", str(data), "models", "serve", "-m", "models:/iris@champion"], env,
                  work / "serve.log") as serving:
        row = [5.1, 3.5, 1.4, 0.2]  # an Iris setosa from the data set
        _status, body = _http(f"{serving.url}/invocations", {"inputs": [row]})
        predictions = json.loads(body)["predictions"]
        if not predictions:
            raise RuntimeError(f"no prediction: {body!r}")
    done.append(f"cairn models serve models:/iris@champion: /invocations -> {json.dumps(predictions)[:80]}")
    return done


def _ui_check(exe: Path, data: Path, env: dict, typescript: Path) -> str:
    """`cairn ui` on a pseudo-terminal: the experiments screen must draw the demo
    experiment (so textual and its stylesheets, textual's own and tui/styles/*.tcss, are
    in the bundle), and `q` must end it with exit 0. Every wait is bounded; what was
    drawn is kept in `typescript` for a failure's message."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    started = time.monotonic()
    proc = subprocess.Popen([str(exe), "--data", str(data), "ui"], env={**env, "TERM": "xterm-256color"},
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)  # the child holds its copy: EOF (EIO) on the master once it exits
    drawn, drew_s, code = bytearray(), None, None
    try:
        deadline = started + START_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            chunk = _read_pty(master) if ready else b""
            if ready and not chunk:
                break  # the child exited
            drawn += chunk
            if drew_s is None and b"cairn-demo" in drawn:
                drew_s = time.monotonic() - started
                os.write(master, b"q")
                deadline = time.monotonic() + 30  # a bound on quitting, not a measurement
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()  # by its PID only
            proc.wait(timeout=30)
        os.close(master)
        typescript.write_bytes(bytes(drawn))
    screen = drawn.decode("utf-8", "replace")
    waited = time.monotonic() - started
    if "Traceback" in screen or drew_s is None:
        raise RuntimeError(f"`cairn ui` did not draw the experiments screen in {waited:.0f} s "
                           f"(exit {proc.returncode}):\n{screen[-3000:]}")
    if code != 0:
        raise RuntimeError(f"`cairn ui` did not exit 0 on `q` (exit {proc.returncode}):\n{screen[-3000:]}")
    return f"cairn ui: the experiments screen drew on a pseudo-terminal in {drew_s:.1f} s; `q` quit with exit 0"


def _read_pty(master: int) -> bytes:
    try:
        return os.read(master, 65536)
    except OSError:  # EIO: the child side closed
        return b""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="packaging/exe.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--python", type=Path, default=Path(sys.executable),
                   help="the Python of a venv with cairn[cpu] and pyinstaller (default: this one)")
    p.add_argument("--dist", type=Path, default=REPO / "dist", help="where the tarball goes (default dist/)")
    p.add_argument("--version", default=None, help="version in the names (default: pyproject.toml's)")
    p.add_argument("--smoke", action="store_true", help="unpack the tarball and run the smoke check")
    args = p.parse_args(argv)
    version = args.version or project_version()
    started = time.monotonic()
    tarball = build_exe(args.dist, version, args.python)
    print(f"built in {time.monotonic() - started:.0f} s")
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="cairn-exe-smoke-") as tmp:
            exe = unpack(tarball, Path(tmp) / "unpacked")
            for line in smoke_check(exe, Path(tmp)):
                print(f"ok: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
