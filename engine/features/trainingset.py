"""Training sets (Databricks' `create_training_set`): a caller's frame of keys,
timestamps and labels, with features looked up point-in-time from feature tables.

Every lookup is checked against its table before anything is read (unknown table or
feature, key count and types, an output name that collides), and each table's Delta
version is pinned when the set is created: `load_df()` reads exactly those versions, so
a training set is reproducible and its `feature_spec` says what a model trained on it
needs.
"""
from __future__ import annotations

import datetime as dt_
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from cairn.engine.errors import invalid
from cairn.engine.features import frames, pointintime
from cairn.engine.features.lookups import FeatureLookup, FeatureSpec, LookupSpec
from cairn.engine.features.store import check_columns


class TrainingSet:
    def __init__(self, offline, df: pa.Table, spec: FeatureSpec):
        self._offline = offline
        self._df = df
        self.feature_spec = spec

    def load_arrow(self) -> pa.Table:
        return join_features(self._offline, self._df, self.feature_spec, pinned=True)

    def load_df(self):
        """The training frame as pandas (Databricks returns a Spark DataFrame here)."""
        return self.load_arrow().to_pandas()


def join_features(offline, frame: pa.Table, spec: FeatureSpec, *, pinned: bool) -> pa.Table:
    """`frame` with the spec's features joined point-in-time, its excluded columns
    dropped: from the Delta versions the spec pinned (a training set), or from each
    table's current version (batch scoring of new rows)."""
    tables = [offline.read_table(s.table_name, s.table_version if pinned else None, columns=_columns(s))
              for s in spec.lookups]
    joined = pointintime.join(frame, spec.lookups, tables)
    drop = [c for c in spec.exclude_columns if c in joined.column_names]
    return joined.drop_columns(drop) if drop else joined


def _columns(spec: LookupSpec) -> list[str]:
    """What a lookup reads of its table: keys, timestamp and its features."""
    wanted = [*spec.primary_keys, *([spec.timestamp_key] if spec.timestamp_key else []),
              *(src for src, _ in spec.features)]
    return list(dict.fromkeys(wanted))


def resolve(offline, lookup: FeatureLookup, df_schema: pa.Schema) -> LookupSpec:
    """A lookup checked against its table and the caller's frame, its version pinned."""
    full, rec = offline.store.record(lookup.table_name)
    dt = offline.delta(rec)
    schema = offline.arrow_schema(dt)
    name = full.display
    keys = set(rec.primary_keys) | set(rec.timestamp_keys)
    available = [c for c in schema.names if c not in keys]
    wanted = lookup.feature_names if lookup.feature_names is not None else available
    for feature in wanted:
        if feature not in available:
            raise invalid(f"Feature table '{name}' has no feature {feature!r} (its features: {', '.join(available)})")
    if len(lookup.lookup_key) != len(rec.primary_keys):
        raise invalid(f"lookup_key {lookup.lookup_key!r} has {len(lookup.lookup_key)} column(s); feature table "
                      f"'{name}' has primary key(s) {rec.primary_keys!r}")
    pairs = list(zip(lookup.lookup_key, rec.primary_keys))
    ts_key = rec.timestamp_keys[0] if rec.timestamp_keys else None
    if lookup.timestamp_lookup_key is not None:
        if ts_key is None:
            raise invalid(f"timestamp_lookup_key {lookup.timestamp_lookup_key!r}: feature table '{name}' has no "
                          "timestamp key")
        pairs.append((lookup.timestamp_lookup_key, ts_key))
    for column, key in pairs:
        if column not in df_schema.names:
            raise invalid(f"Lookup key {column!r} (for feature table '{name}') is not a column of df")
        have, want = df_schema.field(column).type, schema.field(key).type
        if frames.kind(have) != frames.kind(want):
            raise invalid(f"Lookup key {column!r} is {have} in df; key {key!r} of feature table '{name}' is {want}")
    renames = lookup.rename_outputs or {}
    unknown = [r for r in renames if r not in wanted]
    if unknown:
        raise invalid(f"rename_outputs: {unknown[0]!r} is not a feature looked up from '{name}'")
    features = [(f, renames.get(f, f)) for f in wanted]
    defaults = dict(lookup.default_values or {})
    outputs = {out for _, out in features}
    for feature in defaults:
        if feature not in outputs:
            raise invalid(f"default_values: {feature!r} is not a feature looked up from '{name}' "
                          "(name it by its output name)")
    lookback = lookup.lookback_window
    return LookupSpec(
        table_name=full.full, table_version=dt.version(), primary_keys=list(rec.primary_keys), timestamp_key=ts_key,
        lookup_key=list(lookup.lookup_key), timestamp_lookup_key=lookup.timestamp_lookup_key, features=features,
        lookback_us=None if lookback is None else lookback // _MICROSECOND, default_values=defaults)


def create_training_set(offline, df: Any, feature_lookups: Sequence[FeatureLookup], label: Any,
                        exclude_columns: Any = None) -> TrainingSet:
    table = frames.to_arrow(df)
    if not isinstance(feature_lookups, (list, tuple)) or not all(isinstance(f, FeatureLookup) for f in feature_lookups):
        raise invalid("feature_lookups: a list of FeatureLookup is required")
    labels = check_columns(label, "label", required=False)
    excluded = check_columns(exclude_columns, "exclude_columns", required=False)
    for column in labels:
        if column not in table.column_names:
            raise invalid(f"label {column!r} is not a column of df")
    specs = [resolve(offline, lookup, table.schema) for lookup in feature_lookups]
    seen = {c: "df" for c in table.column_names}
    for spec in specs:
        for out in spec.outputs:
            if out in seen:
                raise invalid(f"Feature {out!r} from '{spec.table_name}' collides with a column of {seen[out]}; "
                              "rename it with rename_outputs")
            seen[out] = f"'{spec.table_name}'"
    for column in excluded:
        if column not in seen:
            raise invalid(f"exclude_columns: {column!r} is not a column of the training set")
    features = [out for spec in specs for out in spec.outputs if out not in excluded]
    inputs = [c for c in table.column_names if c not in labels and c not in excluded]
    spec = FeatureSpec(lookups=specs, label=labels[0] if len(labels) == 1 else (labels or None),
                       exclude_columns=excluded, input_columns=inputs, feature_columns=features)
    return TrainingSet(offline, table, spec)


_MICROSECOND = dt_.timedelta(microseconds=1)
