"""The Monitors screen over a data directory and over a real `cairn server`: monitors
with their firing alerts, the highlighted one's trends, drift table and windows (newest
first, the drifted columns named), and Enter on a drift cell opening that column's
histogram beside its baseline; typed messages first, cells second."""
from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from textual.app import App
from textual.widgets import DataTable, Sparkline, Static

from cairn import engine
from cairn.engine.endpoints.contract import PayloadRecord
from cairn.engine.monitoring.profiles import profile_columns
from cairn.tui.backend import LocalBackend, RemoteBackend
from cairn.tui.screens.monitors import ColumnLoaded, MonitorsLoaded, MonitorsScreen, WindowsLoaded
from cairn.tui.screens.monitorwidgets import HistogramModal, histogram_rows

pytestmark = pytest.mark.filterwarnings("ignore")
T0 = 1_700_002_800_000


def _fill(data, tmp_path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    from cairn.engine.sdk.client import Client

    X = np.random.default_rng(0).normal(size=(50, 2))
    path = tmp_path / "r.onnx"
    path.write_bytes(to_onnx(Ridge().fit(X, X.sum(1)), X[:1].astype(np.float32), target_opset=17).SerializeToString())
    client = Client(data)
    client._ensure_registered_model("r")
    client.create_model_version("r", str(path))
    eng = client._engine
    eng.endpoints.create_endpoint("ep", {"served_entities": [{"entity_name": "r", "entity_version": "1"}]})
    rng = np.random.default_rng(1)
    eng.monitoring.set_baseline("r", "1", profile_columns({"x0": rng.normal(size=3000).tolist(),
                                                           "x1": rng.normal(size=3000).tolist()}))
    eng.monitoring.create_monitor("ep", ["5 minutes"], settle_s=0)
    eng.monitoring.set_alerts("ep", [{"name": "moved", "metric": "psi", "op": ">", "threshold": 0.2}])
    recs = []
    for i in range(1200):  # two windows: the second with x0 one std off
        row = [float(rng.normal() + (1.0 if i >= 600 else 0.0)), float(rng.normal())]
        recs.append(PayloadRecord(request_id=str(i), timestamp_ms=T0 + i * 500, status_code=200, latency_ms=2.0,
                                  served_entity_name="r-1", model_name="r", model_version="1",
                                  request=json.dumps({"inputs": [row]}), response=json.dumps({"predictions": [0.0]})))
    eng.endpoints.log_payloads("ep", recs)
    eng.env.flush()
    eng.monitoring.refresh("ep", now=T0 + 3_600_000)
    eng.close()


class Harness(App):
    def __init__(self, backend) -> None:
        super().__init__()
        self.backend = backend

    def on_mount(self) -> None:
        self.push_screen(MonitorsScreen(self.backend))


def run_ui(backend):
    messages: list = []
    seen: dict = {}

    async def main() -> None:
        app = Harness(backend)
        async with app.run_test(size=(180, 40), message_hook=messages.append) as pilot:
            deadline = time.monotonic() + 20
            while not any(isinstance(m, WindowsLoaded) for m in messages):
                assert time.monotonic() < deadline, "no windows"
                await pilot.pause(0.05)
            await pilot.pause(0.05)
            screen = app.screen
            seen["monitors"] = [[str(c) for c in screen.query_one("#monitors-table", DataTable).get_row_at(0)]]
            grid = screen.query_one("#windows-table", DataTable)
            seen["windows"] = [[str(c) for c in grid.get_row_at(i)] for i in range(grid.row_count)]
            seen["alerts"] = str(screen.query_one("#monitor-alerts", Static).render())
            seen["trends"] = [list(screen.query_one(f"#trend-{i}", Sparkline).data or []) for i in range(4)]
            drift = screen.query_one("#drift-table", DataTable)
            seen["drift"] = {str(drift.get_row_at(i)[0]): [str(c) for c in drift.get_row_at(i)]
                             for i in range(drift.row_count)}
            drift.focus()
            drift.move_cursor(row=drift.get_row_index("x0"), column=len(drift.columns) - 1)  # the newest window
            await pilot.press("enter")
            while not any(isinstance(m, ColumnLoaded) for m in messages):
                assert time.monotonic() < deadline, "no column"
                await pilot.pause(0.05)
            await pilot.pause(0.1)
            assert isinstance(app.screen, HistogramModal)
            seen["bars"] = str(app.screen.query_one("#histogram-bars", Static).render())
            seen["stats"] = str(app.screen.query_one("#histogram-stats", Static).render())
            await pilot.press("escape")
            await pilot.pause(0.05)
            assert isinstance(app.screen, MonitorsScreen)

    asyncio.run(main())
    return messages, seen


def _check(messages, seen) -> None:
    loaded = next(m for m in messages if isinstance(m, MonitorsLoaded))
    assert [m.endpoint for m in loaded.monitors] == ["ep"] and loaded.firing == {"ep": ["moved"]}
    assert seen["monitors"][0][0] == "ep" and seen["monitors"][0][3] == "moved"
    newest, oldest = seen["windows"]
    assert newest[1] == "600" and "DRIFT" in newest[5] and newest[6] == "x0"
    assert "DRIFT" not in oldest[5]
    assert "FIRING: moved (psi > 0.2" in seen["alerts"]
    requests, errors, p99, quality = seen["trends"]
    assert requests == [600.0, 600.0] and errors == [0.0, 0.0] and p99 == [2.0, 2.0] and quality == []
    # The drift table: a row per column, a cell per window (oldest first), the shifted one flagged.
    assert seen["drift"]["x0"][:2] == ["x0", "wasserstein"] and seen["drift"]["x0"][-1].endswith("!")
    assert not seen["drift"]["x0"][2].endswith("!") and not seen["drift"]["x1"][-1].endswith("!")
    # The drill-down: x0 of the newest window against its baseline, on the baseline's bins.
    loaded = next(m for m in messages if isinstance(m, ColumnLoaded))
    assert loaded.column == "x0" and loaded.drift.drifted and loaded.window.model == "main.default.r/1"
    rows = histogram_rows(loaded.baseline, loaded.seen)
    assert len(rows) == len(loaded.baseline.bin_counts) and rows[0][0].startswith("< ") and rows[-1][0].startswith(">= ")
    assert abs(sum(r[1] for r in rows) - 1) < 1e-9 and abs(sum(r[2] for r in rows) - 1) < 1e-9
    assert rows[-1][2] > rows[-1][1] + 0.2 and rows[0][2] < rows[0][1]  # shifted up by one std
    assert rows[-1][0] in seen["bars"] and "DRIFTED by wasserstein" in seen["stats"]


def test_the_screen_over_a_data_directory(tmp_path):
    data = tmp_path / "data"
    _fill(data, tmp_path)
    eng = engine.open(data)
    try:
        _check(*run_ui(LocalBackend(eng)))
    finally:
        eng.close()


def test_the_screen_over_a_server(tmp_path, launch):
    data = tmp_path / "data"
    _fill(data, tmp_path)
    _, url = launch(data, "--monitor-interval", "0")
    backend = RemoteBackend(url)
    try:
        _check(*run_ui(backend))
    finally:
        backend.close()
