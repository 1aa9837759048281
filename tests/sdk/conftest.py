"""Shared SDK fixtures: every test tracks into its own real data directory."""
from __future__ import annotations

import pytest

import cairn


@pytest.fixture(autouse=True)
def data_dir(sdk_data):
    """Every SDK test tracks into its own data directory (tests/conftest.py's sdk_data)."""
    return sdk_data


@pytest.fixture
def client(data_dir) -> cairn.Client:
    return cairn.Client()
