"""Running a uvicorn Server to its end, for `cairn server` and `cairn models serve`:
tell the caller the URL once the socket listens, and end with exit status 0 on SIGTERM."""
from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable


def run_server(server, host: str, port: int, ready: Callable[[str], None] | None = None) -> None:
    """`server.run()`; `ready(url)` is called once it accepts connections (with the
    bound port when `port` is 0)."""
    if ready is not None:
        _call_when_started(server, ready, host, port)
    if threading.current_thread() is not threading.main_thread():
        server.run()
        return
    # uvicorn handles SIGTERM (stop accepting, finish requests in flight, lifespan
    # shutdown) and then raises it again. With SIGTERM's default action that kills the
    # process before Python's exit handlers commit the store's queued writes
    # (engine/store/lmdbenv.py), and systemd sees a kill instead of exit 0. The shutdown it
    # asks for has happened by then: ignore the repeat, so the caller returns normally.
    previous = signal.signal(signal.SIGTERM, _shutdown_done)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _shutdown_done(signum, frame) -> None:
    """SIGTERM repeated by uvicorn after its graceful shutdown: nothing left to do."""


def _call_when_started(server, ready: Callable[[str], None], host: str, port: int) -> None:
    original = server.startup

    async def startup(sockets=None):
        await original(sockets=sockets)
        bound = port
        if server.servers and server.servers[0].sockets:
            bound = server.servers[0].sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if getattr(server.config, "ssl_certfile", None) else "http"
        ready(f"{scheme}://{shown}:{bound}")
        await asyncio.sleep(0)

    server.startup = startup
