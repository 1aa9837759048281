"""Tracking workloads, side by side: Cairn in-process vs MLflow's own client on SQLite.

    .venv/bin/python bench/tracking.py [--quick] [--json PATH] [--only NAME,...]

Each workload runs through Cairn (the fluent SDK `cairn`, or the engine's TrackingStore)
and through MLflow (the fluent API or MlflowClient) on `sqlite:///<tmp>/mlflow.db`, in the
same process, each in a fresh temporary data directory, after one untimed warm-up.
Throughput is in items/s, latency in ms (median of repetitions). `ratio` > 1 means Cairn
is better: cairn/mlflow for throughput, mlflow/cairn for latency.

MLflow is slow, so its side runs smaller counts (stated in the `sizes` column, cairn /
mlflow) and is reported as a rate; for the search workloads the run count matters, so the
full run uses 5,000 runs on both sides and --quick populates MLflow with fewer (labelled).
The process exits 0 even when a target is missed; the last line says how many were met.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlflow_baseline import (
    MlflowSide,
    mlflow_history,
    mlflow_log_batch,
    mlflow_log_metric,
    mlflow_runs,
    mlflow_search_filter,
    mlflow_search_fixture,
    mlflow_search_order,
)
from report import (
    BASE_TS,
    BATCH,
    FILTER,
    ORDER_FILTER,
    ORDER_ONLY,
    SEARCH_MAX,
    Measure,
    Workload,
    _check,
    _expected_filter,
    _expected_order,
    _fmt_n,
    _guard,
    _guard_fixture,
    _median_ms,
    _rate,
    _ratio,
    _run_payload,
    _search_data,
    _tmpdir,
    conditions,
    finish,
    print_table,
)
from trackingsizes import Sizes

BASELINE_NAME = "mlflow-sqlite"
SETUP_THREADS = 32  # Cairn search setup only
# MLflow's figures from an earlier quiet run of the reference machine: printed for context
# next to this run's own baseline, which is what `ratio` and the targets use.
REFERENCE_MLFLOW = {
    "log_metric": 313.0,
    "log_batch": 14_000.0,
    "runs": 56.0,
    "search_filter": 57.0,
    "search_order": 1_070.0,
    "history": 203.0,
}


# -- configuration ---------------------------------------------------------------------
FULL = Sizes(
    log_metric=(10_000, 2_000),
    log_batch=(100_000, 50_000),
    runs=(1_000, 500),
    search_runs=(5_000, 5_000),
    search_reps=(50, 7),
    history=(10_000, 10_000),
    history_reps=(50, 7),
)
QUICK = Sizes(
    log_metric=(10_000, 100),
    log_batch=(100_000, 10_000),
    runs=(300, 30),
    # Populating MLflow with 5,000 runs takes over a minute alone, so both sides search
    # 1,000 runs here (like with like; the table says so). MLflow's query cost grows
    # with the run count and Cairn's barely, so these ratios understate the full run's.
    search_runs=(1_000, 1_000),
    search_reps=(20, 3),
    history=(10_000, 10_000),
    history_reps=(20, 3),
)


WORKLOADS = (
    Workload("log_metric", "values/s", True, 300.0),
    Workload("log_batch", "values/s", True, 70.0),
    Workload("runs", "runs/s", True, 30.0),
    Workload("search_filter", "ms", False, 10.0),
    Workload("search_order", "ms", False, 100.0),
    Workload("history", "ms", False, 40.0),
)


# -- small helpers ---------------------------------------------------------------------


# -- Cairn side ------------------------------------------------------------------------
def _cairn_sdk():
    import cairn

    return cairn


def _cairn_release(cairn, path: Path) -> None:
    """End the fluent session and close its data directory, so that nothing of it (open
    environment, writer thread, exit hook) outlives the workload."""
    from cairn import engine

    with contextlib.suppress(Exception):
        while cairn.active_run() is not None:
            cairn.end_run()
    with contextlib.suppress(Exception):
        cairn.flush()
    cairn.set_tracking_dir(None)  # drops the SDK's cached client; opens nothing
    # engine.open caches one Engine per directory: this is the SDK's, closed here.
    engine.open(path).close()


@contextlib.contextmanager
def _cairn_store(path: Path):
    from cairn import engine

    eng = engine.open(path)
    try:
        yield eng.tracking
    finally:
        eng.close()


def cairn_log_metric(sizes: Sizes) -> Measure:
    n = sizes.log_metric[0]
    cairn = _cairn_sdk()
    with _tmpdir("c-log_metric") as d:
        cairn.set_tracking_dir(str(d))
        try:
            cairn.set_experiment("bench")
            cairn.start_run()
            for i in range(100):  # warm-up
                cairn.log_metric("warmup", float(i), step=i)
            cairn.flush()
            gc.collect()
            t0 = time.perf_counter()
            for i in range(n):
                cairn.log_metric("loss", i * 0.001, step=i)
            cairn.flush()
            dt = time.perf_counter() - t0
            cairn.end_run()
        finally:
            _cairn_release(cairn, d)
    return Measure(_rate(n, dt), _fmt_n(n))


def cairn_log_batch(sizes: Sizes) -> Measure:
    from cairn.engine.tracking.entities import Metric

    n = sizes.log_batch[0]
    batches = [
        [
            Metric("m", (b * BATCH + j) * 0.001, BASE_TS + b * BATCH + j, b * BATCH + j)
            for j in range(BATCH)
        ]
        for b in range(n // BATCH)
    ]
    with _tmpdir("c-log_batch") as d, _cairn_store(d) as store:
        exp = store.create_experiment("bench")
        run_id = store.create_run(exp, run_name="bench").info.run_id
        store.log_batch(
            run_id,
            metrics=[Metric("warmup", float(j), BASE_TS, j) for j in range(BATCH)],
        )
        gc.collect()
        t0 = time.perf_counter()
        for batch in batches:
            store.log_batch(run_id, metrics=batch)
        dt = time.perf_counter() - t0
    return Measure(_rate(n, dt), f"{_fmt_n(n)} in {BATCH:,}s")


def cairn_runs(sizes: Sizes) -> Measure:
    n = sizes.runs[0]
    params, metrics = _run_payload()
    cairn = _cairn_sdk()
    with _tmpdir("c-runs") as d:
        cairn.set_tracking_dir(str(d))
        try:
            cairn.set_experiment("bench")
            for _ in range(3):  # warm-up
                cairn.start_run()
                cairn.log_params(params)
                cairn.log_metrics(metrics)
                cairn.end_run()
            cairn.flush()
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(n):
                cairn.start_run()
                cairn.log_params(params)
                cairn.log_metrics(metrics)
                cairn.end_run()
            cairn.flush()
            dt = time.perf_counter() - t0
        finally:
            _cairn_release(cairn, d)
    return Measure(_rate(n, dt), _fmt_n(n))


@contextlib.contextmanager
def cairn_search_fixture(sizes: Sizes):
    """An experiment of N runs with metrics acc/loss and params model/lr (not timed)."""
    from cairn.engine.tracking.entities import Metric, Param

    n = sizes.search_runs[0]
    rows = _search_data(n)
    with _tmpdir("c-search") as d, _cairn_store(d) as store:
        exp = store.create_experiment("bench")

        def populate(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                name, acc, loss, model, lr = rows[i]
                run_id = store.create_run(
                    exp, start_time=BASE_TS + i, run_name=name
                ).info.run_id
                store.log_batch(
                    run_id,
                    metrics=[
                        Metric("acc", acc, BASE_TS, 0),
                        Metric("loss", loss, BASE_TS, 0),
                    ],
                    params=[Param("model", model), Param("lr", lr)],
                )

        # Setup only: a few writer threads let group commit share the fsyncs.
        populate(0, min(1, n))
        step = max(1, -(-(n - 1) // SETUP_THREADS))
        chunks = [(lo, min(n, lo + step)) for lo in range(1, n, step)]
        with ThreadPoolExecutor(max_workers=SETUP_THREADS) as pool:
            for fut in [pool.submit(populate, lo, hi) for lo, hi in chunks]:
                fut.result()
        store.flush()
        yield store, exp, rows


def cairn_search_filter(sizes: Sizes, fixture) -> Measure:
    store, exp, rows = fixture
    m = Measure(size=f"{_fmt_n(len(rows))} runs")

    def query():
        return store.search_runs(
            [exp], FILTER, max_results=SEARCH_MAX, order_by=ORDER_FILTER
        )

    page = query()  # warm-up
    _check(
        m,
        [r.info.run_name for r in page.items],
        _expected_filter(rows),
        "search_filter",
    )
    gc.collect()
    m.value = _median_ms(query, sizes.search_reps[0])
    return m


def cairn_search_order(sizes: Sizes, fixture) -> Measure:
    store, exp, rows = fixture
    m = Measure(size=f"{_fmt_n(len(rows))} runs")

    def query():
        return store.search_runs(
            [exp], None, max_results=SEARCH_MAX, order_by=ORDER_ONLY
        )

    page = query()  # warm-up
    _check(
        m, [r.info.run_name for r in page.items], _expected_order(rows), "search_order"
    )
    gc.collect()
    m.value = _median_ms(query, sizes.search_reps[0])
    return m


def cairn_history(sizes: Sizes) -> Measure:
    from cairn.engine.tracking.entities import Metric

    n = sizes.history[0]
    m = Measure(size=f"{_fmt_n(n)} steps")
    with _tmpdir("c-history") as d, _cairn_store(d) as store:
        exp = store.create_experiment("bench")
        run_id = store.create_run(exp, run_name="bench").info.run_id
        for b in range(0, n, BATCH):
            store.log_batch(
                run_id,
                metrics=[
                    Metric("loss", 1.0 / (s + 1), BASE_TS + s, s)
                    for s in range(b, min(n, b + BATCH))
                ],
            )
        store.flush()

        def query():
            return store.get_metric_history(run_id, "loss")

        page = query()  # warm-up
        if len(page.items) != n or page.next_page_token is not None:
            m.notes.append(
                f"WRONG RESULT for history: {len(page.items)} points, expected {n} in one page"
            )
        gc.collect()
        m.value = _median_ms(query, sizes.history_reps[0])
    return m


# -- MLflow side -----------------------------------------------------------------------


# -- driver ----------------------------------------------------------------------------


def run(
    sizes: Sizes, only: set[str] | None
) -> list[tuple[Workload, Measure, Measure, float | None]]:
    selected = [w for w in WORKLOADS if only is None or w.name in only]
    names = {w.name for w in selected}
    cairn: dict[str, Measure] = {}
    base: dict[str, Measure] = {}

    t_start = time.perf_counter()

    def progress(msg: str) -> None:
        print(
            f"  .. {time.perf_counter() - t_start:5.1f}s {msg}",
            file=sys.stderr,
            flush=True,
        )

    # Cairn first: its SDK and engine must not share a process with a half-set-up MLflow.
    simple_cairn = {
        "log_metric": cairn_log_metric,
        "log_batch": cairn_log_batch,
        "runs": cairn_runs,
        "history": cairn_history,
    }
    for name in ("log_metric", "log_batch", "runs"):
        if name in names:
            progress(f"cairn {name}")
            cairn[name] = _guard(simple_cairn[name], sizes)
    if names & {"search_filter", "search_order"}:
        progress("cairn search (populating)")
        with _guard_fixture(lambda: cairn_search_fixture(sizes)) as (fx, err):
            for name, fn in (
                ("search_filter", cairn_search_filter),
                ("search_order", cairn_search_order),
            ):
                if name in names:
                    cairn[name] = (
                        Measure(error=f"setup: {err}")
                        if fx is None
                        else _guard(fn, sizes, fx)
                    )
    if "history" in names:
        progress("cairn history")
        cairn["history"] = _guard(cairn_history, sizes)

    progress("mlflow import and schema")
    try:
        side = MlflowSide()
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        err = traceback.format_exception_only(type(exc), exc)[-1].strip()
        side = None
        for name in names:
            base[name] = Measure(error=f"mlflow: {err}")
    if side is not None:
        try:
            simple_mlflow = {
                "log_metric": mlflow_log_metric,
                "log_batch": mlflow_log_batch,
                "runs": mlflow_runs,
            }
            for name in ("log_metric", "log_batch", "runs"):
                if name in names:
                    progress(f"mlflow {name}")
                    base[name] = _guard(simple_mlflow[name], side, sizes)
            if names & {"search_filter", "search_order"}:
                progress(
                    f"mlflow search (populating {_fmt_n(sizes.search_runs[1])} runs)"
                )
                with _guard_fixture(lambda: mlflow_search_fixture(side, sizes)) as (
                    fx,
                    err,
                ):
                    for name, fn in (
                        ("search_filter", mlflow_search_filter),
                        ("search_order", mlflow_search_order),
                    ):
                        if name in names:
                            base[name] = (
                                Measure(error=f"setup: {err}")
                                if fx is None
                                else _guard(fn, side, sizes, fx)
                            )
            if "history" in names:
                progress("mlflow history")
                base["history"] = _guard(mlflow_history, side, sizes)
        finally:
            side.close()
    progress("done")

    return [
        (w, cairn[w.name], base[w.name], _ratio(w, cairn[w.name], base[w.name]))
        for w in selected
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smaller MLflow sizes; about a minute in all",
    )
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated workloads (" + ", ".join(w.name for w in WORKLOADS) + ")",
    )
    args = ap.parse_args(argv)
    only = None
    if args.only:
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = only - {w.name for w in WORKLOADS}
        if unknown:
            ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    # Run from the repository root or anywhere: make `engine` and `cairn` importable.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)

    sizes = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    before = conditions()
    rows = run(sizes, only)
    after = conditions()
    elapsed = time.perf_counter() - t0

    print(
        f"\ntracking workloads, {'quick' if args.quick else 'full'} run "
        f"(baseline: MLflow client on SQLite; ratio > 1 = Cairn better)"
    )
    print(f"machine before: {before}")
    print(f"machine after:  {after}\n")
    print_table(rows)
    notes = []
    for w, c, b, _ in rows:
        for side, m in (("cairn", c), ("mlflow", b)):
            if m.error:
                notes.append(f"{w.name} [{side}] error: {m.error}")
            notes.extend(f"{w.name} [{side}] {n}" for n in m.notes)
    if any(b.size.endswith("*") for _, _, b, _ in rows):
        notes.append(
            "* MLflow searched a smaller experiment than Cairn (setup time): a conservative ratio"
        )
    searched = {w.name for w, *_ in rows} & {"search_filter", "search_order"}
    if searched and sizes.search_runs[1] < FULL.search_runs[1]:
        notes.append(
            f"searches ran on {_fmt_n(sizes.search_runs[1])} runs, not "
            f"{_fmt_n(FULL.search_runs[1])}: MLflow's cost grows with the run count, "
            "so these ratios understate the full run's"
        )
    ref = []
    for w, c, _, _ in rows:
        if w.name.startswith("search") and sizes.search_runs[0] != FULL.search_runs[0]:
            continue  # the reference figures are for 5,000 runs
        if c.value and w.name in REFERENCE_MLFLOW:
            r = _ratio(w, c, Measure(REFERENCE_MLFLOW[w.name]))
            ref.append(f"{w.name} {r:,.1f}x")
    if ref:
        notes.append("vs reference MLflow figures (quiet machine): " + ", ".join(ref))
    if notes:
        print()
        for n in notes:
            print(f"  {n}")
    finish(rows, elapsed, args.json, BASELINE_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
