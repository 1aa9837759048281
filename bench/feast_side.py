"""Feast's side of bench/features.py, run by a Python that has `feast` installed (its
own virtual environment: Feast pins versions of pandas and pyarrow that Cairn's do not
share). Reads the same Parquet files Cairn's side reads, prints one JSON object.

    FEAST_PYTHON/bin/python bench/feast_side.py DATA_DIR LOOKUP_REPS

Feast 0.4x, local provider, file offline store, SQLite online store, one feature view
per table with a TTL long enough to never cut a row (Cairn's lookups have no lookback).
"""
from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.types import Float64


def main() -> int:
    data, reps = Path(sys.argv[1]), int(sys.argv[2])
    meta = json.loads((data / "meta.json").read_text())
    repo = data / "feast_repo"
    repo.mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text(yaml.safe_dump({
        "project": "bench", "provider": "local", "registry": str(repo / "registry.db"),
        "online_store": {"type": "sqlite", "path": str(repo / "online.db")},
        "offline_store": {"type": "file"}, "entity_key_serialization_version": 3,
    }))
    store = FeatureStore(repo_path=str(repo))
    cust = Entity(name="cid", join_keys=["cid"])
    features = [Field(name=f, dtype=Float64) for f in meta["features"]]
    ts_view = FeatureView(name="ts_feats", entities=[cust], ttl=dt.timedelta(days=36500), schema=features,
                          source=FileSource(path=str(data / "timeseries.parquet"), timestamp_field="ts"))
    pub_view = FeatureView(name="pub_feats", entities=[cust], ttl=dt.timedelta(days=36500), schema=features,
                           source=FileSource(path=str(data / "publish.parquet"), timestamp_field="ts"))
    store.apply([cust, ts_view, pub_view])
    out: dict = {"feast_version": __import__("feast").__version__}

    labels = pd.read_parquet(data / "labels.parquet").rename(columns={"t": "event_timestamp"})
    t0 = time.perf_counter()
    refs = [f"ts_feats:{f}" for f in meta["features"]]
    frame = store.get_historical_features(entity_df=labels, features=refs).to_df()
    out["training_s"] = time.perf_counter() - t0
    out["training_rows"] = len(frame)
    out["training_checksum"] = float(frame[meta["features"][0]].fillna(0).sum())

    t0 = time.perf_counter()
    store.materialize(dt.datetime(1999, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc),
                      feature_views=["pub_feats"])
    out["publish_s"] = time.perf_counter() - t0

    refs = [f"pub_feats:{f}" for f in meta["features"]]
    keys = meta["publish_keys"]
    for batch in (1, 100):
        times = []
        for i in range(reps):
            rows = [{"cid": (i * 7919 + j * 104729) % keys} for j in range(batch)]
            t0 = time.perf_counter()
            store.get_online_features(features=refs, entity_rows=rows).to_dict()
            times.append(time.perf_counter() - t0)
        times.sort()
        out[f"lookup{batch}_p50_ms"] = statistics.median(times) * 1000
        out[f"lookup{batch}_p99_ms"] = times[int(len(times) * 0.99) - 1] * 1000
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
