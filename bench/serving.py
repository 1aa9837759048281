"""Model serving, side by side: `cairn models serve` against `mlflow models serve
--env-manager local`, serving the same model, driven by the same bounded load generator
over loopback, plus raw in-process ONNX Runtime as the ceiling.

    .venv/bin/python bench/serving.py [--quick] [--json PATH] [--only NAME,...]

The model: RandomForestClassifier (100 trees, depth 10, 20 features, fixed seed), saved
once with `mlflow.sklearn.save_model` (cloudpickle); both servers load that directory
(Cairn converts it to ONNX and verifies it on load). Workloads:

  c1, c8, c64   single-row `dataframe_split` requests at concurrency 1, 8, 64: req/s
                (ratio against MLflow; the table also prints p50 and p99)
  rows64        64-row requests at concurrency 8: rows/s, against raw in-process ONNX
                Runtime on the same rows (one caller, the same session settings as
                serving: one intra-op thread) -- the ceiling
  ep1, ep8      the same single-row requests through a named endpoint of `cairn server`
                (POST /serving-endpoints/NAME/invocations: router, batcher, Prometheus
                metrics and payload-log offer on every request) at concurrency 1 and 8,
                against MLflow's c1 and c8; the overhead of an endpoint over `cairn models
                serve` is the ep rows beside c1 and c8. The run also prints the metrics'
                own cost in process: microseconds per observed request and per scrape.
  ep1auth       ep1 against `cairn server --auth`, a plain user's Bearer token (granted
                CAN_QUERY) on every request; the run also prints governance's own cost
                per request: the cached token check, then with the grant check
  ready         process start to 200 from /ping (median of starts)
  rss           the server's resident memory after the run (its process tree)

Targets (issue 5): c64 >= 100x MLflow's req/s with p99 <= 10 ms; c1 p50 <= 0.5 ms;
rows64 >= 50% of raw ONNX Runtime; ready <= 1 s; RSS >= 3x smaller. Every load loop is
bounded in count and time. The exit code is 0 even when a target is missed.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from loadgen import run_load
from report import (
    Measure,
    Workload,
    _guard,
    _ratio,
    _tmpdir,
    bench_args,
    conditions,
    finish,
    print_table,
)
from serverprocs import REPO, _free_port, _server_env, launch

from cairn.engine.governance.privileges import securable

BASELINE_NAME = "mlflow-models-serve"
SIDES = ("cairn", "mlflow")
WORKLOADS = (
    Workload("c1", "req/s", True, 1.0),
    Workload("c8", "req/s", True, 1.0),
    Workload("c64", "req/s", True, 100.0),
    Workload("ep1", "req/s", True, 1.0),
    Workload("ep8", "req/s", True, 1.0),
    Workload("ep1auth", "req/s", True, 1.0),
    Workload("rows64", "rows/s", True, 0.5),
    Workload("ready", "s", False, 4.2),
    Workload("rss", "MiB", False, 3.0),
)
N_FEATURES = 20


@dataclass(frozen=True)
class Sizes:
    requests: dict[str, tuple[int, int]]  # workload -> (cairn, mlflow) request budget
    seconds: float  # per workload and side
    starts: int


FULL = Sizes({"c1": (3000, 300), "c8": (20000, 600), "c64": (40000, 1200), "rows64": (4000, 300),
              "ep1": (3000, 0), "ep8": (20000, 0), "ep1auth": (3000, 0)}, 20.0, 3)
QUICK = Sizes({"c1": (800, 100), "c8": (4000, 200), "c64": (8000, 400), "rows64": (800, 100),
               "ep1": (800, 0), "ep8": (4000, 0), "ep1auth": (800, 0)}, 6.0, 2)
CONCURRENCY = {"c1": 1, "c8": 8, "c64": 64, "rows64": 8, "ep1": 1, "ep8": 8, "ep1auth": 1}
# Endpoint workloads are compared with MLflow's plain scoring of the same concurrency.
MLFLOW_TWIN = {"ep1": "c1", "ep8": "c8", "ep1auth": "c1"}
ENDPOINT = "bench"
# The latency half of a target (issue 5): workload -> (percentile, bound in ms).
LATENCY_BOUNDS = {"c1": ("p50", 0.5), "c64": ("p99", 10.0)}


def make_model(folder: Path):
    """Train the model and save it as an MLflow model directory; return (model, X)."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(20261127)
    X = rng.normal(size=(2000, N_FEATURES)).astype(np.float32)
    y = ((X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3]) > 0).astype(np.int64)
    model = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1).fit(X, y)
    mlflow.sklearn.save_model(
        model, folder, serialization_format="cloudpickle", input_example=X[:5],
        pip_requirements=["scikit-learn"],  # inference would run the model in a subprocess
    )  # fmt: skip
    return model, X


