"""Names with control characters (a NUL, a newline, an escape) are refused with
INVALID_PARAMETER_VALUE on every route that takes a name, and nothing is created: a
name becomes a key, a log line and a terminal cell."""
from __future__ import annotations

import uuid

import httpx
import pytest

BAD = ("nul\x00name", "new\nline", "esc\x1b[31m", "del\x7f")


@pytest.fixture()
def http(server_url):
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


def refused(resp: httpx.Response, bad: str) -> None:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE", body
    assert "Traceback" not in body["message"]


@pytest.mark.parametrize("bad", BAD)
def test_create_routes_refuse_control_characters(http, bad):
    uid = uuid.uuid4().hex[:8]
    creates = [
        ("/api/2.0/mlflow/experiments/create", {"name": bad + uid}),
        ("/api/2.0/mlflow/registered-models/create", {"name": bad + uid}),
        ("/api/2.0/mlflow/logged-models", {"experiment_id": "0", "name": bad + uid}),
        ("/api/2.0/serving-endpoints", {"name": bad + uid, "config": {"served_entities": []}}),
        ("/api/2.1/unity-catalog/catalogs", {"name": bad + uid}),
        ("/api/2.1/unity-catalog/schemas", {"name": bad + uid, "catalog_name": "main"}),
        ("/api/2.0/mlflow/users/create", {"username": bad + uid, "password": "a-long-password"}),
    ]
    for route, body in creates:
        refused(http.post(route, json=body), bad)
    names = [e["name"] for e in http.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1000}).json()
             .get("experiments", [])]
    assert not any(uid in n for n in names)


@pytest.mark.parametrize("bad", BAD)
def test_rename_routes_refuse_control_characters(http, bad):
    uid = uuid.uuid4().hex[:8]
    eid = http.post("/api/2.0/mlflow/experiments/create", json={"name": f"ok-{uid}"}).json()["experiment_id"]
    refused(http.post("/api/2.0/mlflow/experiments/update", json={"experiment_id": eid, "new_name": bad}), bad)
    assert http.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": eid}).json()[
        "experiment"]["name"] == f"ok-{uid}"
    assert http.post("/api/2.0/mlflow/registered-models/create", json={"name": f"ok-{uid}"}).status_code == 200
    refused(http.post("/api/2.0/mlflow/registered-models/rename", json={"name": f"ok-{uid}", "new_name": bad}), bad)
    run = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": eid}).json()["run"]["info"]["run_id"]
    for route, body in (
        ("/api/2.0/mlflow/runs/log-parameter", {"run_id": run, "key": bad, "value": "1"}),
        ("/api/2.0/mlflow/runs/log-metric", {"run_id": run, "key": bad, "value": 1.0, "timestamp": 0}),
        ("/api/2.0/mlflow/runs/set-tag", {"run_id": run, "key": bad, "value": "v"}),
        ("/api/2.0/mlflow/experiments/set-experiment-tag", {"experiment_id": eid, "key": bad, "value": "v"}),
    ):
        refused(http.post(route, json=body), bad)
