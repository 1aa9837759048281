"""Server workloads, side by side: the official MLflow client against `cairn server` and
against `mlflow server` (SQLite backend, one uvicorn worker), on this machine, in one run.

    .venv/bin/python bench/server.py [--quick] [--json PATH] [--only NAME,...]

Each side is one server process started for the run (`python -m cairn.cli --data DIR server
--port 0`; `python -m mlflow server --backend-store-uri sqlite:///DIR/mlflow.db --workers 1
--artifacts-destination DIR/artifacts` on a free 127.0.0.1 port), driven over loopback by
`MlflowClient` (and the fluent API for `runs`) from this process, one workload after the
other, each in its own experiment, after one untimed warm-up. Throughput is in items/s,
latency in ms (median of repetitions); `ready` is the seconds from process start until
/health answers 200 (median of several starts: the first on empty data, then restarts on
the data the run left), `rss` the server's resident memory after the run (the whole
process tree for MLflow: CLI parent plus uvicorn worker). `ratio` > 1 means Cairn is
better: cairn/mlflow for throughput, mlflow/cairn for latency, time and memory.

Workload names and data are those of bench/tracking.py (shared from it). MLflow's server is
slow, so its side runs smaller counts (the `sizes` column, cairn / mlflow) and is reported
as a rate; searches use the same run count on both sides (5,000; fewer in --quick,
labelled). MLflow 3's server also starts a job runner (huey consumers for GenAI jobs,
eight more processes) unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false; Cairn has no such
jobs, so it is off here (the conservative choice: on this machine it costs MLflow about
1.7 GiB more RSS and 15 s more start-up); `--mlflow-jobs` leaves MLflow's default on.

A second table times the same requests sent raw (one keep-alive connection, the client's
own JSON bodies built beforehand): the servers' own time per request, and the client's
share of each workload, which bounds the ratio any server can show through this client.
It is for reading the first table; the targets are on the first.
The process exits 0 even when a target is missed; the last line says how many were met.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import logging
import os
import statistics
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

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
from serverprocs import start_server

BASELINE_NAME = "mlflow-server-sqlite"
SIDES = ("cairn", "mlflow")
SETUP_THREADS = 8  # search population only (not timed), both sides alike
# MLflow server's figures on the reference machine (issue 3), printed for context next to
# this run's own baseline, which is what `ratio` and the targets use.
REFERENCE_MLFLOW = {
    "log_metric": 137.0,
    "log_batch": 9_500.0,
    "runs": 27.0,
    "search_filter": 86.0,
    "history": 400.0,
    "rss": 494.0,
}


# -- configuration ---------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """(cairn, mlflow) per workload, as in bench/tracking.py."""

    log_metric: tuple[int, int]  # calls
    log_batch: tuple[int, int]  # values (batches of BATCH)
    runs: tuple[int, int]  # runs
    search_runs: tuple[int, int]  # runs in the experiment
    search_reps: tuple[int, int]
    history: tuple[int, int]  # steps of one metric
    history_reps: tuple[int, int]
    starts: tuple[int, int]  # server starts for `ready` (median)
    raw_reps: tuple[int, int]  # server-time section: repetitions of the slow requests


FULL = Sizes(
    log_metric=(3_000, 500),
    log_batch=(100_000, 50_000),
    runs=(1_000, 200),
    search_runs=(5_000, 5_000),
    search_reps=(30, 7),
    history=(10_000, 10_000),
    history_reps=(20, 5),
    starts=(3, 3),
    raw_reps=(20, 5),
)
QUICK = Sizes(
    log_metric=(500, 150),
    log_batch=(50_000, 10_000),
    runs=(100, 20),
    # Populating MLflow's server with 5,000 runs takes minutes, so both sides search
    # 300 runs here (labelled). MLflow's query cost grows with the run count.
    search_runs=(300, 300),
    search_reps=(15, 5),
    history=(10_000, 10_000),
    history_reps=(7, 3),
    # An MLflow server start takes 10 s or more here: --quick times only the first.
    starts=(3, 1),
    raw_reps=(5, 2),
)

WORKLOADS = (
    Workload("log_metric", "values/s", True, 10.0),
    Workload("log_batch", "values/s", True, 20.0),
    Workload("runs", "runs/s", True, 10.0),
    Workload("search_filter", "ms", False, 10.0),
    Workload("search_order", "ms", False, 10.0),
    Workload("history", "ms", False, 20.0),
    Workload("ready", "s", False, 5.0),
    Workload("rss", "MiB", False, 3.0),
)


# -- processes -------------------------------------------------------------------------


# -- the client ------------------------------------------------------------------------
class Client:
    """The official MLflow client, pointed at one server."""

    def __init__(self, url: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mlflow
            from mlflow import MlflowClient
            from mlflow.entities import Metric, Param
        self.mlflow, self.Metric, self.Param = mlflow, Metric, Param
        self.url = url
        self.client = MlflowClient(tracking_uri=url)
        mlflow.set_tracking_uri(url)

    def experiment(self, name: str) -> str:
        return self.client.create_experiment(name)


def w_log_metric(c: Client, n: int) -> Measure:
    exp = c.experiment("bench-log_metric")
    run_id = c.client.create_run(exp, run_name="bench").info.run_id
    for i in range(20):  # warm-up
        c.client.log_metric(run_id, "warmup", float(i), step=i)
    gc.collect()
    t0 = time.perf_counter()
    for i in range(n):
        c.client.log_metric(run_id, "loss", i * 0.001, timestamp=BASE_TS + i, step=i)
    dt = time.perf_counter() - t0
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        c.client.set_terminated(run_id)  # prints the run's URL
    return Measure(_rate(n, dt), _fmt_n(n))


def w_log_batch(c: Client, n: int) -> Measure:
    Metric = c.Metric
    batches = [
        [
            Metric("m", (b * BATCH + j) * 0.001, BASE_TS + b * BATCH + j, b * BATCH + j)
            for j in range(BATCH)
        ]
        for b in range(n // BATCH)
    ]
    exp = c.experiment("bench-log_batch")
    run_id = c.client.create_run(exp, run_name="bench").info.run_id
    c.client.log_batch(
        run_id, metrics=[Metric("warmup", float(j), BASE_TS, j) for j in range(BATCH)]
    )
    gc.collect()
    t0 = time.perf_counter()
    for batch in batches:
        c.client.log_batch(run_id, metrics=batch)
    dt = time.perf_counter() - t0
    return Measure(_rate(n, dt), f"{_fmt_n(n)} in {BATCH:,}s")


def w_runs(c: Client, n: int) -> Measure:
    """The fluent API, as training scripts use it: start, params, metrics, end."""
    mlflow = c.mlflow
    params, metrics = _run_payload()
    exp = c.experiment("bench-runs")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for _ in range(3):  # warm-up
            mlflow.start_run(experiment_id=exp)
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            mlflow.end_run()
    gc.collect()
    # end_run prints the run's URL (after a get-run request): kept, but not on screen.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                mlflow.start_run(experiment_id=exp)
                mlflow.log_params(params)
                mlflow.log_metrics(metrics)
                mlflow.end_run()
            dt = time.perf_counter() - t0
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
    return Measure(_rate(n, dt), _fmt_n(n))


def search_fixture(c: Client, n: int):
    """An experiment of n runs (metrics acc/loss, params model/lr) logged through the
    client with log_batch, a few threads at a time (setup, not timed)."""
    rows = _search_data(n)
    Metric, Param = c.Metric, c.Param
    exp = c.experiment("bench-search")

    def populate(i: int) -> None:
        name, acc, loss, model, lr = rows[i]
        run_id = c.client.create_run(
            exp, start_time=BASE_TS + i, run_name=name
        ).info.run_id
        c.client.log_batch(
            run_id,
            metrics=[Metric("acc", acc, BASE_TS, 0), Metric("loss", loss, BASE_TS, 0)],
            params=[Param("model", model), Param("lr", lr)],
        )

    with ThreadPoolExecutor(max_workers=SETUP_THREADS) as pool:
        for fut in [pool.submit(populate, i) for i in range(n)]:
            fut.result()
    return exp, rows


def _search_label(rows, full_n: int) -> str:
    return f"{_fmt_n(len(rows))} runs" + ("" if len(rows) == full_n else "*")


def w_search(c: Client, fixture, reps: int, which: str, full_n: int) -> Measure:
    exp, rows = fixture
    m = Measure(size=_search_label(rows, full_n))
    if which == "search_filter":
        filt, order, want = FILTER, ORDER_FILTER, _expected_filter(rows)
    else:
        filt, order, want = "", ORDER_ONLY, _expected_order(rows)

    def query():
        return c.client.search_runs([exp], filt, max_results=SEARCH_MAX, order_by=order)

    got = query()  # warm-up
    _check(m, [r.info.run_name for r in got], want, which)
    gc.collect()
    m.value = _median_ms(query, reps)
    return m


def w_history(c: Client, n: int, reps: int) -> Measure:
    Metric = c.Metric
    m = Measure(size=f"{_fmt_n(n)} steps")
    exp = c.experiment("bench-history")
    run_id = c.client.create_run(exp, run_name="bench").info.run_id
    for b in range(0, n, BATCH):
        c.client.log_batch(
            run_id,
            metrics=[
                Metric("loss", 1.0 / (s + 1), BASE_TS + s, s)
                for s in range(b, min(n, b + BATCH))
            ],
        )

    def query():
        return c.client.get_metric_history(run_id, "loss")

    got = query()  # warm-up
    if len(got) != n or [p.step for p in got[:3]] != list(range(min(3, n))):
        m.notes.append(f"WRONG RESULT for history: {len(got)} points, expected {n}")
    gc.collect()
    m.value = _median_ms(query, reps)
    return m


# -- server time alone -----------------------------------------------------------------
RAW_WORKLOADS = ("log_metric", "log_batch", "search_filter", "search_order", "history")


class RawHTTP:
    """One keep-alive connection sending prepared requests: the server's time per
    request without the client's own work (building, validating, parsing)."""

    def __init__(self, url: str) -> None:
        host, port = urllib.parse.urlsplit(url).netloc.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: str | None = None) -> bytes:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=120
                )
            try:
                self.conn.request(method, path, body, headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError):
                # An idle keep-alive connection the server closed: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(
                    f"{method} {path}: HTTP {resp.status} {data[:200]!r}"
                )
            return data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def server_time(c: Client, reps: int, search_exp: str | None) -> dict[str, float]:
    """Median ms per request for the workloads' requests, sent raw: the JSON bodies are
    the client's own (MLflow's protos through message_to_json), built before timing."""
    from mlflow.protos.service_pb2 import (
        GetMetricHistory,
        LogBatch,
        LogMetric,
        SearchRuns,
    )
    from mlflow.utils.proto_json_utils import message_to_json

    api = "/api/2.0/mlflow"
    raw = RawHTTP(c.url)
    out: dict[str, float] = {}
    try:
        exp = c.experiment("bench-server-time")
        run_id = c.client.create_run(exp, run_name="raw").info.run_id

        def lm(i: int) -> str:
            return message_to_json(
                LogMetric(run_id=run_id, run_uuid=run_id, key="m", value=i * 0.5,
                          timestamp=BASE_TS + i, step=i)
            )  # fmt: skip

        bodies = [lm(i) for i in range(reps * 4 + 1)]
        raw.call("POST", f"{api}/runs/log-metric", bodies[-1])  # warm-up
        it = iter(bodies)
        out["log_metric"] = _median_ms(
            lambda: raw.call("POST", f"{api}/runs/log-metric", next(it)), reps * 4
        )
        # Ten batches of 1,000 make the 10,000-step history read next.
        batches = [
            message_to_json(
                LogBatch(
                    run_id=run_id,
                    metrics=[
                        c.Metric("loss", 1.0 / (s + 1), BASE_TS + s, s).to_proto()
                        for s in range(b * BATCH, (b + 1) * BATCH)
                    ],
                )
            )
            for b in range(10)
        ]
        it = iter(batches)
        out["log_batch"] = _median_ms(
            lambda: raw.call("POST", f"{api}/runs/log-batch", next(it)), len(batches)
        )
        q = json.loads(
            message_to_json(
                GetMetricHistory(run_id=run_id, run_uuid=run_id, metric_key="loss",
                                 max_results=25_000)
            )
        )  # fmt: skip
        path = f"{api}/metrics/get-history?" + urllib.parse.urlencode(q)
        got = json.loads(raw.call("GET", path))  # warm-up and check
        if len(got.get("metrics", [])) != 10 * BATCH:
            raise RuntimeError("history: wrong point count")
        out["history"] = _median_ms(lambda: raw.call("GET", path), reps)
        if search_exp is not None:
            for name, filt, order in (
                ("search_filter", FILTER, ORDER_FILTER),
                ("search_order", "", ORDER_ONLY),
            ):
                body = message_to_json(
                    SearchRuns(experiment_ids=[search_exp], filter=filt, run_view_type=1,
                               max_results=SEARCH_MAX, order_by=order)
                )  # fmt: skip
                raw.call("POST", f"{api}/runs/search", body)  # warm-up
                out[name] = _median_ms(
                    lambda b=body: raw.call("POST", f"{api}/runs/search", b), reps
                )
    finally:
        raw.close()
    return out


