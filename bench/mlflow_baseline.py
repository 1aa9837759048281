"""The baseline side of bench/tracking.py: the same workloads through MLflow's own
client on a local SQLite store (one migrated template database, copied per workload)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from report import (
    BASE_TS,
    BATCH,
    FILTER,
    ORDER_FILTER,
    ORDER_ONLY,
    SEARCH_MAX,
    Measure,
    _check,
    _expected_filter,
    _expected_order,
    _fmt_n,
    _median_ms,
    _rate,
    _run_payload,
    _search_data,
    _tmpdir,
)
from trackingsizes import Sizes


class MlflowSide:
    """MLflow's client on SQLite: one migrated template database, copied per workload."""

    def __init__(self) -> None:
        # Offline appliance bench: no usage pings from MLflow's telemetry thread.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mlflow
            from mlflow import MlflowClient
            from mlflow.entities import Metric, Param
        self.mlflow = mlflow
        self.Client = MlflowClient
        self.Metric = Metric
        self.Param = Param
        self._quiet()
        self._root = Path(tempfile.mkdtemp(prefix="cairn-bench-mlflow-template-"))
        self.template = self._root / "mlflow.db"
        with self._uri(self.template), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.Client(tracking_uri=self._uri_of(self.template)).search_experiments()
        self._quiet()  # alembic may have reconfigured logging

    @staticmethod
    def _quiet() -> None:
        for name in ("mlflow", "alembic", "sqlalchemy"):
            logging.getLogger(name).setLevel(logging.ERROR)

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    @staticmethod
    def _uri_of(db: Path) -> str:
        return f"sqlite:///{db}"

    @contextlib.contextmanager
    def _uri(self, db: Path):
        """MLFLOW_TRACKING_URI set for the duration of one workload only."""
        old = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = self._uri_of(db)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = old

    @contextlib.contextmanager
    def workspace(self, name: str, parent: str | None = None):
        """A fresh directory with a copy of the template db, an experiment and a client."""
        with _tmpdir(f"m-{name}", parent) as d, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            db = d / "mlflow.db"
            shutil.copyfile(self.template, db)
            with self._uri(db):
                client = self.Client(tracking_uri=self._uri_of(db))
                exp = client.create_experiment(
                    "bench", artifact_location=str(d / "artifacts")
                )
                try:
                    yield d, client, exp
                finally:
                    with contextlib.suppress(Exception):
                        while self.mlflow.active_run() is not None:
                            self.mlflow.end_run()
                    with contextlib.suppress(Exception):
                        client._tracking_client.store.engine.dispose()


def mlflow_log_metric(side: MlflowSide, sizes: Sizes) -> Measure:
    n = sizes.log_metric[1]
    mlflow = side.mlflow
    with side.workspace("log_metric") as (_, _client, exp):
        mlflow.start_run(experiment_id=exp)
        for i in range(5):  # warm-up
            mlflow.log_metric("warmup", float(i), step=i)
        gc.collect()
        t0 = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("loss", i * 0.001, step=i)
        mlflow.flush_async_logging()
        dt = time.perf_counter() - t0
        mlflow.end_run()
    return Measure(_rate(n, dt), _fmt_n(n))


def mlflow_log_batch(side: MlflowSide, sizes: Sizes) -> Measure:
    n = sizes.log_batch[1]
    Metric = side.Metric
    batches = [
        [
            Metric("m", (b * BATCH + j) * 0.001, BASE_TS + b * BATCH + j, b * BATCH + j)
            for j in range(BATCH)
        ]
        for b in range(n // BATCH)
    ]
    with side.workspace("log_batch") as (_, client, exp):
        run_id = client.create_run(exp, run_name="bench").info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("warmup", float(j), BASE_TS, j) for j in range(BATCH)],
        )
        gc.collect()
        t0 = time.perf_counter()
        for batch in batches:
            client.log_batch(run_id, metrics=batch)
        dt = time.perf_counter() - t0
    return Measure(_rate(n, dt), f"{_fmt_n(n)} in {BATCH:,}s")


