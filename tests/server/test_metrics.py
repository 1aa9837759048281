"""Metric history endpoints against a real `cairn server`: the official client for
get-history (which pages by itself), raw HTTP for paging details and for
get-history-bulk-interval, which only MLflow's UI calls."""
from __future__ import annotations

import math
import uuid

import httpx
import pytest
from mlflow.entities import Metric

HISTORY = "/api/2.0/mlflow/metrics/get-history"
BULK = "/api/2.0/mlflow/metrics/get-history-bulk-interval"


@pytest.fixture()
def exp_id(mlflow_client) -> str:
    return mlflow_client.create_experiment(f"metrics-{uuid.uuid4().hex[:8]}")


def log_steps(client, run_id: str, key: str, steps, value=lambda s: s / 10) -> None:
    client.log_batch(run_id, metrics=[Metric(key, value(s), 1_000 + s, s) for s in steps])


def assert_error(r: httpx.Response, status: int, code: str, says: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code and says in body["message"], body


def test_history_over_a_thousand_points(mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    log_steps(mlflow_client, run_id, "loss", range(2_500))
    history = mlflow_client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(2_500))
    assert [m.value for m in history[:3]] == [0.0, 0.1, 0.2] and history[-1].timestamp == 3_499
    assert mlflow_client.get_metric_history(run_id, "never-logged") == []


def test_client_pages_through_more_than_one_page(mlflow_client, exp_id):
    """The client asks for 25,000 points a page and follows next_page_token."""
    run_id = mlflow_client.create_run(exp_id).info.run_id
    log_steps(mlflow_client, run_id, "big", range(26_000))
    history = mlflow_client.get_metric_history(run_id, "big")
    assert len(history) == 26_000 and [m.step for m in history[24_999:25_001]] == [24_999, 25_000]


def test_raw_history_pages_and_nonfinite(server_url, mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    log_steps(mlflow_client, run_id, "m", range(2_300))
    mlflow_client.log_metric(run_id, "odd", float("nan"), timestamp=1, step=0)
    mlflow_client.log_metric(run_id, "odd", float("inf"), timestamp=2, step=1)
    mlflow_client.log_metric(run_id, "odd", float("-inf"), timestamp=3, step=2)
    steps, token, pages = [], None, 0
    while True:
        params = {"run_uuid": run_id, "metric_key": "m", "max_results": 1_000}
        if token:
            params["page_token"] = token
        body = httpx.get(server_url + HISTORY, params=params).json()
        steps += [m["step"] for m in body["metrics"]]
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
    assert pages == 3 and steps == list(range(2_300))
    body = httpx.get(server_url + HISTORY, params={"run_id": run_id, "metric_key": "odd"}).json()
    assert [m["value"] for m in body["metrics"]] == ["NaN", "Infinity", "-Infinity"]
    history = mlflow_client.get_metric_history(run_id, "odd")
    assert math.isnan(history[0].value) and [m.value for m in history[1:]] == [math.inf, -math.inf]


def test_raw_history_errors(server_url, mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    get = lambda **p: httpx.get(server_url + HISTORY, params=p)
    assert_error(get(run_id=uuid.uuid4().hex, metric_key="m"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_error(get(run_id="nope", metric_key="m"), 400, "INVALID_PARAMETER_VALUE", "run ID")
    assert_error(get(metric_key="m"), 400, "INVALID_PARAMETER_VALUE", "run_id")
    assert_error(get(run_id=run_id), 400, "INVALID_PARAMETER_VALUE", "metric_key")
    assert_error(get(run_id=run_id, metric_key="m", max_results=0), 400, "INVALID_PARAMETER_VALUE", "max_results")
    assert_error(get(run_id=run_id, metric_key="m", max_results="ten"), 400, "INVALID_PARAMETER_VALUE", "max_results")
    assert_error(get(run_id=run_id, metric_key="m", page_token="%%%"), 400, "INVALID_PARAMETER_VALUE")


def test_bulk_interval_samples_each_run(server_url, mlflow_client, exp_id):
    a = mlflow_client.create_run(exp_id).info.run_id
    b = mlflow_client.create_run(exp_id).info.run_id
    log_steps(mlflow_client, a, "acc", range(100))
    log_steps(mlflow_client, b, "acc", range(0, 200, 2), value=lambda s: float("nan") if s == 0 else s)

    r = httpx.get(server_url + BULK, params={"run_ids": [a, b], "metric_key": "acc", "max_results": 10})
    assert r.status_code == 200, r.text
    points = r.json()["metrics"]
    assert set(points[0]) == {"key", "value", "timestamp", "step", "run_id"}
    by_run = {rid: [p["step"] for p in points if p["run_id"] == rid] for rid in (a, b)}
    for rid, first, last in ((a, 0, 99), (b, 0, 198)):
        steps = by_run[rid]
        assert steps == sorted(steps) and 2 <= len(steps) <= 20
        assert steps[0] == first and steps[-1] == last  # the ends are always kept
    assert next(p["value"] for p in points if p["run_id"] == b and p["step"] == 0) == "NaN"

    # A step window: only points inside it, the window's ends included where logged.
    r = httpx.get(
        server_url + BULK,
        params={"run_ids": a, "metric_key": "acc", "start_step": 10, "end_step": 20, "max_results": 100},
    )
    assert [p["step"] for p in r.json()["metrics"]] == list(range(10, 21))
    # Without max_results MLflow's default (2,500 per run) applies: nothing sampled away.
    r = httpx.get(server_url + BULK, params={"run_ids": a, "metric_key": "acc"})
    assert len(r.json()["metrics"]) == 100


def test_bulk_interval_errors(server_url, mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    get = lambda **p: httpx.get(server_url + BULK, params=p)
    assert_error(get(metric_key="m"), 400, "INVALID_PARAMETER_VALUE", "run_ids")
    assert_error(get(run_ids=run_id), 400, "INVALID_PARAMETER_VALUE", "metric_key")
    assert_error(get(run_ids=run_id, metric_key="m", max_results=0), 400, "INVALID_PARAMETER_VALUE", "max_results")
    assert_error(get(run_ids=run_id, metric_key="m", max_results=2_501), 400, "INVALID_PARAMETER_VALUE", "max_results")
    assert_error(get(run_ids=run_id, metric_key="m", start_step=5), 400, "INVALID_PARAMETER_VALUE", "end_step")
    assert_error(get(run_ids=run_id, metric_key="m", start_step=5, end_step=1), 400, "INVALID_PARAMETER_VALUE")
    too_many = [uuid.uuid4().hex for _ in range(101)]
    assert_error(get(run_ids=too_many, metric_key="m"), 400, "INVALID_PARAMETER_VALUE", "at most 100")
    assert_error(get(run_ids=uuid.uuid4().hex, metric_key="m"), 404, "RESOURCE_DOES_NOT_EXIST")
