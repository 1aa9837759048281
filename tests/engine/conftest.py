"""Fixtures the engine tests share: a real store in a temp dir, and a wall clock that
always moves forward."""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from cairn import engine


@pytest.fixture
def eng(tmp_path: Path):
    e = engine.open(tmp_path / "data")
    yield e
    e.close()


@pytest.fixture
def distinct_clock(monkeypatch):
    """Every reading of the wall clock is a later millisecond (the store reads time.time_ns)."""
    ticks = itertools.count(1_700_000_000_000, 7)
    monkeypatch.setattr(time, "time_ns", lambda: next(ticks) * 1_000_000)
