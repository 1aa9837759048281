"""FeatureStore: feature tables' records and their online rows, on the engine's LMDB.

This half needs nothing beyond LMDB and msgspec, so an edge install serves online
lookups without the `features` extra; the Delta side (`offline.OfflineStore`, with
publishing and training sets) is built on it by the SDK's `offline_store`, which
imports it on first use.

Contract (the docstrings below are the spec):
- Names are three-level (`catalog.schema.table`; bare names live in `main.default`)
  and the catalog and schema must exist in the registry's namespace.
- `list_records` orders by full name. Dropping a table removes its record and its online
  rows in one transaction, then its Delta folder; a name can be used again at once.
- Lookups read one snapshot for any number of keys: a key never published, or one
  whose row is older than the table's online TTL, is a miss (None), counted per table.
"""
from __future__ import annotations

import functools
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from cairn.engine.errors import already_exists, invalid, not_found
from cairn.engine.features.records import (
    FEATURE_TABLE,
    NEXT_FEATURE_TABLE_ID,
    ONLINE_ROW,
    FeatureTableRecord,
    OnlineState,
)
from cairn.engine.registry.catalogs import schema_record
from cairn.engine.registry.names import FullName, check_text, parse_full_name, tag_map
from cairn.engine.store.keys import u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms

FEATURES_DIR = "features"
# Online rows deleted per transaction when a table is dropped: bounds one commit.
PURGE_CHUNK = 10_000
_KEY = msgspec.msgpack.Encoder()


def parse_table_name(name: object) -> FullName:
    return parse_full_name(name, "feature table", "table")


def check_columns(value: object, what: str, *, required: bool) -> list[str]:
    """A column name or a list of them -> list; the parameter named when it is wrong."""
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) and c for c in value):
        raise invalid(f"{what}: a column name or a list of column names is required, got {value!r}")
    if required and not value:
        raise invalid(f"{what}: at least one column is required")
    if len(set(value)) != len(value):
        raise invalid(f"{what}: a column is named twice in {list(value)!r}")
    return list(value)


class FeatureTable(msgspec.Struct, kw_only=True):
    """A feature table as the API shows it (Databricks' FeatureTable)."""

    name: str
    table_id: int
    primary_keys: list[str]
    timestamp_keys: list[str]
    description: str
    tags: dict[str, str]
    creator: str
    creation_timestamp: int
    last_updated_timestamp: int
    path: str  # the Delta folder, absolute
    # Filled from the Delta log when the offline side is installed.
    features: list[str] = []
    schema: list[tuple[str, str]] = []
    delta_version: int = -1
    online_version: int = -1
    online_published_timestamp: int = 0
    online_ttl_seconds: float = 0.0
    online_rows: int = 0


def _coercer(arrow_type: str):
    """How a lookup key value is made to match the published key's type: JSON gives 7.0
    for an integer key and a number for a string key as easily as the right thing."""
    if arrow_type.startswith(("int", "uint")):
        return lambda v: int(v) if isinstance(v, float) and v.is_integer() else v
    if arrow_type in ("string", "large_string"):
        return lambda v: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    return None


def key_bytes(table_id: int, values: Sequence[Any]) -> bytes:
    """The online key of one row: the table id, then its key values as a msgpack array
    (ints as ints, strings as strings: the caller normalises to the key columns' types)."""
    return u64(table_id) + _KEY.encode(values)


def encode_row(event_us: int, commit_ms: int, values: Sequence[Any]) -> bytes:
    """An OnlineRow's bytes without the Struct: it is array_like, so the same msgpack
    array (decoded by ONLINE_ROW as the Struct)."""
    return _KEY.encode((event_us, commit_ms, values))


class _LookupPlan(NamedTuple):
    raw: bytes
    display: str
    table_id: int
    primary_keys: list[str]
    pairs: list[tuple[str, int]]  # (output name, index into the row's values)
    ttl_ms: float
    event_based: bool
    coercers: list | None


@functools.lru_cache(maxsize=4096)
def _parse_cached(name: str) -> FullName:
    return parse_table_name(name)


