"""Model-registry workloads, side by side: the official MLflow client against `cairn
server` and against `mlflow server` (SQLite, one worker), on this machine, in one run.

    .venv/bin/python bench/registry.py [--quick] [--json PATH] [--only NAME,...]

Each side's server is started fresh on a free 127.0.0.1 port (bench/serverprocs.py). In
each, one scikit-learn model (RandomForest, 20 trees, depth 6, 8 features, fixed seed) is
logged with `mlflow.sklearn.log_model`, then:

  register         mlflow.register_model("models:/<model id>", ...) until READY: on Cairn
                   this includes copying the version's files and loading its ONNX model in
                   ONNX Runtime and checking it against the pickled model on sample rows
                   (MLflow only records the version), so the target is below 1x
  get_version      MlflowClient.get_model_version
  get_alias        MlflowClient.get_model_version_by_alias
  latest           MlflowClient.get_latest_versions (all stages)
  transition       MlflowClient.transition_model_version_stage (None <-> Staging)
  search_versions  search_model_versions("name='...'") over the versions registered
  search_models    search_registered_models("name LIKE 'bench-m-%'") over many models
  load_alias       mlflow.pyfunc.load_model("models:/...@champion") and one predict

Latency is the median of repetitions in ms; `register` is in versions/s. `ratio` > 1
means Cairn is better. The exit code is 0 even when a target is missed.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from report import (
    Measure,
    Workload,
    _guard,
    _median_ms,
    _rate,
    _ratio,
    _tmpdir,
    bench_args,
    conditions,
    finish,
    print_report,
    quiet_mlflow_client,
    stderr_progress,
)
from serverprocs import start_server

BASELINE_NAME = "mlflow-server-sqlite"
SIDES = ("cairn", "mlflow")
WORKLOADS = (
    Workload("register", "versions/s", True, 0.2),
    Workload("get_version", "ms", False, 2.0),
    Workload("get_alias", "ms", False, 2.0),
    Workload("latest", "ms", False, 2.0),
    Workload("transition", "ms", False, 2.0),
    Workload("search_versions", "ms", False, 2.0),
    Workload("search_models", "ms", False, 2.0),
    Workload("load_alias", "ms", False, 1.0),
)


@dataclass(frozen=True)
class Sizes:
    register: int  # versions registered (timed); they are also what search_versions finds
    models: int  # registered models for search_models
    reps: int  # repetitions of each read
    load_reps: int


FULL = Sizes(register=40, models=300, reps=50, load_reps=7)
QUICK = Sizes(register=8, models=60, reps=15, load_reps=3)


def _training_data():
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(20261127)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    model = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    return model, X


def run_side(side: str, sizes: Sizes, names: set[str], root: Path, progress) -> dict[str, Measure]:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    out: dict[str, Measure] = {}
    progress(f"{side}: starting server")
    try:
        server = start_server(side, root / f"{side}-data")
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        err = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {n: Measure(error=f"{side} server: {err}") for n in names}
    try:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_registry_uri(server.url)
        client = MlflowClient(server.url, server.url)
        model, X = _training_data()
        mlflow.set_experiment("registry-bench")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model, name="model", input_example=X[:5], skops_trusted_types=["sklearn.tree._tree.Tree"]
            )
        source = f"models:/{info.model_id}"
        name = "bench-reg"

        progress(f"{side}: register x{sizes.register}")

        def w_register() -> Measure:
            mlflow.register_model(source, name)  # warm-up, untimed (creates the model)
            t0 = time.perf_counter()
            for _ in range(sizes.register):
                mv = mlflow.register_model(source, name)
                if mv.status != "READY":
                    return Measure(error=f"version {mv.version} is {mv.status}: {mv.status_message}")
            return Measure(_rate(sizes.register, time.perf_counter() - t0), f"{sizes.register:,}")

        out["register"] = _guard(w_register)
        client.set_registered_model_alias(name, "champion", "1")
        reads = {
            "get_version": lambda: client.get_model_version(name, "1"),
            "get_alias": lambda: client.get_model_version_by_alias(name, "champion"),
            "latest": lambda: client.get_latest_versions(name),
            "search_versions": lambda: _expect(
                len(client.search_model_versions(f"name='{name}'")), sizes.register + 1
            ),
        }
        for wname, fn in reads.items():
            if wname in names:
                progress(f"{side}: {wname}")
                out[wname] = _guard(_timed, fn, sizes.reps, f"{sizes.reps} reps")
        if "transition" in names:
            progress(f"{side}: transition")
            stages = iter(["Staging", "None"] * (sizes.reps + 2))
            out["transition"] = _guard(
                _timed, lambda: client.transition_model_version_stage(name, "1", next(stages)),
                sizes.reps, f"{sizes.reps} reps",
            )
        if "search_models" in names:
            progress(f"{side}: search_models (creating {sizes.models} models)")
            for i in range(sizes.models):
                client.create_registered_model(f"bench-m-{i:04d}", tags={"team": f"t{i % 5}"})
            out["search_models"] = _guard(
                _timed,
                lambda: _expect(
                    len(client.search_registered_models("name LIKE 'bench-m-%'", max_results=1000)),
                    sizes.models,
                ),
                sizes.reps, f"{sizes.models} models",
            )
        if "load_alias" in names:
            progress(f"{side}: load_alias")
            want = model.predict(X[:1])

            def load() -> None:
                got = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(X[:1])
                _expect(list(got), list(want))

            out["load_alias"] = _guard(_timed, load, sizes.load_reps, f"{sizes.load_reps} loads")
    finally:
        server.stop()
    return out


def _timed(fn, reps: int, size: str) -> Measure:
    fn()  # warm-up
    return Measure(_median_ms(fn, reps), size)


def _expect(got, want) -> None:
    if got != want:
        raise AssertionError(f"wrong answer: {got!r}, expected {want!r}")


def main(argv: list[str] | None = None) -> int:
    args, selected = bench_args(__doc__, WORKLOADS, "smaller sizes (about a minute)", argv)
    names = {w.name for w in selected}

    quiet_mlflow_client()
    sizes = QUICK if args.quick else FULL
    progress, t_start = stderr_progress()

    before = conditions()
    results = {}
    with _tmpdir("registry") as root:
        for side in SIDES:
            results[side] = run_side(side, sizes, names, root, progress)
    after = conditions()
    c, b = results["cairn"], results["mlflow"]
    missing = Measure(error="not run")
    rows = [
        (w, c.get(w.name, missing), b.get(w.name, missing), _ratio(w, c.get(w.name, missing), b.get(w.name, missing)))
        for w in selected
    ]
    print_report(
        f"registry workloads, {'quick' if args.quick else 'full'} run (baseline: mlflow server, "
        "SQLite, 1 worker; client: MlflowClient over loopback; ratio > 1 = Cairn better)",
        before, after, rows,
    )
    finish(rows, time.perf_counter() - t_start, args.json, BASELINE_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
