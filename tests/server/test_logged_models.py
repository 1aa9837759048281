"""MLflow 3's logged models through the official mlflow client against a real `cairn
server`: log_model end to end (create, artifact upload through the proxy, finalize),
loading by runs:/ and models:/ URIs, search, sklearn autologging, and the model
endpoints one by one, plus raw HTTP for what the client never sends."""
from __future__ import annotations

import uuid

import httpx
import mlflow
import numpy as np
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def exp_id(mlflow_client) -> str:
    exp = mlflow_client.create_experiment(unique("models"))
    mlflow.set_experiment(experiment_id=exp)
    return exp


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(autouse=True)
def no_autolog():
    yield
    mlflow.sklearn.autolog(disable=True)


# -- log_model end to end -----------------------------------------------------------
def test_log_model_and_load_it_back(mlflow_client, exp_id, iris):
    X, y = iris
    clf = LogisticRegression(max_iter=300).fit(X, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(clf, name="model", input_example=X[:5])
    run_id = run.info.run_id

    model = mlflow_client.get_logged_model(info.model_id)
    assert model.status == LoggedModelStatus.READY
    assert model.name == "model" and model.source_run_id == run_id and model.experiment_id == exp_id
    assert model.artifact_location == f"mlflow-artifacts:/{exp_id}/models/{info.model_id}/artifacts"

    expected = clf.predict(X[:10])
    by_run = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    np.testing.assert_array_equal(by_run.predict(X[:10]), expected)
    by_id = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    np.testing.assert_array_equal(by_id.predict(X[:10]), expected)
    assert info.model_uri == f"models:/{info.model_id}"

    found = mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list")
    assert [m.model_id for m in found] == [info.model_id]
    # LogOutputs: the run lists the model it produced.
    outputs = mlflow_client.get_run(run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(info.model_id, 0)]


def test_model_artifact_listing_endpoint(server_url, mlflow_client, exp_id, iris):
    X, y = iris
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression(max_iter=300).fit(X, y), name="listed")
    url = f"{server_url}/api/2.0/mlflow/logged-models/{info.model_id}/artifacts/directories"
    body = httpx.get(url).json()
    assert body["root_uri"] == f"mlflow-artifacts:/{exp_id}/models/{info.model_id}/artifacts"
    paths = {f["path"]: f for f in body["files"]}
    assert "MLmodel" in paths and not paths["MLmodel"]["is_dir"] and paths["MLmodel"]["file_size"] > 0
    assert httpx.get(url, params={"artifact_directory_path": "nope"}).json().get("files", []) == []


def test_search_logged_models(mlflow_client, exp_id):
    ids = [mlflow_client.create_logged_model(exp_id, name=n, params={"lr": lr}).model_id
           for n, lr in (("a", "0.1"), ("b", "0.2"), ("c", "0.1"))]
    mlflow_client.finalize_logged_model(ids[1], LoggedModelStatus.READY)

    def search(**kw):
        return [m.name for m in mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list", **kw)]

    assert search() == ["c", "b", "a"]
    assert search(filter_string="params.lr = '0.1'") == ["c", "a"]
    assert search(filter_string="name IN ('a', 'b') AND status = 'READY'") == ["b"]
    assert search(order_by=[{"field_name": "name", "ascending": True}]) == ["a", "b", "c"]
    assert search(order_by=[{"field_name": "creation_time", "ascending": True}], max_results=2) == ["a", "b"]
    page = mlflow_client.search_logged_models([exp_id], max_results=2)
    rest = mlflow_client.search_logged_models([exp_id], max_results=2, page_token=page.token)
    assert [m.name for m in page] == ["c", "b"] and [m.name for m in rest] == ["a"] and rest.token is None
    with pytest.raises(MlflowException) as err:
        mlflow_client.search_logged_models([exp_id], filter_string="metrics.acc LIKE 'x'")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


# -- autologging --------------------------------------------------------------------
def test_sklearn_autolog_logs_params_metrics_and_model(mlflow_client, exp_id, iris):
    X, y = iris
    mlflow.sklearn.autolog()
    with mlflow.start_run() as run:
        LogisticRegression(C=0.5, max_iter=300).fit(X, y)
    got = mlflow_client.get_run(run.info.run_id)
    assert got.data.params["C"] == "0.5" and got.data.params["max_iter"] == "300"
    assert 0.9 < got.data.metrics["training_accuracy_score"] <= 1.0
    assert got.data.tags["estimator_name"] == "LogisticRegression"

    (model,) = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list"
    )
    assert model.name == "model" and model.status == LoggedModelStatus.READY
    assert model.params["C"] == "0.5"
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert loaded.predict(X[:3]).shape == (3,)