class FeatureStore:
    def __init__(self, lenv: LmdbEnv, root: Path):
        self._env = self.env = lenv
        self._db = lenv.dbs
        self.root = root  # the data directory
        self._plans: dict[tuple[FullName, tuple[str, ...] | None], _LookupPlan] = {}
        # table -> [lookups, misses, stale]: read by serving's /metrics
        self.lookup_counts: dict[str, list[int]] = {}

    # ================================================================ records
    def entity(self, full: FullName, rec: FeatureTableRecord) -> FeatureTable:
        return FeatureTable(
            name=full.display, table_id=rec.table_id, primary_keys=rec.primary_keys,
            timestamp_keys=rec.timestamp_keys, description=rec.description, tags=dict(rec.tags),
            creator=rec.creator, creation_timestamp=rec.created_ms, last_updated_timestamp=rec.updated_ms,
            path=str(self.root / rec.path), online_version=rec.online.version,
            online_published_timestamp=rec.online.published_ms, online_ttl_seconds=rec.online.ttl_s,
            online_rows=rec.online.rows)

    def record(self, name: object) -> tuple[FullName, FeatureTableRecord]:
        full = parse_table_name(name)
        with self._env.read() as txn:
            raw = txn.get(full.key(), db=self._db["feature_tables"])
        if raw is None:
            raise not_found(f"Feature table '{full.display}' does not exist.")
        return full, FEATURE_TABLE.decode(raw)

    def add_record(self, full: FullName, primary_keys: list[str], timestamp_keys: list[str],
                   description: object, tags: object, creator: str) -> FeatureTableRecord:
        """A new table's record, its Delta folder `features/<catalog>/<schema>/<table>-<id>`
        (RESOURCE_ALREADY_EXISTS if the name is taken; the catalog and schema must exist)."""
        description = check_text(description or "", "description")
        tags = tag_map(tags)

        def op(b: Batch) -> FeatureTableRecord:
            schema_record(b.txn, b.dbs, full.catalog, full.schema)
            if b.txn.get(full.key(), db=b.dbs["feature_tables"]) is not None:
                raise already_exists(f"Feature table '{full.display}' already exists.")
            tid = b.next_id(NEXT_FEATURE_TABLE_ID)
            t = now_ms()
            # The id in the folder's name: a name dropped and created again (or a folder a
            # crash left behind) never shares a Delta log with the new table.
            path = f"{FEATURES_DIR}/{full.catalog}/{full.schema}/{full.model}-{tid}"
            rec = FeatureTableRecord(tid, primary_keys, timestamp_keys, description, tags, creator, t, t, path)
            b.txn.put(full.key(), FEATURE_TABLE.encode(rec), db=b.dbs["feature_tables"])
            return rec

        return self._env.write(op)

    def update_record(self, full: FullName, change) -> FeatureTableRecord:
        """Apply `change(record)` (which mutates it) in one write; the table must exist."""

        def op(b: Batch) -> FeatureTableRecord:
            raw = b.txn.get(full.key(), db=b.dbs["feature_tables"])
            if raw is None:
                raise not_found(f"Feature table '{full.display}' does not exist.")
            rec = FEATURE_TABLE.decode(raw)
            change(rec)
            b.txn.put(full.key(), FEATURE_TABLE.encode(rec), db=b.dbs["feature_tables"])
            return rec

        return self._env.write(op)

    def list_records(self) -> list[tuple[FullName, FeatureTableRecord]]:
        """Every table, ordered by full name."""
        out = []
        with self._env.read() as txn, txn.cursor(db=self._db["feature_tables"]) as cur:
            for key, raw in cur:
                out.append((FullName(*key.decode().split("\0")), FEATURE_TABLE.decode(raw)))
        return out

    def set_tag(self, name: object, key: object, value: object) -> None:
        full, _ = self.record(name)
        tags = tag_map({key: value})

        def change(rec: FeatureTableRecord) -> None:
            rec.tags.update(tags)
            rec.updated_ms = now_ms()

        self.update_record(full, change)

    def delete_tag(self, name: object, key: object) -> None:
        full, rec = self.record(name)
        if key not in rec.tags:
            raise not_found(f"Feature table '{full.display}' has no tag {key!r}.")

        def change(r: FeatureTableRecord) -> None:
            r.tags.pop(key, None)
            r.updated_ms = now_ms()

        self.update_record(full, change)

    def drop_table(self, name: object) -> None:
        """The record and its online rows go in one transaction (chunked beyond
        PURGE_CHUNK rows, the record first), then the Delta folder."""
        full, rec = self.record(name)
        prefix = u64(rec.table_id)

        def op(b: Batch) -> None:
            if b.txn.get(full.key(), db=b.dbs["feature_tables"]) is not None:
                b.txn.delete(full.key(), db=b.dbs["feature_tables"])
            self._purge(b, prefix)

        self._env.write(op)
        while self._has_rows(prefix):
            self._env.write(lambda b: self._purge(b, prefix))
        shutil.rmtree(self.root / rec.path, ignore_errors=True)

    def _has_rows(self, prefix: bytes) -> bool:
        with self._env.read() as txn, txn.cursor(db=self._db["online_features"]) as cur:
            return cur.set_range(prefix) and cur.key().startswith(prefix)

    def _purge(self, b: Batch, prefix: bytes) -> None:
        db = b.dbs["online_features"]
        with b.txn.cursor(db=db) as cur:
            keys = []
            if cur.set_range(prefix):
                for key in cur.iternext(values=False):
                    if not key.startswith(prefix) or len(keys) >= PURGE_CHUNK:
                        break
                    keys.append(key)
        for key in keys:
            b.txn.delete(key, db=db)

    # ================================================================ feature specs
    def put_feature_spec(self, name: object, spec_json: bytes) -> FullName:
        """A named feature spec (what a feature serving endpoint serves);
        RESOURCE_ALREADY_EXISTS if the name is taken by a spec or a table."""
        full = parse_full_name(name, "feature spec", "spec")

        def op(b: Batch) -> None:
            if b.txn.get(full.key(), db=b.dbs["feature_specs"]) is not None:
                raise already_exists(f"Feature spec '{full.display}' already exists.")
            if b.txn.get(full.key(), db=b.dbs["feature_tables"]) is not None:
                raise already_exists(f"'{full.display}' is a feature table; give the spec another name.")
            b.txn.put(full.key(), spec_json, db=b.dbs["feature_specs"])

        self._env.write(op)
        return full

    def feature_spec_json(self, name: object) -> bytes:
        full = parse_full_name(name, "feature spec", "spec")
        with self._env.read() as txn:
            raw = txn.get(full.key(), db=self._db["feature_specs"])
        if raw is None:
            raise not_found(f"Feature spec '{full.display}' does not exist.")
        return raw

    def delete_feature_spec(self, name: object) -> None:
        full = parse_full_name(name, "feature spec", "spec")

        def op(b: Batch) -> None:
            if not b.txn.delete(full.key(), db=b.dbs["feature_specs"]):
                raise not_found(f"Feature spec '{full.display}' does not exist.")

        self._env.write(op)

    # ================================================================ online rows
    def online_state(self, b: Batch, full: FullName) -> OnlineState:
        raw = b.txn.get(full.key(), db=b.dbs["feature_tables"])
        if raw is None:
            raise not_found(f"Feature table '{full.display}' does not exist.")
        return FEATURE_TABLE.decode(raw).online

    def put_online_state(self, b: Batch, full: FullName, state: OnlineState) -> None:
        rec = FEATURE_TABLE.decode(b.txn.get(full.key(), db=b.dbs["feature_tables"]))
        rec.online = state
        b.txn.put(full.key(), FEATURE_TABLE.encode(rec), db=b.dbs["feature_tables"])

    def clear_online(self, b: Batch, table_id: int) -> None:
        """Every online row of the table, in this one transaction (a full republish)."""
        db, prefix = b.dbs["online_features"], u64(table_id)
        with b.txn.cursor(db=db) as cur:
            if cur.set_range(prefix):
                while cur.key().startswith(prefix):
                    if not cur.delete():
                        break

    def write_online(self, b: Batch, rows: Iterable[tuple[bytes, int, bytes | None]]) -> int:
        """Inside a write: put each (key, event_us, encoded OnlineRow), or delete the
        key when the row is None; a row only replaces one whose event time is not later
        (a backfilled old row never overwrites a newer one). Rows come encoded
        (`encode_row`): a publish of a million keys must not build a million Structs.
        Returns the change in the table's row count."""
        db = b.dbs["online_features"]
        get, put = b.txn.get, b.txn.put
        delta = 0
        for key, event_us, row in rows:
            old = get(key, db=db)
            if row is None:
                if old is not None:
                    b.txn.delete(key, db=db)
                    delta -= 1
                continue
            if old is not None and ONLINE_ROW.decode(old).event_us > event_us:
                continue
            put(key, row, db=db)
            delta += old is None
        return delta

    def _plan(self, full: FullName, raw: bytes, features: tuple[str, ...] | None) -> _LookupPlan:
        """What a lookup needs from the table's record, decoded once per record version
        (the raw record bytes are the cache key: a publish changes them)."""
        cache_key = (full, features)
        plan = self._plans.get(cache_key)
        if plan is not None and plan.raw == raw:
            return plan
        rec = FEATURE_TABLE.decode(raw)
        columns = rec.online.columns
        if features is None:
            picks, names = list(range(len(columns))), list(columns)
        else:
            index = {c: i for i, c in enumerate(columns)}
            unknown = [f for f in features if f not in index]
            if unknown:
                raise invalid(f"Feature table '{full.display}' has no published feature {unknown[0]!r} "
                              f"(published: {', '.join(columns) or 'none; run publish_table'})")
            picks, names = [index[f] for f in features], list(features)
        coercers = [_coercer(t) for t in rec.online.key_types]
        plan = _LookupPlan(raw, full.display, rec.table_id, list(rec.primary_keys), list(zip(names, picks)),
                           rec.online.ttl_s * 1000.0, bool(rec.timestamp_keys),
                           coercers if any(coercers) else None)
        if len(self._plans) > 4096:
            self._plans.clear()
        self._plans[cache_key] = plan
        return plan

    def lookup(self, name: object, keys: Sequence[Sequence[Any]],
               features: Sequence[str] | None = None) -> list[dict[str, Any] | None]:
        """Each key's latest published features (all, or `features` in that order), or
        None for a miss (never published, or stale beyond the table's TTL). Keys are
        given as tuples in primary-key order (the timestamp key excluded). One read
        snapshot holds the table's record and every key's row."""
        full = _parse_cached(name) if isinstance(name, str) else parse_table_name(name)
        wanted = tuple(features) if features is not None else None
        out: list[dict[str, Any] | None] = []
        misses = stale = 0
        now = now_ms()
        with self._env.read() as txn:
            raw = txn.get(full.key(), db=self._db["feature_tables"])
            if raw is None:
                raise not_found(f"Feature table '{full.display}' does not exist.")
            plan = self._plan(full, raw, wanted)
            tid, width, pairs, coercers = plan.table_id, len(plan.primary_keys), plan.pairs, plan.coercers
            ttl_ms, event_based = plan.ttl_ms, plan.event_based
            db = self._db["online_features"]
            for key in keys:
                if len(key) != width:
                    raise invalid(f"A lookup key of feature table '{plan.display}' has {width} value(s) "
                                  f"({', '.join(plan.primary_keys)}); got {list(key)!r}")
                if coercers is not None:
                    key = [c(v) if c else v for c, v in zip(coercers, key)]
                row_raw = txn.get(key_bytes(tid, key), db=db)
                if row_raw is None:
                    misses += 1
                    out.append(None)
                    continue
                row = ONLINE_ROW.decode(row_raw)
                if ttl_ms and now - (row.event_us / 1000.0 if event_based else row.commit_ms) > ttl_ms:
                    stale += 1
                    out.append(None)
                    continue
                values = row.values
                out.append({n: values[i] for n, i in pairs})
        counts = self.lookup_counts.setdefault(plan.display, [0, 0, 0])
        counts[0] += len(keys)
        counts[1] += misses
        counts[2] += stale
        return out
