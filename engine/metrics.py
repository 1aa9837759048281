"""Metric points: the buffered append path and the history reads.

log_metric is the hottest call in tracking (a training loop logs every step), so points
are appended to an in-process buffer and one writer operation drains the whole buffer
into a single transaction: history rows go in with one `putmulti`, and the latest value
per (run, key) is updated once per batch, not once per point.
"""
from __future__ import annotations

import threading
from itertools import islice, takewhile
from operator import methodcaller

import lmdb
import numpy as np

from .entities import Metric
from .keys import i64, sortable_f64, u32, u64
from .lmdbenv import Batch, LmdbEnv
from .records import LATEST, LatestMetric

# One point as the writer needs it: run key bytes, experiment id, name id, ts, step, value.
Point = tuple[bytes, int, int, int, int, float]

_HIST_KEY_DTYPE = np.dtype([("prefix", "V20"), ("ts", ">u8"), ("step", ">u8")])
_SORTABLE_DTYPE = np.dtype([("cls", "u1"), ("bits", ">u8")])
_BIAS = np.uint64(1 << 63)


def history_key(run_b: bytes, nid: int, ts: int, step: int) -> bytes:
    return run_b + u32(nid) + i64(ts) + i64(step)


def order_key(exp: int, nid: int, value: float, run_b: bytes) -> bytes:
    return u64(exp) + u32(nid) + sortable_f64(value) + run_b


def write_points(batch: Batch, points: list[Point]) -> None:
    """Append points to history and advance each (run, key)'s latest value."""
    dbs = batch.dbs
    txn = batch.txn
    with txn.cursor(db=dbs["metrics"]) as cur:
        cur.putmulti(
            [(history_key(r, n, ts, st), sortable_f64(v)) for r, _e, n, ts, st, v in points],
            dupdata=True,
        )
    # The newest point per (run, key): greatest (step, timestamp, value), as MLflow.
    newest: dict[tuple[bytes, int], Point] = {}
    for p in points:
        k = (p[0], p[2])
        cur_p = newest.get(k)
        if cur_p is None or (p[4], p[3], p[5]) > (cur_p[4], cur_p[3], cur_p[5]):
            newest[k] = p
    latest_db = dbs["latest"]
    order_db = dbs["metric_order"]
    for (run_b, nid), (_r, exp, _n, ts, step, value) in newest.items():
        lkey = run_b + u32(nid)
        raw = txn.get(lkey, db=latest_db)
        if raw is not None:
            old = LATEST.decode(raw)
            if not (step, ts, value) > (old.step, old.timestamp, old.value):
                continue
            txn.delete(order_key(exp, nid, old.value, run_b), db=order_db)
        txn.put(lkey, LATEST.encode(LatestMetric(value, ts, step)), db=latest_db)
        txn.put(order_key(exp, nid, value, run_b), b"", db=order_db)


class _DrainOp:
    """A writer operation that takes the buffered points once, so a retried batch
    (after the map grew) writes the same points rather than an emptied buffer."""

    __slots__ = ("_log", "_points")

    def __init__(self, log: "MetricBuffer"):
        self._log = log
        self._points: list[Point] | None = None

    def __call__(self, batch: Batch) -> None:
        if self._points is None:
            self._points = self._log._take()
        if self._points:
            write_points(batch, self._points)


class MetricBuffer:
    """Points accepted but not yet committed; drained by the writer, one op at a time."""

    def __init__(self, lenv: LmdbEnv):
        self._lenv = lenv
        self._buf: list[Point] = []
        self._lock = threading.Lock()
        self._queued = False

    def add(self, point: Point) -> None:
        with self._lock:
            self._buf.append(point)
            if self._queued:
                return
            self._queued = True
        self._lenv.write_async(_DrainOp(self))

    def extend(self, points: list[Point]) -> None:
        with self._lock:
            self._buf.extend(points)
            if self._queued:
                return
            self._queued = True
        self._lenv.write_async(_DrainOp(self))

    def _take(self) -> list[Point]:
        with self._lock:
            points, self._buf = self._buf, []
            self._queued = False
        return points


def read_history(txn: lmdb.Transaction, db, run_b: bytes, nid: int, key: str) -> list[Metric]:
    """Every point of one metric, ordered by (timestamp, step, value) as MLflow's SQL store.

    Iteration and decoding stay in C: keys are collected with a C-level prefix test, values
    in a second pass of the same length, and both decoded with numpy in one go.
    """
    prefix = run_b + u32(nid)
    with txn.cursor(db=db) as cur:
        if not cur.set_range(prefix):
            return []
        keys = list(takewhile(methodcaller("startswith", prefix), cur.iternext(values=False)))
        if not keys:
            return []
        cur.set_range(prefix)
        vals = list(islice(cur.iternext(keys=False), len(keys)))
    k = np.frombuffer(b"".join(keys), dtype=_HIST_KEY_DTYPE)
    ts = (k["ts"] - _BIAS).astype(np.int64)
    steps = (k["step"] - _BIAS).astype(np.int64)
    values = decode_sortable(b"".join(vals))
    return [
        Metric(key, v, t, s)
        for v, t, s in zip(values.tolist(), ts.tolist(), steps.tolist())
    ]


def decode_sortable(raw: bytes) -> np.ndarray:
    """Vectorised inverse of keys.sortable_f64 over concatenated 9-byte values."""
    a = np.frombuffer(raw, dtype=_SORTABLE_DTYPE)
    bits = a["bits"].astype(np.uint64)
    neg = (bits >> np.uint64(63)) == 0
    bits = np.where(neg, ~bits, bits ^ (np.uint64(1) << np.uint64(63)))
    out = bits.astype(">u8").view(">f8").astype(np.float64)
    out[a["cls"] == 1] = np.nan
    return out


__all__ = [
    "MetricBuffer",
    "Point",
    "history_key",
    "order_key",
    "read_history",
    "write_points",
]
