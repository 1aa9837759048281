"""Runs of one experiment: a table that pages in, sorts, filters and follows live runs.

Loading: the first FIRST_PAGE runs are asked for and drawn at once, then the rest come
in PAGE-sized pages from the same worker, appended as they arrive, so a 5,000-run
experiment shows its newest runs immediately. Every load carries a generation number;
pages of an older load (a filter typed since) are dropped.

Filter: MLflow's search grammar, sent to the backend on Enter; a bad filter's message
is shown under the box and the table keeps the last good result.

Sort: `s` sorts by the cursor's column (again: reverse), over the loaded runs; missing
values last. Columns: status, name, start, duration, then the chosen metrics and params
(`c` picks them; by default the keys most runs share).

Live: every REFRESH_SECONDS the RUNNING runs are read again and their cells updated in
place, so the cursor and the scroll stay where they are.
"""
from __future__ import annotations

import math
import threading
from collections import Counter
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Static
from textual.worker import get_current_worker

from cairn.engine.errors import CairnError
from cairn.engine.tracking.entities import Experiment, Run, RunStatus
from cairn.tui.backend import Backend
from cairn.tui.widgets.footer import KeyFooter
from cairn.tui.widgets.runs import ColumnPicker, duration_ms, run_cells

# A screenful and then some: a taller terminal gets the rest a moment later (PAGE).
# Fewer rows first halves the two costs of an open after mount: the first read and add_row.
FIRST_PAGE = 100
PAGE = 1000
# How long the reader waits for the first page to paint before it reads the rest.
FIRST_PAINT_WAIT_S = 1.0
REFRESH_SECONDS = 3.0
DEFAULT_METRICS = 3
DEFAULT_PARAMS = 3
FIXED = ("sel", "status", "name", "start", "duration")


class RunsPage(Message):
    """A page of runs of load `generation`; `done` when no page follows."""

    def __init__(self, generation: int, runs: list[Run], first: bool, done: bool):
        super().__init__()
        self.generation, self.runs, self.first, self.done = generation, runs, first, done


class RunsFailed(Message):
    def __init__(self, generation: int, message: str):
        super().__init__()
        self.generation, self.message = generation, message


class RunsRefreshed(Message):
    """Fresh copies of runs that were RUNNING."""

    def __init__(self, runs: list[Run]):
        super().__init__()
        self.runs = runs


class SelectionChanged(Message):
    def __init__(self, run_ids: list[str]):
        super().__init__()
        self.run_ids = run_ids


