"""The Audit screen over a data directory and over a real `cairn server --auth` (an
admin's token): the newest entries first, denials on their own with `d`, and a chain
that is whole, or broken after an entry was edited behind the log's back."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from textual.app import App
from textual.widgets import DataTable, Static

from cairn import engine
from cairn.engine.governance.records import AUDIT
from cairn.engine.store.keys import u64
from cairn.tui.backend import LocalBackend, RemoteBackend
from cairn.tui.screens.audit import AuditLoaded, AuditScreen

pytestmark = pytest.mark.filterwarnings("ignore")


class Harness(App):
    def __init__(self, backend) -> None:
        super().__init__()
        self.backend = backend

    def on_mount(self) -> None:
        self.push_screen(AuditScreen(self.backend))


def run_ui(backend, press: str | None = None):
    messages: list = []
    seen: dict = {}

    async def main() -> None:
        app = Harness(backend)
        async with app.run_test(size=(160, 40), message_hook=messages.append) as pilot:
            deadline = time.monotonic() + 20
            while not any(isinstance(m, AuditLoaded) for m in messages):
                assert time.monotonic() < deadline, "the log never loaded"
                await pilot.pause(0.05)
            await pilot.pause(0.05)
            if press:
                await pilot.press(press)
                await pilot.pause(0.05)
            grid = app.screen.query_one("#audit-table", DataTable)
            seen["rows"] = [[str(c) for c in grid.get_row_at(i)] for i in range(grid.row_count)]
            seen["note"] = str(app.screen.query_one("#audit-note", Static).render())

    asyncio.run(main())
    return next(m for m in messages if isinstance(m, AuditLoaded)), seen["rows"], seen["note"]


def test_the_screen_over_a_data_directory_and_a_broken_chain(tmp_path):
    with engine.open(tmp_path / "data") as eng:
        log = eng.governance.audit
        log.record("ana", "local", "user.create", "bob")
        log.record("", "10.0.0.9:5000", "GET /api/2.0/mlflow/runs/get", outcome="401")
        log.record("ana", "local", "grant.update", "schema 'main.default'")
        loaded, rows, note = run_ui(LocalBackend(eng))
        assert [e.seq for e in loaded.entries] == [1, 2, 3] and loaded.problem is None
        assert [r[0] for r in rows] == ["3", "2", "1"] and rows[1][2] == "(anonymous)"
        assert "chain whole: 3 entries" in note
        _, denied, note = run_ui(LocalBackend(eng), press="d")
        assert [r[0] for r in denied] == ["2"] and "1 denials" in note

        def tamper(b) -> None:  # an entry edited without going through the log
            entry = AUDIT.decode(b.txn.get(u64(2), db=b.dbs["audit"]))
            entry.principal = "someone-else"
            b.txn.put(u64(2), AUDIT.encode(entry), db=b.dbs["audit"])

        eng.env.write(tamper)
        loaded, _, note = run_ui(LocalBackend(eng))
        assert "THE CHAIN IS BROKEN" in note and "entry 2 was changed" in note


def test_the_screen_over_a_server_with_auth(tmp_path, launch):
    data = tmp_path / "data"
    with engine.open(data) as eng:
        eng.governance.principals.create("user", "ana", admin=True)
        eng.governance.principals.create("user", "eve")
        token = eng.governance.credentials.create_token("ana")[0]
        eve = eng.governance.credentials.create_token("eve")[0]
    _, url = launch(data, "--auth")
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/api/2.0/mlflow/experiments/create", json={"name": "x"},
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/api/2.0/audit/entries", headers={"Authorization": f"Bearer {eve}"}).status_code == 403
    backend = RemoteBackend(url, token=token)
    try:
        loaded, rows, note = run_ui(backend)
    finally:
        backend.close()
    actions = [e.action for e in loaded.entries]
    assert "POST /api/2.0/mlflow/experiments/create" in actions
    assert any(e.outcome == "403" and e.principal == "eve" for e in loaded.entries)
    assert "chain whole" in note
