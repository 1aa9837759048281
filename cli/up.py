"""`cairn up` on a terminal: the HTTP server and the terminal UI in one process.

The server (uvicorn over create_app) runs in a thread with its own event loop rather
than in Textual's: REST handlers call the engine synchronously, and a large search or an
artifact upload on the UI's loop would freeze the screen. Both halves share the one
Engine of the data directory (engine.open hands every caller in a process the same one;
LMDB allows one environment per file per process). Quitting the UI asks the server to
stop, waits for it, and commits what is queued before the process exits.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys
import threading
import time

from cairn.engine import Engine

# Binding and the lifespan start take well under a second; the limit only guards a hang.
STARTUP_TIMEOUT = 30.0
# Open requests get this long to finish once the UI quits; then connections are cut.
GRACEFUL_SHUTDOWN = 5.0
SHUTDOWN_TIMEOUT = 15.0
ANNOUNCE_SECONDS = 15
# Loggers whose records would otherwise reach stderr (Python's last-resort handler)
# and tear the UI's screen; "cairn" covers our own (server, serving, registrar).
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "cairn")


class ServerLog(logging.Handler):
    """The server's warnings and errors: notifications while the UI runs (stderr belongs
    to the UI then), kept to print on the terminal before and after it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.app = None
        self.kept: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not stop the server
            message = str(record.msg)
        app = self.app
        if app is not None and app.is_running:
            severity = "error" if record.levelno >= logging.ERROR else "warning"
            # call_later posts a message, which Textual makes thread-safe; it never
            # waits on the UI's loop, so a UI that is shutting down cannot stall the server.
            app.call_later(app.notify, message, title="Server", severity=severity, timeout=10)
        else:
            self.kept.append(message)

    def install(self) -> None:
        for name in SERVER_LOGGERS:
            log = logging.getLogger(name)
            log.handlers[:] = [self]
            log.propagate = False
            log.setLevel(logging.WARNING)


class ServerThread(threading.Thread):
    """uvicorn's Server.run() in a daemon thread; uvicorn installs no signal handlers off
    the main thread, so Ctrl+C and the terminal stay the UI's."""

    def __init__(self, engine: Engine, host: str, port: int, auth: bool = False):
        super().__init__(name="cairn-server", daemon=True)
        from cairn.app.server import make_server

        # log_config=None: uvicorn leaves logging alone (its default config writes to
        # stderr); ServerLog takes its records instead.
        # With --auth, the UI beside the server reads /metrics with a key of this process.
        self.metrics_key = secrets.token_urlsafe(32) if auth else None
        self.server = make_server(engine, host, port, auth=auth, metrics_key=self.metrics_key, log_config=None,
                                  timeout_graceful_shutdown=GRACEFUL_SHUTDOWN)  # fmt: skip
        self.host = host
        self.failure: str | None = None

    def run(self) -> None:
        try:
            self.server.run()
        except SystemExit:
            # uvicorn's way to give up on startup (a taken port): the reason is logged.
            self.failure = self.failure or "the server did not start"
        except BaseException as exc:  # noqa: BLE001 - reported by run_up, not as a traceback
            self.failure = f"{type(exc).__name__}: {exc}"

    def wait_started(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started:
                return True
            if not self.is_alive():
                return False
            time.sleep(0.02)
        return self.server.started

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", None) or []
        if servers and servers[0].sockets:
            return servers[0].sockets[0].getsockname()[1]
        return self.server.config.port  # as asked, unless it was 0 and the OS picked one

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def local_url(self) -> str:
        """Where this process reaches its own server: a wildcard bind ("0.0.0.0", "::")
        is no address to connect to, loopback is."""
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1" if host != "::" else "[::1]"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> bool:
        """Ask the server to finish (open requests complete, the app's shutdown hooks
        run) and wait; True when it has."""
        self.server.should_exit = True
        self.join(timeout)
        if self.is_alive():
            self.server.force_exit = True
            self.join(5.0)
        return not self.is_alive()


def create_up_tui(engine: Engine, server: ServerThread):
    """The UI of `cairn up`: on the engine in-process, with the running server's URL so the
    Serving screen scrapes live figures (requests/s, latency, errors) from it."""
    from cairn.tui.app import create_tui
    from cairn.tui.backend import LocalBackend

    app = create_tui(LocalBackend(engine, server_url=server.local_url, server_token=server.metrics_key))
    app.sub_title = f"{app.sub_title} · serving {server.url}"
    return app


def run_up(engine: Engine, host: str, port: int, auth: bool = False) -> int:
    """Serve `engine` over HTTP and run the terminal UI on it until the UI quits."""
    log = ServerLog()
    log.install()
    thread = ServerThread(engine, host, port, auth)
    thread.start()
    # The UI starts only once the port is bound, so a taken port is a plain error on the
    # terminal instead of a UI with no server behind it.
    if not thread.wait_started(STARTUP_TIMEOUT):
        thread.stop(timeout=5.0)
        reason = "; ".join(log.kept) or thread.failure or f"no answer within {STARTUP_TIMEOUT:.0f} s"
        print(f"error: the server did not start on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    url = thread.url

    app = create_up_tui(engine, thread)
    log.app = app

    def on_start() -> None:
        # Also in the subtitle (create_up_tui); a notification shows it on every screen at start.
        app.notify(f"MLFLOW_TRACKING_URI={url}", title="Serving MLflow's REST API", timeout=ANNOUNCE_SECONDS)
        # `kill PID` or a dropped SSH session: quit as `q` does, so the server stops and
        # queued writes are committed, instead of dying mid-write.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, app.exit)

    app.call_later(on_start)
    try:
        app.run()
    finally:
        log.app = None
        stopped = thread.stop()
        # What the server and the UI acknowledged is on disk before the process exits.
        engine.flush()
    for message in log.kept:
        print(f"server: {message}")
    if not stopped:
        print("warning: the server did not stop in time; exiting anyway", file=sys.stderr)
    print(f"Cairn stopped (served {engine.path} at {url})")
    return app.return_code or 0