def test_autolog_metrics_are_linked_to_the_model(mlflow_client, exp_id, iris):
    X, y = iris
    mlflow.sklearn.autolog()
    with mlflow.start_run() as run:
        LogisticRegression(max_iter=300).fit(X, y)
    (model,) = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list"
    )
    linked = {m.key: m for m in model.metrics}
    assert "training_accuracy_score" in linked
    assert linked["training_accuracy_score"].model_id == model.model_id
    assert linked["training_accuracy_score"].dataset_name  # autolog's training dataset
    assert linked["training_accuracy_score"].run_id == run.info.run_id
    by_metric = mlflow.search_logged_models(
        experiment_ids=[exp_id], filter_string="metrics.training_accuracy_score > 0.5", output_format="list"
    )
    assert model.model_id in [m.model_id for m in by_metric]


# -- the endpoints one by one -------------------------------------------------------
def test_create_finalize_tags_params_delete(mlflow_client, exp_id):
    model = mlflow_client.create_logged_model(
        exp_id, name="hand-made", tags={"team": "vision"}, params={"alpha": "1"}, model_type="Classifier"
    )
    assert model.status == LoggedModelStatus.PENDING and model.model_type == "Classifier"
    assert model.tags["team"] == "vision" and model.params == {"alpha": "1"}
    assert mlflow_client.finalize_logged_model(model.model_id, "FAILED").status == LoggedModelStatus.FAILED
    assert mlflow_client.finalize_logged_model(model.model_id, "READY").status == LoggedModelStatus.READY

    mlflow_client.set_logged_model_tags(model.model_id, {"stage": "dev", "team": "nlp"})
    mlflow_client.delete_logged_model_tag(model.model_id, "stage")
    mlflow_client.log_model_params(model.model_id, {"beta": "2"})
    got = mlflow_client.get_logged_model(model.model_id)
    assert got.tags["team"] == "nlp" and "stage" not in got.tags
    assert got.params == {"alpha": "1", "beta": "2"}

    mlflow_client.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException) as err:
        mlflow_client.get_logged_model(model.model_id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list") == []


def test_many_params_are_sent_in_batches(mlflow_client, exp_id):
    """The client sends the first 100 params with create, the rest to /params."""
    params = {f"p{i}": str(i) for i in range(250)}
    model = mlflow_client.create_logged_model(exp_id, params=params)
    assert mlflow_client.get_logged_model(model.model_id).params == params


def test_errors(mlflow_client, exp_id):
    missing = "m-" + "0" * 32
    for call in (
        lambda: mlflow_client.get_logged_model(missing),
        lambda: mlflow_client.finalize_logged_model(missing, "READY"),
        lambda: mlflow_client.delete_logged_model(missing),
    ):
        with pytest.raises(MlflowException) as err:
            call()
        assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # The client looks the model up first and rewraps the server's answer.
    with pytest.raises(MlflowException) as err:
        mlflow_client.set_logged_model_tags(missing, {"a": "b"})
    assert err.value.__cause__.error_code == "RESOURCE_DOES_NOT_EXIST"
    model = mlflow_client.create_logged_model(exp_id)
    with pytest.raises(MlflowException) as err:
        mlflow_client.delete_logged_model_tag(model.model_id, "never-set")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as err:
        mlflow_client.create_logged_model(exp_id, name="bad/name")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as err:
        mlflow_client.create_logged_model("987654321")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_raw_http(server_url, mlflow_client, exp_id):
    base = f"{server_url}/api/2.0/mlflow/logged-models"
    created = httpx.post(base, json={"experiment_id": exp_id, "name": "raw"}).json()["model"]
    assert created["info"]["status"] == "LOGGED_MODEL_PENDING"
    model_id = created["info"]["model_id"]
    # Enum numbers are accepted as protobuf JSON allows; unknown statuses are refused.
    r = httpx.patch(f"{base}/{model_id}", json={"model_id": model_id, "status": 3})
    assert r.status_code == 200 and r.json()["model"]["info"]["status"] == "LOGGED_MODEL_UPLOAD_FAILED"
    r = httpx.patch(f"{base}/{model_id}", json={"status": "LOGGED_MODEL_DANCING"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = httpx.post(base, json={"name": "no-experiment"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = httpx.get(f"{base}/not-a-model-id")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = httpx.delete(f"{base}/{model_id}")
    assert r.status_code == 200 and r.json() == {}
    r = httpx.get(f"{base}/{model_id}", params={"allow_deleted": "true"})
    assert r.status_code == 200 and r.json()["model"]["info"]["name"] == "raw"
    r = httpx.post(f"{server_url}/api/2.0/mlflow/runs/outputs", json={"run_id": "f" * 32, "models": []})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
