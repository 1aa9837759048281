"""Monitoring, side by side: a monitor refresh over a payload log of N logged requests
with 10 columns (five of them shifted), against an Evidently data-drift report on the
same reference and current data, in one run.

    .venv/bin/python bench/monitoring.py [--quick] [--rows N]
    EVIDENTLY_PYTHON=/path/to/venv  (a venv with `evidently` and pandas < 3; without it
    the Evidently column is skipped and says so)

Cairn's side: the training profile (100,000 rows) is the baseline of a registered model
version served by an endpoint; N one-row requests (1,000,000; 100,000 with --quick)
are written to the endpoint's payload log as scoring would, then one `refresh` with a
1-day window reads and decodes them, profiles the window and computes every drift
statistic; a second refresh with nothing new shows the incremental cost. Time and the
process's peak RSS are reported (VmHWM, in a child process; "of it, the work" is the
peak less the RSS after imports and open); Evidently's side gets the same rows as DataFrames
(it reads no payload log: its time is statistics only). The drift scores of the two
are compared column by column (normed Wasserstein, Evidently's method at this size).

Then serving under a refresh (skip with --no-serving): `cairn server` on the same data
serves the endpoint to 8 connections of single-row requests, once with the background
refresher on (the monitor created anew, so its first refresh reads the whole log) until
that refresh is written and 2 s more, then with it off for as long, in 0.5 s slices:
p50, p99 and the worst slice's p99 of each. The refresher takes at most 10% of a core
in slices of a few milliseconds (app/monitorloop.py), so it also hands the GIL back to
the event loop often: these figures show whether that holds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
COLUMNS = [f"f{i}" for i in range(10)]
SHIFTED = COLUMNS[:5]
DAY = 86_400_000
MAX_SERVING_S = 300.0  # each serving run's bound


def build(root: Path, rows: int, reference_rows: int):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    from cairn.engine.endpoints.contract import PayloadRecord
    from cairn.engine.monitoring.profiles import profile_columns
    from cairn.engine.sdk.client import Client

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(reference_rows, len(COLUMNS)))
    cur = rng.normal(size=(rows, len(COLUMNS)))
    cur[:, :len(SHIFTED)] += 0.5  # half a standard deviation
    pq.write_table(pa.table({c: ref[:, i] for i, c in enumerate(COLUMNS)}), root / "reference.parquet")
    pq.write_table(pa.table({c: cur[:, i] for i, c in enumerate(COLUMNS)}), root / "current.parquet")
    data = root / "data"
    onnx_path = root / "m.onnx"
    onnx_path.write_bytes(to_onnx(Ridge().fit(ref[:1000], ref[:1000].sum(1)), ref[:1].astype(np.float32),
                                  target_opset=17).SerializeToString())
    client = Client(data)
    client._ensure_registered_model("m")
    client.create_model_version("m", str(onnx_path))
    eng = client._engine
    eng.endpoints.create_endpoint("ep", {"served_entities": [{"entity_name": "m", "entity_version": "1"}]})
    eng.monitoring.set_baseline("m", "1", profile_columns({c: ref[:, i].tolist() for i, c in enumerate(COLUMNS)}))
    eng.monitoring.create_monitor("ep", ["1 day"], settle_s=0)
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY
    step = max(1, DAY // (rows + 1))
    batch = []
    for i in range(rows):
        body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [cur[i].tolist()]}})
        batch.append(PayloadRecord(request_id=f"r{i}", timestamp_ms=t0 + i * step, status_code=200, latency_ms=1.0,
                                   served_entity_name="m-1", model_name="m", model_version="1", request=body,
                                   response=json.dumps({"predictions": [float(cur[i].sum())]})))
        if len(batch) == 10_000:
            eng.endpoints.log_payloads("ep", batch)
            batch = []
    if batch:
        eng.endpoints.log_payloads("ep", batch)
    eng.env.flush()
    eng.close()
    return data, t0


def cairn_side(data: Path, t0: int) -> dict:
    """In a child process, so its peak RSS is the refresh's own."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        "from report import peak_rss_mib, status_mib\n"
        "from cairn import engine\n"
        "import numpy, scipy.stats, sklearn.metrics\n"  # what a refresh imports, before the start figure
        f"eng = engine.open({str(data)!r})\n"
        "start = peak_rss_mib()\n"
        "anon, mapped = status_mib('RssAnon'), status_mib('RssFile')\n"
        f"first = eng.monitoring.refresh('ep', now={t0 + 2 * DAY})\n"
        f"again = eng.monitoring.refresh('ep', now={t0 + 2 * DAY})\n"
        "w = eng.monitoring.windows('ep')[0]\n"
        "print(json.dumps({'seconds': first.seconds, 'again_s': again.seconds, 'read': first.payloads_read,"
        " 'rss_mib': peak_rss_mib(), 'start_rss_mib': start,"
        " 'anon_mib': status_mib('RssAnon') - anon, 'mapped_mib': status_mib('RssFile') - mapped,"
        " 'scores': {c.name: {'score': c.wasserstein, 'drifted': c.drifted} for c in w.drift.columns}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def evidently_side(root: Path) -> dict | None:
    py = os.environ.get("EVIDENTLY_PYTHON")
    if not py:
        return None
    exe = Path(py) / "bin" / "python" if Path(py).is_dir() else Path(py)
    out = subprocess.run([str(exe), str(BENCH / "evidently_side.py"), str(root)], capture_output=True, text=True)
    if out.returncode:
        print(f"evidently side failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _recreate_monitor(data: Path) -> None:
    """A new monitor has read nothing: the server's first refresh reads the whole log."""
    from cairn import engine

    eng = engine.open(data)
    try:
        eng.monitoring.delete_monitor("ep")
        eng.monitoring.create_monitor("ep", ["1 day"], settle_s=0)
    finally:
        eng.close()


def serving_side(data: Path) -> list[dict]:
    """The endpoint's latency with the refresher on (its first refresh a second after
    start; the run lasts until that refresh is written, then 2 s more, at most
    MAX_SERVING_S), then off for as long, in 0.5 s slices."""
    import httpx
    from loadgen import LoadResult, run_load
    from serverprocs import start_server

    body = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[0.1] * len(COLUMNS)]}}).encode()
    out: list[dict] = []
    for label, interval in (("refresher on", "1"), ("refresher off", "0")):
        _recreate_monitor(data)
        server = start_server("cairn", data, args=("--monitor-interval", interval))
        try:
            run_load(server.url, "/serving-endpoints/ep/invocations", body, concurrency=8, max_requests=500,
                     max_seconds=5)  # warm: the model session loads on the first request
            time.sleep(3)  # and the server's start is over (the refresher imports scipy as it starts)
            whole, slices, refreshed_at = LoadResult(), [], None
            t0 = time.monotonic()
            with httpx.Client(base_url=server.url, timeout=10) as http:
                while True:
                    elapsed = time.monotonic() - t0
                    if elapsed >= MAX_SERVING_S or (out and elapsed >= out[0]["seconds"]) or (
                            refreshed_at is not None and elapsed >= refreshed_at + 2):
                        break
                    r = run_load(server.url, "/serving-endpoints/ep/invocations", body, concurrency=8,
                                 max_requests=100_000, max_seconds=0.5, warmup=0)
                    slices.append(r)
                    whole.latencies_ms += r.latencies_ms
                    whole.requests += r.requests
                    whole.errors += r.errors
                    if refreshed_at is None and not out:
                        got = http.get("/api/2.0/monitors/get", params={"endpoint_name": "ep"}).json()
                        if got["monitor"]["last_refresh_ms"]:
                            refreshed_at = time.monotonic() - t0
            whole.seconds = time.monotonic() - t0
        finally:
            server.stop()
        out.append({"label": label, "rate": whole.rate, "p50": whole.p50, "p99": whole.p99, "errors": whole.errors,
                    "worst_slice_p99": max(s.p99 for s in slices if s.latencies_ms), "seconds": whole.seconds,
                    "refreshed_at": refreshed_at})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100,000 requests instead of 1,000,000")
    ap.add_argument("--rows", type=int, help="logged requests (overrides --quick)")
    ap.add_argument("--no-serving", action="store_true", help="skip serving latency under a refresh")
    args = ap.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-monitoring-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        data, t0 = build(root, rows, 100_000)
        print(f"built: {rows:,} logged requests x {len(COLUMNS)} columns in {time.perf_counter() - t:.1f} s "
              f"(machine: {os.cpu_count()} cpus)")
        cairn = cairn_side(data, t0)
        ev = evidently_side(root)
        serving = [] if args.no_serving else serving_side(data)
    print()
    print(f"{'side':<10} {'what':<46} {'seconds':>9} {'peak RSS MiB':>13} {'of it, the work':>16}")
    print(f"{'cairn':<10} {'refresh: read + decode log, profile, drift':<46} {cairn['seconds']:>9.2f} "
          f"{cairn['rss_mib']:>13.0f} {cairn['rss_mib'] - cairn['start_rss_mib']:>16.0f}")
    print(f"{'cairn':<10} {'refresh again, nothing new':<46} {cairn['again_s']:>9.3f}")
    print(f"{'':<10} after the refresh, of its growth: {cairn['anon_mib']:.0f} MiB heap, "
          f"{cairn['mapped_mib']:.0f} MiB LMDB pages mapped (clean, reclaimable)")
    if ev:
        print(f"{'evidently':<10} {'DataDriftPreset on DataFrames (no log)':<46} {ev['seconds']:>9.2f} "
              f"{ev['rss_mib']:>13.0f} {ev['rss_mib'] - ev['start_rss_mib']:>16.0f}")
        print(f"ratio (evidently / cairn seconds): {ev['seconds'] / cairn['seconds']:.2f}x")
    else:
        print("evidently: skipped (set EVIDENTLY_PYTHON to a venv with evidently and pandas<3)")
    print()
    print(f"{'column':<8} {'cairn wasserstein':>18} {'evidently':>10} {'diff':>8}  drifted (cairn / evidently)")
    worst = 0.0
    for c in COLUMNS:
        mine = cairn["scores"][c]
        theirs = ev["scores"].get(c) if ev else None
        diff = abs(mine["score"] - theirs["score"]) if theirs else float("nan")
        worst = max(worst, diff) if theirs else worst
        print(f"{c:<8} {mine['score']:>18.4f} {theirs['score'] if theirs else float('nan'):>10.4f} {diff:>8.4f}  "
              f"{mine['drifted']} / {theirs['score'] >= 0.1 if theirs else '-'}")
    if ev:
        print(f"largest difference in drift score: {worst:.4f}")
    if serving:
        print()
        print("serving under a refresh: 8 connections, single-row requests, one endpoint")
        print(f"{'run':<14} {'seconds':>8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'worst 0.5 s p99':>16} "
              f"{'errors':>7}  refresh written at")
        for r in serving:
            at = f"{r['refreshed_at']:.1f} s" if r["refreshed_at"] is not None else "-"
            print(f"{r['label']:<14} {r['seconds']:>8.1f} {r['rate']:>8.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
                  f"{r['worst_slice_p99']:>16.2f} {r['errors']:>7}  {at}")
        on, off = serving
        print(f"ratio (on / off): p50 {on['p50'] / off['p50']:.2f}x, p99 {on['p99'] / off['p99']:.2f}x, "
              f"req/s {on['rate'] / off['rate']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
