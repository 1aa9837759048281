"""The Monitors screen: every endpoint monitor with its firing alerts; below, the
highlighted monitor's windows (its smallest granularity, all served entities
together): sparklines of requests, error share, p99 latency and quality over time, a
drift table (columns x the newest windows, red where a column drifted), and every
window's requests, errors, latency p50/p99, quality from labels and drifted columns.
Enter on a drift cell sets that column in that window beside its training baseline
(histograms). `r` reloads (the server refreshes monitors in the background).

Thread workers read the backend (LMDB locally, or /api/2.0/monitors) and post typed
messages; the screen only draws them.
"""
from __future__ import annotations

import time
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Label, Sparkline, Static

from cairn.engine.monitoring.drift import ColumnDrift
from cairn.engine.monitoring.profiles import ColumnProfile
from cairn.engine.monitoring.records import FIRING, AlertRule, AlertState, MonitorRecord, WindowRecord
from cairn.tui.messages import BackendFailed, error_text
from cairn.tui.screens.monitorwidgets import (
    HistogramModal,
    clock,
    drift_cell,
    drift_matrix,
    histogram_rows,
    trend_series,
)
from cairn.tui.widgets.footer import KeyFooter

MONITOR_COLUMNS = ("endpoint", "windows", "last refresh", "alerts firing")
WINDOW_COLUMNS = ("window", "requests", "errors", "p50 ms", "p99 ms", "drift share", "drifted columns", "quality")
TRENDS = ("requests", "errors %", "p99 ms", "quality")


class MonitorsLoaded(Message):
    def __init__(self, monitors: list[MonitorRecord], firing: dict[str, list[str]]) -> None:
        super().__init__()
        self.monitors = monitors
        self.firing = firing


class WindowsLoaded(Message):
    def __init__(self, endpoint: str, windows: list[WindowRecord],
                 alerts: list[tuple[AlertRule, AlertState]]) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.windows = windows
        self.alerts = alerts


class ColumnLoaded(Message):
    """One column of one window and of its baseline, for the drill-down."""

    def __init__(self, column: str, window: WindowRecord, baseline: ColumnProfile | None,
                 seen: ColumnProfile | None, drift: ColumnDrift | None) -> None:
        super().__init__()
        self.column = column
        self.window = window
        self.baseline = baseline
        self.seen = seen
        self.drift = drift


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if ms else "never"


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3g}"


def window_row(w: WindowRecord) -> list[Any]:
    drifted = ", ".join(c.name for c in w.drift.columns if c.drifted) if w.drift else w.note
    share = f"{w.drift.share:.0%}" + (" DRIFT" if w.drift.drifted else "") if w.drift else ""
    quality = " ".join(f"{k}={v:.3g}" for k, v in w.quality.items())
    return [_when(w.start_ms) + ("" if w.final else " (open)"), w.requests, w.errors, _num(w.latency_p50_ms),
            _num(w.latency_p99_ms), share, drifted, quality]


