"""Fixtures every test folder may use: `eng`, a real engine on a data directory in a
temp dir (a test that needs other contents defines its own), `sdk_data` for the SDK's,
and `register_versions`."""
from __future__ import annotations

from pathlib import Path

import pytest

from cairn import engine


@pytest.fixture
def eng(tmp_path: Path):
    e = engine.open(tmp_path / "data")
    yield e
    e.close()


@pytest.fixture
def sdk_data(tmp_path: Path):
    """A fresh data directory for the fluent API and Client(); afterwards end any runs
    the test left open, turn autolog off and close the store."""
    import cairn

    path = tmp_path / "cairn-data"
    cairn.set_tracking_dir(path)
    yield path
    while cairn.active_run() is not None:
        cairn.end_run()
    cairn.autolog(disable=True)
    opened = engine.open(path)  # the same Engine the SDK used
    cairn.set_tracking_dir(None)
    opened.close()


@pytest.fixture
def register_versions():
    """`register_versions(eng, name, versions=1, aliases=None)`, below."""
    return _register_versions


def _register_versions(eng, name: str, versions: int = 1, aliases: dict[str, int] | None = None) -> None:
    """Registry records of a model with `versions` versions and `aliases` (alias ->
    version), without model files: for tests of what names a model version (endpoint
    configs, grants), not of registration itself."""
    from cairn.engine.errors import CairnError
    from cairn.engine.registry.names import parse_model_name

    full = parse_model_name(name)
    for make, what in ((eng.registry.create_catalog, full.catalog), (eng.registry.create_schema,
                                                                     f"{full.catalog}.{full.schema}")):
        try:
            make(what)
        except CairnError:
            pass  # there already (main, main.default)
    eng.registry.create_registered_model(name)
    for _ in range(versions):
        eng.registry.create_model_version(name, f"file:///nowhere/{name}")
    for alias, version in (aliases or {}).items():
        eng.registry.set_registered_model_alias(name, alias, version)
