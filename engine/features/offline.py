"""OfflineStore: feature tables as Delta Lake tables (delta-rs), Databricks'
FeatureEngineeringClient operations on them, and publishing to the online store.

Every write is one Delta commit (a MERGE on the primary keys, plus the timestamp key for
a time-series table), made only after the data passed every check (`frames`), so a bad
write leaves nothing behind and a crash mid-write leaves the previous version readable:
Delta's commit is the atomic creation of the next log entry. Tables are created with
the change data feed on, which is what lets `publish` read only the rows that changed.

Writes to one table are serialised in this process (a lock per table id); Delta's
optimistic commit protocol refuses a conflicting commit from another process.
"""
from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from cairn.engine.errors import invalid
from cairn.engine.features import frames
from cairn.engine.features.publish import commit_ms, publish
from cairn.engine.features.records import FeatureTableRecord
from cairn.engine.features.store import FeatureStore, FeatureTable, check_columns, parse_table_name
from cairn.engine.registry.names import FullName

# Delta table properties every feature table gets.
TABLE_CONFIG = {"delta.enableChangeDataFeed": "true"}


def _quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


class OfflineStore:
    def __init__(self, store: FeatureStore):
        self.store = store
        self._locks: dict[int, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, table_id: int) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(table_id, threading.Lock())

    def delta(self, rec: FeatureTableRecord, version: int | None = None) -> DeltaTable:
        path = self.store.root / rec.path
        try:
            return DeltaTable(str(path), version=version)
        except TableNotFoundError:
            raise invalid(f"The feature table's Delta log at {path} is missing") from None
        except DeltaError as exc:
            if version is not None:
                raise invalid(f"as_of_version={version}: the table has no such version ({exc})") from None
            raise

    @staticmethod
    def arrow_schema(dt: DeltaTable) -> pa.Schema:
        return pa.schema(dt.schema().to_arrow())

    # ================================================================ tables
    def create_table(self, name: object, primary_keys: object, timestamp_keys: object = None, *,
                     df: Any = None, schema: Any = None, description: object = None, tags: object = None,
                     creator: str = "") -> FeatureTable:
        full = parse_table_name(name)
        pks = check_columns(primary_keys, "primary_keys", required=True)
        tks = check_columns(timestamp_keys, "timestamp_keys", required=False)
        if len(tks) > 1:
            raise invalid(f"timestamp_keys: at most one timestamp key, got {tks!r}")
        if set(pks) & set(tks):
            raise invalid(f"timestamp_keys: {tks[0]!r} is also a primary key")
        if (df is None) == (schema is None):
            raise invalid("create_table: give exactly one of df (the first rows) or schema")
        data = frames.to_arrow(df) if df is not None else None
        arrow_schema = data.schema if data is not None else frames.schema_from(schema)
        frames.check_inferable(arrow_schema)
        for column in (*pks, *tks):
            if column not in arrow_schema.names:
                raise invalid(f"Key column {column!r} is not in the table's columns ({', '.join(arrow_schema.names)})")
        for column in tks:
            t = arrow_schema.field(column).type
            if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
                raise invalid(f"Timestamp key {column!r} must be a timestamp or date column, not {t}")
        if len(arrow_schema.names) == len(pks) + len(tks):
            raise invalid("A feature table needs at least one feature column besides its keys")
        if data is not None:
            frames.check_keys(data, pks + tks, full.display)
        rec = self.store.add_record(full, pks, tks, description, tags, creator)
        path = self.store.root / rec.path
        try:
            DeltaTable.create(str(path), schema=arrow_schema, mode="error", configuration=TABLE_CONFIG,
                              name=full.full, description=rec.description or None)
            if data is not None and data.num_rows:
                write_deltalake(str(path), data, mode="append")
        except BaseException:
            self.store.drop_table(full.full)  # the record and the half-made folder
            raise
        return self.get_table(full.full)

    def get_table(self, name: object) -> FeatureTable:
        full, rec = self.store.record(name)
        return self._entity(full, rec)

    def _entity(self, full: FullName, rec: FeatureTableRecord) -> FeatureTable:
        table = self.store.entity(full, rec)
        try:
            dt = self.delta(rec)
        except Exception:  # noqa: BLE001 - a table whose folder went missing still lists
            return table
        schema = self.arrow_schema(dt)
        keys = set(rec.primary_keys) | set(rec.timestamp_keys)
        table.schema = frames.describe(schema)
        table.features = [n for n in schema.names if n not in keys]
        table.delta_version = dt.version()
        return table

    def list_tables(self) -> list[FeatureTable]:
        return [self._entity(full, rec) for full, rec in self.store.list_records()]

    def drop_table(self, name: object) -> None:
        self.store.drop_table(name)

    def history(self, name: object, limit: int | None = None) -> list[dict[str, Any]]:
        """The Delta log, newest first: version, timestamp (ms), operation, metrics."""
        _, rec = self.store.record(name)
        return [
            {"version": h.get("version"), "timestamp": h.get("timestamp"), "operation": h.get("operation"),
             "metrics": h.get("operationMetrics", {})}
            for h in self.delta(rec).history(limit)
        ]

    # ================================================================ data
    def write_table(self, name: object, df: Any, mode: str = "merge") -> int:
        """Upsert `df` on the table's keys in one Delta commit; the new version (the
        current one when `df` has no rows)."""
        if mode != "merge":
            raise invalid(f"mode: only 'merge' is supported (an upsert on the keys), got {mode!r}")
        full, rec = self.store.record(name)
        keys = rec.primary_keys + rec.timestamp_keys
        with self._lock(rec.table_id):
            dt = self.delta(rec)
            data = frames.to_arrow(df)
            # keys first: pandas turns an integer key with a gap into floats, and "null
            # key" is the error to give, not "double is not int64"
            frames.check_keys(data, [k for k in keys if k in data.column_names], full.display)
            data = frames.conform(data, self.arrow_schema(dt), full.display)
            if not data.num_rows:
                return dt.version()
            predicate = " AND ".join(f"t.{_quoted(k)} = s.{_quoted(k)}" for k in keys)
            (dt.merge(data, predicate=predicate, source_alias="s", target_alias="t")
               .when_matched_update_all().when_not_matched_insert_all().execute())
            version = dt.version()
        self.store.update_record(full, lambda r: setattr(r, "updated_ms", commit_ms(dt)))
        return version

    def read_table(self, name: object, as_of_version: int | None = None,
                   columns: list[str] | None = None) -> pa.Table:
        """The table (at `as_of_version`, Delta time travel; only `columns` when given)
        as an Arrow table."""
        if as_of_version is not None and (isinstance(as_of_version, bool) or not isinstance(as_of_version, int)
                                          or as_of_version < 0):
            raise invalid(f"as_of_version: a non-negative integer is required, got {as_of_version!r}")
        _, rec = self.store.record(name)
        return frames.plain_views(self.delta(rec, as_of_version).to_pyarrow_table(columns=columns))

    def create_training_set(self, df: Any, feature_lookups, label: Any, exclude_columns: Any = None):
        from cairn.engine.features.trainingset import create_training_set

        return create_training_set(self, df, feature_lookups, label, exclude_columns)

    def publish_table(self, name: object, ttl: Any = None):
        """Copy the latest row per primary key into the online store (see publish)."""
        return publish(self, name, ttl)
