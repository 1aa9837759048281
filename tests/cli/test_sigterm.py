"""SIGTERM, as systemd stops the service (packaging/cairn.service): a real `cairn server`
process gets writes through MLflow's REST API, then SIGTERM. It must exit 0, say
nothing alarming on stderr, and every write it acknowledged with a 200 must be in the
data directory when it is opened again.

The risk is the writer: operations are queued to one background thread that commits in
groups (engine/store/lmdbenv.py), and metric points can be buffered (engine/tracking/metrics.py). An
exit that skips the final commit would lose what a client was told is stored."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from cairn import engine

REPO = Path(__file__).resolve().parents[2]
API = "/api/2.0/mlflow"
START_S = 60.0
EXIT_S = 60.0  # a bound, not a measurement: a clean stop takes well under a second
URL = re.compile(r"at (http://127\.0\.0\.1:\d+)")


class Server:
    """`cairn --data DIR server --port 0` with stdout and stderr in files (read after it
    exits: a traceback there is a finding), stopped by its PID if a test fails early."""

    def __init__(self, data: Path, logs: Path):
        self.out, self.err = logs / "stdout.txt", logs / "stderr.txt"
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "CAIRN_HOME": str(logs / "home")}
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cairn.cli", "--data", str(data), "server", "--port", "0"],
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )  # fmt: skip
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = URL.search(self.out.read_text())
            if m:
                return m.group(1)
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"cairn server did not start:\n{self.out.read_text()}\n{self.err.read_text()}")

    def terminate_and_wait(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=EXIT_S)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture()
def server(tmp_path):
    started: list[Server] = []

    def start() -> Server:
        s = Server(tmp_path / "data", tmp_path)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def post(client: httpx.Client, path: str, body: dict) -> dict:
    r = client.post(f"{API}{path}", json=body)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def assert_clean_exit(s: Server, code: int) -> None:
    err = s.err.read_text()
    assert code == 0, f"exit status {code}\n{err}"
    assert "Traceback" not in err and "Error" not in err, err


def history(eng, run_id: str, key: str) -> list[tuple[int, int, float]]:
    points = []
    token = None
    for _ in range(1000):  # bounded: pages of the store's default size
        page = eng.tracking.get_metric_history(run_id, key, page_token=token)
        points += [(m.step, m.timestamp, m.value) for m in page.items]
        token = page.next_page_token
        if not token:
            break
    return sorted(points)


def test_every_acknowledged_write_survives_sigterm(server, tmp_path):
    s = server()
    written: dict[str, dict] = {}
    with httpx.Client(base_url=s.url, timeout=60) as client:
        exp = post(client, "/experiments/create", {"name": "sigterm"})["experiment_id"]
        for r in range(3):
            run_id = post(client, "/runs/create", {"experiment_id": exp, "run_name": f"r{r}"})["run"]["info"]["run_id"]
            # The largest batch MLflow allows: 1,000 items, many metric histories at once.
            metrics = [{"key": f"m{k}", "value": r + k + step / 100, "timestamp": 1_700_000_000_000 + step,
                        "step": step} for k in range(10) for step in range(90)]
            params = [{"key": f"p{k}", "value": f"{r}-{k}"} for k in range(50)]
            tags = [{"key": f"t{k}", "value": f"tag {r} {k}"} for k in range(50)]
            post(client, "/runs/log-batch", {"run_id": run_id, "metrics": metrics, "params": params, "tags": tags})
            post(client, "/runs/set-tag", {"run_id": run_id, "key": "last", "value": f"run {r}"})
            post(client, "/runs/log-parameter", {"run_id": run_id, "key": "single", "value": str(r)})
            post(client, "/runs/log-metric", {"run_id": run_id, "key": "single", "value": r * 1.5,
                                              "timestamp": 1_700_000_000_000, "step": 7})
            written[run_id] = {"metrics": metrics, "params": params, "tags": tags, "r": r}
        # The last acknowledged write, then SIGTERM at once.
        post(client, "/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 1_700_000_100_000})
    assert_clean_exit(s, s.terminate_and_wait())

    eng = engine.open(tmp_path / "data")
    try:
        for run_id, w in written.items():
            run = eng.tracking.get_run(run_id)
            params = {p.key: p.value for p in run.data.params}
            tags = {t.key: t.value for t in run.data.tags}
            assert {p["key"]: p["value"] for p in w["params"]}.items() <= params.items()
            assert params["single"] == str(w["r"])
            assert {t["key"]: t["value"] for t in w["tags"]}.items() <= tags.items()
            assert tags["last"] == f"run {w['r']}"
            for k in range(10):
                expected = sorted((m["step"], m["timestamp"], m["value"]) for m in w["metrics"] if m["key"] == f"m{k}")
                assert history(eng, run_id, f"m{k}") == expected
            assert history(eng, run_id, "single") == [(7, 1_700_000_000_000, w["r"] * 1.5)]
        assert eng.tracking.get_run(run_id).info.status == "FINISHED"  # the very last write
    finally:
        eng.close()


def test_writes_in_flight_when_sigterm_arrives(server, tmp_path):
    """Several clients keep writing while SIGTERM lands: some requests are refused or cut
    off (not acknowledged, so nothing is promised), every one that got a 200 is stored."""
    s = server()
    with httpx.Client(base_url=s.url, timeout=60) as client:
        exp = post(client, "/experiments/create", {"name": "in-flight"})["experiment_id"]
        run_id = post(client, "/runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]

    acked: list[tuple[int, int]] = []  # (worker, request number) that got a 200
    lock = threading.Lock()
    enough = threading.Event()
    WORKERS, MAX_REQUESTS, SIGNAL_AFTER = 4, 400, 40

    def body(w: int, i: int) -> dict:
        metrics = [{"key": f"w{w}", "value": i + j / 1000, "timestamp": 1_700_000_000_000 + i, "step": i * 100 + j}
                   for j in range(100)]
        return {"run_id": run_id, "metrics": metrics, "params": [{"key": f"w{w}-{i}", "value": str(i)}],
                "tags": [{"key": f"tag-w{w}", "value": str(i)}] if i % 2 == 0 else []}

    def worker(w: int) -> None:
        with httpx.Client(base_url=s.url, timeout=60) as client:
            for i in range(MAX_REQUESTS):  # bounded; ends earlier once the server is gone
                try:
                    r = client.post(f"{API}/runs/log-batch", json=body(w, i))
                except httpx.HTTPError:
                    return  # refused or cut off by the shutdown: not acknowledged
                if r.status_code != 200:
                    return
                with lock:
                    acked.append((w, i))
                    if len(acked) >= SIGNAL_AFTER:
                        enough.set()

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(WORKERS)]
    for t in threads:
        t.start()
    assert enough.wait(START_S), "the server acknowledged too few writes to test with"
    code = s.terminate_and_wait()
    for t in threads:
        t.join(EXIT_S)
    assert not any(t.is_alive() for t in threads)
    assert_clean_exit(s, code)

    eng = engine.open(tmp_path / "data")
    try:
        run = eng.tracking.get_run(run_id)
        params = {p.key for p in run.data.params}
        tags = {t.key: t.value for t in run.data.tags}
        by_worker: dict[int, set[int]] = {}
        for w, i in acked:
            by_worker.setdefault(w, set()).add(i)
        for w, done in by_worker.items():
            assert {f"w{w}-{i}" for i in done} <= params
            steps = {step for step, _ts, _v in history(eng, run_id, f"w{w}")}
            assert {i * 100 + j for i in done for j in range(100)} <= steps
            tagged = [i for i in done if i % 2 == 0]
            if tagged:  # a later unacknowledged request may have set it further
                assert int(tags[f"tag-w{w}"]) >= max(tagged)
    finally:
        eng.close()