def body_for(X, rows: int) -> bytes:
    # The model was saved with a numpy input example (a tensor signature), so both
    # servers take positional rows in MLflow's `inputs` format.
    return json.dumps({"inputs": X[:rows].tolist()}).encode()


def start(side: str, model_dir: Path, root: Path):
    log = root / f"{side}.{time.monotonic_ns()}.log"
    env = _server_env(side, mlflow_jobs=False)
    env["OMP_NUM_THREADS"] = "1"  # both sides: no BLAS/OpenMP thread pools fighting the server
    # mlflow models serve execs `uvicorn` through the shell: the venv's bin must be on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if side == "cairn":
        data = root / "cairn-data"
        cmd = [sys.executable, "-m", "cairn.cli", "--data", str(data), "models", "serve", "-m", str(model_dir), "--port", "0"]
        return launch(side, cmd, None, log, env, 120.0, "/ping")
    port = _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    return launch(side, cmd, f"http://127.0.0.1:{port}", log, env, 180.0, "/ping")


def raw_onnx_rows_per_s(model_dir: Path, X, seconds: float) -> Measure:
    """The ceiling: the converted model in an in-process session, 64-row batches, one
    caller, the serving session settings."""
    import numpy as np

    from cairn.engine.models.modeldir import LocalModelDir
    from cairn.engine.models.package import prepare_version
    from cairn.engine.models.predictor import OnnxPredictor

    prepared = prepare_version(LocalModelDir(model_dir))
    pred = OnnxPredictor(prepared.onnx, signature=prepared.signature)
    feeds = pred.feeds(np.asarray(X[:64]))
    for _ in range(20):
        pred.run(feeds)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min(seconds, 5.0) and n < 20000:
        pred.run(feeds)
        n += 1
    dt = time.perf_counter() - t0
    return Measure(n * 64 / dt, f"{n:,} x 64 rows")


def start_endpoint_server(model_dir: Path, root: Path, auth: bool = False):
    """`cairn server` on a data directory where the model is registered and served by
    the endpoint ENDPOINT (one entity, version 1, payload logging off as by default).
    With `auth`, the server runs with --auth and the returned token is what to send."""
    import cairn
    from cairn import engine

    data = root / ("cairn-endpoint-auth-data" if auth else "cairn-endpoint-data")
    cairn.set_tracking_dir(data)
    try:
        mv = cairn.register_model(str(model_dir), ENDPOINT)
    finally:
        cairn.set_tracking_dir(None)
    eng = engine.open(data)
    token = None
    try:
        eng.endpoints.create_endpoint(
            ENDPOINT, {"served_entities": [{"entity_name": ENDPOINT, "entity_version": mv.version}]})
        if auth:  # a plain user granted CAN_QUERY: the grant check runs (an admin's is skipped)
            gov = eng.governance
            gov.principals.create("user", "bench-admin", admin=True)
            gov.principals.create("user", "bench")
            gov.grants.update(securable("serving_endpoint", ENDPOINT), [("bench", ["CAN_QUERY"], [])], "bench")
            token, _ = gov.credentials.create_token("bench")
    finally:
        eng.close()
    log = root / f"cairn-server.{time.monotonic_ns()}.log"
    env = _server_env("cairn", mlflow_jobs=False)
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "cairn.cli", "--data", str(data), "server", "--port", "0"]
    if auth:
        cmd.append("--auth")
    return launch("cairn", cmd, None, log, env, 120.0, "/health"), token


