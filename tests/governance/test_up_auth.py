"""`cairn up --auth`: the server beside the UI needs credentials from everyone, yet the
UI's Serving screen reads its /metrics with a key of that process, and that key opens
nothing else."""
from __future__ import annotations

import httpx
import pytest

from cairn import engine
from cairn.cli.up import ServerThread
from cairn.tui.backend import LocalBackend
from cairn.tui.servingdata import ServingReader

pytestmark = pytest.mark.filterwarnings("ignore")


def test_the_ui_reads_its_servers_metrics_with_auth_on(tmp_path):
    eng = engine.open(tmp_path / "data")
    eng.governance.principals.create("user", "ana", admin=True)
    server = ServerThread(eng, "127.0.0.1", 0, auth=True)
    server.start()
    try:
        assert server.wait_started(30)
        key = server.metrics_key
        with httpx.Client(base_url=server.local_url, timeout=30) as c:
            assert c.get("/metrics").status_code == 401
            assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
            other = c.get("/api/2.0/mlflow/experiments/search", headers={"Authorization": f"Bearer {key}"})
            assert other.status_code == 401  # the key is for the figures only
        reader = ServingReader(LocalBackend(eng, server_url=server.local_url, server_token=key))
        state = reader.poll()
        assert reader.live and not state.note.startswith("/metrics"), state.note
    finally:
        assert server.stop()
        eng.close()
