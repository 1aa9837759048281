"""The servers bench/server.py measures, as processes: start `cairn server` or
`mlflow server` on a free loopback port, wait for /health, read their RSS over the
process tree, and stop exactly the processes started here, by PID."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEALTH_POLL_S = 0.02
START_TIMEOUT_S = {"cairn": 60.0, "mlflow": 180.0}
STOP_TIMEOUT_S = 20.0
_CAIRN_URL = re.compile(r"(http://127\.0\.0\.1:\d+)")


def _proc_stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, start time in ticks, state) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw.rsplit(")", 1)[1].split()  # the command name may hold spaces or parens
    return int(rest[1]), int(rest[19]), rest[0]


def _tree(root: int) -> list[tuple[int, int]]:
    """(pid, start time) of `root` and all its descendants, root first."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _proc_stat(int(entry))
        if st is None or st[2] == "Z":
            continue
        children.setdefault(st[0], []).append(int(entry))
        starts[int(entry)] = st[1]
    if root not in starts:
        return []
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append((pid, starts[pid]))
        todo.extend(children.get(pid, []))
    return out


def _alive(pid: int, start: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[1] == start and st[2] != "Z"


def _rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str, path: str = "/health") -> bool:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Server:
    side: str
    proc: subprocess.Popen
    url: str
    ready_s: float
    log: Path

    def tree(self) -> list[tuple[int, int]]:
        return _tree(self.proc.pid)

    def rss_mib(self) -> tuple[float, int]:
        pids = [pid for pid, _ in self.tree()]
        return _rss_mib(pids), len(pids)

    def stop(self) -> None:
        """Terminate the server (and, for MLflow, the processes it started), by PID:
        SIGTERM, a grace period, then SIGKILL; the root is waited for."""
        tree = self.tree()
        descendants = tree[1:]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for pid, start in descendants:
            if _alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        while time.monotonic() < deadline and any(_alive(p, s) for p, s in descendants):
            time.sleep(0.1)
        for pid, start in descendants:
            if _alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _server_env(side: str, mlflow_jobs: bool) -> dict[str, str]:
    # MLflow's settings at their defaults: nothing MLFLOW_* leaks in from this shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # offline appliance: no usage pings
    if side == "cairn":
        env["PYTHONPATH"] = str(REPO)
    elif not mlflow_jobs:
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return env


def start_server(side: str, data: Path, mlflow_jobs: bool = False, args: tuple[str, ...] = ()) -> Server:
    """Start one server on `data` and wait until /health answers 200; time that.
    `args`: more `cairn server` flags."""
    log = data.parent / f"{data.name}.{time.monotonic_ns()}.log"  # one per start
    if side == "cairn":
        cmd = [
            sys.executable,
            "-m",
            "cairn.cli",
            "--data",
            str(data),
            "server",
            "--port",
            "0",
            *args,
        ]
        url = None
    else:
        port = _free_port()
        data.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{data}/mlflow.db",
            "--artifacts-destination", str(data / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
    return launch(side, cmd, url, log, _server_env(side, mlflow_jobs), START_TIMEOUT_S[side])


def launch(
    side: str, cmd: list[str], url: str | None, log: Path, env: dict[str, str],
    timeout_s: float, health_path: str = "/health",
) -> Server:
    """Start `cmd` and wait until `health_path` answers 200; time that. `url` None: read
    it from the process's output (Cairn prints its URL once the socket is bound)."""
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    server = Server(side, proc, url or "", 0.0, log)
    deadline = t0 + timeout_s
    try:
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                break
            if url is None:
                m = _CAIRN_URL.search(log.read_text(errors="replace"))
                if m:
                    url = server.url = m.group(1)
            if url is not None and _health(url, health_path):
                server.ready_s = time.perf_counter() - t0
                return server
            time.sleep(HEALTH_POLL_S)
    except BaseException:
        server.stop()
        raise
    server.stop()
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{side} server did not answer {health_path}:\n{tail}")
