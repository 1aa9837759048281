"""The compare screen's overlaid chart: one line per compared run for the chosen metric,
long histories downsampled as the run screen's, `[` / `]` and the table's cursor pick
the metric."""
from __future__ import annotations

import pytest
from pilotwait import wait_for
from textual.widgets import DataTable, Static

from cairn import engine
from cairn.engine.tracking.entities import Metric
from cairn.tui.app import create_tui
from cairn.tui.backend import LocalBackend
from cairn.tui.screens.compare import CompareHistories, CompareScreen
from cairn.tui.widgets.run import MAX_POINTS

pytestmark = pytest.mark.anyio
T0 = 1_767_225_600_000
LONG = 30_000




@pytest.fixture()
def compared(tmp_path):
    """Three runs: `long` logs LONG loss points, `short` 10, `no-loss` only acc."""
    eng = engine.open(tmp_path / "data")
    tr = eng.tracking
    exp = tr.create_experiment("cmp")
    ids = []
    for name, n in (("long", LONG), ("short", 10), ("no-loss", 0)):
        rid = tr.create_run(exp, start_time=T0, run_name=name).info.run_id
        points = [Metric("loss", 1.0 / (s + 1), T0 + s, s) for s in range(n)]
        for at in range(0, len(points), 1000):
            tr.log_batch(rid, metrics=points[at:at + 1000])
        tr.log_batch(rid, metrics=[Metric("acc", 0.5, T0, 0)])
        ids.append(rid)
    yield LocalBackend(eng), ids
    eng.close()


async def test_overlaid_chart_one_line_per_run_and_metric_keys(compared):
    backend, ids = compared
    seen: list[CompareHistories] = []
    app = create_tui(backend)
    async with app.run_test(size=(140, 40), message_hook=lambda m: isinstance(m, CompareHistories) and seen.append(m)) as pilot:
        app.push_screen(CompareScreen(backend, ids))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and seen)
        screen = app.screen
        assert screen.metric_keys == ["acc", "loss"]
        # the first metric is charted at once, a line per run, labelled by run name
        assert seen[-1].key == "acc"
        assert [label for label, _, _ in seen[-1].series] == ["long", "short", "no-loss"]
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: seen[-1].key == "loss")
        series = {label: (points, total) for label, points, total in seen[-1].series}
        assert set(series) == {"long", "short"}  # no-loss never logged it: no line
        long_points, long_total = series["long"]
        assert long_total == LONG and len(long_points) <= MAX_POINTS + 2
        assert (long_points[0].step, long_points[-1].step) == (0, LONG - 1)  # ends kept
        assert series["short"][1] == 10 and len(series["short"][0]) == 10
        title = screen.query_one("#chart-title", Static)
        assert "loss" in str(title.render()) and "2 runs" in str(title.render())
        await pilot.press("right_square_bracket")  # wraps around
        await wait_for(pilot, lambda: seen[-1].key == "acc" and screen.chart_key == "acc")
        # the table's cursor on a metric's row charts that metric
        table = screen.query_one("#compare", DataTable)
        table.move_cursor(row=table.get_row_index("metrics.loss"))
        await wait_for(pilot, lambda: seen[-1].key == "loss")
