"""Publishing a feature table to the online store: the latest row per primary key,
copied from Delta into LMDB in one transaction.

Incremental: the online state remembers the Delta version it holds, and the next
publish reads only the commits after it from the change data feed (inserts and the new
images of updates). With no commit since, publish writes nothing. The first publish,
or one after an external writer turned the feed off, reads the whole snapshot instead.
For a time-series table the row with the latest timestamp key wins, within the changes
and against what the store already holds, so a backfill of old rows never replaces a
newer one; rows deleted from a time-series table make the publish read the snapshot.
"""
from __future__ import annotations

import datetime as dt_
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import DeltaError

from cairn.engine.errors import invalid
from cairn.engine.features import frames
from cairn.engine.features.pointintime import arrow_result, ident
from cairn.engine.features.records import OnlineState
from cairn.engine.features.store import encode_row, key_bytes
from cairn.engine.store.lmdbenv import Batch
from cairn.engine.store.timestamps import now_ms

_CHANGES = ("insert", "update_postimage")


class PublishResult(msgspec.Struct, kw_only=True):
    name: str
    version: int  # the Delta version the online store now holds
    previous_version: int  # -1: first publish
    rows_written: int
    rows_deleted: int
    online_rows: int
    incremental: bool


def ttl_seconds(ttl: Any) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, dt_.timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0:
        raise invalid(f"ttl: a non-negative number of seconds or a timedelta is required, got {ttl!r}")
    return float(ttl)


def publish(offline, name: object, ttl: Any = None) -> PublishResult:
    store = offline.store
    ttl_s = ttl_seconds(ttl)
    full, rec = store.record(name)
    dt = offline.delta(rec)
    current, previous = dt.version(), rec.online.version
    new_ttl = rec.online.ttl_s if ttl_s is None else ttl_s
    if current == previous and new_ttl == rec.online.ttl_s:
        return PublishResult(name=full.display, version=current, previous_version=previous, rows_written=0,
                             rows_deleted=0, online_rows=rec.online.rows, incremental=True)
    schema = offline.arrow_schema(dt)
    pks, tks = rec.primary_keys, rec.timestamp_keys
    columns = [n for n in schema.names if n not in set(pks) | set(tks)]
    if previous >= 0 and columns != rec.online.columns:
        raise invalid(f"Feature table '{full.display}' changed its columns since it was published; "
                      "drop and publish it again")
    committed = commit_ms(dt)
    latest, removed_rows, commits = _changes(dt, previous, current, pks, tks)
    if latest is None:  # first publish, or the feed is gone: the whole snapshot
        latest = _latest(dt.to_pyarrow_table(), pks, tks, None)
    rows = _online_rows(rec.table_id, latest, pks, tks, columns, committed, commits)
    gone = [(k, 0, None) for k in _keys(rec.table_id, removed_rows, pks)] if removed_rows is not None else []
    key_types = [str(schema.field(k).type) for k in pks]
    snapshot = removed_rows is None and current > previous

    def op(b: Batch) -> tuple[int, int]:
        state = store.online_state(b, full)  # inside the write: the truth now
        if snapshot and state.version >= 0:
            store.clear_online(b, rec.table_id)
        count = (0 if snapshot else state.rows) + store.write_online(b, rows)
        dropped = -store.write_online(b, gone)
        store.put_online_state(b, full, OnlineState(
            version=current, published_ms=now_ms(), ttl_s=new_ttl, columns=columns, rows=count - dropped,
            key_types=key_types))
        return count - dropped, dropped

    online_rows, dropped = store.env.write(op)
    return PublishResult(name=full.display, version=current, previous_version=previous, rows_written=len(rows),
                         rows_deleted=dropped, online_rows=online_rows, incremental=not snapshot)


def commit_ms(dt) -> int:
    """When the Delta table's current version was committed (ms since the epoch; now if
    the log does not say)."""
    return int(dt.history(1)[0].get("timestamp") or now_ms())


def _changes(dt, previous: int, current: int, pks: list[str], tks: list[str]):
    """(latest changed row per key, keys deleted since, their commit times) from the
    change data feed between the published version and now; (None, None, None) when a
    snapshot must be read instead: the feed is gone, or rows of a time-series table were
    deleted (a key's latest remaining row, or that none remains, is not in the feed; a
    deletion, a customer's data erased say, must reach the online store all the same)."""
    if previous < 0:
        return None, None, None
    if previous == current:  # only the ttl changes
        return pa.table({k: [] for k in pks}), pa.table({k: [] for k in pks}), None
    try:
        feed = pa.table(dt.load_cdf(starting_version=previous + 1, ending_version=current))
    except DeltaError:  # another writer turned the feed off
        return None, None, None
    feed = frames.plain_views(feed)
    if tks and pc.any(pc.equal(feed.column("_change_type"), "delete")).as_py():
        return None, None, None
    kinds = _CHANGES if tks else (*_CHANGES, "delete")
    feed = feed.filter(pc.is_in(feed.column("_change_type"), pa.array(kinds)))
    latest = _latest(feed, pks, tks, "_commit_version")
    deleted = pc.equal(latest.column("_change_type"), "delete")
    latest, removed = latest.filter(pc.invert(deleted)), latest.filter(deleted)
    commits = pc.cast(pc.cast(latest.column("_commit_timestamp"), pa.timestamp("ms")), pa.int64()).to_pylist()
    return latest, removed, commits


def _latest(table: pa.Table, pks: list[str], tks: list[str], version_col: str | None) -> pa.Table:
    """One row per primary key: the latest timestamp key, then the latest commit."""
    order = [*tks, *([version_col] if version_col else [])]
    if not order or not table.num_rows:
        return table  # a snapshot of a table without a timestamp key: keys are unique
    con = duckdb.connect()
    try:
        con.register("rows_in", table)
        partition = ", ".join(ident(k) for k in pks)
        ordering = ", ".join(f"{ident(c)} DESC" for c in order)
        return arrow_result(con, f"SELECT * FROM rows_in QUALIFY row_number() OVER (PARTITION BY "
                                 f"{partition} ORDER BY {ordering}) = 1")
    finally:
        con.close()


def _keys(table_id: int, table: pa.Table, pks: list[str]) -> list[bytes]:
    cols = [table.column(k).to_pylist() for k in pks]
    return [key_bytes(table_id, values) for values in zip(*cols)]


def _online_rows(table_id: int, table: pa.Table, pks: list[str], tks: list[str], columns: list[str],
                 commit_ms: int, commits: list[int] | None) -> list[tuple[bytes, int, bytes]]:
    """(key, event_us, encoded OnlineRow) per row: built column-wise, never a Struct per row."""
    keys = _keys(table_id, table, pks)
    n = table.num_rows
    if not n:
        return []
    if tks:
        ts = table.column(tks[0])
        events = pc.cast(ts.cast(pa.timestamp("us", tz="UTC")), pa.int64()).to_pylist()
    else:
        events = [0] * n
    commits = commits if commits is not None else [commit_ms] * n
    values = [table.column(c).to_pylist() for c in columns]
    return [(k, e, encode_row(e, c, v)) for k, e, c, v in zip(keys, events, commits, zip(*values))]