class RunsScreen(Screen):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "open_run", "Open run"),
        Binding("space", "toggle_select", "Select for compare"),
        Binding("x", "compare", "Compare selected"),
        Binding("s", "sort", "Sort by column"),
        Binding("c", "pick_columns", "Columns"),
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, backend: Backend, experiment: Experiment):
        super().__init__()
        self.backend = backend
        self.experiment = experiment
        self.runs: list[Run] = []  # in table order
        self.by_id: dict[str, Run] = {}
        self.selected: list[str] = []
        self.metric_keys: list[str] | None = None  # None: choose from the first page
        self.param_keys: list[str] | None = None
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.filter_string = ""
        self.generation = 0
        self.loading = False
        self.first_drawn = threading.Event()  # set once the first page is on screen

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"[b]{self.experiment.name}[/b]", id="runs-title", markup=True)
        yield Input(placeholder="MLflow filter, e.g. metrics.rmse < 0.5 and params.alpha = '1'  (Enter)",
                    id="runs-filter")  # fmt: skip
        yield Static("", id="runs-error", classes="error")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.load()
        self.set_interval(REFRESH_SECONDS, self.refresh_running)

    # -- loading -----------------------------------------------------------------------
    def load(self) -> None:
        self.generation += 1
        self.loading = True
        self.first_drawn.clear()
        self.fetch(self.generation, self.filter_string)

    @work(thread=True, exclusive=True, group="runs")
    def fetch(self, generation: int, filter_string: str) -> None:
        worker = get_current_worker()
        token, first = None, True
        while True:
            try:
                page = self.backend.search_runs([self.experiment.experiment_id], filter_string or None,
                                                max_results=FIRST_PAGE if first else PAGE, page_token=token)  # fmt: skip
            except CairnError as exc:
                self.post_message(RunsFailed(generation, exc.message))
                return
            token = page.next_page_token
            if worker.is_cancelled:
                return
            self.post_message(RunsPage(generation, page.items, first, token is None))
            if first and token is not None:
                # Let the first page paint before reading the rest: this thread's decoding
                # would otherwise hold the GIL the UI needs to draw it (bounded wait).
                self.first_drawn.wait(FIRST_PAINT_WAIT_S)
            first = False
            if token is None:
                return

    def on_runs_page(self, msg: RunsPage) -> None:
        if msg.generation != self.generation:
            return
        if msg.first:
            self.query_one("#runs-error", Static).update("")
            self.runs, self.by_id = [], {}
            if self.metric_keys is None:
                self.metric_keys, self.param_keys = self.default_columns(msg.runs)
            self.build_columns()
        self.runs.extend(msg.runs)
        self.by_id.update((r.info.run_id, r) for r in msg.runs)
        self.loading = not msg.done
        if self.sort_column and not msg.first:
            self.redraw()  # a sorted table must take new runs in their place
        elif self.sort_column:
            self.sort_runs()
            self.redraw()
        else:
            self.append_rows(msg.runs)
        self.show_status()
        if msg.first:
            self.call_after_refresh(self.first_drawn.set)

    def on_runs_failed(self, msg: RunsFailed) -> None:
        if msg.generation == self.generation:
            self.loading = False
            self.query_one("#runs-error", Static).update(msg.message)
            self.show_status()

    # -- live refresh ------------------------------------------------------------------
    def refresh_running(self) -> None:
        running = [r.info.run_id for r in self.runs if r.info.status == RunStatus.RUNNING][:100]
        if running and not self.loading:
            self.reread(running)

    @work(thread=True, exclusive=True, group="refresh")
    def reread(self, run_ids: list[str]) -> None:
        fresh = []
        for rid in run_ids:
            try:
                fresh.append(self.backend.get_run(rid))
            except CairnError:
                continue  # deleted meanwhile: the next reload drops it
        self.post_message(RunsRefreshed(fresh))

    def on_runs_refreshed(self, msg: RunsRefreshed) -> None:
        table = self.query_one(DataTable)
        columns = [c.key.value for c in table.ordered_columns]
        for run in msg.runs:
            rid = run.info.run_id
            if rid not in self.by_id or rid not in table.rows:
                continue
            self.by_id[rid] = run
            self.runs[self.runs.index(next(r for r in self.runs if r.info.run_id == rid))] = run
            cells = self.cells(run)
            for col, value in zip(columns, cells):
                if table.get_cell(rid, col) != value:
                    table.update_cell(rid, col, value)

    # -- columns and rows --------------------------------------------------------------
    @staticmethod
    def default_columns(runs: list[Run]) -> tuple[list[str], list[str]]:
        metrics, params = Counter(), Counter()
        for r in runs:
            metrics.update(m.key for m in r.data.metrics)
            params.update(p.key for p in r.data.params)

        def top(c: Counter, n: int) -> list[str]:
            return [k for k, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]

        return top(metrics, DEFAULT_METRICS), top(params, DEFAULT_PARAMS)

    def build_columns(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column(" ", key="sel", width=1)
        table.add_column("status", key="status")
        table.add_column("name", key="name")
        table.add_column("start", key="start")
        table.add_column("duration", key="duration")
        for k in self.metric_keys or ():
            table.add_column(k, key=f"metrics.{k}")
        for k in self.param_keys or ():
            table.add_column(f"p:{k}", key=f"params.{k}")

    def cells(self, run: Run) -> list:
        return run_cells(run, run.info.run_id in self.selected, self.metric_keys or [], self.param_keys or [])

    def append_rows(self, runs: list[Run]) -> None:
        table = self.query_one(DataTable)
        for run in runs:
            table.add_row(*self.cells(run), key=run.info.run_id)

    def redraw(self) -> None:
        table = self.query_one(DataTable)
        keep, column = self.cursor_run_id(), table.cursor_column
        scroll = table.scroll_y
        table.clear()  # resets the cursor: put it back on the same run and column
        self.append_rows(self.runs)
        row = table.get_row_index(keep) if keep in table.rows else 0
        table.move_cursor(row=row, column=min(column, len(table.columns) - 1), animate=False, scroll=False)
        table.scroll_y = scroll

    def show_status(self) -> None:
        parts = [f"{len(self.runs)} runs" + (" (loading…)" if self.loading else "")]
        if self.selected:
            parts.append(f"{len(self.selected)} selected")
        if self.sort_column:
            parts.append(f"sorted by {self.sort_column} {'desc' if self.sort_reverse else 'asc'}")
        self.query_one("#runs-status", Static).update(" · ".join(parts))

    def cursor_run_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    # -- sorting -----------------------------------------------------------------------
    def sort_value(self, run: Run, column: str):
        """A key for sorted(): (missing, value); missing values and NaN sort last."""
        info = run.info
        if column.startswith("metrics."):
            v = run.data.metrics_dict.get(column[8:])
            return (v is None or math.isnan(v), v if v is not None and not math.isnan(v) else 0.0)
        if column.startswith("params."):
            v = run.data.params_dict.get(column[7:])
            if v is None:
                return (True, (0, 0.0, ""))
            try:
                return (False, (0, float(v), ""))  # numbers as numbers: "10" after "9"
            except ValueError:
                return (False, (1, 0.0, v))
        value = {"status": info.status, "name": info.run_name, "start": info.start_time,
                 "duration": duration_ms(run), "sel": info.run_id in self.selected}.get(column)  # fmt: skip
        return (value is None, value if value is not None else 0)

    def sort_runs(self) -> None:
        col = self.sort_column
        present = [r for r in self.runs if not self.sort_value(r, col)[0]]
        missing = [r for r in self.runs if self.sort_value(r, col)[0]]
        present.sort(key=lambda r: self.sort_value(r, col)[1], reverse=self.sort_reverse)
        self.runs = present + missing

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        if reverse is None:
            reverse = not self.sort_reverse if self.sort_column == column else False
        self.sort_column, self.sort_reverse = column, reverse
        self.sort_runs()
        self.redraw()
        self.show_status()

    def action_sort(self) -> None:
        table = self.query_one(DataTable)
        if table.columns:
            self.sort_by(table.ordered_columns[table.cursor_column].key.value)

    @on(DataTable.HeaderSelected, "#runs")
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(event.column_key.value)

    # -- selection, filter, navigation ------------------------------------------------
    def action_toggle_select(self) -> None:
        rid = self.cursor_run_id()
        if rid is None:
            return
        if rid in self.selected:
            self.selected.remove(rid)
        else:
            self.selected.append(rid)
        self.query_one(DataTable).update_cell(rid, "sel", "●" if rid in self.selected else " ")
        self.post_message(SelectionChanged(list(self.selected)))
        self.show_status()

    def action_compare(self) -> None:
        """2 to 10 selected runs side by side (with one, the cursor's run is added)."""
        ids = list(self.selected)
        cursor = self.cursor_run_id()
        if len(ids) == 1 and cursor and cursor not in ids:
            ids.append(cursor)
        if len(ids) < 2:
            self.notify("Select two runs or more with space first.", severity="warning")
            return
        from cairn.tui.screens.compare import MAX_COMPARED, CompareScreen

        if len(ids) > MAX_COMPARED:
            self.notify(f"Comparing the first {MAX_COMPARED} selected runs.")
        self.app.push_screen(CompareScreen(self.backend, ids))

    def action_open_run(self) -> None:
        rid = self.cursor_run_id()
        if rid is not None:
            from cairn.tui.screens.run import RunScreen

            self.app.push_screen(RunScreen(self.backend, rid))

    @on(DataTable.RowSelected, "#runs")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_run()

    @on(Input.Submitted, "#runs-filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.filter_string = event.value.strip()
        self.load()
        self.query_one(DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_reload(self) -> None:
        self.load()

    def action_back(self) -> None:
        if self.focused is self.query_one("#runs-filter", Input):
            self.query_one(DataTable).focus()
        else:
            self.app.pop_screen()

    def action_pick_columns(self) -> None:
        metrics, params = set(), set()
        for r in self.runs:
            metrics.update(m.key for m in r.data.metrics)
            params.update(p.key for p in r.data.params)

        def chosen(result: tuple[list[str], list[str]] | None) -> None:
            if result is not None:
                self.set_columns(*result)

        self.app.push_screen(ColumnPicker(sorted(metrics), sorted(params), self.metric_keys or [],
                                          self.param_keys or []), chosen)  # fmt: skip

    def set_columns(self, metric_keys: list[str], param_keys: list[str]) -> None:
        self.metric_keys, self.param_keys = metric_keys, param_keys
        if self.sort_column and self.sort_column.split(".", 1)[0] in ("metrics", "params"):
            key = self.sort_column.split(".", 1)[1]
            if key not in metric_keys + param_keys:
                self.sort_column = None
        self.build_columns()
        self.redraw()
