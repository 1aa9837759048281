"""The Features screen: every feature table with its keys, Delta version and the
freshness of its online copy; below, the highlighted table's schema, newest Delta
versions and the model versions trained on it.

Thread workers read the backend (LMDB and the Delta log locally, or the server's
/api/2.0/feature-store) and post typed messages; the screen only draws them. `r`
reloads (a table written by a notebook shows its new version).
"""
from __future__ import annotations

import time
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cairn.engine.features.store import FeatureTable
from cairn.engine.sdk.features import TableDescription
from cairn.tui.messages import BackendFailed, error_text
from cairn.tui.widgets.footer import KeyFooter

TABLE_COLUMNS = ("table", "keys", "timestamp", "features", "delta version", "online", "online keys", "published")
HISTORY_SHOWN = 5


class TablesLoaded(Message):
    def __init__(self, tables: list[FeatureTable]) -> None:
        super().__init__()
        self.tables = tables


class TableDescribed(Message):
    def __init__(self, description: TableDescription) -> None:
        super().__init__()
        self.description = description


def age_text(ms: int, now_ms: float | None = None) -> str:
    """How long ago, in the largest unit that fits: 42 s, 5 min, 3 h, 2 d."""
    if not ms:
        return ""
    seconds = max(0.0, ((now_ms if now_ms is not None else time.time() * 1000) - ms) / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def online_text(t: FeatureTable) -> str:
    """The online copy against the offline table: behind by how many Delta versions."""
    if t.online_version < 0:
        return "not published"
    behind = t.delta_version - t.online_version
    return f"v{t.online_version}" + (f" ({behind} behind)" if behind > 0 else " (current)")


def table_row(t: FeatureTable) -> list[Any]:
    return [t.name, ", ".join(t.primary_keys), ", ".join(t.timestamp_keys), len(t.features), t.delta_version,
            online_text(t), t.online_rows if t.online_version >= 0 else "",
            age_text(t.online_published_timestamp)]


def detail_text(d: TableDescription) -> str:
    t = d.feature_table
    role = {**{k: "key" for k in t.primary_keys}, **{k: "timestamp" for k in t.timestamp_keys}}
    lines = [f"{t.name}  ·  {t.description or 'no description'}  ·  {t.path}"]
    if t.tags:
        lines.append("tags: " + ", ".join(f"{k}={v}" for k, v in t.tags.items()))
    if t.online_ttl_seconds:
        lines.append(f"online TTL: {t.online_ttl_seconds:g} s (older rows are served as missing)")
    lines.append("schema: " + ", ".join(f"{c} {typ}" + (f" [{role[c]}]" if c in role else "") for c, typ in t.schema))
    lines.append("Delta versions: " + ("; ".join(
        f"v{h['version']} {h['operation']} {age_text(h['timestamp'] or 0)}" for h in d.history[:HISTORY_SHOWN])
        or "none"))
    lines.append("trained on it: " + (", ".join(f"{m} v{v} (table v{tv})" for m, v, tv in d.models) or "no model"))
    return "\n".join(lines)


class FeaturesScreen(Screen):
    CSS_PATH = "../styles/features.tcss"
    TITLE = "Features"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]

    def __init__(self, backend: Any, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.backend = backend
        self.tables: list[FeatureTable] = []
        self.description: TableDescription | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="features-body"):
            yield Static("Loading feature tables...", id="features-note", markup=False)
            table: DataTable = DataTable(id="features-table", cursor_type="row", zebra_stripes=True)
            table.add_columns(*TABLE_COLUMNS)
            yield table
            yield Static("", id="feature-detail", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#features-table", DataTable).focus()
        self.load_tables()

    def action_refresh(self) -> None:
        self.load_tables()

    # -- workers (threads: the backend blocks) ---------------------------------------
    @work(thread=True, exclusive=True, group="features-list")
    def load_tables(self) -> None:
        try:
            tables = self.backend.list_feature_tables()
        except Exception as exc:  # noqa: BLE001 - any backend failure is shown, not raised
            self.post_message(BackendFailed("list feature tables", error_text(exc)))
            return
        self.post_message(TablesLoaded(tables))

    @work(thread=True, exclusive=True, group="features-detail")
    def describe(self, name: str) -> None:
        try:
            description = self.backend.describe_feature_table(name)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed(f"describe {name}", error_text(exc)))
            return
        self.post_message(TableDescribed(description))

    # -- messages from the workers ---------------------------------------------------
    def on_tables_loaded(self, message: TablesLoaded) -> None:
        self.tables = message.tables
        note = self.query_one("#features-note", Static)
        note.update(f"{len(self.tables)} feature table(s)" if self.tables else
                    "No feature tables. Create one with FeatureEngineeringClient.create_table "
                    "or `cairn features create`.")
        grid = self.query_one("#features-table", DataTable)
        keep = grid.cursor_row
        grid.clear()
        for t in self.tables:
            grid.add_row(*table_row(t), key=t.name)
        if self.tables:
            grid.move_cursor(row=min(max(keep, 0), len(self.tables) - 1))
            self.describe(self.tables[grid.cursor_row].name)
        else:
            self.query_one("#feature-detail", Static).update("")

    def on_table_described(self, message: TableDescribed) -> None:
        if self.selected != message.description.feature_table.name:
            return  # the cursor moved on while the worker read
        self.description = message.description
        self.query_one("#feature-detail", Static).update(detail_text(message.description))

    def on_backend_failed(self, message: BackendFailed) -> None:
        self.query_one("#features-note", Static).update(f"Could not {message.action}: {message.error}")
        self.notify(message.error, title=f"Could not {message.action}", severity="error", timeout=8, markup=False)

    @on(DataTable.RowHighlighted, "#features-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self.describe(str(event.row_key.value))

    @property
    def selected(self) -> str | None:
        grid = self.query_one("#features-table", DataTable)
        if 0 <= grid.cursor_row < len(self.tables):
            return self.tables[grid.cursor_row].name
        return None
