"""Waiting in Pilot tests for what workers and messages bring (importable from the tests
in this folder: pytest puts it on sys.path, as it holds no package)."""
from __future__ import annotations

import time


async def wait_for(pilot, cond, timeout: float = 15.0) -> None:
    """Let workers and messages run until `cond()` holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for the UI"
        await pilot.pause(0.02)
