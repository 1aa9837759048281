"""The one-directory executable (packaging/exe.py): build it, unpack the tarball as a
site would, and run it with no Python around it: help, doctor, the demo (scikit-learn to
ONNX conversion and registration inside the frozen app), the server's /health and a
tracking write, a prediction from the registered model.

Slow (the build takes minutes), so it runs only with CAIRN_TEST_EXE=1. It builds with
$CAIRN_EXE_PYTHON, the Python of a venv with cairn[cpu] and pyinstaller installed, or
with the Python running the tests if PyInstaller is importable there."""
from __future__ import annotations

import importlib.util
import os
import re
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
    pytest.mark.skipif(os.environ.get("CAIRN_TEST_EXE") != "1",
                       reason="builds the PyInstaller executable (minutes): set CAIRN_TEST_EXE=1 to run it"),
]


def build_python() -> Path:
    configured = os.environ.get("CAIRN_EXE_PYTHON")
    if configured:
        return Path(configured)
    if importlib.util.find_spec("PyInstaller") is not None:
        return Path(sys.executable)
    pytest.skip("no PyInstaller: set CAIRN_EXE_PYTHON to the Python of a venv with cairn[cpu] and pyinstaller")


def test_build_unpack_and_run(tmp_path):
    started = time.monotonic()
    tarball = exe.build_exe(tmp_path / "dist", "0.0.0-test", build_python())
    took = time.monotonic() - started
    assert tarball.name == "cairn-0.0.0-test-linux-x86_64-exe.tar.gz"

    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        note = tar.extractfile("cairn-0.0.0-test/README-EXE.txt").read().decode()
    assert "cairn-0.0.0-test/cairn" in names
    assert any(n.startswith("cairn-0.0.0-test/_internal/") for n in names)
    assert all(n.startswith("cairn-0.0.0-test") for n in names)
    glibc = re.search(r"Needs glibc (\d+\.\d+)", note)
    assert glibc, note

    program = exe.unpack(tarball, tmp_path / "unpacked")
    done = exe.smoke_check(program, tmp_path / "smoke")
    # What was measured, for the README and the report (pytest -s shows it).
    print(f"\nbuilt in {took:.0f} s, {tarball.stat().st_size / 1024**2:.0f} MiB, glibc >= {glibc.group(1)}")
    print("\n".join(done))
