"""`cairn up` on a terminal: the server answers while the UI runs, and `q` stops both.

The command runs as a user starts it, under a pseudo-terminal (so it chooses the UI), on
a port the OS picks; the URL is read from the UI's start-up notification as drawn on that terminal.
Every wait is bounded, and the child is killed by its PID if it outlives the test.
"""
from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import httpx
import pytest

from cairn import engine
from cairn.cli.main import DEMO_EXPERIMENT

REPO = Path(__file__).resolve().parents[2]
COLS, ROWS = 120, 40
# CSI sequences (colours, cursor moves), OSC sequences, and other two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_URL = re.compile(r"MLFLOW_TRACKING_URI=(http://127\.0\.0\.1:\d+)")


class Terminal:
    """A child process on a pseudo-terminal, its output collected by a reader thread."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)  # fmt: skip
        os.close(slave)  # the child holds its copy; EOF on the master once it exits
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the child side closed
                return
            if not data:
                return
            with self._lock:
                self._chunks.append(data)

    def text(self) -> str:
        with self._lock:
            raw = b"".join(self._chunks)
        return _ANSI.sub("", raw.decode("utf-8", "replace"))

    def wait_for(self, pattern: re.Pattern[str], timeout: float, after: int = 0) -> re.Match[str]:
        """The first match in what was drawn from character `after` on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = pattern.search(self.text(), after)
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern.pattern!r} not shown (exit {self.proc.poll()}):\n{self.text()[-3000:]}")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # by its PID only
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        os.close(self.master)


@pytest.fixture()
def data_dir(tmp_path):
    """A data directory that already has the demo experiment, so `up` skips training."""
    path = tmp_path / "data"
    eng = engine.open(path)
    eng.tracking.create_experiment(DEMO_EXPERIMENT)
    eng.tracking.create_experiment("from-the-test")
    eng.close()
    return path


def start_up(data_dir: Path, *flags: str) -> Terminal:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color",
           "COLUMNS": str(COLS), "LINES": str(ROWS)}  # fmt: skip
    env.pop("TEXTUAL", None)  # no devtools
    return Terminal([sys.executable, "-m", "cairn.cli", "--data", str(data_dir), "up", *flags], env)


