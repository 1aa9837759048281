"""Lock every runtime dependency of Cairn, per bundle, with exact versions and hashes.

    python packaging/lock.py [--variant cpu|gpu|cpu-aarch64|all]

writes packaging/lock-<variant>.txt: `name==version --hash=sha256:...` for each package
that `pip install cairn[cpu|gpu]` installs on Linux (x86_64, or aarch64 for
cpu-aarch64) with CPython 3.11. The offline bundle (packaging/build.py) downloads
exactly these files and install.sh installs them with `--require-hashes --no-index`, so
a bundle is the lock and nothing else.

Two steps, because pip cannot resolve for a foreign platform and report hashes in one
go: resolve the versions here (Linux x86_64, CPython 3.11), then fetch each pinned
version as the target's wheel for the bundles' glibc floor (manylinux_2_28) and hash
the file. The floor matters: left to itself, pip on a
new glibc picks wheels (cryptography's manylinux_2_34) that an older edge device
(RHEL 8, Debian 10, Ubuntu 20.04: glibc 2.28 to 2.31) could not install.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
PYTHON_VERSION = "3.11"
# The oldest glibc the bundle's wheels may need; README and install.sh say the same.
GLIBC_FLOOR = "2.28"
_FLOOR_MINOR = int(GLIBC_FLOOR.split(".")[1])


@dataclass(frozen=True)
class Target:
    """One bundle: an ONNX Runtime extra of pyproject (`cpu` or `gpu`) on one CPU
    architecture. Its name is the extra, with the architecture added when it is not
    x86_64: `cpu`, `gpu`, `cpu-aarch64` (Jetson-class GPUs need NVIDIA's own ONNX
    Runtime build, which is not on PyPI, so there is no `gpu-aarch64`)."""

    extra: str
    arch: str

    @property
    def name(self) -> str:
        return self.extra if self.arch == "x86_64" else f"{self.extra}-{self.arch}"

    @property
    def platform(self) -> str:
        return f"linux-{self.arch}"

    def platform_args(self) -> list[str]:
        """pip's flags to fetch this target's wheels from any machine. pip matches
        --platform tags literally (manylinux_2_28 does not admit a manylinux_2_17 wheel),
        so every tag at or below the floor is named."""
        tags = [*(f"manylinux_2_{minor}_{self.arch}" for minor in range(_FLOOR_MINOR, 16, -1)),
                f"manylinux2014_{self.arch}"]
        if self.arch == "x86_64":  # the older aliases exist for x86_64 only
            tags += [*(f"manylinux_2_{minor}_x86_64" for minor in range(16, 4, -1)),
                     "manylinux2010_x86_64", "manylinux1_x86_64"]
        return [
            "--only-binary=:all:", *(arg for tag in tags for arg in ("--platform", tag)),
            "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--abi", "cp" + PYTHON_VERSION.replace(".", ""), "--abi", "abi3", "--abi", "none",
        ]


TARGETS = {t.name: t for t in (Target("cpu", "x86_64"), Target("gpu", "x86_64"), Target("cpu", "aarch64"))}


def lock_path(target: Target) -> Path:
    return PACKAGING / f"lock-{target.name}.txt"


def canonical(name: str) -> str:
    """PEP 503 names: `PyYAML`, `pyyaml` and `py_yaml` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename: str) -> str:
    """The project a wheel file belongs to, from its name (`name-version-...whl`)."""
    return canonical(filename.split("-", 1)[0])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def resolve(extra: str) -> dict[str, str]:
    """{project: version} that `cairn[extra]` pulls in, Cairn itself excluded. Resolved
    on this machine: the same versions serve an aarch64 target (no requirement of
    Cairn's differs by architecture; `fetch` fails if a wheel is missing there)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        pip("install", "--quiet", "--dry-run", "--ignore-installed", "--only-binary=:all:",
            "--report", str(report), f"{REPO}[{extra}]")
        installs = json.loads(report.read_text())["install"]
    pins = {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    pins.pop("cairn", None)
    return dict(sorted(pins.items()))


def fetch(target: Target, pins: dict[str, str], dest: Path) -> dict[str, Path]:
    """Download the target's wheel of each pin into `dest`; {project: wheel file}."""
    pip("download", "--quiet", "--no-deps", *target.platform_args(), "-d", str(dest),
        *(f"{name}=={version}" for name, version in pins.items()))
    wheels = {wheel_project(p.name): p for p in dest.glob("*.whl")}
    missing = sorted(set(pins) - set(wheels))
    if missing:
        raise SystemExit(f"no {target.platform} wheel (glibc {GLIBC_FLOOR}) downloaded for: {', '.join(missing)}")
    return wheels


def render(target: Target, pins: dict[str, str], wheels: dict[str, Path]) -> str:
    lines = [
        f"# Cairn's runtime dependencies, bundle {target.name}: {target.platform}, CPython {PYTHON_VERSION},",
        f"# wheels for glibc >= {GLIBC_FLOOR}. Written by packaging/lock.py; do not edit.",
        "# The offline bundle installs exactly these files (pip --require-hashes --no-index).",
    ]
    for name, version in pins.items():
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{sha256(wheels[name])}")
    return "\n".join(lines) + "\n"


def lock(target: Target) -> Path:
    pins = resolve(target.extra)
    with tempfile.TemporaryDirectory() as tmp:
        text = render(target, pins, fetch(target, pins, Path(tmp)))
    path = lock_path(target)
    path.write_text(text)
    print(f"{path.relative_to(REPO)}: {len(pins)} packages")
    return path


def read_lock(path: Path) -> dict[str, str]:
    """{project: version} of a lock file, for checks against pyproject (tests, build)."""
    pins = {}
    for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", path.read_text(), re.MULTILINE):
        pins[canonical(m.group(1))] = m.group(2)
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=[*TARGETS, "all"], default="all")
    args = parser.parse_args(argv)
    for name in TARGETS if args.variant == "all" else (args.variant,):
        lock(TARGETS[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
