"""kill -9 over HTTP: `cairn server` as a subprocess takes acknowledged writes of every
kind (create run, log-metric, log-batch, set-tag, register a version, move an alias,
upload an artifact, create an endpoint), is killed with SIGKILL at a random moment, and
restarted on the same data directory; every write it answered 200 is there, and the one
in flight at the kill is there whole or not at all (a log-batch's metrics, params and
tags together; an artifact's bytes; an alias at the last answered version or the one in
flight). CAIRN_KILLS=N kills N times (20 by default, as CI runs it); the figures print.
"""
from __future__ import annotations

import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx

KILLS = int(os.environ.get("CAIRN_KILLS", "20"))
API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


@dataclass
class Ledger:
    """What the server acknowledged, and the write in flight when it died."""

    runs: dict[str, str] = field(default_factory=dict)  # run id -> artifact proxy path
    points: list[tuple[str, int, float]] = field(default_factory=list)  # run, step, value of metric "m"
    batches: list[tuple[str, str]] = field(default_factory=list)  # run, batch id
    tags: list[tuple[str, str, str]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    alias: str | None = None  # the version @champion was last moved to
    artifacts: list[tuple[str, str, bytes]] = field(default_factory=list)  # run, name, bytes
    endpoints: list[str] = field(default_factory=list)
    in_flight: tuple | None = None
    acknowledged: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    steps: int = 0  # every write's own number, across kills (metric steps, tag and file names)


def _writes(c: httpx.Client, ledger: Ledger, model: str, rng: random.Random, stop: threading.Event) -> None:
    """Acknowledged writes of every kind, at random, until the server stops answering."""
    while not stop.is_set():
        kind = rng.choice(["run", "metric", "metric", "metric", "batch", "tag", "version", "alias", "artifact",
                           "endpoint"])
        if kind != "run" and not ledger.runs:
            kind = "run"
        run = rng.choice(list(ledger.runs)) if ledger.runs else ""
        ledger.steps += 1
        step = ledger.steps
        try:
            if kind == "run":
                ledger.in_flight = ("run",)
                r = c.post(f"{API}/runs/create", json={"experiment_id": "0"})
                r.raise_for_status()
                info = r.json()["run"]["info"]
                ledger.runs[info["run_id"]] = info["artifact_uri"].split("mlflow-artifacts:", 1)[-1]
            elif kind == "metric":
                value = rng.random()
                ledger.in_flight = ("metric", run, step, value)
                c.post(f"{API}/runs/log-metric", json={"run_id": run, "key": "m", "value": value, "step": step,
                                                       "timestamp": 1}).raise_for_status()
                ledger.points.append((run, step, value))
            elif kind == "batch":
                bid = uuid.uuid4().hex[:8]
                ledger.in_flight = ("batch", run, bid)
                c.post(f"{API}/runs/log-batch", json={
                    "run_id": run,
                    "metrics": [{"key": f"b{bid}.m{j}", "value": j, "timestamp": 1, "step": 0} for j in range(20)],
                    "params": [{"key": f"b{bid}.p{j}", "value": str(j)} for j in range(20)],
                    "tags": [{"key": f"b{bid}.t{j}", "value": str(j)} for j in range(20)]}).raise_for_status()
                ledger.batches.append((run, bid))
            elif kind == "tag":
                key, value = f"t{step}", uuid.uuid4().hex
                ledger.in_flight = ("tag", run, key, value)
                c.post(f"{API}/runs/set-tag", json={"run_id": run, "key": key, "value": value}).raise_for_status()
                ledger.tags.append((run, key, value))
            elif kind == "version":
                ledger.in_flight = ("version",)
                r = c.post(f"{API}/model-versions/create", json={"name": model, "source": "file:///nowhere/model"})
                r.raise_for_status()
                ledger.versions.append(r.json()["model_version"]["version"])
            elif kind == "alias":
                version = rng.choice(ledger.versions)
                ledger.in_flight = ("alias", version)
                c.post(f"{API}/registered-models/alias", json={"name": model, "alias": "champion",
                                                               "version": version}).raise_for_status()
                ledger.alias = version
            elif kind == "artifact":
                name, body = f"a{step}.bin", os.urandom(rng.choice([10, 5_000, 300_000]))
                ledger.in_flight = ("artifact", run, name, body)
                c.put(f"{PROXY}{ledger.runs[run]}/{name}", content=body).raise_for_status()
                ledger.artifacts.append((run, name, body))
            else:
                name = f"ep-{uuid.uuid4().hex[:8]}"
                ledger.in_flight = ("endpoint", name)
                c.post("/api/2.0/serving-endpoints", json={"name": name, "config": {"served_entities": [
                    {"entity_name": model, "entity_version": "1"}]}}).raise_for_status()
                ledger.endpoints.append(name)
        except (httpx.TransportError, httpx.HTTPStatusError):
            return  # killed: this write was in flight
        ledger.in_flight = None
        ledger.acknowledged += 1
        ledger.ops[kind] = ledger.ops.get(kind, 0) + 1


def _check(c: httpx.Client, ledger: Ledger, model: str) -> int:
    """Every acknowledged write is there; the one in flight is whole or absent. Returns
    how many acknowledged writes were checked."""
    for run in ledger.runs:
        assert c.get(f"{API}/runs/get", params={"run_id": run}).status_code == 200, run
    history: dict[str, dict[int, float]] = {}
    for run in {p[0] for p in ledger.points}:
        got = c.get(f"{API}/metrics/get-history", params={"run_id": run, "metric_key": "m",
                                                         "max_results": 25000}).json().get("metrics", [])
        history[run] = {m["step"]: m["value"] for m in got}
    for run, step, value in ledger.points:
        assert history[run].get(step) == value, (run, step)
    data = {run: c.get(f"{API}/runs/get", params={"run_id": run}).json()["run"]["data"] for run in ledger.runs}

    def batch_parts(run: str, bid: str) -> int:
        d = data[run]
        return sum(1 for kind in ("metrics", "params", "tags") for e in d.get(kind, [])
                   if e["key"].startswith(f"b{bid}."))

    for run, bid in ledger.batches:
        assert batch_parts(run, bid) == 60, (run, bid)
    for run, key, value in ledger.tags:
        assert {t["key"]: t["value"] for t in data[run].get("tags", [])}.get(key) == value
    for version in ledger.versions:
        assert c.get(f"{API}/model-versions/get", params={"name": model, "version": version}).status_code == 200
    for run, name, body in ledger.artifacts:
        assert c.get(f"{PROXY}{ledger.runs[run]}/{name}").content == body, (run, name)
    for name in ledger.endpoints:
        assert c.get(f"/api/2.0/serving-endpoints/{name}").status_code == 200, name

    flight = ledger.in_flight
    if flight and flight[0] == "batch" and flight[1] in data:
        assert batch_parts(flight[1], flight[2]) in (0, 60), "a log-batch half written"
    if flight and flight[0] == "artifact":
        got = c.get(f"{PROXY}{ledger.runs[flight[1]]}/{flight[2]}")
        assert got.status_code == 404 or got.content == flight[3], "an artifact half written"
    alias = c.get(f"{API}/registered-models/alias", params={"name": model, "alias": "champion"})
    if ledger.alias is not None:
        moved = flight[1] if flight and flight[0] == "alias" else None
        assert alias.json()["model_version"]["version"] in (ledger.alias, moved)
    return (len(ledger.runs) + len(ledger.points) + len(ledger.batches) + len(ledger.tags) + len(ledger.versions)
            + len(ledger.artifacts) + len(ledger.endpoints) + (ledger.alias is not None))


def test_every_acknowledged_write_survives_kill_9(tmp_path, launch):
    data = tmp_path / "data"
    rng = random.Random(int(os.environ.get("CAIRN_KILL_SEED", "9")))
    model = "kill9"
    ledger = Ledger()
    proc, url = launch(data)
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.post(f"{API}/registered-models/create", json={"name": model}).status_code == 200
        r = c.post(f"{API}/model-versions/create", json={"name": model, "source": "file:///nowhere/model"})
        ledger.versions.append(r.json()["model_version"]["version"])
    lost_in_flight = 0
    t0 = time.monotonic()
    for kill in range(KILLS):
        stop = threading.Event()
        with httpx.Client(base_url=url, timeout=10) as c:
            writer = threading.Thread(target=_writes, args=(c, ledger, model, rng, stop))
            writer.start()
            time.sleep(rng.uniform(0.05, 0.6))
            proc.kill()  # SIGKILL, by its PID: mid-write, never a clean stop
            proc.wait(timeout=10)
            stop.set()
            writer.join(timeout=30)
            assert not writer.is_alive()
        launch.procs.remove(proc)
        proc, url = launch(data)
        with httpx.Client(base_url=url, timeout=30) as c:
            checked = _check(c, ledger, model)
        lost_in_flight += ledger.in_flight is not None
        ledger.in_flight = None
    seconds = time.monotonic() - t0
    print(f"\nkill -9 over HTTP: {KILLS} kills, {ledger.acknowledged} acknowledged writes "
          f"({', '.join(f'{k} {v}' for k, v in sorted(ledger.ops.items()))}), {checked} checked after the last "
          f"restart, 0 lost, {lost_in_flight} in flight at a kill (each whole or absent), {seconds:.0f} s")
    assert ledger.acknowledged >= KILLS  # the kills fell among writes, not before them
