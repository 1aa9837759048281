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
