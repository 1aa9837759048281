"""The Features screen over a local data directory and over a real `cairn server`:
tables with their Delta and online versions, the highlighted table's schema, history
and the model versions trained on it; typed messages first, cells second."""
from __future__ import annotations

import asyncio
import time

import pandas as pd
import pytest
from textual.app import App
from textual.widgets import DataTable, Static

from cairn import engine
from cairn.features import FeatureEngineeringClient
from cairn.tui.backend import LocalBackend, RemoteBackend
from cairn.tui.screens.features import FeaturesScreen, TableDescribed, TablesLoaded, age_text

pytestmark = pytest.mark.filterwarnings("ignore")


def _fill(data_dir) -> None:
    with engine.open(data_dir) as eng:
        _tables(FeatureEngineeringClient(engine=eng))


def _tables(fe: FeatureEngineeringClient) -> None:
    fe.create_table("cust", primary_keys="cid", timestamp_keys="ts", description="spend per customer",
                    df=pd.DataFrame({"cid": [1, 2], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                                     "spend": [1.0, 2.0]}))
    fe.publish_table("cust")
    fe.write_table("cust", pd.DataFrame({"cid": [3], "ts": pd.to_datetime(["2024-01-03"]), "spend": [3.0]}))
    fe.create_table("prof", primary_keys="cid", df=pd.DataFrame({"cid": [1], "age": [30]}))


class Harness(App):
    def __init__(self, backend) -> None:
        super().__init__()
        self.backend = backend

    def on_mount(self) -> None:
        self.push_screen(FeaturesScreen(self.backend))


async def until(pilot, check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def run_ui(backend) -> tuple[list, list[list[str]], list[str]]:
    messages: list = []
    seen: dict = {}

    async def main() -> None:
        app = Harness(backend)
        async with app.run_test(size=(160, 40), message_hook=messages.append) as pilot:
            await until(pilot, lambda: any(isinstance(m, TableDescribed) for m in messages), "a description")
            screen = app.screen
            grid = screen.query_one("#features-table", DataTable)
            seen["rows"] = [[str(c) for c in grid.get_row_at(i)] for i in range(grid.row_count)]
            details = [str(screen.query_one("#feature-detail", Static).render())]
            await pilot.press("down")
            await until(pilot, lambda: sum(isinstance(m, TableDescribed) for m in messages) >= 2, "the second")
            await until(pilot, lambda: screen.description.feature_table.name == "prof", "prof's description")
            details.append(str(screen.query_one("#feature-detail", Static).render()))
            seen["details"] = details

    asyncio.run(main())
    return messages, seen["rows"], seen["details"]


def _check(messages, rows, details) -> None:
    loaded = next(m for m in messages if isinstance(m, TablesLoaded))
    assert [t.name for t in loaded.tables] == ["cust", "prof"]
    cust = loaded.tables[0]
    assert (cust.delta_version, cust.online_version, cust.online_rows) == (2, 1, 2)
    assert rows[0][:7] == ["cust", "cid", "ts", "1", "2", "v1 (1 behind)", "2"]
    assert rows[1][5] == "not published"
    assert "spend per customer" in details[0] and "ts timestamp[us, tz=UTC] [timestamp]" in details[0]
    assert "v2 MERGE" in details[0] and "trained on it: no model" in details[0]
    assert "prof" in details[1] and "age int64" in details[1]


def test_the_screen_over_a_local_data_directory(tmp_path):
    data = tmp_path / "data"
    _fill(data)
    eng = engine.open(data)
    try:
        _check(*run_ui(LocalBackend(eng)))
    finally:
        eng.close()


def test_the_screen_over_a_server(tmp_path, launch):
    data = tmp_path / "data"
    _fill(data)
    _, url = launch(data)
    backend = RemoteBackend(url)
    try:
        _check(*run_ui(backend))
    finally:
        backend.close()


def test_age_text():
    assert age_text(0) == "" and age_text(1_000, now_ms=43_000) == "42 s ago"
    assert age_text(0 + 1, now_ms=3 * 3600_000) == "2 h ago" and age_text(1, now_ms=2 * 86400_000 + 5) == "2 d ago"
