"""Shared SDK fixtures: every test tracks into its own real data directory."""
from __future__ import annotations

import pytest

import cairn
from cairn import engine


@pytest.fixture(autouse=True)
def data_dir(tmp_path):
    """A fresh data directory for the fluent API and Client(); afterwards end any runs
    the test left open, turn autolog off and close the store."""
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
def client(data_dir) -> cairn.Client:
    return cairn.Client()
