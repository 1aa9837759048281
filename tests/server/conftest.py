"""A real `cairn server` on an ephemeral 127.0.0.1 port, driven over HTTP.

The server runs as a child process started exactly as a user would (`python -m app.cli
server --port 0`); the fixture reads the URL it prints, and stops it by its PID."""
from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_URL = re.compile(r"at (http://127\.0\.0\.1:\d+)")


def start_server(
    data_dir: Path, *extra: str, command: str = "server", timeout: float = 30.0
) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--data", str(data_dir), command, "--port", "0", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        # Keep reading for the server's whole life: a full pipe would stall it.
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        m = _URL.search(line)
        if m:
            return proc, m.group(1)
    proc.kill()
    proc.wait(timeout=10)
    raise RuntimeError("cairn server did not start:\n" + "".join(seen))


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """(url, data_dir) of one server shared by the session; tests use unique names."""
    data = tmp_path_factory.mktemp("cairn-server")
    proc, url = start_server(data)
    yield url, data
    stop_server(proc)


@pytest.fixture(scope="session")
def server_url(server) -> str:
    return server[0]


@pytest.fixture()
def mlflow_client(server_url, monkeypatch):
    """The official MLflow client pointed at the server (fluent API too)."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server_url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server_url)
    yield MlflowClient(tracking_uri=server_url)
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture()
def launch():
    """Start servers of a test's own: `launch(data_dir, *flags, command="server")` ->
    (process, url). Each is stopped, by its PID, after the test."""
    procs: list[subprocess.Popen] = []

    def _launch(data_dir: Path, *extra: str, command: str = "server", timeout: float = 30.0):
        proc, url = start_server(data_dir, *extra, command=command, timeout=timeout)
        procs.append(proc)
        return proc, url

    yield _launch
    for proc in procs:
        stop_server(proc)
