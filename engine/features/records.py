"""Storage records of the feature store, one sub-database per record kind.

  feature_tables   utf-8 full name (catalog.schema.table)   -> FeatureTableRecord
  online_features  u64 table id + msgpack(primary key values) -> OnlineRow
  feature_specs    utf-8 full name                            -> FeatureSpec (JSON, lookups.py)

The table id is a u64 from the meta counter `next_feature_table_id`, never reused: a
table dropped and created again under its name never sees the old table's online rows.
Key values are msgpack-encoded after normalising them to the table's key types
(`online.key_bytes`), so equal keys always give equal bytes.
"""
from __future__ import annotations

import msgspec

from cairn.engine.store.codec import Codec

# sub-database name -> dupsort; the engine merges this into its table list.
FEATURE_TABLES: dict[str, bool] = {
    "feature_tables": False,
    "online_features": False,
    "feature_specs": False,
}
NEXT_FEATURE_TABLE_ID = b"next_feature_table_id"


class OnlineState(msgspec.Struct, array_like=True):
    """What the online store holds of a table: published up to `version` (a Delta
    version, -1 never), with `columns` the feature columns each row's values follow."""

    version: int = -1
    published_ms: int = 0
    ttl_s: float = 0.0  # 0: never stale
    columns: list[str] = []
    rows: int = 0
    # the primary keys' Arrow types at publish: a lookup coerces its keys to them
    key_types: list[str] = []


class FeatureTableRecord(msgspec.Struct, array_like=True):
    table_id: int
    primary_keys: list[str]
    timestamp_keys: list[str]
    description: str
    tags: dict[str, str]
    creator: str
    created_ms: int
    updated_ms: int
    path: str  # the Delta table's folder, relative to the data directory
    online: OnlineState = msgspec.field(default_factory=OnlineState)


class OnlineRow(msgspec.Struct, array_like=True):
    """A key's latest feature values. `event_us` is the timestamp key's value (µs since
    the epoch; 0 for a table without one) and decides which row wins; `commit_ms` is when
    the Delta commit that wrote it was made; staleness reads the first for a time-series
    table, the second for the others."""

    event_us: int
    commit_ms: int
    values: list


FEATURE_TABLE = Codec(FeatureTableRecord)
ONLINE_ROW = Codec(OnlineRow)
