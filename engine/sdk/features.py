"""`FeatureEngineeringClient`, shaped like `databricks.feature_engineering`'s, so a
notebook's feature code ports by changing its import. Frames come back as pandas
(Databricks gives Spark DataFrames); `as_arrow=True` gives pyarrow tables instead.
"""
from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from cairn.engine.errors import invalid
from cairn.engine.features.store import FeatureStore

from cairn.engine.features.lookups import FeatureLookup
from cairn.engine.features.store import FeatureTable
from cairn.engine.sdk.context import current_user, open_engine

__all__ = ["FeatureEngineeringClient", "FeatureLookup", "FeatureTable", "offline_store"]

# One OfflineStore per FeatureStore (its per-table write locks must be shared).
_offline: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_offline_lock = threading.Lock()


def offline_store(store: FeatureStore):
    """The Delta side of `store` (create, write, read, publish, training sets); a clear
    error when the `features` extra (deltalake, pyarrow, duckdb) is not installed."""
    with _offline_lock:
        found = _offline.get(store)
        if found is None:
            try:
                from cairn.engine.features.offline import OfflineStore
            except ImportError as exc:
                raise invalid(f"Feature tables need the 'features' extra (pip install 'cairn[features]'): "
                              f"{exc}") from None
            found = _offline[store] = OfflineStore(store)
        return found


class FeatureEngineeringClient:
    def __init__(self, data_dir: str | os.PathLike | None = None):
        self._engine = open_engine(data_dir)
        self._store = self._engine.features

    @property
    def _offline(self):
        return offline_store(self._store)

    # -- tables -------------------------------------------------------------------------
    def create_table(self, name: str, primary_keys: str | Sequence[str], df: Any = None, *,
                     timestamp_keys: str | Sequence[str] | None = None, schema: Any = None,
                     description: str | None = None, tags: dict[str, str] | None = None) -> FeatureTable:
        return self._offline.create_table(name, primary_keys, timestamp_keys, df=df, schema=schema,
                                          description=description, tags=tags, creator=current_user())

    def write_table(self, name: str, df: Any, mode: str = "merge") -> int:
        """Upsert on the keys, one Delta commit; returns the table's new Delta version."""
        return self._offline.write_table(name, df, mode)

    def read_table(self, name: str, as_of_version: int | None = None, *, as_arrow: bool = False):
        table = self._offline.read_table(name, as_of_version)
        return table if as_arrow else table.to_pandas()

    def get_table(self, name: str) -> FeatureTable:
        return self._offline.get_table(name)

    def list_tables(self) -> list[FeatureTable]:
        return self._offline.list_tables()

    def drop_table(self, name: str) -> None:
        self._store.drop_table(name)

    def set_feature_table_tag(self, table_name: str, key: str, value: str) -> None:
        self._store.set_tag(table_name, key, value)

    def delete_feature_table_tag(self, table_name: str, key: str) -> None:
        self._store.delete_tag(table_name, key)

    # -- training and serving -----------------------------------------------------------
    def create_training_set(self, df: Any, feature_lookups: Sequence[FeatureLookup], label: str | None,
                            exclude_columns: Sequence[str] | None = None):
        return self._offline.create_training_set(df, list(feature_lookups), label, exclude_columns)

    def publish_table(self, name: str, ttl: Any = None):
        """The latest row per key into the online store (incremental; see publish.py)."""
        return self._offline.publish_table(name, ttl)

    def lookup_online(self, name: str, keys: Sequence[Sequence[Any]],
                      feature_names: Sequence[str] | None = None) -> list[dict[str, Any] | None]:
        """Each key's published features, None where missing or stale."""
        return self._store.lookup(name, keys, feature_names)
