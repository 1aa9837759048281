"""What the runs screen draws: a run's table cells and the column picker."""
from __future__ import annotations

import time
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList

from cairn.engine.tracking.entities import Run

STATUS_STYLE = {"RUNNING": "bold cyan", "FINISHED": "green", "FAILED": "bold red", "KILLED": "yellow",
                "SCHEDULED": "dim"}  # fmt: skip


def duration_ms(run: Run) -> int | None:
    info = run.info
    return None if info.end_time is None else max(0, info.end_time - info.start_time)


def duration_text(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def running_text(run: Run) -> str:
    """A live run's time so far; the runs screen's refresh moves it on."""
    return duration_text(max(0, int(time.time() * 1000) - run.info.start_time)) + "…"


def number_text(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.6g}"


def run_cells(run: Run, selected: bool, metric_keys: list[str], param_keys: list[str]) -> list:
    """The row of one run: mark, status, name, start, duration, metrics, params."""
    info = run.info
    metrics, params = run.data.metrics_dict, run.data.params_dict
    start = datetime.fromtimestamp(info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")
    return [
        "●" if selected else " ",
        Text(info.status, style=STATUS_STYLE.get(info.status, "")),
        info.run_name,
        start,
        running_text(run) if info.status == "RUNNING" and info.end_time is None else duration_text(duration_ms(run)),
        *(Text(number_text(metrics.get(k)), justify="right") for k in metric_keys),
        *(params.get(k, "") for k in param_keys),
    ]


class ColumnPicker(ModalScreen[tuple[list[str], list[str]] | None]):
    """Pick the metric and param columns; dismisses with (metrics, params) or None."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "apply", "Apply")]

    def __init__(self, metrics: list[str], params: list[str], chosen_metrics: list[str], chosen_params: list[str]):
        super().__init__()
        self.metrics, self.params = metrics, params
        self.chosen_metrics, self.chosen_params = set(chosen_metrics), set(chosen_params)

    def compose(self) -> ComposeResult:
        with Vertical(id="column-picker"):
            yield Label("Columns: space toggles, ctrl+s applies, escape cancels")
            with Horizontal():
                yield SelectionList[str](*((m, f"metrics.{m}", m in self.chosen_metrics) for m in self.metrics),
                                         id="pick-metrics")  # fmt: skip
                yield SelectionList[str](*((p, f"params.{p}", p in self.chosen_params) for p in self.params),
                                         id="pick-params")  # fmt: skip
            yield Button("Apply", id="apply", variant="primary")

    def action_apply(self) -> None:
        metrics = [k[8:] for k in self.query_one("#pick-metrics", SelectionList).selected]
        params = [k[7:] for k in self.query_one("#pick-params", SelectionList).selected]
        self.dismiss((metrics, params))

    @on(Button.Pressed, "#apply")
    def apply_pressed(self) -> None:
        self.action_apply()

    def action_cancel(self) -> None:
        self.dismiss(None)
