"""The Serving screen: every endpoint's served entities with their traffic share and, from a
running server, live figures (requests/s, p50/p99 latency, error rate, mean batch size
over the last refresh window); below, the highlighted endpoint's config and its newest
payload log rows.

A thread worker polls every REFRESH_S (the backend blocks: HTTP or LMDB) and posts
typed messages; the table is updated in place when its rows are the same, so a refresh
neither flickers nor moves the cursor. Data access lives in tui/servingdata.py."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cairn.engine.endpoints.contract import Endpoint, PayloadRecord
from cairn.tui.messages import BackendFailed, error_text
from cairn.tui.servingdata import (
    EntityStats,
    ServingReader,
    ServingState,
    entity_version,
    fmt_batch,
    fmt_percent,
    fmt_rate,
    fmt_seconds,
    traffic_of,
)
from cairn.tui.widgets.footer import KeyFooter

REFRESH_S = 2.0
CONFIG_COLUMNS = ("endpoint", "served entity", "model", "version", "traffic")
LIVE_COLUMNS = ("requests", "req/s", "p50", "p99", "errors", "batch")
PAYLOAD_COLUMNS = ("time", "status", "latency", "entity", "version", "request", "response")
# One line per payload cell: a request of 64 rows must not push the table off screen.
CELL_CHARS = 60
BEFORE_ROUTING = "(before routing)"


class ServingPolled(Message):
    def __init__(self, state: ServingState) -> None:
        super().__init__()
        self.state = state


class PayloadsLoaded(Message):
    def __init__(self, endpoint: str, records: list[PayloadRecord]) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.records = records


class ServingScreen(Screen):
    CSS_PATH = "../styles/serving.tcss"
    TITLE = "Serving"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]

    def __init__(self, backend: Any, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.backend = backend
        self.reader = ServingReader(backend)
        self.state: ServingState | None = None
        self.endpoints: dict[str, Endpoint] = {}
        self.row_keys: list[str] = []  # "endpoint/entity", in the table's row order
        self.payloads: list[PayloadRecord] = []
        self._shown: str | None = None  # endpoint whose config and payloads are shown
        self._failed = False  # a poll failed: say so once, not every 2 s

    # -- layout --------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="serving-body"):
            yield Static("Loading endpoints...", id="serving-note", markup=False)
            table: DataTable = DataTable(id="serving-table", cursor_type="row", zebra_stripes=True)
            table.add_columns(*CONFIG_COLUMNS, *(LIVE_COLUMNS if self.reader.live else ()))
            yield table
            yield Static("", id="endpoint-config", markup=False)
            payloads: DataTable = DataTable(id="payload-table", cursor_type="row", zebra_stripes=True)
            payloads.add_columns(*PAYLOAD_COLUMNS)
            yield payloads
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#serving-table", DataTable).focus()
        self.poll()
        self.set_interval(REFRESH_S, self._tick)

    def _tick(self) -> None:
        # Another mode in front: no scrapes nobody sees (the next one covers the gap).
        # A poll still running (a slow server): let it finish rather than queue another.
        busy = any(w.node is self and w.group == "serving-poll" and w.is_running for w in self.workers)
        if self.is_current and not busy:
            self.poll()

    def on_screen_resume(self) -> None:
        if self.state is not None:  # back from another mode: fresh figures at once
            self.poll()

    # -- workers (threads: the backend blocks) ---------------------------------------
    @work(thread=True, exclusive=True, group="serving-poll")
    def poll(self) -> None:
        try:
            state = self.reader.poll()
        except Exception as exc:  # noqa: BLE001 - any backend failure is shown, not raised
            self.post_message(BackendFailed("list endpoints", error_text(exc)))
            return
        self.post_message(ServingPolled(state))

    @work(thread=True, exclusive=True, group="serving-payloads")
    def load_payloads(self, endpoint: str) -> None:
        try:
            records = self.reader.recent_payloads(endpoint)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed(f"read the payloads of {endpoint}", error_text(exc)))
            return
        self.post_message(PayloadsLoaded(endpoint, records))

    # -- messages from the workers ---------------------------------------------------
    def on_serving_polled(self, message: ServingPolled) -> None:
        self._failed = False
        state = self.state = message.state
        self.endpoints = {ep.name: ep for ep in state.endpoints}
        note = self.query_one("#serving-note", Static)
        if not state.endpoints:
            note.update("No serving endpoints. Create one with `cairn endpoints create` or the REST API.")
        elif state.stats is None:
            note.update(state.note)
        else:
            note.update(f"{len(state.endpoints)} endpoint(s) · {window_text(state.stats)}")
        self._fill_table(state)
        endpoint = self.selected_endpoint
        if endpoint is not None:
            self._show_config(self.endpoints[endpoint])
            self.load_payloads(endpoint)  # new requests keep arriving: the rows too
        else:
            self._show_config(None)

    def on_payloads_loaded(self, message: PayloadsLoaded) -> None:
        if message.endpoint != self.selected_endpoint:
            return  # the cursor moved on while the worker read
        ids = [r.request_id for r in message.records]
        if ids == [r.request_id for r in self.payloads]:
            return  # nothing new: leave the rows (and whoever is reading them) alone
        table = self.query_one("#payload-table", DataTable)
        row = table.cursor_row
        # on the newest row the cursor follows the newest; on an older one it stays with it
        keep = self.payloads[-1 - row].request_id if 0 < row < len(self.payloads) else None
        self.payloads = message.records
        table.clear()
        for r in reversed(message.records):  # newest first: the row one looks for
            table.add_row(*payload_row(r))
        if keep in ids:
            # still on screen: keep the cursor on that record (new ones come in above it)
            table.move_cursor(row=len(ids) - 1 - ids.index(keep))

    def on_backend_failed(self, message: BackendFailed) -> None:
        if self._failed and message.action == "list endpoints":
            return
        self._failed = message.action == "list endpoints"
        self.notify(message.error, title=f"Could not {message.action}", severity="error", timeout=8, markup=False)

    # -- the table -------------------------------------------------------------------
    def _fill_table(self, state: ServingState) -> None:
        table = self.query_one("#serving-table", DataTable)
        rows: list[tuple[str, list]] = []
        for ep in state.endpoints:
            shares = traffic_of(ep)
            for se in ep.config.served_entities:
                stats = state.stats.get((ep.name, se.name)) if state.stats is not None else None
                cells: list = [ep.name, se.name, se.entity_name, version_text(entity_version(se), stats),
                               shares.get(se.name, "")]  # fmt: skip
                if self.reader.live:
                    cells += live_cells(stats)
                rows.append((f"{ep.name}/{se.name}", cells))
            refused = state.stats.get((ep.name, "")) if state.stats is not None else None
            if refused is not None and refused.total:
                # 400/413/415/429 answered before a served entity was chosen: overload shows here
                rows.append((f"{ep.name}/", [ep.name, BEFORE_ROUTING, "", "", "", *live_cells(refused)]))
        keys = [k for k, _ in rows]
        if keys == self.row_keys and table.row_count == len(keys):
            # Same rows: change the cells only, so the cursor and scroll stay put.
            for key, cells in rows:
                for column, value in zip(table.columns, cells):
                    table.update_cell(key, column, value)
            return
        cursor_key = self.row_keys[table.cursor_row] if 0 <= table.cursor_row < len(self.row_keys) else None
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        self.row_keys = keys
        if cursor_key in keys:
            table.move_cursor(row=keys.index(cursor_key))

    @property
    def selected_endpoint(self) -> str | None:
        table = self.query_one("#serving-table", DataTable)
        row = table.cursor_row
        if not self.row_keys or not 0 <= row < len(self.row_keys):
            return None
        name = self.row_keys[row].split("/", 1)[0]
        return name if name in self.endpoints else None

    def select_endpoint(self, name: str) -> None:
        for i, key in enumerate(self.row_keys):
            if key.split("/", 1)[0] == name:
                self.query_one("#serving-table", DataTable).move_cursor(row=i)
                return
        raise KeyError(name)

    @on(DataTable.RowHighlighted, "#serving-table")
    def _endpoint_highlighted(self, event: DataTable.RowHighlighted) -> None:
        endpoint = self.selected_endpoint
        if endpoint is None or endpoint == self._shown:
            return
        self._show_config(self.endpoints[endpoint])
        self.query_one("#payload-table", DataTable).clear()
        self.payloads = []
        self.load_payloads(endpoint)

    def _show_config(self, ep: Endpoint | None) -> None:
        self._shown = ep.name if ep else None
        self.query_one("#endpoint-config", Static).update(config_text(ep) if ep else "")

    # -- actions -----------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.poll()


def version_text(configured: str, stats: EntityStats | None) -> str:
    """An alias shows the versions that answered under it: "@champion (1, 2)"."""
    if stats is None or not configured.startswith("@") or not stats.versions:
        return configured
    return f"{configured} ({', '.join(sorted(stats.versions, key=lambda v: (len(v), v)))})"


def live_cells(stats: EntityStats | None) -> list:
    if stats is None:
        return ["0", "-", "-", "-", "-", "-"]
    errors = Text(fmt_percent(stats.error_rate), style="bold red" if stats.errors else "")
    return [f"{stats.total:.0f}", fmt_rate(stats.rps), fmt_seconds(stats.p50), fmt_seconds(stats.p99), errors,
            fmt_batch(stats.mean_batch)]  # fmt: skip


def window_text(stats: dict) -> str:
    seconds = next((s.seconds for s in stats.values() if s.seconds), None)
    if seconds:
        return f"requests since the server started; other figures over the last {seconds:.1f} s"
    return f"figures since the server started; rates after the next refresh ({REFRESH_S:g} s)"


def config_text(ep: Endpoint) -> str:
    cfg = ep.config
    shadow = cfg.shadow.served_entity_name if cfg.shadow else None
    shares = traffic_of(ep)
    lines = [f"{ep.name}  config v{ep.config_version}" + (f"  id {ep.id}" if ep.id else "")]
    lines.append("traffic: " + (", ".join(f"{name} {share}" for name, share in shares.items() if name != shadow) or "-"))
    for se in cfg.served_entities:
        lines.append(f"  {se.name}: {se.entity_name} {entity_version(se)}  {se.workload_type}  "
                     f"batch<={se.max_batch_rows} rows, wait {se.max_wait_ms:g} ms, queue<={se.max_queue_rows}")  # fmt: skip
    lines.append(f"shadow: {cfg.shadow.served_entity_name} ({cfg.shadow.fraction:.0%} of requests)"
                 if cfg.shadow else "shadow: none")  # fmt: skip
    cap = cfg.auto_capture_config
    if cap is not None and cap.enabled:
        lines.append(f"payload logging: on, {cap.sampling_fraction:.0%} sampled, up to {cap.max_payload_bytes} bytes each")
    else:
        lines.append("payload logging: off")
    return "\n".join(lines)


def one_line(text: str, limit: int = CELL_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def payload_row(r: PayloadRecord) -> list:
    when = datetime.fromtimestamp(r.timestamp_ms / 1000, tz=UTC).astimezone().strftime("%H:%M:%S.%f")[:-3]
    status = Text(str(r.status_code), style="green" if r.status_code < 400 else "bold red")
    entity = r.served_entity_name + (" (shadow)" if r.shadow else "")
    return [when, status, f"{r.latency_ms:.1f} ms", entity, r.model_version, one_line(r.request),
            one_line(r.response) + (" [truncated]" if r.truncated else "")]  # fmt: skip
