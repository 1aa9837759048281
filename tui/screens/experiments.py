"""Experiments: name, run count, last activity and tags; the filter narrows as you type.

Experiments come first (one search), so the list shows at once; run counts and the last
run's start come after, one experiment at a time, from a second worker.
"""
from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Static

from cairn.engine.errors import CairnError
from cairn.engine.tracking.entities import Experiment
from cairn.tui.backend import Backend
from cairn.tui.widgets.footer import KeyFooter

# Counting pages through runs; past this a count shows as "N+" (exact counts of huge
# experiments are not worth the reads on every open).
COUNT_CAP = 10_000


def when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


class ExperimentsLoaded(Message):
    def __init__(self, experiments: list[Experiment]):
        super().__init__()
        self.experiments = experiments


class RunStats(Message):
    """One experiment's run count (`capped`: at least that many) and latest run start."""

    def __init__(self, experiment_id: str, count: int, capped: bool, last_start: int | None):
        super().__init__()
        self.experiment_id, self.count, self.capped, self.last_start = experiment_id, count, capped, last_start


class LoadFailed(Message):
    def __init__(self, message: str):
        super().__init__()
        self.message = message


class ExperimentsScreen(Screen):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "open", "Open runs", show=True),
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, backend: Backend):
        super().__init__()
        self.backend = backend
        self.experiments: list[Experiment] = []
        self.stats: dict[str, RunStats] = {}
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter experiments by name or tag", id="exp-filter")
        yield Static("", id="exp-error", classes="error")
        yield DataTable(id="experiments", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("name", key="name")
        table.add_column("runs", key="runs")
        table.add_column("last activity", key="last")
        table.add_column("tags", key="tags")
        table.focus()
        self.load()

    # -- workers -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="experiments")
    def load(self) -> None:
        try:
            exps: list[Experiment] = []
            token = None
            while True:
                page = self.backend.search_experiments(page_token=token)
                exps.extend(page.items)
                token = page.next_page_token
                if not token:
                    break
        except CairnError as exc:
            self.post_message(LoadFailed(exc.message))
            return
        self.post_message(ExperimentsLoaded(exps))
        self.load_stats(exps)

    @work(thread=True, exclusive=True, group="stats")
    def load_stats(self, exps: list[Experiment]) -> None:
        for exp in exps:
            count, token, last = 0, None, None
            try:
                while count < COUNT_CAP:
                    page = self.backend.search_runs([exp.experiment_id], max_results=min(5000, COUNT_CAP - count),
                                                    page_token=token)  # fmt: skip
                    if last is None and page.items:
                        last = page.items[0].info.start_time  # default order: newest first
                    count += len(page.items)
                    token = page.next_page_token
                    if not token:
                        break
            except CairnError:
                continue
            self.post_message(RunStats(exp.experiment_id, count, token is not None, last))

    # -- messages ----------------------------------------------------------------------
    def on_experiments_loaded(self, msg: ExperimentsLoaded) -> None:
        self.experiments = msg.experiments
        self.render_rows()

    def on_run_stats(self, msg: RunStats) -> None:
        self.stats[msg.experiment_id] = msg
        table = self.query_one(DataTable)
        if msg.experiment_id in table.rows:
            exp = next(e for e in self.experiments if e.experiment_id == msg.experiment_id)
            table.update_cell(msg.experiment_id, "runs", self.count_text(msg.experiment_id))
            table.update_cell(msg.experiment_id, "last", self.last_text(exp))

    def on_load_failed(self, msg: LoadFailed) -> None:
        self.query_one("#exp-error", Static).update(msg.message)

    @on(Input.Changed, "#exp-filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip().lower()
        self.render_rows()

    @on(Input.Submitted, "#exp-filter")
    def filter_submitted(self) -> None:
        self.query_one(DataTable).focus()

    @on(DataTable.RowSelected, "#experiments")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_experiment(event.row_key.value)

    # -- rendering ---------------------------------------------------------------------
    def visible(self) -> list[Experiment]:
        if not self.filter_text:
            return self.experiments
        words = self.filter_text.split()

        def text(e: Experiment) -> str:
            return " ".join([e.name, *(f"{t.key}={t.value}" for t in e.tags)]).lower()

        return [e for e in self.experiments if all(w in text(e) for w in words)]

    def count_text(self, exp_id: str) -> str:
        s = self.stats.get(exp_id)
        if s is None:
            return "…"
        return f"{s.count}+" if s.capped else str(s.count)

    def last_text(self, exp: Experiment) -> str:
        s = self.stats.get(exp.experiment_id)
        last = max(exp.last_update_time or 0, (s.last_start or 0) if s else 0)
        return when(last)

    def render_rows(self) -> None:
        table = self.query_one(DataTable)
        keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        table.clear()
        for e in self.visible():
            tags = ", ".join(f"{t.key}={t.value}" for t in e.tags if not t.key.startswith("mlflow."))
            table.add_row(e.name, self.count_text(e.experiment_id), self.last_text(e), tags, key=e.experiment_id)
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))

    # -- actions -----------------------------------------------------------------------
    def open_experiment(self, exp_id: str | None) -> None:
        exp = next((e for e in self.experiments if e.experiment_id == exp_id), None)
        if exp is not None:
            from cairn.tui.screens.runs import RunsScreen

            self.app.push_screen(RunsScreen(self.backend, exp))

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            self.open_experiment(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_focus_filter(self) -> None:
        self.query_one("#exp-filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#exp-filter", Input).value = ""
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        self.load()
