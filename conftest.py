"""What every test folder shares: starting the `cairn` command as a user would, as a
child process on an ephemeral 127.0.0.1 port, reading the URL it prints once
listening, and stopping exactly that process, by its PID."""
from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
_URL = re.compile(r"at (https?://127\.0\.0\.1:\d+)")


def start_server(
    data_dir: Path, *extra: str, command: str | Sequence[str] = "server", timeout: float = 30.0,
    program: Sequence[str] | None = None,
) -> tuple[subprocess.Popen, str]:
    """`python -m cairn.cli --data DIR <command> --port 0 <extra>` -> (process, URL).
    `command` is one word (`server`) or several (`("models", "serve")`); `program` is
    another `cairn` to run (an installed launcher) instead of this checkout's."""
    words = [command] if isinstance(command, str) else list(command)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    cwd = data_dir.parent  # an installed cairn must not import this checkout
    if program is None:
        program = (sys.executable, "-m", "cairn.cli")
        env["PYTHONPATH"] = str(cwd := REPO)
    proc = subprocess.Popen(
        [*program, "--data", str(data_dir), *words, "--port", "0", *extra],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
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
    stop_server(proc)
    raise RuntimeError(f"cairn {' '.join(words)} did not start:\n" + "".join(seen))


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Launcher:
    """Starts servers and stops each one, by its PID, when the fixture ends."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def __call__(self, data_dir: Path, *extra: str, command: str | Sequence[str] = "server", timeout: float = 30.0,
                 program: Sequence[str] | None = None):
        proc, url = start_server(data_dir, *extra, command=command, timeout=timeout, program=program)
        self.procs.append(proc)
        return proc, url

    def stop(self, proc: subprocess.Popen) -> None:
        stop_server(proc)

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_server(proc)


@pytest.fixture()
def launch():
    """`launch(data_dir, *flags, command="server")` -> (process, url), for one test."""
    launcher = Launcher()
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="session")
def session_launch():
    """As `launch`, for servers a whole session shares."""
    launcher = Launcher()
    yield launcher
    launcher.stop_all()
