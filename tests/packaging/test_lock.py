"""The committed locks (packaging/lock-<variant>.txt) against pyproject.toml: every
runtime requirement pinned to a version it allows, every pin hashed, one ONNX Runtime per
variant. A dependency added without `make lock` fails here, before any bundle is built."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"


def _load(name: str):
    sys.path.insert(0, str(PACKAGING))
    try:
        spec = importlib.util.spec_from_file_location(f"cairn_packaging_{name}", PACKAGING / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(PACKAGING))


build = _load("build")


@pytest.mark.parametrize("name", ["cpu", "gpu", "cpu-aarch64"])
def test_lock_satisfies_pyproject(name):
    target = build.TARGETS[name]
    path = build.check_lock(target)
    text = path.read_text()
    pins = build.read_lock(path)
    assert len(re.findall(r"^\S+==\S+ \\\n    --hash=sha256:[0-9a-f]{64}$", text, re.MULTILINE)) == len(pins)
    runtimes = {name for name in pins if name.startswith("onnxruntime")}
    assert runtimes == {"onnxruntime" if target.extra == "cpu" else "onnxruntime-gpu"}
    assert "cairn" not in pins


def test_a_stale_lock_is_refused(tmp_path):
    stale = tmp_path / "lock-cpu.txt"
    stale.write_text(re.sub(r"^msgspec==\S+ \\\n.*\n", "", (PACKAGING / "lock-cpu.txt").read_text(), flags=re.MULTILINE))
    with pytest.raises(SystemExit, match="msgspec"):
        build.check_lock(build.TARGETS["cpu"], stale)
