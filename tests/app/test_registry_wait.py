"""Model-version create waits for the registrar off the event loop and within its bound:
the app in-process (ASGI, no sockets) over a real engine, with a registrar stand-in whose
wait blocks like the real one does."""
from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

import engine
from app.controllers import modelversions
from app.server import create_app
from engine.registration import Registrar


class SlowRegistrar(Registrar):
    """Blocks in `wait` for up to `timeout` seconds and leaves the version pending (a
    Registrar, as the handler's dependency is typed and checked)."""

    def __init__(self, registry):  # no super().__init__: the real queue and thread are not wanted
        self.registry = registry
        self.timeouts: list[float] = []
        self.release = threading.Event()

    def wait(self, name, version, timeout=60.0):
        self.timeouts.append(timeout)
        self.release.wait(timeout)
        return self.registry.get_model_version(name, version)


@pytest.fixture()
def app_and_engine(tmp_path, monkeypatch):
    eng = engine.open(tmp_path)
    # The real registrar would fail these versions at once (no files): stand it in.
    slow = SlowRegistrar(eng.registry)
    monkeypatch.setattr(eng, "registrar", slow)
    monkeypatch.setattr(eng.registry, "on_pending", None)
    monkeypatch.setattr(modelversions, "REGISTRATION_WAIT_S", 1.0)
    yield create_app(eng), eng, slow
    monkeypatch.undo()  # the real registrar back before close() stops it
    eng.close()


def test_create_waits_off_the_loop_and_within_its_bound(app_and_engine):
    app, eng, slow = app_and_engine
    run = eng.tracking.create_run(eng.tracking.create_experiment("wait"), user_id="u", start_time=1, tags={})
    source = f"runs:/{run.info.run_id}/model"

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cairn") as client:
            await client.post("/api/2.0/mlflow/registered-models/create", json={"name": "slow"})
            started = time.monotonic()
            create = asyncio.create_task(
                client.post("/api/2.0/mlflow/model-versions/create", json={"name": "slow", "source": source})
            )
            await asyncio.sleep(0.2)
            # While create waits, the loop still answers other requests at once.
            got = await client.get("/api/2.0/mlflow/registered-models/get", params={"name": "slow"})
            answered_meanwhile = time.monotonic() - started
            created = await create
            return got, answered_meanwhile, created, time.monotonic() - started

    got, meanwhile, created, total = asyncio.run(scenario())
    assert got.status_code == 200 and meanwhile < 0.9
    assert created.status_code == 200
    assert created.json()["model_version"]["status"] == "PENDING_REGISTRATION"  # the bound passed
    assert 0.9 <= total < 3.0 and slow.timeouts and slow.timeouts[0] <= 1.0
