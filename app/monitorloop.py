"""The server's monitor refresher: a background thread that refreshes every monitor
each `interval_s`, so windows, drift and alerts keep up with the payload log without
anyone asking.

Its CPU is bounded by a duty cycle: after a refresh that took t seconds it rests at
least t * (1 - share) / share, so on average it uses at most `share` of one core (10%
by default), and the scoring path keeps the rest. A failed refresh is logged and kept
on the monitor (`last_error`), never raised.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("cairn.monitoring")
DEFAULT_INTERVAL_S = 60.0
DEFAULT_SHARE = 0.10


class MonitorRefresher:
    def __init__(self, engine, interval_s: float = DEFAULT_INTERVAL_S, share: float = DEFAULT_SHARE):
        self._engine = engine
        self.interval_s = interval_s
        self.share = share
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0

    def start(self) -> None:
        if self.interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="cairn-monitors", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            for monitor in self._engine.monitoring.list_monitors():
                if self._stop.is_set():
                    return
                t0 = time.perf_counter()
                try:
                    self._engine.monitoring.refresh(monitor.endpoint)
                    self.refreshes += 1
                except Exception as exc:  # noqa: BLE001 - one monitor's failure is not the server's
                    log.warning("refreshing the monitor of %s failed: %s", monitor.endpoint, exc)
                    self._engine.monitoring.note_error(monitor.endpoint, str(exc))
                busy = time.perf_counter() - t0
                if self._stop.wait(busy * (1 - self.share) / self.share):
                    return
