"""Fixtures the feature store tests share: a real engine in a temp dir and the SDK's
client on it (Delta tables, DuckDB and LMDB all real)."""
from __future__ import annotations

from pathlib import Path

import pytest

from cairn import engine
from cairn.features import FeatureEngineeringClient


@pytest.fixture
def eng(tmp_path: Path):
    e = engine.open(tmp_path / "data")
    yield e
    e.close()


@pytest.fixture
def fe(eng) -> FeatureEngineeringClient:
    return FeatureEngineeringClient(eng.path)
