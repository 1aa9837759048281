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

import functools
import struct
import threading
from itertools import repeat

import lmdb

from cairn.engine.store.keys import sortable_f64, u32, u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.tracking.entities import Metric
from cairn.engine.tracking.records import LATEST, LatestMetric

# One point as the writer needs it: run key bytes, experiment id, name id, ts, step, value.
Point = tuple[bytes, int, int, int, int, float]

BLOCK_POINTS = 1024
_ROW = struct.Struct("<qqd")


@functools.cache
def _np():
    """numpy, imported on first use: it is a fifth of the server's start-up time, and
    only history reads and large batches need it."""
    import numpy

    return numpy


@functools.cache
def _row_dtype():
    return _np().dtype([("ts", "<i8"), ("step", "<i8"), ("value", "<f8")])


def order_key(exp: int, nid: int, value: float, run_b: bytes) -> bytes:
    return u64(exp) + u32(nid) + sortable_f64(value) + run_b


def write_points(batch: Batch, points: list[Point]) -> None:
    """Append points to their histories and advance each (run, key)'s latest value."""
    groups: dict[tuple[bytes, int], list[Point]] = {}
    for p in points:
        k = (p[0], p[2])
        g = groups.get(k)
        if g is None:
            groups[k] = [p]
        else:
            g.append(p)
    txn = batch.txn
    dbs = batch.dbs
    latest_db, order_db, hist_db = dbs["latest"], dbs["metric_order"], dbs["metrics"]
    for (run_b, nid), group in groups.items():
        lkey = run_b + u32(nid)
        raw = txn.get(lkey, db=latest_db)
        old = LATEST.decode(raw) if raw is not None else None
        count = old.count if old is not None else 0
        rows, newest = _pack(group)
        _append_rows(txn, hist_db, lkey, count, rows)
        count += len(group)
        _r, exp, _n, ts, step, value = newest
        if old is None or _recency(step, ts, value) > _recency(old.step, old.timestamp, old.value):
            if old is not None:
                txn.delete(order_key(exp, nid, old.value, run_b), db=order_db)
            txn.put(order_key(exp, nid, value, run_b), b"", db=order_db)
            cur = LatestMetric(value, ts, step, count)
        else:
            cur = LatestMetric(old.value, old.timestamp, old.step, count)
        txn.put(lkey, LATEST.encode(cur), db=latest_db)


def _pack(group: list[Point]) -> tuple[bytes, Point]:
    """The group's history rows as bytes, and its newest point. Large groups (a batch of
    a training loop's steps) go through numpy: one conversion instead of a call per point."""
    if len(group) < 16:
        pack = _ROW.pack
        return b"".join([pack(p[3], p[4], p[5]) for p in group]), max(
            group, key=lambda p: _recency(p[4], p[3], p[5])
        )
    np = _np()
    arr = np.array([(p[3], p[4], p[5]) for p in group], dtype=_row_dtype())
    value = arr["value"]
    newest = np.lexsort((np.where(np.isnan(value), 0.0, value), arr["ts"], arr["step"]))[-1]
    return arr.tobytes(), group[int(newest)]


def _recency(step: int, ts: int, value: float) -> tuple[int, int, float]:
    """The newest point has the greatest (step, timestamp, value), as MLflow's SQL store,
    which stores NaN as 0 with a flag: so NaN compares as 0 here too, and the winner
    never depends on arrival order."""
    return (step, ts, 0.0 if value != value else value)


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


def read_history_rows(txn: lmdb.Transaction, db, run_b: bytes, nid: int):
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
    np = _np()
    if not blocks:
        return np.empty(0, dtype=_row_dtype())
    rows = np.frombuffer(b"".join(blocks), dtype=_row_dtype())
    if len(rows) > 1:
        if not _in_order(rows):
            rows = rows[np.lexsort((rows["value"], rows["step"], rows["ts"]))]
        bits = rows.view("<i8").reshape(-1, 3)  # compare exact bits: NaN equals NaN here
        keep = np.empty(len(rows), dtype=bool)
        keep[0] = True
        np.any(bits[1:] != bits[:-1], axis=1, out=keep[1:])
        if not keep.all():
            rows = rows[keep]
    return rows


def _in_order(rows) -> bool:
    """Whether rows already follow (timestamp, step, value): the usual case, since
    points mostly arrive in time order, and a check is cheaper than a sort."""
    ts, st, v = rows["ts"], rows["step"], rows["value"]
    d_ts = ts[1:] - ts[:-1]
    if (d_ts > 0).all():
        return True
    d_st = st[1:] - st[:-1]
    same_ts = d_ts == 0
    ok = (d_ts > 0) | (same_ts & (d_st > 0)) | (same_ts & (d_st == 0) & (v[1:] >= v[:-1]))
    return bool(ok.all())


def read_history(txn: lmdb.Transaction, db, run_b: bytes, nid: int, key: str) -> list[Metric]:
    rows = read_history_rows(txn, db, run_b, nid)
    return list(
        map(Metric, repeat(key), rows["value"].tolist(), rows["ts"].tolist(), rows["step"].tolist())
    )
