"""Experiment endpoints through the official mlflow client against a real server."""
from __future__ import annotations

import uuid

import httpx
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_get_and_by_name(mlflow_client):
    name = unique("exp")
    exp_id = mlflow_client.create_experiment(name, tags={"team": "vision"})
    exp = mlflow_client.get_experiment(exp_id)
    assert exp.name == name and exp.tags == {"team": "vision"}
    assert exp.artifact_location == f"mlflow-artifacts:/{exp_id}"
    assert mlflow_client.get_experiment_by_name(name).experiment_id == exp_id
    # MLflow's client turns RESOURCE_DOES_NOT_EXIST into None here.
    assert mlflow_client.get_experiment_by_name(unique("missing")) is None


def test_duplicate_name_is_resource_already_exists(mlflow_client):
    name = unique("dup")
    mlflow_client.create_experiment(name)
    with pytest.raises(MlflowException) as err:
        mlflow_client.create_experiment(name)
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_unknown_id_is_resource_does_not_exist(mlflow_client):
    with pytest.raises(MlflowException) as err:
        mlflow_client.get_experiment("987654321")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_rename_delete_restore_and_search(mlflow_client):
    name = unique("life")
    exp_id = mlflow_client.create_experiment(name)
    mlflow_client.rename_experiment(exp_id, name + "-renamed")
    assert mlflow_client.get_experiment(exp_id).name == name + "-renamed"
    mlflow_client.set_experiment_tag(exp_id, "stage", "dev")
    assert mlflow_client.get_experiment(exp_id).tags["stage"] == "dev"
    mlflow_client.delete_experiment(exp_id)
    assert mlflow_client.get_experiment(exp_id).lifecycle_stage == "deleted"
    active = mlflow_client.search_experiments(filter_string=f"name = '{name}-renamed'")
    assert active == []
    deleted = mlflow_client.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{name}-renamed'"
    )
    assert [e.experiment_id for e in deleted] == [exp_id]
    mlflow_client.restore_experiment(exp_id)
    assert mlflow_client.get_experiment(exp_id).lifecycle_stage == "active"


def test_search_pages(mlflow_client):
    prefix = unique("page")
    ids = [mlflow_client.create_experiment(f"{prefix}-{i}") for i in range(5)]
    first = mlflow_client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", max_results=2, order_by=["name ASC"])
    assert [e.experiment_id for e in first] == ids[:2] and first.token
    rest = mlflow_client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%'", max_results=10, order_by=["name ASC"], page_token=first.token
    )
    assert [e.experiment_id for e in rest] == ids[2:] and not rest.token


def test_raw_http_errors(server_url):
    base = f"{server_url}/api/2.0/mlflow/experiments"
    r = httpx.post(f"{base}/create", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and set(r.json()) == {"error_code", "message"}
    r = httpx.post(f"{base}/create", json={"name": 5})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE" and "name" in r.json()["message"]
    r = httpx.get(f"{base}/get", params={"experiment_id": "abc"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = httpx.get(f"{server_url}/api/2.0/mlflow/no-such-thing")
    assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert httpx.get(f"{server_url}/health").text == "OK"


def test_openapi_version_and_server_info(server_url):
    doc = httpx.get(f"{server_url}/schema/openapi.json").json()
    assert "/api/2.0/mlflow/runs/search" in doc["paths"]
    assert "/api/2.0/mlflow/experiments/create" in doc["paths"]
    assert httpx.get(f"{server_url}/version").text.count(".") == 2
    info = httpx.get(f"{server_url}/api/3.0/mlflow/server-info").json()
    assert info["multipart_uploads_enabled"] is False
