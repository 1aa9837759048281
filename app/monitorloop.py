"""The server's monitor refresher: a background thread that refreshes every monitor
each `interval_s`, so windows, drift and alerts keep up with the payload log without
anyone asking.

Its CPU is bounded by a duty cycle kept in small slices: the refresh calls a Pacer as
it reads each payload and starts each window and column, and after each SLICE_S or so
of work t the Pacer rests t * (1 - share) / share. So the refresher is busy at most
`share` of the time (10% by default), thus uses at most that share of one core, and,
as it runs in the server's process, hands the GIL back to the event loop every few
milliseconds: a long refresh never stalls scoring for long (bench/monitoring.py
measures serving latency with it on and off). A refresh takes about 1/share times its
work in wall time, longer while scoring keeps the GIL busy. A failed refresh is logged and
kept on the monitor (`last_error`), never raised; stopping abandons a refresh under way
(it writes its windows only at its end).
"""
from __future__ import annotations

import logging
import threading
import time

from cairn.engine.monitoring.store import import_statistics

log = logging.getLogger("cairn.monitoring")
DEFAULT_INTERVAL_S = 60.0
DEFAULT_SHARE = 0.10
SLICE_S = 0.002


class Stopped(Exception):
    """The server is stopping: abandon the refresh under way."""


class Pacer:
    """Called by a refresh between short steps: once SLICE_S has passed since the last
    rest, rests (1 - share) / share times as long as that stretch took. The stretch
    counts waiting for the GIL as well as running: in the server's process the GIL is
    what scoring and a refresh share, so a refresh holds or wants it at most `share` of
    the time (measured gentler on scoring than resting for CPU time only)."""

    def __init__(self, share: float, stop: threading.Event, slice_s: float = SLICE_S):
        self._slice = slice_s
        self._ratio = (1 - share) / share
        self._stop = stop
        self._since = time.perf_counter()

    def __call__(self) -> None:
        busy = time.perf_counter() - self._since
        if busy >= self._slice:
            if self._stop.wait(busy * self._ratio):
                raise Stopped
            self._since = time.perf_counter()


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
        if self._engine.monitoring.list_monitors():
            import_statistics()  # now, not in the middle of traffic (a monitor made later pays it then)
        while not self._stop.wait(self.interval_s):
            for monitor in self._engine.monitoring.list_monitors():
                if self._stop.is_set():
                    return
                try:
                    self._engine.monitoring.refresh(monitor.endpoint, pace=Pacer(self.share, self._stop))
                    self.refreshes += 1
                except Stopped:
                    return
                except Exception as exc:  # noqa: BLE001 - one monitor's failure is not the server's
                    log.warning("refreshing the monitor of %s failed: %s", monitor.endpoint, exc)
                    self._engine.monitoring.note_error(monitor.endpoint, str(exc))
