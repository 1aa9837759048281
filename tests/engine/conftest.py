"""Fixtures the engine tests share (besides tests/conftest.py's `eng`, a real store in
a temp dir): a wall clock that always moves forward."""
from __future__ import annotations

import itertools
import time

import pytest


@pytest.fixture
def distinct_clock(monkeypatch):
    """Every reading of the wall clock is a later millisecond (the store reads time.time_ns)."""
    ticks = itertools.count(1_700_000_000_000, 7)
    monkeypatch.setattr(time, "time_ns", lambda: next(ticks) * 1_000_000)
