"""A data directory filled through the engine, shared by the TUI tests: experiments
`alpha` (5 runs, one RUNNING, one parent with a child, metric histories, an artifact),
`beta` (tagged, 2 runs) and `big` (5,000 runs). Timestamps are fixed, so tables and
snapshots are the same on every machine."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from cairn import engine
from cairn.engine.tracking.entities import Metric, Param, RunTag

T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC
BIG_RUNS = 5000


def fill(eng) -> dict[str, str]:
    tr = eng.tracking
    ids = {}
    ids["alpha"] = tr.create_experiment("alpha", tags={"team": "nlp"})
    ids["beta"] = tr.create_experiment("beta", tags={"team": "vision"})
    ids["big"] = tr.create_experiment("big")
    for i, rmse in enumerate([0.5, 0.2, 0.9, 0.35]):
        run = tr.create_run(ids["alpha"], start_time=T0 + i * 60_000, run_name=f"alpha-{i}")
        rid = run.info.run_id
        ids[f"alpha-{i}"] = rid
        points = [Metric("rmse", rmse + 1.0 / (s + 1), T0 + i * 60_000 + s, s) for s in range(50)]
        tr.log_batch(rid, metrics=points + [Metric("rmse", rmse, T0 + i * 60_000 + 50, 50),
                                            Metric("acc", 1 - rmse, T0 + i * 60_000, 0)],
                     params=[Param("alpha", str(10 ** i)), Param("model", "ridge")])  # fmt: skip
        if i != 3:  # alpha-3 stays RUNNING
            tr.update_run_info(rid, "FINISHED", T0 + i * 60_000 + 30_000 * (i + 1), None)
    tr.put_artifact(ids["alpha-0"], "notes/readme.txt", b"hello from alpha-0\n")
    child = tr.create_run(ids["alpha"], start_time=T0 + 10 * 60_000, run_name="alpha-child",
                          tags=[RunTag("mlflow.parentRunId", ids["alpha-0"])])  # fmt: skip
    tr.update_run_info(child.info.run_id, "FINISHED", T0 + 11 * 60_000, None)
    ids["alpha-child"] = child.info.run_id
    for i in range(2):
        run = tr.create_run(ids["beta"], start_time=T0 + i * 1000, run_name=f"beta-{i}")
        tr.update_run_info(run.info.run_id, "FAILED" if i else "FINISHED", T0 + i * 1000 + 500, None)

    def big(i: int) -> None:
        run = tr.create_run(ids["big"], start_time=T0 + i * 1000, run_name=f"big-{i:04d}")
        tr.log_batch(run.info.run_id, metrics=[Metric("loss", (i * 7919) % 1000 / 1000, T0, 0)],
                     params=[Param("seed", str(i))], wait=False)  # fmt: skip

    # Many writers at once: the engine's group commit puts their writes in shared
    # transactions, one sync each, instead of 5,000 synced commits.
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(big, range(BIG_RUNS)))
    tr.flush()
    return ids


@pytest.fixture(scope="session")
def tui_data(tmp_path_factory):
    """(data_dir, ids): the filled directory and the ids of what is in it."""
    path = tmp_path_factory.mktemp("tui-data")
    eng = engine.open(path)
    ids = fill(eng)
    yield path, ids
    eng.close()


@pytest.fixture()
def backend(tui_data):
    from cairn.tui.backend import LocalBackend

    eng = engine.open(tui_data[0])
    yield LocalBackend(eng)
    eng.close()


@pytest.fixture()
def anyio_backend():
    return "asyncio"
