"""scikit-learn autologging against a real store, compared with sklearn's own numbers."""
from __future__ import annotations

import csv
import json
import math
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import cairn
from cairn import RunStatus, engine

REPO = Path(__file__).resolve().parents[2]
ORIGINAL_LR_FIT = LogisticRegression.fit


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


@pytest.fixture
def autologged():
    cairn.autolog()
    yield
    cairn.autolog(disable=True)


def only_run():
    runs = cairn.search_runs()
    assert len(runs) == 1, [r.data.tags_dict.get("estimator_name") for r in runs]
    return runs[0]


def load_model(client, run_id, tmp_path):
    local = Path(client.download_artifacts(run_id, "model", tmp_path / run_id))
    with open(local / "model.pkl", "rb") as f:
        model = pickle.load(f)
    return model, yaml.safe_load((local / "MLmodel").read_text())


def expected_params(estimator):
    return {k: str(v) for k, v in estimator.get_params(deep=True).items()}


def test_classifier(autologged, iris, client, tmp_path):
    X, y = iris
    model = LogisticRegression(max_iter=500, C=0.5)
    assert model.fit(X, y) is model
    run = only_run()
    run_id = run.info.run_id
    assert run.info.status == RunStatus.FINISHED and cairn.active_run() is None

    assert run.data.params_dict == expected_params(model)
    pred, proba = model.predict(X), model.predict_proba(X)
    expected = {
        "training_accuracy_score": skm.accuracy_score(y, pred),
        "training_precision_score": skm.precision_score(y, pred, average="weighted"),
        "training_recall_score": skm.recall_score(y, pred, average="weighted"),
        "training_f1_score": skm.f1_score(y, pred, average="weighted"),
        "training_log_loss": skm.log_loss(y, proba),
        "training_roc_auc": skm.roc_auc_score(y, proba, average="weighted", multi_class="ovo"),
        "training_score": model.score(X, y),
    }
    assert run.data.metrics_dict == pytest.approx(expected, rel=1e-12)

    tags = run.data.tags_dict
    assert tags["estimator_name"] == "LogisticRegression"
    assert tags["estimator_class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert tags["mlflow.source.name"] == sys.argv[0]
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.autologging"] == "sklearn"

    [inp] = run.inputs.dataset_inputs
    assert {(t.key, t.value) for t in inp.tags} == {("mlflow.data.context", "training")}
    assert inp.dataset.digest == cairn.make_dataset(X, targets=y).digest
    spec = json.loads(inp.dataset.schema)["mlflow_tensorspec"]
    assert json.loads(spec["features"])[0]["tensor-spec"] == {"dtype": "float64", "shape": [-1, 4]}
    assert "targets" in spec

    loaded, mlmodel = load_model(client, run_id, tmp_path)
    assert isinstance(loaded, LogisticRegression)
    np.testing.assert_array_equal(loaded.predict(X), pred)
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)
    import sklearn

    assert mlmodel["flavors"]["sklearn"]["sklearn_version"] == sklearn.__version__
    assert mlmodel["flavors"]["sklearn"]["pickled_model"] == "model.pkl"
    assert mlmodel["run_id"] == run_id
    assert json.loads(mlmodel["signature"]["inputs"])[0]["tensor-spec"]["shape"] == [-1, 4]
    assert json.loads(mlmodel["signature"]["outputs"])[0]["tensor-spec"]["shape"] == [-1]


def test_regressor(autologged, diabetes, client, tmp_path):
    X, y = diabetes
    model = Ridge(alpha=0.3).fit(X, y)
    run = only_run()
    pred = model.predict(X)
    mse = skm.mean_squared_error(y, pred)
    assert run.data.metrics_dict == pytest.approx({
        "training_mean_squared_error": mse,
        "training_root_mean_squared_error": math.sqrt(mse),
        "training_mean_absolute_error": skm.mean_absolute_error(y, pred),
        "training_r2_score": skm.r2_score(y, pred),
        "training_score": model.score(X, y),
    }, rel=1e-12)
    assert run.data.params_dict == expected_params(model)
    assert run.data.tags_dict["estimator_name"] == "Ridge"
    loaded, _ = load_model(client, run.info.run_id, tmp_path)
    np.testing.assert_array_equal(loaded.predict(X), pred)