class MonitorsScreen(Screen):
    CSS_PATH = "../styles/monitors.tcss"
    TITLE = "Monitors"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]

    def __init__(self, backend: Any, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.backend = backend
        self.monitors: list[MonitorRecord] = []
        self.windows: list[WindowRecord] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="monitors-body"):
            yield Static("Loading monitors...", id="monitors-note", markup=False)
            grid: DataTable = DataTable(id="monitors-table", cursor_type="row", zebra_stripes=True)
            grid.add_columns(*MONITOR_COLUMNS)
            yield grid
            yield Static("", id="monitor-alerts", markup=False)
            with Horizontal(id="monitor-trends"):
                for i, name in enumerate(TRENDS):
                    with Vertical(classes="trend"):
                        yield Label(name, id=f"trend-label-{i}", markup=False)
                        yield Sparkline([], id=f"trend-{i}", summary_function=max)
            yield DataTable(id="drift-table", cursor_type="cell", zebra_stripes=True)
            windows: DataTable = DataTable(id="windows-table", cursor_type="row", zebra_stripes=True)
            windows.add_columns(*WINDOW_COLUMNS)
            yield windows
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#monitors-table", DataTable).focus()
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="monitors")
    def load(self) -> None:
        try:
            monitors = self.backend.list_monitors()
            firing = {m.endpoint: [r.name for r, s in self.backend.monitor_alerts(m.endpoint) if s.state == FIRING]
                      for m in monitors}
        except Exception as exc:  # noqa: BLE001 - any backend failure is shown, not raised
            self.post_message(BackendFailed("list monitors", error_text(exc)))
            return
        self.post_message(MonitorsLoaded(monitors, firing))

    @work(thread=True, exclusive=True, group="monitor-windows")
    def load_windows(self, endpoint: str) -> None:
        try:
            windows = self.backend.monitor_windows(endpoint)
            alerts = self.backend.monitor_alerts(endpoint)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed(f"read the windows of {endpoint}", error_text(exc)))
            return
        self.post_message(WindowsLoaded(endpoint, windows, alerts))

    def on_monitors_loaded(self, message: MonitorsLoaded) -> None:
        self.monitors = message.monitors
        self.query_one("#monitors-note", Static).update(
            f"{len(self.monitors)} monitor(s)" if self.monitors else
            "No monitors. Create one with `cairn monitors create ENDPOINT` (and a baseline per model version).")
        grid = self.query_one("#monitors-table", DataTable)
        keep = grid.cursor_row
        grid.clear()
        for m in self.monitors:
            fired = message.firing.get(m.endpoint, [])
            grid.add_row(m.endpoint, ", ".join(f"{g} s" for g in m.granularities), _when(m.last_refresh_ms),
                         ", ".join(fired) or "none", key=m.endpoint)
        if self.monitors:
            grid.move_cursor(row=min(max(keep, 0), len(self.monitors) - 1))
            self.load_windows(self.monitors[grid.cursor_row].endpoint)

    @work(thread=True, exclusive=True, group="monitor-column")
    def load_column(self, endpoint: str, window: WindowRecord, column: str) -> None:
        try:
            full = self.backend.monitor_window(endpoint, window.start_ms) or window
            model, _, version = full.model.rpartition("/")
            baseline = self.backend.model_baseline(model, version).column(column) if model else None
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed(f"read the baseline of {window.model or endpoint}", error_text(exc)))
            return
        seen = full.profile.column(column) if full.profile else None
        drift = next((c for c in full.drift.columns if c.name == column), None) if full.drift else None
        self.post_message(ColumnLoaded(column, full, baseline, seen, drift))

    def on_column_loaded(self, message: ColumnLoaded) -> None:
        w = message.window
        title = f"{message.column} in the window of {_when(w.start_ms)} ({w.model or 'no model'}): baseline vs window"
        rows = histogram_rows(message.baseline, message.seen) if message.baseline is not None else []
        self.app.push_screen(HistogramModal(title, rows, message.drift))

    @on(DataTable.CellSelected, "#drift-table")
    def _drill(self, event: DataTable.CellSelected) -> None:
        shown, _ = drift_matrix(self.windows)
        col = event.coordinate.column - 2  # after "column" and "method"
        if not shown or event.cell_key.row_key.value is None or not self.monitors:
            return
        window = shown[col] if 0 <= col < len(shown) else shown[-1]
        endpoint = self.monitors[self.query_one("#monitors-table", DataTable).cursor_row].endpoint
        self.load_column(endpoint, window, str(event.cell_key.row_key.value))

    def _draw_trends(self) -> None:
        series = trend_series(self.windows)
        names = list(series)
        for i in range(len(TRENDS)):
            name = names[i] if i < len(names) else TRENDS[i]
            data = series.get(name, [])
            last = f": {data[-1]:.3g}" if data else ": no data"
            self.query_one(f"#trend-label-{i}", Label).update(f"{name}{last} (max {max(data):.3g})" if data
                                                               else f"{name}{last}")
            self.query_one(f"#trend-{i}", Sparkline).data = data

    def _draw_drift(self) -> None:
        grid = self.query_one("#drift-table", DataTable)
        grid.clear(columns=True)
        shown, rows = drift_matrix(self.windows)
        grid.add_columns("column", "method", *(clock(w.start_ms) for w in shown))
        for name, method, cells in rows:
            grid.add_row(name, method, *(drift_cell(c) for c in cells), key=name)

    def on_windows_loaded(self, message: WindowsLoaded) -> None:
        self.windows = message.windows
        self._draw_trends()
        self._draw_drift()
        firing = [f"{r.name} ({r.metric} {r.op} {r.threshold:g}: {_num(s.value)})" for r, s in message.alerts
                  if s.state == FIRING]
        self.query_one("#monitor-alerts", Static).update(
            f"{message.endpoint}: " + ("FIRING: " + "; ".join(firing) if firing else
                                       f"{len(message.alerts)} alert(s), none firing"))
        grid = self.query_one("#windows-table", DataTable)
        grid.clear()
        for w in reversed(self.windows):  # newest first
            grid.add_row(*window_row(w))

    def on_backend_failed(self, message: BackendFailed) -> None:
        self.query_one("#monitors-note", Static).update(f"Could not {message.action}: {message.error}")
        self.notify(message.error, title=f"Could not {message.action}", severity="error", timeout=8, markup=False)

    @on(DataTable.RowHighlighted, "#monitors-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self.load_windows(str(event.row_key.value))