def _client_ms(name: str, m: Measure) -> float | None:
    """The client workload's time per request, in ms."""
    if m.value is None or m.value <= 0:
        return None
    if name == "log_metric":
        return 1000.0 / m.value
    if name == "log_batch":
        return 1000.0 * BATCH / m.value
    return m.value


def print_server_time(rows, raw: dict[str, dict[str, float]], out=sys.stdout) -> None:
    """The second table: server time alone, and what the client's own work costs."""
    header = ("request", "cairn ms", "mlflow ms", "ratio", "client ms", "client cap")
    by_name = {w.name: c for w, c, _, _ in rows}
    body = []
    for name in RAW_WORKLOADS:
        c_ms, m_ms = raw["cairn"].get(name), raw["mlflow"].get(name)
        if c_ms is None and m_ms is None:
            continue
        ratio = m_ms / c_ms if c_ms and m_ms else None
        # The client's own cost: Cairn's client-measured time minus its raw time; the
        # best ratio any server could reach through this client is then (own + MLflow
        # raw) / own.
        total = _client_ms(name, by_name[name]) if name in by_name else None
        own = total - c_ms if total is not None and c_ms is not None else None
        cap = (own + m_ms) / own if own and own > 0 and m_ms else None
        body.append(
            (
                name,
                "-" if c_ms is None else f"{c_ms:.2f}",
                "-" if m_ms is None else f"{m_ms:.2f}",
                "-" if ratio is None else f"{ratio:,.1f}x",
                "-" if own is None else f"{own:.2f}",
                "-" if cap is None else f"{cap:,.1f}x",
            )
        )
    if not body:
        return
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            str(x).ljust(widths[i]) if i == 0 else str(x).rjust(widths[i])
            for i, x in enumerate(cells)
        ).rstrip()

    print(line(header), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for cells in body:
        print(line(cells), file=out)


# -- driver ----------------------------------------------------------------------------
def run_side(
    side: str, sizes: Sizes, names: set[str], root: Path, mlflow_jobs: bool, progress
) -> tuple[dict[str, Measure], dict[str, float]]:
    """Start this side's server, run the workloads, time the same requests sent raw,
    read its RSS, stop it; then restart it on the same data for the remaining `ready`
    samples. Returns the measures and the raw server times (ms)."""
    k = SIDES.index(side)
    out: dict[str, Measure] = {}
    raw: dict[str, float] = {}
    data = root / f"{side}-data"
    progress(f"{side}: starting server")
    try:
        server = start_server(side, data, mlflow_jobs)
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        err = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {n: Measure(error=f"{side} server: {err}") for n in names}, raw
    readies = [server.ready_s]
    try:
        c = Client(server.url)
        simple = {
            "log_metric": (w_log_metric, c, sizes.log_metric[k]),
            "log_batch": (w_log_batch, c, sizes.log_batch[k]),
            "runs": (w_runs, c, sizes.runs[k]),
            "history": (w_history, c, sizes.history[k], sizes.history_reps[k]),
        }
        for name in ("log_metric", "log_batch", "runs"):
            if name in names:
                progress(f"{side}: {name}")
                out[name] = _guard(*simple[name])
        searches = [n for n in ("search_filter", "search_order") if n in names]
        fx = None
        if searches:
            progress(f"{side}: search (populating {_fmt_n(sizes.search_runs[k])} runs)")
            try:
                fx = search_fixture(c, sizes.search_runs[k])
            except Exception as exc:  # noqa: BLE001 (reported in the table)
                err = traceback.format_exception_only(type(exc), exc)[-1].strip()
                for n in searches:
                    out[n] = Measure(error=f"setup: {err}")
            else:
                for n in searches:
                    progress(f"{side}: {n}")
                    out[n] = _guard(
                        w_search, c, fx, sizes.search_reps[k], n, FULL.search_runs[k]
                    )
        if "history" in names:
            progress(f"{side}: history")
            out["history"] = _guard(*simple["history"])
        if names & set(RAW_WORKLOADS):
            progress(f"{side}: server time (raw HTTP)")
            try:
                raw = server_time(c, sizes.raw_reps[k], fx[0] if fx else None)
            except Exception as exc:  # noqa: BLE001 (a note, not a table row)
                err = traceback.format_exception_only(type(exc), exc)[-1].strip()
                progress(f"{side}: server time failed: {err}")
        if "rss" in names:
            mib, nproc = server.rss_mib()
            what = "1 process" if nproc == 1 else f"{nproc} processes"
            out["rss"] = Measure(mib, f"after run, {what}")
    finally:
        server.stop()
    if "ready" in names:
        for i in range(1, sizes.starts[k]):
            progress(f"{side}: restart {i} for ready")
            try:
                again = start_server(side, data, mlflow_jobs)
            except Exception as exc:  # noqa: BLE001 (reported in the table)
                err = traceback.format_exception_only(type(exc), exc)[-1].strip()
                out["ready"] = Measure(error=f"restart: {err}")
                break
            readies.append(again.ready_s)
            again.stop()
        else:
            n = len(readies)
            size = f"{n} start" if n == 1 else f"{n} starts, 1st empty"
            out["ready"] = Measure(statistics.median(readies), size)
            if n > 1:
                out["ready"].notes.append(
                    "starts (s): " + ", ".join(f"{r:.2f}" for r in readies)
                )
    return out, raw


def run(sizes: Sizes, only: set[str] | None, mlflow_jobs: bool):
    selected = [w for w in WORKLOADS if only is None or w.name in only]
    names = {w.name for w in selected}
    t_start = time.perf_counter()

    def progress(msg: str) -> None:
        print(
            f"  .. {time.perf_counter() - t_start:5.1f}s {msg}",
            file=sys.stderr,
            flush=True,
        )

    results: dict[str, dict[str, Measure]] = {}
    raw: dict[str, dict[str, float]] = {}
    with _tmpdir("server") as root:
        for side in SIDES:
            results[side], raw[side] = run_side(
                side, sizes, names, root, mlflow_jobs, progress
            )
    progress("done")
    c, b = results["cairn"], results["mlflow"]
    rows = [
        (w, c[w.name], b[w.name], _ratio(w, c[w.name], b[w.name])) for w in selected
    ]
    return rows, raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="smaller sizes; about 90 s in all"
    )
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated workloads (" + ", ".join(w.name for w in WORKLOADS) + ")",
    )
    ap.add_argument(
        "--mlflow-jobs",
        action="store_true",
        help="leave MLflow's server job runner on (its default; off here, see above)",
    )
    args = ap.parse_args(argv)
    only = None
    if args.only:
        only = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = only - {w.name for w in WORKLOADS}
        if unknown:
            ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")

    # The client in this process: no telemetry thread, and no silent retries with
    # back-off inside a timed loop (a failed request is reported, not waited out).
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    for name in ("mlflow", "urllib3", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)

    sizes = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    before = conditions()
    rows, raw = run(sizes, only, args.mlflow_jobs)
    after = conditions()
    elapsed = time.perf_counter() - t0

    jobs = "on" if args.mlflow_jobs else "off"
    print(
        f"\nserver workloads, {'quick' if args.quick else 'full'} run (baseline: mlflow "
        f"server, SQLite, 1 worker, job runner {jobs}; client: MlflowClient over "
        "loopback; ratio > 1 = Cairn better)"
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
    searched = {w.name for w, *_ in rows} & {"search_filter", "search_order"}
    if searched and sizes.search_runs[1] < FULL.search_runs[1]:
        notes.append(
            f"* searches ran on {_fmt_n(sizes.search_runs[1])} runs, not "
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
        notes.append(
            "vs MLflow server's reference figures (issue 3): " + ", ".join(ref)
        )
    if notes:
        print()
        for n in notes:
            print(f"  {n}")
    if raw["cairn"] or raw["mlflow"]:
        print(
            "\nserver time per request, the same requests sent raw (keep-alive, bodies "
            "prepared; no MLflow client): log_batch is 1,000 values, history 10,000 "
            "steps; client ms = Cairn's client-measured time minus its raw time (the "
            "client's own work); client cap = the best ratio any server could show "
            "through this client, (client ms + mlflow ms) / client ms\n"
        )
        print_server_time(rows, raw)
    finish(rows, elapsed, args.json, BASELINE_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