def metrics_cost(n: int = 200_000) -> str:
    """The Prometheus metrics' own cost, in process: one observed request (the three
    series a request touches) and one scrape of 20 endpoints' series."""
    from cairn.app.serving.metrics import ServingMetrics

    m = ServingMetrics()
    for i in range(20):
        m.observe_request(f"ep{i}", "a", 1, 200, 0.0004)
    t0 = time.perf_counter()
    for _ in range(n):
        m.observe_request("ep0", "a", 1, 200, 0.0004)
    per_request_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(200):
        m.render()
    scrape_ms = (time.perf_counter() - t0) / 200 * 1e3
    return f"metrics: {per_request_us:.2f} us per observed request, {scrape_ms:.2f} ms per scrape (20 endpoints)"


def auth_cost(n: int = 50_000) -> str:
    """Governance's own cost per scoring call, in process: the cached Bearer check every
    request of a server with --auth pays, and then the endpoint's CAN_QUERY check and
    rate-limit lookup (cached grants) for a plain user."""
    import tempfile

    from cairn import engine
    from cairn.engine.governance.access import Access
    from cairn.engine.governance.principals import read_generation

    with tempfile.TemporaryDirectory() as tmp, engine.open(Path(tmp) / "data") as eng:
        gov = eng.governance
        gov.principals.create("user", "bench")
        gov.grants.update(securable("serving_endpoint", ENDPOINT), [("bench", ["CAN_QUERY"], [])], "bench")
        token, _ = gov.credentials.create_token("bench")
        header = f"Bearer {token}"
        lenv = eng.env

        def request() -> None:  # what app/auth.py and the scoring route do per call
            generation = read_generation(lenv)
            Access(eng, gov.credentials.authenticate(header, generation), generation).query(ENDPOINT)

        request()
        t0 = time.perf_counter()
        for _ in range(n):
            gov.credentials.authenticate(header)
        authn = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for _ in range(n):
            request()
        both = (time.perf_counter() - t0) / n * 1e6
        return (f"auth: {authn:.2f} us per request (cached token check); {both:.2f} us with the CAN_QUERY "
                f"grant check and rate-limit lookup (budget 20 us)")


def _load(url: str, body: bytes, conc: int, budget: int, seconds: float, rows: int,
          path: str = "/invocations", headers: dict[str, str] | None = None) -> Measure:
    res = run_load(url, path, body, concurrency=conc, max_requests=budget, max_seconds=seconds, headers=headers)
    if res.errors:
        return Measure(error=f"{res.errors} errors ({res.statuses}) {res.first_error}")
    m = Measure(res.rate * rows, f"{res.requests:,} req, c{conc}", percentiles_ms={"p50": res.p50, "p99": res.p99})
    m.notes.append(f"p50 {res.p50:.2f} ms, p99 {res.p99:.2f} ms")
    return m


def _check_latency(name: str, m: Measure) -> Measure:
    """Mark a Cairn measure that misses the latency half of its target."""
    bound = LATENCY_BOUNDS.get(name)
    if bound is None or m.value is None:
        return m
    which, limit = bound
    got = m.percentiles_ms[which]
    if got > limit:
        m.notes.append(f"MISS: {which} {got:.2f} ms > {limit:g} ms")
    return m


