"""Metric points: the buffered append path and the history reads.

log_metric is the hottest call in tracking (a training loop logs every step), so points
are appended to an in-process buffer and one writer operation drains the whole buffer
into a single transaction, touching each (run, key) once per batch.

History layout: points are stored in arrival order, packed 1,024 to an LMDB value
(`metrics`: run + nid + block number -> rows of little-endian ts, step, value). A full
history of 10,000 points is then ten reads and one numpy decode instead of 10,000 cursor
steps; the (timestamp, step, value) order MLflow returns, and its dedup of identical
points, are applied at read time by a vectorised sort.
"""
from __future__ import annotations

import struct
import threading

import lmdb
import numpy as np

from .entities import Metric
from .keys import sortable_f64, u32, u64
from .lmdbenv import Batch, LmdbEnv
from .records import LATEST, LatestMetric

# One point as the writer needs it: run key bytes, experiment id, name id, ts, step, value.
Point = tuple[bytes, int, int, int, int, float]

BLOCK_POINTS = 1024
_ROW = struct.Struct("<qqd")
_ROW_DTYPE = np.dtype([("ts", "<i8"), ("step", "<i8"), ("value", "<f8")])


def order_key(exp: int, nid: int, value: float, run_b: bytes) -> bytes:
    return u64(exp) + u32(nid) + sortable_f64(value) + run_b


def write_points(batch: Batch, points: list[Point]) -> None:
    """Append points to their histories and advance each (run, key)'s latest value."""
    groups: dict[tuple[bytes, int], list[Point]] = {}
    for p in points:
        groups.setdefault((p[0], p[2]), []).append(p)
    txn = batch.txn
    dbs = batch.dbs
    latest_db, order_db, hist_db = dbs["latest"], dbs["metric_order"], dbs["metrics"]
    pack = _ROW.pack
    for (run_b, nid), group in groups.items():
        lkey = run_b + u32(nid)
        raw = txn.get(lkey, db=latest_db)
        old = LATEST.decode(raw) if raw is not None else None
        count = old.count if old is not None else 0
        _append_rows(txn, hist_db, lkey, count, b"".join([pack(p[3], p[4], p[5]) for p in group]))
        count += len(group)
        # The newest point: greatest (step, timestamp, value), as MLflow's SQL store.
        newest = max(group, key=lambda p: (p[4], p[3], p[5]))
        _r, exp, _n, ts, step, value = newest
        if old is None or (step, ts, value) > (old.step, old.timestamp, old.value):
            if old is not None:
                txn.delete(order_key(exp, nid, old.value, run_b), db=order_db)
            txn.put(order_key(exp, nid, value, run_b), b"", db=order_db)
            cur = LatestMetric(value, ts, step, count)
        else:
            cur = LatestMetric(old.value, old.timestamp, old.step, count)
        txn.put(lkey, LATEST.encode(cur), db=latest_db)


def _append_rows(txn: lmdb.Transaction, db, prefix: bytes, count: int, rows: bytes) -> None:
    width = _ROW.size
    while rows:
        block, used = divmod(count, BLOCK_POINTS)
        take = (BLOCK_POINTS - used) * width
        chunk, rows = rows[:take], rows[take:]
        bkey = prefix + u32(block)
        if used:
            chunk = txn.get(bkey, db=db) + chunk
        txn.put(bkey, chunk, db=db)
        count += len(chunk) // width - used


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


def read_history_rows(txn: lmdb.Transaction, db, run_b: bytes, nid: int) -> np.ndarray:
    """Every point of one metric as a structured array (ts, step, value), ordered by
    (timestamp, step, value) like MLflow's SQL store, identical points kept once."""
    prefix = run_b + u32(nid)
    blocks = []
    with txn.cursor(db=db) as cur:
        if cur.set_range(prefix):
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                blocks.append(v)
    if not blocks:
        return np.empty(0, dtype=_ROW_DTYPE)
    rows = np.frombuffer(b"".join(blocks), dtype=_ROW_DTYPE)
    rows = rows[np.lexsort((rows["value"], rows["step"], rows["ts"]))]
    if len(rows) > 1:
        bits = rows.view("<i8").reshape(-1, 3)  # compare exact bits: NaN equals NaN here
        keep = np.empty(len(rows), dtype=bool)
        keep[0] = True
        np.any(bits[1:] != bits[:-1], axis=1, out=keep[1:])
        if not keep.all():
            rows = rows[keep]
    return rows


def read_history(txn: lmdb.Transaction, db, run_b: bytes, nid: int, key: str) -> list[Metric]:
    rows = read_history_rows(txn, db, run_b, nid)
    return [
        Metric(key, v, t, s)
        for t, s, v in zip(rows["ts"].tolist(), rows["step"].tolist(), rows["value"].tolist())
    ]
