"""The model registry from Python, end to end on a real store: autologged and logged
models carry ONNX, `cairn.register_model` from runs, local .onnx files and folders saved
by MLflow itself, `cairn.load_model` by version, alias and stage, failures explained."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

import cairn
from cairn import CairnError
from cairn.engine.models.predictor import OnnxPredictor

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:120], y[:120]


class Doubler(RegressorMixin, BaseEstimator):
    """An estimator skl2onnx has never heard of: its conversion must fail, clearly."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return np.asarray(X, dtype=float).sum(axis=1) * 2


def autolog_fit(model, X, y) -> str:
    cairn.autolog()
    try:
        with cairn.start_run(run_name="autologged") as run:
            model.fit(X, y)
    finally:
        cairn.autolog(disable=True)
    return run.info.run_id


def labels(result) -> np.ndarray:
    """A classifier predictor's output (its labels, as MLflow's pyfunc gives them)."""
    return np.asarray(result).reshape(-1)


# -- logging -----------------------------------------------------------------------------


def test_autolog_writes_model_onnx_and_the_onnx_flavor(iris, client, tmp_path):
    X, y = iris
    run_id = autolog_fit(LogisticRegression(max_iter=300), X, y)
    files = {f.path for f in client.list_artifacts(run_id, "model")}
    assert {"model/MLmodel", "model/model.pkl", "model/model.onnx"} <= files
    local = Path(client.download_artifacts(run_id, "model", tmp_path))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert {"sklearn", "python_function", "onnx"} <= set(mlmodel["flavors"])
    assert mlmodel["flavors"]["onnx"]["data"] == "model.onnx"
    assert mlmodel["run_id"] == run_id
    assert "cairn.onnx.error" not in client.get_run(run_id).data.tags_dict
    # The logged model loads straight from the run, through ONNX Runtime.
    model = cairn.load_model(f"runs:/{run_id}/model")
    assert isinstance(model, OnnxPredictor)
    np.testing.assert_array_equal(labels(model.predict(X)), LogisticRegression(max_iter=300).fit(X, y).predict(X))


def test_log_model_registers_and_returns_model_info(iris):
    X, y = iris
    df = pd.DataFrame(X, columns=IRIS_COLUMNS)
    clf = LogisticRegression(max_iter=300).fit(df, y)
    with cairn.start_run() as run:
        info = cairn.sklearn.log_model(
            clf, name="clf", input_example=df.head(5), registered_model_name="iris-clf",
            serialization_format="skops",
        )
    assert info.model_uri == f"runs:/{run.info.run_id}/clf"
    assert "model.skops" in info.files and "model.onnx" in info.files
    assert "onnx" in info.flavors and info.onnx_error is None
    assert info.registered_model_version == 1
    mv = cairn.Client().get_model_version("iris-clf", 1)
    assert mv.status == "READY" and mv.run_id == run.info.run_id
    loaded = cairn.load_model("models:/iris-clf/1")
    np.testing.assert_array_equal(labels(loaded.predict(df)), clf.predict(df))


def test_unconvertible_model_is_logged_with_the_reason_and_fails_registration(diabetes, client):
    X, y = diabetes
    with cairn.start_run() as run:
        info = cairn.sklearn.log_model(Doubler().fit(X, y), input_example=X[:5])
    assert info.onnx_error and "onnx" not in info.flavors
    tag = client.get_run(run.info.run_id).data.tags_dict["cairn.onnx.error"]
    assert "Doubler" in tag
    files = {f.path for f in client.list_artifacts(run.info.run_id, "model")}
    assert "model/model.pkl" in files and "model/model.onnx" not in files

    with pytest.raises(CairnError, match="Doubler") as err:
        cairn.register_model(info.model_uri, "doubler")
    assert "FAILED" in err.value.message or "failed" in err.value.message
    mv = client.get_model_version("doubler", 1)
    assert mv.status == "FAILED_REGISTRATION"
    assert "Doubler" in mv.status_message
    with pytest.raises(CairnError, match="FAILED_REGISTRATION"):
        cairn.load_model("models:/doubler/1")


# -- registering and loading --------------------------------------------------------------


