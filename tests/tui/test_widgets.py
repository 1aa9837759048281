"""The run screen's downsampling and the runs screen's column picker."""
from __future__ import annotations

import pytest
from test_app import (  # tests/tui is on sys.path (rootdir import mode)
    SIZE,
    open_experiment,
    wait_for,
)
from textual.widgets import DataTable, SelectionList

from cairn.engine.tracking.entities import Metric
from cairn.tui.app import create_tui
from cairn.tui.widgets.run import MAX_POINTS, downsample
from cairn.tui.widgets.runs import ColumnPicker


def test_downsample_keeps_ends_and_spikes():
    points = [Metric("loss", float(i % 100), i, i) for i in range(100_000)]
    points[54_321] = Metric("loss", 1e9, 54_321, 54_321)  # one spike
    out = downsample(points)
    assert len(out) <= MAX_POINTS + 2
    assert out[0] == points[0] and out[-1] == points[-1]
    assert points[54_321] in out
    assert [p.step for p in out] == sorted(p.step for p in out)
    assert downsample(points[:10]) == points[:10]


@pytest.mark.anyio
async def test_pick_columns(backend):
    app = create_tui(backend)
    async with app.run_test(size=SIZE) as pilot:
        runs = await open_experiment(pilot, app, "alpha")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ColumnPicker))
        picker = app.screen
        metrics = picker.query_one("#pick-metrics", SelectionList)
        params = picker.query_one("#pick-params", SelectionList)
        metrics.deselect("metrics.acc")
        params.deselect_all()
        params.select("params.model")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is runs)
        keys = [c.key.value for c in runs.query_one("#runs", DataTable).ordered_columns]
        assert keys == ["sel", "status", "name", "start", "duration", "metrics.rmse", "params.model"]
        assert len(runs.query_one("#runs", DataTable).rows) == 5
