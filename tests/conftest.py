"""Fixtures every test folder may use: `eng`, a real engine on a data directory in a
temp dir (a test that needs other contents defines its own)."""
from __future__ import annotations

from pathlib import Path

import pytest

from cairn import engine


@pytest.fixture
def eng(tmp_path: Path):
    e = engine.open(tmp_path / "data")
    yield e
    e.close()


def register_versions(eng, name: str, versions: int = 1, aliases: dict[str, int] | None = None) -> None:
    """Registry records of a model with `versions` versions and `aliases` (alias ->
    version), without model files: for tests of what names a model version (endpoint
    configs, grants), not of registration itself."""
    eng.registry.create_registered_model(name)
    for _ in range(versions):
        eng.registry.create_model_version(name, f"file:///nowhere/{name}")
    for alias, version in (aliases or {}).items():
        eng.registry.set_registered_model_alias(name, alias, version)