def run_side(side: str, sizes: Sizes, names: set[str], model_dir: Path, X, root: Path, progress) -> dict[str, Measure]:
    k = SIDES.index(side)
    out: dict[str, Measure] = {}
    readies: list[float] = []
    progress(f"{side}: starting server")
    try:
        server = start(side, model_dir, root)
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        err = traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[-1]
        return {n: Measure(error=f"{side} server: {err[:300]}") for n in names}
    readies.append(server.ready_s)
    try:
        one, many = body_for(X, 1), body_for(X, 64)
        for name in ("c1", "c8", "c64", "rows64"):
            if name in names:
                progress(f"{side}: {name}")
                rows = 64 if name == "rows64" else 1
                out[name] = _guard(
                    _load, server.url, many if rows == 64 else one, CONCURRENCY[name],
                    sizes.requests[name][k], sizes.seconds, rows,
                )  # fmt: skip
        if "rss" in names:
            mib, nproc = server.rss_mib()
            out["rss"] = Measure(mib, f"after run, {nproc} process{'es' if nproc > 1 else ''}")
    finally:
        server.stop()
    for auth, endpoint_names in ((False, [n for n in ("ep1", "ep8") if n in names]),
                                 (True, [n for n in ("ep1auth",) if n in names])):
        if side != "cairn" or not endpoint_names:
            continue
        progress("cairn: server with an endpoint" + (" and --auth" if auth else ""))
        try:
            ep_server, token = start_endpoint_server(model_dir, root, auth)
        except Exception as exc:  # noqa: BLE001 (reported in the table)
            err = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out.update({n: Measure(error=f"endpoint server: {err[:300]}") for n in endpoint_names})
            continue
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            path = f"/serving-endpoints/{ENDPOINT}/invocations"
            _load(ep_server.url, one, 1, 20, 30.0, 1, path, headers)  # loads the model
            for name in endpoint_names:
                progress(f"cairn: {name}")
                out[name] = _guard(_load, ep_server.url, one, CONCURRENCY[name], sizes.requests[name][k],
                                   sizes.seconds, 1, path, headers)
        finally:
            ep_server.stop()
    if "ready" in names:
        for i in range(1, sizes.starts):
            progress(f"{side}: restart {i} for ready")
            try:
                again = start(side, model_dir, root)
            except Exception as exc:  # noqa: BLE001
                out["ready"] = Measure(error=f"restart: {exc}")
                break
            readies.append(again.ready_s)
            again.stop()
        else:
            out["ready"] = Measure(statistics.median(readies), f"{len(readies)} starts")
            out["ready"].notes.append("starts (s): " + ", ".join(f"{r:.2f}" for r in readies))
    return out


def main(argv: list[str] | None = None) -> int:
    args, selected = bench_args(__doc__, WORKLOADS, "smaller budgets (about two minutes)", argv)
    names = {w.name for w in selected}
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    sys.path.insert(0, str(REPO))
    sizes = QUICK if args.quick else FULL
    t_start = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"  .. {time.perf_counter() - t_start:5.1f}s {msg}", file=sys.stderr, flush=True)

    before = conditions()
    results: dict[str, dict[str, Measure]] = {}
    with _tmpdir("serving") as root:
        progress("training and saving the model")
        _, X = make_model(root / "model")
        twins = {MLFLOW_TWIN[n] for n in names if n in MLFLOW_TWIN}
        for side in SIDES:
            results[side] = run_side(side, sizes, names | twins if side == "mlflow" else names,
                                     root / "model", X, root, progress)
        raw = raw_onnx_rows_per_s(root / "model", X, sizes.seconds) if "rows64" in names else None
    after = conditions()
    c, b = results["cairn"], results["mlflow"]
    missing = Measure(error="not run")
    rows = []
    for w in selected:
        cm = c.get(w.name, missing)
        bm = (raw or missing) if w.name == "rows64" else b.get(MLFLOW_TWIN.get(w.name, w.name), missing)
        rows.append((w, _check_latency(w.name, cm), bm, _ratio(w, cm, bm)))
    print(
        f"\nserving workloads, {'quick' if args.quick else 'full'} run (baseline: mlflow models serve "
        "--env-manager local; rows64 against raw in-process ONNX Runtime; ratio > 1 = Cairn better)"
    )
    print(f"machine before: {before}")
    print(f"machine after:  {after}\n")
    print_table(rows)
    print()
    for w in selected:
        for side in SIDES:
            m = results[side].get(w.name)
            if m is not None and (m.notes or m.error):
                print(f"  {w.name:<7} {side:<7} {m.error or '; '.join(m.notes)}")
    if "rows64" in names and "rows64" in b:
        print(f"  rows64  mlflow  {b['rows64'].value or 0:,.0f} rows/s ({'; '.join(b['rows64'].notes)})")
    if names & {"ep1", "ep8"}:
        print(f"  {metrics_cost()}")
    if names & {"ep1auth"}:
        print(f"  {auth_cost()}")
    finish(rows, time.perf_counter() - t_start, args.json, BASELINE_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
