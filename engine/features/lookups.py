"""What a training set asks of the feature tables: `FeatureLookup` (Databricks' shape)
and the `FeatureSpec` stored with a model, which pins each table's Delta version so the
same features can be looked up again at serving and in batch scoring.
"""
from __future__ import annotations

import datetime as dt_
from typing import Any

import msgspec

from cairn.engine.errors import invalid
from cairn.engine.features.store import check_columns, parse_table_name


class FeatureLookup(msgspec.Struct):
    """Features of one table joined onto a training frame by `lookup_key` (the frame's
    columns, in the table's primary-key order). For a time-series table,
    `timestamp_lookup_key` names the frame's timestamp column: each row gets the table's
    latest row at or before it (and no older than `lookback_window`). `default_values`
    fill a feature (by output name) where no row matched or its value is null."""

    table_name: str
    lookup_key: str | list[str]
    feature_names: str | list[str] | None = None
    rename_outputs: dict[str, str] | None = None
    timestamp_lookup_key: str | list[str] | None = None
    lookback_window: dt_.timedelta | None = None
    default_values: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        parse_table_name(self.table_name)
        self.lookup_key = check_columns(self.lookup_key, "lookup_key", required=True)
        if self.feature_names is not None:
            self.feature_names = check_columns(self.feature_names, "feature_names", required=True)
        tl = check_columns(self.timestamp_lookup_key, "timestamp_lookup_key", required=False)
        if len(tl) > 1:
            raise invalid(f"timestamp_lookup_key: one column, got {tl!r}")
        self.timestamp_lookup_key = tl[0] if tl else None
        if self.rename_outputs is not None and not (
                isinstance(self.rename_outputs, dict)
                and all(isinstance(k, str) and isinstance(v, str) and v for k, v in self.rename_outputs.items())):
            raise invalid(f"rename_outputs: a {{feature: new name}} mapping is required, got {self.rename_outputs!r}")
        if self.lookback_window is not None:
            if not isinstance(self.lookback_window, dt_.timedelta) or self.lookback_window < dt_.timedelta(0):
                raise invalid(f"lookback_window: a non-negative timedelta is required, got {self.lookback_window!r}")
            if self.timestamp_lookup_key is None:
                raise invalid("lookback_window needs a timestamp_lookup_key")
        if self.default_values is not None and not isinstance(self.default_values, dict):
            raise invalid(f"default_values: a {{feature: value}} mapping is required, got {self.default_values!r}")


class LookupSpec(msgspec.Struct, kw_only=True):
    """One resolved lookup: the table (full name and the Delta version read), the
    frame's key columns, and each feature as (name in the table, output name)."""

    table_name: str
    table_version: int
    primary_keys: list[str]
    timestamp_key: str | None
    lookup_key: list[str]
    timestamp_lookup_key: str | None
    features: list[tuple[str, str]]
    lookback_us: int | None = None
    default_values: dict[str, Any] = {}

    @property
    def outputs(self) -> list[str]:
        return [out for _, out in self.features]


class FeatureSpec(msgspec.Struct, kw_only=True):
    """Stored with a model logged from a training set: which features it needs and
    where they came from. `input_columns` are the columns a caller still gives (keys
    and request-time columns), in training order; `feature_columns` are looked up."""

    lookups: list[LookupSpec]
    label: str | list[str] | None
    exclude_columns: list[str] = []
    input_columns: list[str] = []
    feature_columns: list[str] = []


SPEC_JSON = msgspec.json.Encoder()
SPEC_DECODE = msgspec.json.Decoder(FeatureSpec)
