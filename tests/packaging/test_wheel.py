"""Cairn's wheel, built as `make package` builds it (packaging/build.py's build_wheel):
one top-level import name, `cairn`, holding every module of the checkout's folders
(cairn/, engine/, app/, tui/, cli/ as cairn, cairn.engine, cairn.app, cairn.tui,
cairn.cli) and the UI's stylesheets, and a console script that points into it."""
from __future__ import annotations

import configparser
import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"cairn": "cairn", "engine": "cairn/engine", "app": "cairn/app", "tui": "cairn/tui", "cli": "cairn/cli"}


def _build_module():
    sys.path.insert(0, str(REPO / "packaging"))
    try:
        spec = importlib.util.spec_from_file_location("cairn_packaging_build_for_wheel", REPO / "packaging" / "build.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "packaging"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    path = _build_module().build_wheel(tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(path) as zf:
        yield zf


def _payload(zf: zipfile.ZipFile) -> list[str]:
    return [n for n in zf.namelist() if not n.split("/", 1)[0].endswith(".dist-info")]


def test_the_only_top_level_name_is_cairn(wheel):
    tops = {name.split("/", 1)[0] for name in _payload(wheel)}
    assert tops == {"cairn"}
    (top_level,) = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["cairn"]


def test_every_module_and_stylesheet_of_the_checkout_is_in_it(wheel):
    names = set(_payload(wheel))
    expected = set()
    for folder, installed in FOLDERS.items():
        for path in (REPO / folder).rglob("*"):
            if path.suffix in {".py", ".tcss"} and "__pycache__" not in path.parts:
                expected.add(f"{installed}/{path.relative_to(REPO / folder).as_posix()}")
    assert len(expected) > 100
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel (a package missing from pyproject's list?): {missing}"
    assert "cairn/tui/styles/app.tcss" in names


def test_the_console_script_points_into_the_package(wheel):
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    target = parser["console_scripts"]["cairn"]
    module, _, func = target.partition(":")
    assert module == "cairn.cli.main" and func == "main"
    assert f"{module.replace('.', '/')}.py" in _payload(wheel)
