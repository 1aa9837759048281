"""The batcher's own cost, in process: raw ONNX Runtime against app.serving.Batcher on
the same session and the same single-row requests, at concurrency 1, 8 and 64.

    .venv/bin/python bench/serving_runtime.py [--quick] [--json PATH]

Model: RandomForestRegressor (100 trees, depth 10, 20 features, fixed seed), converted
with skl2onnx and loaded as a served version (app.serving.runtime.ServedModel: one
session, one intra-op thread, no spinning), on the CPU.

Sides:
  raw inline     session.run in the calling thread (the ceiling at concurrency 1; it
                 blocks the event loop, so no server can do this)
  raw thread     the event loop hands the batcher's run_fn (ServedModel.run: the same
                 session.run) to a thread pool (run_in_executor): serving without a batcher
  raw threads    N OS threads each calling session.run (the ceiling at concurrency N)
  batcher        N asyncio clients awaiting Batcher.submit (defaults: no wait window,
                 max_batch_rows 64, workers up to the cores)
  batcher sync   Batcher.submit_sync from one thread (concurrency 1 only)

Each prints req/s, p50 and p99 latency (ms, per request, as its caller saw it) and the
ratios against the raw side of the same concurrency (> 1: the batcher is better). Counts
are fixed (2,000 calls at concurrency 1; --quick: fewer) and each run is bounded in time.
The event loop is uvloop when installed, as under uvicorn.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cairn.app.serving.batcher import Batcher
from cairn.app.serving.runtime import ServedModel

N_FEATURES = 20
RUN_LIMIT_S = 60.0  # no single run may take longer


def build_model() -> tuple[bytes, np.ndarray]:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(12345)
    X = rng.normal(size=(5000, N_FEATURES)).astype(np.float32)
    y = X[:, 0] * 3 + np.sin(X[:, 1]) + X[:, 2] * X[:, 3] + rng.normal(scale=0.1, size=len(X))
    model = RandomForestRegressor(n_estimators=100, max_depth=10, random_state=0, n_jobs=-1).fit(X, y)
    return to_onnx(model, X[:1]).SerializeToString(), X[:1000]


def summary(side: str, conc: int, lat: list[float], wall: float, extra: str = "") -> dict:
    lat_ms = sorted(x * 1000 for x in lat)
    p99 = lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))]
    return {
        "side": side, "concurrency": conc, "requests": len(lat_ms), "req_s": len(lat_ms) / wall,
        "p50_ms": statistics.median(lat_ms), "p99_ms": p99, "notes": extra,
    }


# -- raw ONNX Runtime ----------------------------------------------------------------


def raw_inline(session, rows, n: int) -> dict:
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        session.run(None, rows[i % len(rows)])
        lat.append(time.perf_counter() - t)
    return summary("raw inline", 1, lat, time.perf_counter() - start)


def raw_thread(run_fn, rows, n: int) -> dict:
    async def main():
        loop = asyncio.get_running_loop()
        lat = []
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            start = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                await loop.run_in_executor(pool, run_fn, rows[i % len(rows)])
                lat.append(time.perf_counter() - t)
            return summary("raw thread", 1, lat, time.perf_counter() - start)

    return run_loop(main())


def raw_threads(session, rows, n: int, conc: int) -> dict:
    lats: list[list[float]] = [[] for _ in range(conc)]
    go = threading.Barrier(conc + 1)

    def client(k: int) -> None:
        go.wait()
        out = lats[k]
        for i in range(k, n, conc):
            t = time.perf_counter()
            session.run(None, rows[i % len(rows)])
            out.append(time.perf_counter() - t)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(conc)]
    for t in threads:
        t.start()
    go.wait()
    start = time.perf_counter()
    for t in threads:
        t.join(RUN_LIMIT_S)
    return summary("raw threads", conc, [x for xs in lats for x in xs], time.perf_counter() - start)


# -- batcher -------------------------------------------------------------------------


def batcher_async(served: ServedModel, rows, n: int, conc: int) -> dict:
    batcher = Batcher(served.run, batchable=served.batchable, name="bench")
    lats: list[float] = []

    async def client(k: int) -> None:
        for i in range(k, n, conc):
            t = time.perf_counter()
            await batcher.submit(rows[i % len(rows)], 1)
            lats.append(time.perf_counter() - t)

    async def main() -> float:
        for i in range(200):  # warm: workers started, caches hot
            await batcher.submit(rows[i % len(rows)], 1)
        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client(k) for k in range(conc))), RUN_LIMIT_S)
        return time.perf_counter() - start

    try:
        wall = run_loop(main())
        s = batcher.stats()
    finally:
        batcher.close()
    warm = 200
    mean_batch = (s["rows"] - warm) / max(1, s["batches"] - warm)
    return summary("batcher", conc, lats, wall, f"mean batch {mean_batch:.1f} rows, {s['workers']} workers")


def batcher_sync(served: ServedModel, rows, n: int) -> dict:
    batcher = Batcher(served.run, batchable=served.batchable, name="bench-sync")
    for i in range(200):
        batcher.submit_sync(rows[i % len(rows)], 1)
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        batcher.submit_sync(rows[i % len(rows)], 1)
        lat.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    batcher.close()
    return summary("batcher sync", 1, lat, wall)


def run_loop(coro):
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401

        return "uvloop"
    except ImportError:
        return "asyncio"


# -- main ----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls (about 15 s on 2 cores)")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    n1 = 500 if args.quick else 2000
    counts = {1: n1, 8: 2000 if args.quick else 8000, 64: 4000 if args.quick else 16000}

    t0 = time.perf_counter()
    onnx_bytes, X = build_model()
    served = ServedModel.load(onnx_bytes, name="rf")
    session = served.predictor.session
    rows = [{"X": X[i:i + 1]} for i in range(len(X))]
    for r in rows[:200]:
        session.run(None, r)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"serving runtime: RandomForestRegressor 100 trees depth 10, {N_FEATURES} features; "
        f"{served.provider}, 1 intra-op thread; {os.cpu_count()} cpus, load {load:.2f}; "
        f"event loop {loop_name()}; model built in {time.perf_counter() - t0:.1f} s"
    )

    results = [
        raw_inline(session, rows, n1),
        raw_thread(served.run, rows, n1),
        batcher_async(served, rows, n1, 1),
        batcher_sync(served, rows, n1),
    ]
    for conc in (8, 64):
        results.append(raw_threads(session, rows, counts[conc], conc))
        results.append(batcher_async(served, rows, counts[conc], conc))

    print(f"\n{'conc':>4}  {'side':<13} {'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  notes")
    for r in results:
        print(
            f"{r['concurrency']:>4}  {r['side']:<13} {r['requests']:>8,} {r['req_s']:>9,.0f} "
            f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}  {r['notes']}"
        )

    def find(side, conc):
        return next(r for r in results if r["side"] == side and r["concurrency"] == conc)

    print("\nratios (> 1: the batcher is better)")
    ratios = []
    pairs = [("batcher", "raw thread", 1), ("batcher", "raw inline", 1), ("batcher sync", "raw inline", 1),
             ("batcher", "raw threads", 8), ("batcher", "raw threads", 64)]
    for side, base, conc in pairs:
        a, b = find(side, conc), find(base, conc)
        entry = {
            "concurrency": conc, "side": side, "baseline": base,
            "req_s": a["req_s"] / b["req_s"], "p50": b["p50_ms"] / a["p50_ms"], "p99": b["p99_ms"] / a["p99_ms"],
        }
        ratios.append(entry)
        print(
            f"  c{conc:<3} {side} vs {base}: req/s {entry['req_s']:.2f}x, "
            f"p50 {entry['p50']:.2f}x, p99 {entry['p99']:.2f}x"
        )
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
