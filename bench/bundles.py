"""Moving a registered model between two appliances, side by side: Cairn's signed model
bundles against what an MLflow user does between two `mlflow server`s, in one run.

    .venv/bin/python bench/bundles.py [--quick] [--json PATH] [--only NAME,...]

Each side has a source and a destination. On the source, K versions of one model are
registered, each from its own run (a RandomForest of 100 trees, depth 10, 20 features,
fixed seed; 20 params; 5 metrics of 200 steps each). Then each version is moved:

  export   Cairn: `export_bundle` (engine/bundles/transfer.py) to a file, signed with the source's
           ed25519 key. MLflow: get the version, its run, every metric history, and
           download the version's files (mlflow.artifacts.download_artifacts).
  import   Cairn: `import_bundle` into the destination, which trusts the source's key:
           signature and digests checked, the run recreated, the version registered
           and its ONNX loaded and verified against the original model, until READY.
           MLflow: create the run on the destination with the same params, tags and
           metric histories, upload the files and create the version, until READY.
           MLflow checks nothing on the way; Cairn's side does more work.
  move     export + import, per version.

Cairn works in-process on its two data directories (an appliance's bundle is a file
carried between sites); MLflow's client talks over loopback to two `mlflow server`s
(SQLite, one worker each). Latency is the median over the K versions in ms; `ratio` > 1
means Cairn is faster. The exit code is 0 even when a target is missed.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(BENCH), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

from report import (
    Measure,
    Workload,
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

BASELINE_NAME = "mlflow-server-sqlite-x2"
WORKLOADS = (
    Workload("export", "ms", False, 1.0),
    Workload("import", "ms", False, 1.0),
    Workload("move", "ms", False, 1.0),
)
FULL_VERSIONS = 10
QUICK_VERSIONS = 3
PARAMS = 20
METRICS = 5
STEPS = 200
NAME = "bench-bundle"


@dataclass
class Timings:
    export: list[float]
    import_: list[float]
    size: str = ""

    def measures(self, versions: int) -> dict[str, Measure]:
        import statistics

        moves = [e + i for e, i in zip(self.export, self.import_, strict=True)]
        size = f"{versions} versions{self.size}"
        return {
            "export": Measure(statistics.median(self.export), size),
            "import": Measure(statistics.median(self.import_), size),
            "move": Measure(statistics.median(moves), size),
        }


def _model():
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(20261127)
    X = rng.normal(size=(2000, 20)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3] > 0).astype(np.int64)
    return RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(X, y), X


def _params() -> dict[str, str]:
    return {f"p{i:02d}": str(i * 3) for i in range(PARAMS)}


def _log_run_data(tracking) -> None:
    """The same params and metric histories into the active run: `tracking` is the
    `cairn` or the `mlflow` module (the same fluent API)."""
    tracking.log_params(_params())
    for step in range(STEPS):
        tracking.log_metrics({f"m{k}": step * 0.01 + k for k in range(METRICS)}, step=step)


# -- Cairn -------------------------------------------------------------------------------
def cairn_side(root: Path, versions: int, progress) -> dict[str, Measure]:
    import cairn
    from cairn import engine
    from cairn.engine.bundles.signing import generate_key, parse_public_key, trust_key
    from cairn.engine.bundles.transfer import export_bundle, import_bundle, signing_key

    model, X = _model()
    src_dir, dst_dir = root / "cairn-source", root / "cairn-dest"
    progress(f"cairn: registering {versions} versions")
    cairn.set_tracking_dir(src_dir)
    try:
        cairn.set_experiment("bundle-bench")
        for _ in range(versions):
            with cairn.start_run():
                _log_run_data(cairn)
                info = cairn.sklearn.log_model(model, name="model", input_example=X[:5])
            mv = cairn.register_model(info.model_uri, NAME)
            if mv.status != "READY":
                return {w.name: Measure(error=f"source version {mv.version}: {mv.status_message}") for w in WORKLOADS}
    finally:
        cairn.set_tracking_dir(None)
    src, dst = engine.open(src_dir), engine.open(dst_dir)
    public = generate_key(src_dir)
    trust_key(dst_dir, "source", parse_public_key(public.public_key))
    key = signing_key(src_dir, None)
    timings = Timings([], [])
    sizes = []
    for v in range(1, versions + 1):
        progress(f"cairn: move version {v}")
        out = root / f"v{v}.cairn"
        t0 = time.perf_counter()
        exported = export_bundle(src, f"models:/{NAME}/{v}", out, key=key)
        t1 = time.perf_counter()
        res = import_bundle(dst, out)
        t2 = time.perf_counter()
        if res.status != "READY" or res.existing or not res.signer or not res.signer.trusted_as:
            return {w.name: Measure(error=f"import of version {v}: {res}") for w in WORKLOADS}
        timings.export.append((t1 - t0) * 1000)
        timings.import_.append((t2 - t1) * 1000)
        sizes.append(exported.size)
    timings.size = f", {sum(sizes) / len(sizes) / 2**20:.1f} MiB bundle"
    return timings.measures(versions)


# -- MLflow ------------------------------------------------------------------------------
def mlflow_side(root: Path, versions: int, progress) -> dict[str, Measure]:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    model, X = _model()
    progress("mlflow: starting two servers")
    src_server = start_server("mlflow", root / "mlflow-source")
    try:
        dst_server = start_server("mlflow", root / "mlflow-dest")
    except Exception:
        src_server.stop()
        raise
    try:
        src, dst = MlflowClient(src_server.url, src_server.url), MlflowClient(dst_server.url, dst_server.url)
        progress(f"mlflow: registering {versions} versions")
        mlflow.set_tracking_uri(src_server.url)
        mlflow.set_registry_uri(src_server.url)
        mlflow.set_experiment("bundle-bench")
        for _ in range(versions):
            with mlflow.start_run():
                _log_run_data(mlflow)
                info = mlflow.sklearn.log_model(model, name="model", input_example=X[:5],
                                                skops_trusted_types=["sklearn.tree._tree.Tree"])
            mlflow.register_model(f"models:/{info.model_id}", NAME)
        dest_exp = dst.create_experiment("bundle-bench")
        dst.create_registered_model(NAME)
        timings = Timings([], [])
        for v in range(1, versions + 1):
            progress(f"mlflow: move version {v}")
            t0 = time.perf_counter()
            mv = src.get_model_version(NAME, str(v))
            run = src.get_run(mv.run_id)
            history = [m for key in run.data.metrics for m in src.get_metric_history(run.info.run_id, key)]
            local = mlflow.artifacts.download_artifacts(
                f"models:/{NAME}/{v}", dst_path=str(root / f"mlflow-v{v}"), tracking_uri=src_server.url
            )
            t1 = time.perf_counter()
            new = dst.create_run(dest_exp, run_name=run.info.run_name, tags=run.data.tags)
            rid = new.info.run_id
            dst.log_batch(rid, params=[Param(k, v_) for k, v_ in run.data.params.items()])
            for i in range(0, len(history), 1000):
                dst.log_batch(rid, metrics=[Metric(m.key, m.value, m.timestamp, m.step) for m in history[i:i + 1000]])
            dst.log_batch(rid, tags=[RunTag("origin.version", str(v))])
            dst.log_artifacts(rid, local, "model")
            dst.set_terminated(rid)
            new_mv = dst.create_model_version(NAME, f"{new.info.artifact_uri}/model", run_id=rid)
            t2 = time.perf_counter()
            if new_mv.status != "READY":
                return {w.name: Measure(error=f"destination version {new_mv.version} is {new_mv.status}")
                        for w in WORKLOADS}
            timings.export.append((t1 - t0) * 1000)
            timings.import_.append((t2 - t1) * 1000)
        return timings.measures(versions)
    finally:
        dst_server.stop()
        src_server.stop()


def main(argv: list[str] | None = None) -> int:
    args, selected = bench_args(__doc__, WORKLOADS, "3 versions instead of 10", argv)
    quiet_mlflow_client()
    versions = QUICK_VERSIONS if args.quick else FULL_VERSIONS
    progress, t_start = stderr_progress()

    before = conditions()
    results = {}
    with _tmpdir("bundles") as root:
        for side, fn in (("cairn", cairn_side), ("mlflow", mlflow_side)):
            try:
                results[side] = fn(root, versions, progress)
            except Exception as exc:  # noqa: BLE001 (one broken side must not hide the other)
                results[side] = {w.name: Measure(error=f"{side}: {type(exc).__name__}: {exc}") for w in WORKLOADS}
    after = conditions()
    rows = [(w, results["cairn"][w.name], results["mlflow"][w.name],
             _ratio(w, results["cairn"][w.name], results["mlflow"][w.name])) for w in selected]
    print_report(f"model moves between two appliances, {'quick' if args.quick else 'full'} run (baseline: "
                 "MLflow client between two mlflow servers, SQLite, 1 worker each; ratio > 1 = Cairn faster)",
                 before, after, rows)
    finish(rows, time.perf_counter() - t_start, args.json, BASELINE_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
