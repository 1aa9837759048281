"""The one-directory executable (packaging/exe.py): build it, unpack the tarball as a
site would, and run it with no Python around it: help, doctor, the demo (scikit-learn to
ONNX conversion and registration inside the frozen app), the server's /health and a
tracking write, a prediction from the registered model.

It builds as `make package` does (packaging/build.py --exe: a venv of the locked cpu
dependencies and PyInstaller, then the build), or, given $CAIRN_EXE_PYTHON (the Python of
a venv with cairn[cpu] and pyinstaller), with that venv. Slow: the build takes minutes.
CI runs it; CAIRN_SKIP_EXE=1 skips it in a quick local run."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_exe():
    """packaging/exe.py by its path: packaging/ is a folder of scripts, and putting it on
    sys.path would let its script names shadow real packages for the whole session."""
    spec = importlib.util.spec_from_file_location("cairn_packaging_exe", REPO / "packaging" / "exe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


exe = _load_exe()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CAIRN_SKIP_EXE") == "1", reason="CAIRN_SKIP_EXE=1"),
]


def build(dist: Path) -> Path:
    configured = os.environ.get("CAIRN_EXE_PYTHON")
    if configured:
        return exe.build_exe(dist, exe.project_version(), Path(configured))
    subprocess.run([sys.executable, str(REPO / "packaging" / "build.py"), "--variant", "cpu", "--exe",
                    "--dist", str(dist)], check=True)
    (tarball,) = dist.glob("*-exe.tar.gz")
    return tarball


def test_build_unpack_and_run(tmp_path):
    started = time.monotonic()
    tarball = build(tmp_path / "dist")
    took = time.monotonic() - started
    version = exe.project_version()
    top = f"cairn-{version}"
    assert tarball.name == exe.tarball_name(version)

    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        note = tar.extractfile(f"{top}/README-EXE.txt").read().decode()
    assert f"{top}/cairn" in names
    assert any(n.startswith(f"{top}/_internal/") for n in names)
    assert all(n.startswith(top) for n in names)
    glibc = re.search(r"Needs glibc (\d+\.\d+)", note)
    assert glibc, note
    # The C++ runtime is the system's (the build machine's would raise the glibc floor),
    # and the README says which version of it the bundle needs.
    assert not [n for n in names if "/libstdc++.so" in n]
    assert re.search(r"libstdc\+\+6 with GLIBCXX_3\.4\.\d+ or newer", note), note

    program = exe.unpack(tarball, tmp_path / "unpacked")
    done = exe.smoke_check(program, tmp_path / "smoke")
    assert any(line.startswith("cairn ui:") for line in done), done
    # What was measured, for the README and the report (pytest -s shows it).
    print(f"\nbuilt in {took:.0f} s, {tarball.stat().st_size / 1024**2:.0f} MiB, glibc >= {glibc.group(1)}")
    print(note)
    print("\n".join(done))
