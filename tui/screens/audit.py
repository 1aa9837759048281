"""The Audit screen: the newest audit log entries (who did what, from where, with what
outcome) and whether the hash chain is whole. `d` shows only denials (401, 403); `r`
reloads.

A thread worker reads the backend (the data directory's log, or an admin's view of the
server's /api/2.0/audit) and posts typed messages; the screen only draws them.
"""
from __future__ import annotations

import time
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cairn.engine.governance.records import AuditEntry
from cairn.tui.messages import BackendFailed, error_text
from cairn.tui.widgets.footer import KeyFooter

COLUMNS = ("seq", "time", "principal", "source", "action", "object", "outcome")
SHOWN = 500
DENIALS = frozenset(("401", "403"))


class AuditLoaded(Message):
    def __init__(self, entries: list[AuditEntry], checked: int, problem: str | None) -> None:
        super().__init__()
        self.entries = entries
        self.checked = checked
        self.problem = problem


def chain_text(checked: int, problem: str | None) -> str:
    if problem:
        return f"THE CHAIN IS BROKEN after {checked} good entries: {problem}"
    return f"chain whole: {checked} entries, each chained to the one before"


def entry_row(e: AuditEntry) -> list[Any]:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts_ms / 1000))
    return [e.seq, when, e.principal or "(anonymous)", e.source, e.action, e.object[:60], e.outcome]


class AuditScreen(Screen):
    CSS_PATH = "../styles/audit.tcss"
    TITLE = "Audit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("d", "denials", "Denials only"),
    ]

    def __init__(self, backend: Any, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.backend = backend
        self.entries: list[AuditEntry] = []
        self.denials_only = False
        self.chain = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="audit-body"):
            yield Static("Loading the audit log...", id="audit-note", markup=False)
            grid: DataTable = DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
            grid.add_columns(*COLUMNS)
            yield grid
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#audit-table", DataTable).focus()
        self.load()

    def action_refresh(self) -> None:
        self.load()

    def action_denials(self) -> None:
        self.denials_only = not self.denials_only
        self.draw()

    @work(thread=True, exclusive=True, group="audit")
    def load(self) -> None:
        try:
            entries = self.backend.audit_entries(SHOWN)
            checked, problem = self.backend.verify_audit()
        except Exception as exc:  # noqa: BLE001 - any backend failure is shown, not raised
            self.post_message(BackendFailed("read the audit log", error_text(exc)))
            return
        self.post_message(AuditLoaded(entries, checked, problem))

    def on_audit_loaded(self, message: AuditLoaded) -> None:
        self.entries = message.entries
        self.chain = chain_text(message.checked, message.problem)
        self.draw()

    def shown(self) -> list[AuditEntry]:
        found = [e for e in self.entries if not self.denials_only or e.outcome in DENIALS]
        return found[::-1]  # newest first

    def draw(self) -> None:
        shown = self.shown()
        what = "denials" if self.denials_only else "entries"
        self.query_one("#audit-note", Static).update(f"{len(shown)} {what} (newest first) · {self.chain}")
        grid = self.query_one("#audit-table", DataTable)
        grid.clear()
        for e in shown:
            grid.add_row(*entry_row(e), key=str(e.seq))

    def on_backend_failed(self, message: BackendFailed) -> None:
        self.query_one("#audit-note", Static).update(f"Could not {message.action}: {message.error}")
        self.notify(message.error, title=f"Could not {message.action}", severity="error", timeout=8, markup=False)
