"""Compare 2 to 10 runs: params side by side with the differing ones marked, latest
metrics with the best value starred, and one metric's histories overlaid in one chart
(a line per run, the legend by run name). `[` and `]` step through the metrics, and
highlighting a metric's row charts it; histories are downsampled as the run screen's."""
from __future__ import annotations

import math
import re
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from cairn.engine.errors import CairnError
from cairn.engine.tracking.entities import Run
from cairn.tui.backend import Backend
from cairn.tui.messages import BackendFailed, error_text
from cairn.tui.widgets.footer import KeyFooter
from cairn.tui.widgets.run import MetricChart, Series, downsample
from cairn.tui.widgets.runs import number_text

MAX_COMPARED = 10
# Which way is better is not recorded anywhere; names like these are minimised.
LOWER_IS_BETTER = re.compile(r"loss|err|rmse|mae|mse|mape|perplexity|time|latency", re.IGNORECASE)


class CompareLoaded(Message):
    def __init__(self, runs: list[Run], message: str = ""):
        super().__init__()
        self.runs, self.message = runs, message


class CompareHistories(Message):
    """The histories of metric `key` of the compared runs that logged it."""

    def __init__(self, key: str, series: list[Series]):
        super().__init__()
        self.key, self.series = key, series


def best_index(values: list[float | None], key: str) -> int | None:
    finite = [(v, i) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    if len(finite) < 2:
        return None
    pick = min if LOWER_IS_BETTER.search(key) else max
    return pick(finite)[1]


class CompareScreen(Screen):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "back", "Back"),
        Binding("left_square_bracket", "chart(-1)", "Previous metric", key_display="["),
        Binding("right_square_bracket", "chart(1)", "Next metric", key_display="]"),
    ]

    def __init__(self, backend: Backend, run_ids: list[str]):
        super().__init__()
        self.backend = backend
        self.run_ids = run_ids[:MAX_COMPARED]
        self.compared: list[Run] = []
        self.metric_keys: list[str] = []
        self.chart_key: str | None = None  # the metric charted (or being read)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="compare-note")
        yield DataTable(id="compare", cursor_type="row", zebra_stripes=True)
        yield MetricChart(id="compare-chart")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True)
    def load(self) -> None:
        runs, errors = [], []
        for rid in self.run_ids:
            try:
                runs.append(self.backend.get_run(rid))
            except CairnError as exc:
                errors.append(exc.message)
        self.post_message(CompareLoaded(runs, "; ".join(errors)))

    @work(thread=True, exclusive=True, group="histories")
    def load_histories(self, key: str) -> None:
        series: list[Series] = []
        for run in self.compared:
            if key not in run.data.metrics_dict:
                continue
            try:
                points = self.backend.get_metric_history(run.info.run_id, key)
            except CairnError as exc:
                self.post_message(BackendFailed(f"read {key} of {run.info.run_name}", error_text(exc)))
                continue
            series.append((run.info.run_name, downsample(points), len(points)))
        self.post_message(CompareHistories(key, series))

    def on_compare_loaded(self, msg: CompareLoaded) -> None:
        self.compared = msg.runs
        table = self.query_one(DataTable)
        table.add_column("", key="key")
        for r in msg.runs:
            table.add_column(r.info.run_name, key=r.info.run_id)
        params = sorted({p.key for r in msg.runs for p in r.data.params})
        metrics = self.metric_keys = sorted({m.key for r in msg.runs for m in r.data.metrics})
        for k in params:
            values = [r.data.params_dict.get(k) for r in msg.runs]
            differs = len(set(values)) > 1
            style = "bold yellow" if differs else ""
            table.add_row(Text(f"param {k}", style=style), *(Text(v or "", style=style) for v in values),
                          key=f"params.{k}")  # fmt: skip
        for k in metrics:
            values = [r.data.metrics_dict.get(k) for r in msg.runs]
            best = best_index(values, k)
            cells = [Text(number_text(v) + (" ★" if i == best else ""), style="bold green" if i == best else "",
                          justify="right") for i, v in enumerate(values)]  # fmt: skip
            table.add_row(Text(f"metric {k}"), *cells, key=f"metrics.{k}")
        note = f"{len(msg.runs)} runs · differing params in yellow · ★ best value · [ ] chart another metric"
        self.query_one("#compare-note", Static).update(note + (f"\n{msg.message}" if msg.message else ""))
        table.focus()
        if metrics:
            self.chart(metrics[0])

    def on_compare_histories(self, msg: CompareHistories) -> None:
        if msg.key == self.chart_key:  # else the user has moved on to another metric
            self.query_one(MetricChart).show_series(msg.key, msg.series)

    def on_backend_failed(self, msg: BackendFailed) -> None:
        self.notify(msg.error, title=f"Could not {msg.action}", severity="error", markup=False)

    @on(DataTable.RowHighlighted, "#compare")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value or ""
        if key.startswith("metrics."):
            self.chart(key[len("metrics."):])

    def chart(self, key: str) -> None:
        if key != self.chart_key:
            self.chart_key = key
            self.load_histories(key)

    def action_chart(self, step: int) -> None:
        if not self.metric_keys:
            return
        at = self.metric_keys.index(self.chart_key) if self.chart_key in self.metric_keys else -step
        self.chart(self.metric_keys[(at + step) % len(self.metric_keys)])

    def action_back(self) -> None:
        self.app.pop_screen()
