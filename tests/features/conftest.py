"""Fixtures the feature store tests share: the SDK's client on tests/conftest.py's
`eng` (Delta tables, DuckDB and LMDB all real)."""
from __future__ import annotations

import pytest

from cairn.features import FeatureEngineeringClient


@pytest.fixture
def fe(eng) -> FeatureEngineeringClient:
    return FeatureEngineeringClient(engine=eng)