# The child of the stderr check. Textual draws on sys.__stderr__; on a real terminal that
# is fd 2, the same tty anything else would write stray text to. Here Textual keeps the
# terminal (a copy of fd 2) and fd 2 itself, with sys.stderr, goes to a file: whatever
# lands in the file would have torn the UI's screen (C libraries, handlers that kept the
# old stream, the last-resort logging handler).
_SPLIT_STDERR = """
import os, sys
terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8")
err = open(sys.argv[1], "w", buffering=1)
os.dup2(err.fileno(), 2)
sys.stderr, sys.__stderr__ = err, terminal
from cairn.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def start_up_split_stderr(data_dir: Path, err_path: Path, *flags: str) -> Terminal:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color",
           "COLUMNS": str(COLS), "LINES": str(ROWS)}  # fmt: skip
    env.pop("TEXTUAL", None)
    return Terminal([sys.executable, "-c", _SPLIT_STDERR, str(err_path), "--data", str(data_dir), "up", *flags], env)


def assert_clean(out: str) -> None:
    assert "Traceback" not in out, out[-3000:]


def test_up_on_a_terminal_serves_while_the_ui_runs_and_q_stops_both(data_dir):
    term = start_up(data_dir, "--port", "0")
    try:
        url = term.wait_for(_URL, timeout=25).group(1)
        with httpx.Client(base_url=url, timeout=5) as client:
            assert client.get("/health").text == "OK"
            body = client.post("/api/2.0/mlflow/experiments/search", json={"max_results": 10}).json()
            assert {e["name"] for e in body["experiments"]} >= {DEMO_EXPERIMENT, "from-the-test"}
            # A write through the server, acknowledged before the UI quits.
            made = client.post("/api/2.0/mlflow/experiments/create", json={"name": "made-while-up"})
            assert made.status_code == 200, made.text
            # The UI shows the same data: its experiments list lists what the server holds.
            term.wait_for(re.compile("from-the-test"), timeout=10)

            # Quit while this client still holds a keep-alive connection, as an MLflow
            # client would: the server must not wait for it.
            term.send(b"q")
            assert term.proc.wait(timeout=15) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=2)
    finally:
        term.close()
    out = term.text()
    assert_clean(out)
    assert "Cairn stopped" in out
    # The process is gone, its LMDB environment closed: the acknowledged write is on disk.
    with engine.open(data_dir) as eng:
        assert eng.tracking.get_experiment_by_name("made-while-up") is not None


def test_sigterm_stops_up_as_q_does(data_dir):
    term = start_up(data_dir, "--port", "0")
    try:
        url = term.wait_for(_URL, timeout=25).group(1)
        assert httpx.get(f"{url}/health", timeout=5).text == "OK"
        term.proc.send_signal(signal.SIGTERM)
        assert term.proc.wait(timeout=15) == 0
    finally:
        term.close()
    assert_clean(term.text())
    assert "Cairn stopped" in term.text()


def test_no_ui_on_a_terminal_serves_only(data_dir):
    term = start_up(data_dir, "--port", "0", "--no-ui")
    try:
        url = term.wait_for(re.compile(r"at (http://127\.0\.0\.1:\d+)"), timeout=25).group(1)
        assert httpx.get(f"{url}/health", timeout=5).text == "OK"
        assert "MLFLOW_TRACKING_URI=http" in term.text()  # the server's own line, no UI
    finally:
        term.close()
    assert "\x1b[?1049h" not in b"".join(term._chunks).decode("utf-8", "replace")  # no full-screen UI


def test_a_taken_port_is_an_error_before_the_ui_starts(data_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        term = start_up(data_dir, "--port", str(port))
        try:
            assert term.proc.wait(timeout=25) == 1
        finally:
            term.close()
    out = term.text()
    assert_clean(out)
    assert f"error: the server did not start on 127.0.0.1:{port}" in out, out[-2000:]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("tty", "flags", "ui"), [(True, [], True), (True, ["--no-ui"], False), (False, [], False)])
def test_up_chooses_the_ui_by_the_terminal(data_dir, monkeypatch, tty, flags, ui):
    """cmd_up hands over to run_up only when stdin and stdout are a terminal and --no-ui
    is not given; otherwise it serves as `cairn server` does."""
    import cairn.cli.main as cli_main
    import cairn.cli.up as cli_up

    calls = []
    monkeypatch.setattr(cli_up, "run_up", lambda eng, host, port, auth=False: calls.append(("ui", port)) or 0)
    monkeypatch.setattr(cli_main, "cmd_server", lambda args: calls.append(("server", args.port)) or 0)
    if tty:
        monkeypatch.setattr(sys, "stdin", _Tty())
        monkeypatch.setattr(sys, "stdout", _Tty())
    assert cli_main.main(["--data", str(data_dir), "up", "--port", "5123", *flags]) == 0
    assert calls == [("ui" if ui else "server", 5123)]


def test_up_never_writes_to_stderr_while_the_ui_runs(data_dir, tmp_path):
    """Navigate every mode, provoke a server-side warning (a request that is not HTTP:
    uvicorn logs it), quit: the warning shows as a notification and stderr stays empty."""
    err_path = tmp_path / "stderr.txt"
    term = start_up_split_stderr(data_dir, err_path, "--port", "0")
    try:
        url = term.wait_for(_URL, timeout=25).group(1)
        term.wait_for(re.compile("from-the-test"), timeout=10)
        # Each key's screen, told by what only it draws (looked for in the output since the key).
        for keys, shown in ((b"\r", "MLflow filter"), (b"\x1b", "filter experiments"), (b"m", "Select a model"),
                            (b"v", "serving endpoints"), (b"e", "filter experiments"), (b"?", "Keys")):  # fmt: skip
            drawn = len(term.text())
            term.send(keys)
            term.wait_for(re.compile(shown), timeout=10, after=drawn)
            time.sleep(0.3)  # let the screen's workers run before the next key
        drawn = len(term.text())
        term.send(b"\x1b")  # help closes: back on the experiments screen
        term.wait_for(re.compile("filter experiments"), timeout=10, after=drawn)
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw.recv(1024)  # uvicorn answers 400 and logs a warning
        assert httpx.get(f"{url}/api/2.0/mlflow/runs/get", params={"run_id": "0" * 32}, timeout=5).status_code == 404
        term.wait_for(re.compile("Invalid HTTP request"), timeout=10)  # the warning, as a notification
        term.send(b"q")
        assert term.proc.wait(timeout=15) == 0
    finally:
        term.close()
    assert_clean(term.text())
    assert "Cairn stopped" in term.text()
    assert err_path.read_text() == ""