def mlflow_runs(side: MlflowSide, sizes: Sizes) -> Measure:
    n = sizes.runs[1]
    params, metrics = _run_payload()
    mlflow = side.mlflow
    with side.workspace("runs") as (_, _client, exp):
        for _ in range(1):  # warm-up
            mlflow.start_run(experiment_id=exp)
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            mlflow.end_run()
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            mlflow.start_run(experiment_id=exp)
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            mlflow.end_run()
        mlflow.flush_async_logging()
        dt = time.perf_counter() - t0
    return Measure(_rate(n, dt), _fmt_n(n))


@contextlib.contextmanager
def mlflow_search_fixture(side: MlflowSide, sizes: Sizes):
    """N runs populated through MlflowClient.log_batch (not timed).

    Population runs on a tmpfs copy when /dev/shm exists (MLflow's commits are fsynced and
    setup would otherwise dominate the budget); the queries then run on a copy of the
    finished database in an ordinary temp directory, like every other workload.
    """
    n = sizes.search_runs[1]
    rows = _search_data(n)
    Metric, Param = side.Metric, side.Param
    shm = (
        "/dev/shm"
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
        else None
    )
    with side.workspace("search-populate", shm) as (sd, client, exp):
        for i, (name, acc, loss, model, lr) in enumerate(rows):
            run_id = client.create_run(
                exp, start_time=BASE_TS + i, run_name=name
            ).info.run_id
            client.log_batch(
                run_id,
                metrics=[
                    Metric("acc", acc, BASE_TS, 0),
                    Metric("loss", loss, BASE_TS, 0),
                ],
                params=[Param("model", model), Param("lr", lr)],
            )
        with contextlib.suppress(Exception):
            client._tracking_client.store.engine.dispose()
        with _tmpdir("m-search") as d:
            db = d / "mlflow.db"
            shutil.copyfile(sd / "mlflow.db", db)
            with side._uri(db), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                qclient = side.Client(tracking_uri=side._uri_of(db))
                try:
                    yield qclient, exp, rows
                finally:
                    with contextlib.suppress(Exception):
                        qclient._tracking_client.store.engine.dispose()


def _mlflow_search_label(rows, sizes: Sizes) -> str:
    label = f"{_fmt_n(len(rows))} runs"
    return label + "*" if len(rows) != sizes.search_runs[0] else label


def mlflow_search_filter(side: MlflowSide, sizes: Sizes, fixture) -> Measure:
    client, exp, rows = fixture
    m = Measure(size=_mlflow_search_label(rows, sizes))

    def query():
        return client.search_runs(
            [exp], FILTER, max_results=SEARCH_MAX, order_by=ORDER_FILTER
        )

    got = query()  # warm-up
    _check(
        m,
        [r.info.run_name for r in got],
        _expected_filter(rows),
        "search_filter (mlflow)",
    )
    gc.collect()
    m.value = _median_ms(query, sizes.search_reps[1])
    return m


def mlflow_search_order(side: MlflowSide, sizes: Sizes, fixture) -> Measure:
    client, exp, rows = fixture
    m = Measure(size=_mlflow_search_label(rows, sizes))

    def query():
        return client.search_runs(
            [exp], "", max_results=SEARCH_MAX, order_by=ORDER_ONLY
        )

    got = query()  # warm-up
    _check(
        m,
        [r.info.run_name for r in got],
        _expected_order(rows),
        "search_order (mlflow)",
    )
    gc.collect()
    m.value = _median_ms(query, sizes.search_reps[1])
    return m


def mlflow_history(side: MlflowSide, sizes: Sizes) -> Measure:
    n = sizes.history[1]
    Metric = side.Metric
    m = Measure(size=f"{_fmt_n(n)} steps")
    with side.workspace("history") as (_, client, exp):
        run_id = client.create_run(exp, run_name="bench").info.run_id
        for b in range(0, n, BATCH):
            client.log_batch(
                run_id,
                metrics=[
                    Metric("loss", 1.0 / (s + 1), BASE_TS + s, s)
                    for s in range(b, min(n, b + BATCH))
                ],
            )

        def query():
            return client.get_metric_history(run_id, "loss")

        got = query()  # warm-up
        if len(got) != n:
            m.notes.append(
                f"WRONG RESULT for history (mlflow): {len(got)} points, expected {n}"
            )
        gc.collect()
        m.value = _median_ms(query, sizes.history_reps[1])
    return m
