"""The feature store, side by side: Cairn's feature tables (Delta, DuckDB, LMDB) against
Feast (local provider, file offline store, SQLite online store) and pandas.merge_asof,
on the same generated data, in one run.

    .venv/bin/python bench/features.py [--quick] [--json PATH] [--only NAMES]

Feast runs in its own virtual environment (it pins pandas and pyarrow versions Cairn's
do not share): set FEAST_PYTHON to its python (default .feast-venv/bin/python; `make
bench-features-venv` builds it). Without it the Feast column shows the error.

  training   a point-in-time training set: N label rows (key, timestamp) against a
             time-series table of M rows (K keys, 10 float features): Cairn's
             create_training_set + load_arrow (reads Delta, DuckDB ASOF JOIN); Feast's
             get_historical_features().to_df(); pandas.merge_asof on frames already in
             memory (sorting included), in the second table
  publish    the latest row of P keys into the online store: publish_table against
             feast materialize
  lookupN    online lookup of 1 and 100 keys, 10 features, in-process: p50 and p99 of
             FeatureStore.lookup against get_online_features

Full sizes are scaled to this 2-core machine (the issue's 1M labels against 10M rows
would take Feast's file store well past the bench's budget): see SIZES. The checksums of
the three training sets (the sum of one feature) are printed and must agree.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(BENCH), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from report import (  # noqa: E402
    Measure,
    Workload,
    _ratio,
    _tmpdir,
    bench_args,
    conditions,
    finish,
    print_report,
    print_table,
    stderr_progress,
)

FEATURES = [f"f{i}" for i in range(10)]
# (label rows N, keys K, rows per key, publish keys P, lookup repetitions)
SIZES = {"full": (200_000, 200_000, 10, 1_000_000, 2_000), "quick": (20_000, 20_000, 10, 50_000, 300)}
WORKLOADS = (
    Workload("training", "s", False, 5.0),
    Workload("publish", "s", False, 1.0),
    Workload("lookup1_p50", "ms", False, 20.0),
    Workload("lookup1_p99", "ms", False, 20.0),
    Workload("lookup100_p50", "ms", False, 20.0),
    Workload("lookup100_p99", "ms", False, 20.0),
)
ASOF = Workload("training", "s", False, 1.0)
DAY_US = 86_400_000_000
T0_US = 1_704_067_200_000_000  # 2024-01-01


def generate(root: Path, n: int, keys: int, per_key: int, publish_keys: int) -> None:
    rng = np.random.default_rng(42)
    cid = np.repeat(np.arange(keys, dtype=np.int64), per_key)
    # distinct times per key: per_key steps of at least one second
    steps = rng.integers(1_000_000, 30 * DAY_US // per_key, size=cid.size)
    ts = T0_US + np.cumsum(steps.reshape(keys, per_key), axis=1).ravel()
    cols = {"cid": cid, "ts": pa.array(ts, pa.timestamp("us", tz="UTC"))}
    cols.update({f: rng.random(cid.size) for f in FEATURES})
    pq.write_table(pa.table(cols), root / "timeseries.parquet")
    lab_t = T0_US + rng.integers(0, 32 * DAY_US, size=n)
    pq.write_table(pa.table({"cid": rng.integers(0, keys, size=n), "t": pa.array(lab_t, pa.timestamp("us", tz="UTC")),
                             "y": rng.random(n)}), root / "labels.parquet")
    pub = {"cid": np.arange(publish_keys, dtype=np.int64),
           "ts": pa.array(np.full(publish_keys, T0_US), pa.timestamp("us", tz="UTC"))}
    pub.update({f: rng.random(publish_keys) for f in FEATURES})
    pq.write_table(pa.table(pub), root / "publish.parquet")
    (root / "meta.json").write_text(json.dumps({"features": FEATURES, "publish_keys": publish_keys}))


def _pcts(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times) * 1000, times[max(0, int(len(times) * 0.99) - 1)] * 1000


def cairn_side(root: Path, publish_keys: int, reps: int, progress) -> tuple[dict[str, Measure], float]:
    from cairn import engine
    from cairn.features import FeatureEngineeringClient, FeatureLookup

    eng = engine.open(root / "cairn")
    try:
        fe = FeatureEngineeringClient(eng.path)
        progress("cairn: creating the tables")
        for name, source in (("ts_feats", "timeseries.parquet"), ("pub_feats", "publish.parquet")):
            fe.create_table(name, primary_keys="cid", timestamp_keys="ts", df=pq.read_table(root / source))
        labels = pq.read_table(root / "labels.parquet")
        progress("cairn: training set")
        t0 = time.perf_counter()
        ts = fe.create_training_set(labels, [FeatureLookup("ts_feats", "cid", timestamp_lookup_key="t")], label="y")
        frame = ts.load_arrow()
        training = time.perf_counter() - t0
        checksum = float(np.nan_to_num(frame.column(FEATURES[0]).to_numpy(zero_copy_only=False)).sum())
        progress("cairn: publish")
        t0 = time.perf_counter()
        fe.publish_table("pub_feats")
        publish = time.perf_counter() - t0
        out = {"training": Measure(training, f"{labels.num_rows:,} labels"),
               "publish": Measure(publish, f"{publish_keys:,} keys")}
        progress("cairn: lookups")
        for batch in (1, 100):
            times = []
            for i in range(reps):
                keys = [((i * 7919 + j * 104729) % publish_keys,) for j in range(batch)]
                t0 = time.perf_counter()
                got = eng.features.lookup("pub_feats", keys)
                times.append(time.perf_counter() - t0)
                if got[0] is None:
                    raise AssertionError(f"key {keys[0]} was not published")
            p50, p99 = _pcts(times)
            out[f"lookup{batch}_p50"] = Measure(p50, f"{reps:,} x {batch}")
            out[f"lookup{batch}_p99"] = Measure(p99, f"{reps:,} x {batch}")
        return out, checksum
    finally:
        eng.close()


def asof_side(root: Path) -> tuple[Measure, float]:
    import pandas as pd

    feats = pq.read_table(root / "timeseries.parquet").to_pandas()
    labels = pq.read_table(root / "labels.parquet").to_pandas()
    t0 = time.perf_counter()
    left = labels.reset_index().sort_values("t")
    joined = pd.merge_asof(left, feats.sort_values("ts"), left_on="t", right_on="ts", by="cid", direction="backward")
    joined = joined.sort_values("index")
    seconds = time.perf_counter() - t0
    return Measure(seconds, f"{len(labels):,} labels"), float(joined[FEATURES[0]].fillna(0).sum())


def feast_side(root: Path, reps: int, progress) -> tuple[dict[str, Measure], float | None]:
    python = os.environ.get("FEAST_PYTHON") or str(REPO / ".feast-venv" / "bin" / "python")
    if not Path(python).exists():
        err = f"no Feast: set FEAST_PYTHON (looked for {python})"
        return {w.name: Measure(error=err) for w in WORKLOADS}, None
    progress("feast: training set, materialize, lookups")
    proc = subprocess.run([python, str(BENCH / "feast_side.py"), str(root), str(reps)], capture_output=True,
                          text=True, timeout=1800)
    if proc.returncode != 0:
        err = f"feast failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        return {w.name: Measure(error=err) for w in WORKLOADS}, None
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    size = f"feast {r['feast_version']}"
    out = {"training": Measure(r["training_s"], size), "publish": Measure(r["publish_s"], size)}
    for batch in (1, 100):
        out[f"lookup{batch}_p50"] = Measure(r[f"lookup{batch}_p50_ms"], size)
        out[f"lookup{batch}_p99"] = Measure(r[f"lookup{batch}_p99_ms"], size)
    return out, r["training_checksum"]


def main(argv: list[str] | None = None) -> int:
    args, selected = bench_args(__doc__, WORKLOADS, "a tenth of the data, fewer lookups", argv)
    n, keys, per_key, publish_keys, reps = SIZES["quick" if args.quick else "full"]
    progress, t_start = stderr_progress()
    before = conditions()
    with _tmpdir("features") as root:
        progress(f"generating {keys * per_key:,} feature rows, {n:,} labels, {publish_keys:,} publish keys")
        generate(root, n, keys, per_key, publish_keys)
        cairn, cairn_sum = cairn_side(root, publish_keys, reps, progress)
        progress("pandas.merge_asof")
        asof, asof_sum = asof_side(root)
        feast, feast_sum = feast_side(root, reps, progress)
    after = conditions()
    rows = [(w, cairn[w.name], feast[w.name], _ratio(w, cairn[w.name], feast[w.name])) for w in selected]
    print_report(f"feature store, {'quick' if args.quick else 'full'} run ({keys * per_key:,} feature rows of "
                 f"{keys:,} keys, 10 features; ratio > 1 = Cairn faster)", before, after, rows, baseline="feast")
    asof_rows = [(ASOF, cairn["training"], asof, _ratio(ASOF, cairn["training"], asof))]
    print("\nthe same training set against pandas.merge_asof (frames in memory, sorting included):")
    print_table(asof_rows, baseline="merge_asof")
    print(f"\nchecksums (sum of {FEATURES[0]} over the training set): cairn {cairn_sum:.6f}, merge_asof "
          f"{asof_sum:.6f}, feast {feast_sum if feast_sum is None else f'{feast_sum:.6f}'}")
    finish(rows + asof_rows, time.perf_counter() - t_start, args.json, "feast-local-file-sqlite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