def test_pipeline_logs_one_run(autologged, iris, client, tmp_path):
    X, y = iris
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(X, y)
    run = only_run()  # no runs for the steps
    params = run.data.params_dict
    assert params == expected_params(pipe)
    assert params["clf__C"] == "1.0" and params["scale__with_mean"] == "True"
    assert run.data.tags_dict["estimator_name"] == "Pipeline"
    assert run.data.metrics_dict["training_accuracy_score"] == skm.accuracy_score(y, pipe.predict(X))
    loaded, _ = load_model(client, run.info.run_id, tmp_path)
    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_grid_search_parent_and_child_runs(iris, client, tmp_path):
    cairn.autolog(max_tuning_runs=2)
    X, y = iris
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    search = GridSearchCV(LogisticRegression(max_iter=1000), grid, cv=3).fit(X, y)

    runs = cairn.search_runs()
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags_dict]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags_dict]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    pid = parent.info.run_id

    assert parent.data.params_dict["best_C"] == str(search.best_params_["C"])
    assert parent.data.params_dict["cv"] == "3"
    assert "estimator__C" not in parent.data.params_dict  # the seed's params are not deep-logged
    assert parent.data.metrics_dict["best_cv_score"] == search.best_score_
    assert parent.data.metrics_dict["training_accuracy_score"] == skm.accuracy_score(
        y, search.predict(X))
    assert parent.data.tags_dict["estimator_name"] == "GridSearchCV"

    csv_path = Path(client.download_artifacts(pid, "cv_results.csv", tmp_path / "cv"))
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 4
    assert [float(r["mean_test_score"]) for r in rows] == list(search.cv_results_["mean_test_score"])
    assert [r["param_C"] for r in rows] == ["0.01", "0.1", "1.0", "10.0"]

    results = search.cv_results_
    best_two = sorted(range(4), key=lambda i: results["rank_test_score"][i])[:2]
    by_c = {r.data.params_dict["C"]: r for r in children}
    assert set(by_c) == {str(results["params"][i]["C"]) for i in best_two}
    for i in best_two:
        child = by_c[str(results["params"][i]["C"])]
        assert child.data.tags_dict["mlflow.parentRunId"] == pid
        assert child.data.tags_dict["estimator_name"] == "LogisticRegression"
        assert child.info.status == RunStatus.FINISHED
        assert child.data.params_dict["max_iter"] == "1000"
        m = child.data.metrics_dict
        assert m["mean_test_score"] == results["mean_test_score"][i]
        assert m["rank_test_score"] == results["rank_test_score"][i]
        assert {"std_test_score", "mean_fit_time"} <= set(m)
        assert not any(k.startswith("split") for k in m)
        assert child.inputs.dataset_inputs[0].dataset.digest == \
            parent.inputs.dataset_inputs[0].dataset.digest

    loaded, _ = load_model(client, pid, tmp_path)
    np.testing.assert_array_equal(loaded.predict(X), search.predict(X))


def test_fit_inside_user_run_logs_there_and_keeps_it_open(autologged, iris):
    X, y = iris
    with cairn.start_run() as run:
        LogisticRegression(max_iter=500).fit(X, y)
        assert cairn.active_run().info.run_id == run.info.run_id
        assert cairn.get_run(run.info.run_id).info.status == RunStatus.RUNNING
    stored = only_run()
    assert stored.info.run_id == run.info.run_id
    assert "training_score" in stored.data.metrics_dict


def test_failed_fit_marks_run_failed(autologged):
    X = np.array([[0.0], [np.nan], [1.0]])
    with pytest.raises(ValueError):
        LogisticRegression().fit(X, [0, 1, 0])
    assert only_run().info.status == RunStatus.FAILED
    assert cairn.active_run() is None


def test_logging_failure_never_breaks_fit(autologged, iris):
    X, y = iris
    with cairn.start_run():
        cairn.log_param("C", "conflicting")  # autolog's C=1.0 will be refused by the store
        with pytest.warns(UserWarning, match="cairn autolog") as caught:
            model = LogisticRegression(max_iter=500).fit(X, y)
            LogisticRegression(max_iter=500).fit(X, y)
    assert len([w for w in caught if "cairn autolog" in str(w.message)]) == 1  # warned once
    np.testing.assert_array_equal(model.predict(X[:3]), [0, 0, 0])
    run = only_run()  # the other steps were still logged
    assert "training_score" in run.data.metrics_dict
    assert run.data.tags_dict["estimator_name"] == "LogisticRegression"
    assert len(run.inputs.dataset_inputs) == 1


def test_silent_hides_warnings(iris):
    cairn.autolog(silent=True)
    X, y = iris
    with cairn.start_run():
        cairn.log_param("C", "conflicting")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            LogisticRegression(max_iter=500).fit(X, y)


def test_options_turn_off_models_and_datasets(iris, client):
    cairn.autolog(log_models=False, log_datasets=False)
    X, y = iris
    LogisticRegression(max_iter=500).fit(X, y)
    run = only_run()
    assert run.inputs.dataset_inputs == []
    assert client.list_artifacts(run.info.run_id) == []


def test_disable_restores_original_fit(iris):
    cairn.autolog()
    assert LogisticRegression.fit is not ORIGINAL_LR_FIT
    cairn.autolog()  # enabling twice does not wrap twice
    assert LogisticRegression.fit.__cairn_original__ is ORIGINAL_LR_FIT
    cairn.autolog(disable=True)
    assert LogisticRegression.fit is ORIGINAL_LR_FIT
    X, y = iris
    LogisticRegression(max_iter=500).fit(X, y)
    assert cairn.search_runs() == []


def test_preprocessing_alone_logs_nothing(autologged, iris):
    StandardScaler().fit(iris[0])
    assert cairn.search_runs() == []


def test_dataframe_input_schema(autologged, iris, client, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = iris
    df = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    model = LogisticRegression(max_iter=500).fit(df, y)
    run = only_run()
    colspec = json.loads(run.inputs.dataset_inputs[0].dataset.schema)["mlflow_colspec"]
    assert [c["name"] for c in colspec] == ["sl", "sw", "pl", "pw"]
    assert {c["type"] for c in colspec} == {"double"}
    loaded, mlmodel = load_model(client, run.info.run_id, tmp_path)
    assert [c["name"] for c in json.loads(mlmodel["signature"]["inputs"])] == ["sl", "sw", "pl", "pw"]
    np.testing.assert_array_equal(loaded.predict(df), model.predict(df))


def test_git_commit_tag_for_script_in_a_repo(tmp_path, data_dir):
    repo = tmp_path / "proj"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import cairn
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        cairn.set_tracking_dir({str(data_dir / "script")!r})
        cairn.autolog()
        LogisticRegression(max_iter=500).fit(*load_iris(return_X_y=True))
        print(cairn.last_active_run().info.run_id)
    """))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "train.py"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    reader = cairn.Client(data_dir / "script")
    try:
        tags = reader.get_run(out.stdout.strip()).data.tags_dict
    finally:
        engine.open(data_dir / "script").close()
    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.source.name"] == str(script)