def test_register_autologged_run_then_load_by_version_alias_and_stage(iris, client):
    X, y = iris
    run_id = autolog_fit(LogisticRegression(max_iter=300, C=0.5), X, y)
    expected = LogisticRegression(max_iter=300, C=0.5).fit(X, y).predict(X)

    mv = cairn.register_model(f"runs:/{run_id}/model", "iris", tags={"team": "ml"})
    assert (mv.name, mv.version, mv.status) == ("iris", "1", "READY")
    assert mv.run_id == run_id and mv.tags_dict == {"team": "ml"}
    assert mv.signature is not None
    second = cairn.register_model(f"runs:/{run_id}/model", "iris")
    assert second.version == "2"  # the registered model already existed: a new version

    client.set_registered_model_alias("iris", "champion", 1)
    client.transition_model_version_stage("iris", 1, "production", comment="best so far")
    for uri in ("models:/iris/1", "models:/iris@champion", "models:/iris/Production"):
        model = cairn.load_model(uri)
        assert isinstance(model, OnnxPredictor), uri
        np.testing.assert_array_equal(labels(model.predict(X)), expected, err_msg=uri)
    np.testing.assert_array_equal(labels(cairn.load_model("models:/iris/latest").predict(X[:10])), expected[:10])

    assert client.get_model_version_by_alias("iris", "champion").version == "1"
    [prod] = client.get_latest_versions("iris", ["Production"])
    assert prod.version == "1" and prod.current_stage == "Production"
    kinds = [(t.kind, t.to_stage, t.alias, t.comment) for t in client.list_transitions("iris", 1)]
    assert ("alias_set", "", "champion", "") in [(k, "", a, "") for k, _, a, _ in kinds]
    assert ("stage", "Production", "", "best so far") in kinds

    lineage = client.get_lineage("iris", 1)
    assert lineage.run_id == run_id and lineage.run_name == "autologged"
    [ds] = lineage.datasets
    assert ds.digest == cairn.make_dataset(X, targets=y).digest and ds.context == "training"


def test_register_a_local_onnx_file(diabetes, tmp_path):
    from skl2onnx import to_onnx

    X, y = diabetes
    ridge = Ridge(alpha=0.5).fit(X, y)
    path = tmp_path / "ridge.onnx"
    path.write_bytes(to_onnx(ridge, X[:1].astype(np.float32), target_opset=17).SerializeToString())

    mv = cairn.register_model(str(path), "ridge")
    assert mv.status == "READY" and mv.run_id == ""
    expected = ridge.predict(X)
    for model in (cairn.load_model("models:/ridge/1"), cairn.load_model(str(path))):
        got = np.asarray(model.predict(X.astype(np.float32)), dtype=float).reshape(-1)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_register_a_folder_saved_by_mlflow(iris, tmp_path):
    import mlflow.sklearn

    X, y = iris
    df = pd.DataFrame(X, columns=IRIS_COLUMNS)
    clf = LogisticRegression(max_iter=300).fit(df, y)
    folder = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(clf, str(folder), input_example=df.head(5))
    assert not (folder / "model.onnx").exists()

    mv = cairn.register_model(str(folder), "mlflow-iris")
    assert mv.status == "READY", mv.status_message
    from_registry = cairn.load_model("models:/mlflow-iris/1")
    np.testing.assert_array_equal(labels(from_registry.predict(df)), clf.predict(df))
    # The folder itself loads too (converted on the spot: it has no ONNX model yet).
    np.testing.assert_array_equal(labels(cairn.load_model(folder).predict(df)), clf.predict(df))


# -- the client's registry methods ---------------------------------------------------------


def test_registered_model_crud_and_search(client):
    rm = client.create_registered_model("churn", tags={"owner": "ana"}, description="first")
    assert rm.name == "churn" and rm.tags_dict == {"owner": "ana"}
    client.create_registered_model("fraud")
    with pytest.raises(CairnError, match="already exists"):
        client.create_registered_model("churn")
    names = [m.name for m in client.search_registered_models()]
    assert names == ["churn", "fraud"]
    assert [m.name for m in client.search_registered_models("tags.owner = 'ana'")] == ["churn"]
    client.set_registered_model_tag("fraud", "tier", 1)
    assert client.get_registered_model("fraud").tags_dict == {"tier": "1"}
    client.delete_registered_model_tag("fraud", "tier")
    client.update_registered_model("churn", description="second")
    assert client.get_registered_model("churn").description == "second"
    client.rename_registered_model("churn", "churn2")
    with pytest.raises(CairnError, match="not found"):
        client.get_registered_model("churn")
    client.delete_registered_model("churn2")
    assert [m.name for m in client.search_registered_models()] == ["fraud"]


def test_catalogs_and_schemas(client):
    client.create_catalog("prod", comment="shipped models")
    client.create_schema("prod.vision")
    assert "prod" in [c.name for c in client.list_catalogs()]
    assert [s.full_name for s in client.list_schemas("prod")] == ["prod.vision"]
    rm = client.create_registered_model("prod.vision.detector")
    assert rm.full_name == "prod.vision.detector"
    with pytest.raises(CairnError, match="does not exist|not found"):
        client.create_registered_model("nowhere.vision.detector")


def test_bad_sources_and_uris_are_clear_errors(tmp_path):
    with pytest.raises(CairnError, match="neither a model URI"):
        cairn.register_model("no/such/folder", "x")
    with pytest.raises(CairnError, match="does not exist"):
        cairn.load_model(tmp_path / "missing.onnx")
    with pytest.raises(CairnError, match="not found"):
        cairn.load_model("models:/nobody/1")
    with pytest.raises(CairnError, match="Unsupported model URI"):
        cairn.load_model("s3://bucket/model")
    cairn.Client().create_registered_model("empty")
    with pytest.raises(CairnError, match="no version in stage Staging"):
        cairn.load_model("models:/empty/Staging")

