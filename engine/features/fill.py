"""Feature lookup at serving: a request for a model logged from a training set may carry
only the lookup keys (and any request-time columns); `FeatureFiller` fills every looked-up
feature from the online store before the model runs.

One online read per lookup for all of a request's rows (`FeatureStore.lookup`). A feature
the request already carries is kept (a request-time override, as Databricks allows). A
key with no fresh row takes the lookup's default values when it has one for every
feature; otherwise the request is refused with the key named, rather than scored on
made-up values. Only LMDB and msgspec: an edge install needs nothing more.
"""
from __future__ import annotations

from typing import Any

from cairn.engine.errors import invalid
from cairn.engine.features.lookups import SPEC_DECODE, FeatureSpec
from cairn.engine.features.store import FeatureStore


class FeatureFiller:
    def __init__(self, spec: FeatureSpec, store: FeatureStore):
        self.spec = spec
        self.store = store

    @classmethod
    def from_json(cls, raw: bytes, store: FeatureStore) -> "FeatureFiller":
        return cls(SPEC_DECODE.decode(raw), store)

    @property
    def key_columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for lookup in self.spec.lookups:
            seen.update(dict.fromkeys(lookup.lookup_key))
        return list(seen)

    def fill(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`records` (row objects) with each lookup's features added, in place."""
        for lookup in self.spec.lookups:
            outputs = lookup.outputs
            if all(out in r for r in records for out in outputs):
                continue  # every feature given by the caller: nothing to look up
            keys = []
            for i, row in enumerate(records):
                try:
                    keys.append(tuple(row[k] for k in lookup.lookup_key))
                except KeyError as exc:
                    raise invalid(f"Row {i} has no lookup key {exc.args[0]!r} (features come from "
                                  f"'{lookup.table_name}' by {', '.join(lookup.lookup_key)})") from None
            found = self.store.lookup(lookup.table_name, keys, [src for src, _ in lookup.features])
            defaults = lookup.default_values
            for i, (row, key, values) in enumerate(zip(records, keys, found)):
                if values is None:
                    missing = [out for out in outputs if out not in defaults and out not in row]
                    if missing:
                        shown = ", ".join(f"{k}={v!r}" for k, v in zip(lookup.lookup_key, key))
                        raise invalid(f"Row {i}: no features in '{lookup.table_name}' for {shown} (never "
                                      f"published, or stale), and no default for {missing[0]!r}")
                    for out in outputs:
                        row.setdefault(out, defaults.get(out))
                    continue
                for src, out in lookup.features:
                    if out not in row:
                        value = values[src]
                        row[out] = defaults.get(out) if value is None else value
        return records
