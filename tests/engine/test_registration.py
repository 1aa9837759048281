"""The registration pipeline (engine/registry/registration.py) end to end on a real store:
sources are resolved and copied, ONNX made and verified in ONNX Runtime, versions
finished READY or FAILED_REGISTRATION with the reason, and a restart finishes what was
left pending."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from cairn import engine
from cairn.engine.errors import CairnError
from cairn.engine.models.mlmodel import read_mlmodel
from cairn.engine.models.package import package_sklearn
from cairn.engine.registry.entities import VersionStatus
from cairn.engine.registry.registration import ArtifactModelDir

WAIT_S = 120.0


class Stubborn(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx has no converter for."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), y


def log_model_files(eng, files: dict[str, bytes], path: str = "model") -> str:
    """A run holding `files` under `path`; returns the run id."""
    exp = eng.tracking.create_experiment("registration")
    run = eng.tracking.create_run(exp, user_id="tester", start_time=1, tags={}, run_name="train")
    run_id = run.info.run_id
    base = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    for rel, data in files.items():
        eng.artifacts.put(f"{base}/{path}/{rel}", data)
    return run_id


def register(eng, name: str, source: str, run_id: str | None = None):
    try:
        eng.registry.create_registered_model(name)
    except CairnError as exc:
        assert exc.error_code == "RESOURCE_ALREADY_EXISTS"
    mv = eng.registry.create_model_version(name, source, run_id=run_id, user_id="tester")
    assert mv.status == VersionStatus.PENDING or mv.status == VersionStatus.READY
    return eng.registrar.wait(name, mv.version, WAIT_S)


def onnx_predict(eng, location: str, X: np.ndarray) -> np.ndarray:
    data = ArtifactModelDir(eng.artifacts, location).read("model.onnx")
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: X.astype(np.float32)})[0]


def test_sklearn_run_model_becomes_ready_with_verified_onnx(eng, iris):
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    packaged = package_sklearn(model, X[:20], run_id=None)
    run_id = log_model_files(eng, packaged.files)
    mv = register(eng, "iris", f"runs:/{run_id}/model")
    assert mv.status == VersionStatus.READY, mv.status_message
    assert mv.run_id == run_id
    assert mv.storage_location.startswith("registry/")
    assert mv.signature is not None and mv.signature.inputs
    np.testing.assert_array_equal(onnx_predict(eng, mv.storage_location, X), model.predict(X))
    uri = eng.registry.get_model_version_download_uri("iris", mv.version)
    assert uri == f"mlflow-artifacts:/{mv.storage_location}"


def test_sklearn_only_folder_is_converted_in_the_copy_not_the_source(eng, iris, tmp_path):
    """A folder written by the official mlflow client carries no ONNX: registration adds
    model.onnx and the onnx flavor to the version's copy; the run's files stay as logged."""
    import mlflow.sklearn

    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    folder = tmp_path / "skmodel"
    # Explicit requirements: inferring them runs the model in a subprocess (seconds).
    mlflow.sklearn.save_model(model, folder, input_example=X[:5], pip_requirements=["scikit-learn"])
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert "model.onnx" not in files
    run_id = log_model_files(eng, files)
    mv = register(eng, "converted", f"runs:/{run_id}/model")
    assert mv.status == VersionStatus.READY, mv.status_message
    copy = ArtifactModelDir(eng.artifacts, mv.storage_location)
    assert "model.onnx" in copy.paths()
    assert "onnx" in read_mlmodel(copy.read("MLmodel")).flavors
    source_base = eng.tracking.get_run(run_id).info.artifact_uri.removeprefix("mlflow-artifacts:/")
    assert "model.onnx" not in ArtifactModelDir(eng.artifacts, f"{source_base}/model").paths()
    np.testing.assert_array_equal(onnx_predict(eng, mv.storage_location, X), model.predict(X))


def test_unconvertible_model_fails_with_the_reason_and_keeps_its_files(eng, iris):
    X, y = iris
    packaged = package_sklearn(Stubborn().fit(X, y), X[:20], run_id=None)
    assert packaged.onnx_error
    run_id = log_model_files(eng, packaged.files)
    mv = register(eng, "stubborn", f"runs:/{run_id}/model")
    assert mv.status == VersionStatus.FAILED
    assert "Stubborn" in mv.status_message
    # Still registered, with its original files, for whoever wants to look.
    assert eng.registry.get_model_version("stubborn", mv.version).status == VersionStatus.FAILED
    assert "model.pkl" in ArtifactModelDir(eng.artifacts, mv.storage_location).paths()


def test_missing_source_fails_clearly(eng, iris):
    X, y = iris
    run_id = log_model_files(eng, {"notes.txt": b"no model here"}, path="other")
    mv = register(eng, "ghost", f"runs:/{run_id}/model")
    assert mv.status == VersionStatus.FAILED
    assert "model" in mv.status_message and "does not exist" in mv.status_message


def test_local_onnx_file_registers_with_graph_signature(eng, iris, tmp_path):
    from skl2onnx import to_onnx

    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    onx = to_onnx(model, X[:1], options={"zipmap": False})
    path = tmp_path / "exported.onnx"
    path.write_bytes(onx.SerializeToString())
    mv = register(eng, "exported", str(path))
    assert mv.status == VersionStatus.READY, mv.status_message
    copy = ArtifactModelDir(eng.artifacts, mv.storage_location)
    assert {"MLmodel", "model.onnx"} <= set(copy.paths())
    assert [i.name for i in mv.signature.inputs] == [i.name for i in onx.graph.input]
    np.testing.assert_array_equal(onnx_predict(eng, mv.storage_location, X), model.predict(X))


def test_version_derived_from_another_survives_its_run(eng, iris):
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    run_id = log_model_files(eng, package_sklearn(model, X[:20], run_id=None).files)
    first = register(eng, "base", f"runs:/{run_id}/model")
    assert first.status == VersionStatus.READY, first.status_message
    eng.registry.set_registered_model_alias("base", "champion", first.version)
    derived = register(eng, "edge", "models:/base@champion")
    assert derived.status == VersionStatus.READY, derived.status_message
    assert derived.storage_location != first.storage_location
    assert eng.registry.get_lineage("edge", derived.version).derived_from == "models:/main.default.base/1"
    eng.tracking.delete_run(run_id)
    np.testing.assert_array_equal(onnx_predict(eng, derived.storage_location, X), model.predict(X))


def test_restart_finishes_a_version_left_pending(tmp_path, iris):
    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    eng = engine.open(tmp_path / "data")
    try:
        run_id = log_model_files(eng, package_sklearn(model, X[:20], run_id=None).files)
        eng.registry.create_registered_model("later")
        eng.registrar.close()  # as if the process died before the pipeline ran
        mv = eng.registry.create_model_version("later", f"runs:/{run_id}/model", user_id="tester")
        assert eng.registry.get_model_version("later", mv.version).status == VersionStatus.PENDING
    finally:
        eng.close()
    eng = engine.open(tmp_path / "data")
    try:
        assert eng.registry.get_model_version("later", mv.version).status == VersionStatus.PENDING
        eng.registrar.resume_pending()
        done = eng.registrar.wait("later", mv.version, WAIT_S)
        assert done.status == VersionStatus.READY, done.status_message
    finally:
        eng.close()


def test_logged_model_finalized_ready_gets_its_onnx_conversion(eng, iris, tmp_path):
    """What the mlflow client's sklearn flavor logs (no ONNX) is converted once the
    logged model is finalized READY; the outcome is the model's cairn.onnx tag."""
    import mlflow.sklearn

    from cairn.engine.registry.registration import ONNX_TAG

    X, y = iris
    model = LogisticRegression(max_iter=500).fit(X, y)
    folder = tmp_path / "skmodel"
    # Explicit requirements: inferring them runs the model in a subprocess (seconds).
    mlflow.sklearn.save_model(model, folder, input_example=X[:5], pip_requirements=["scikit-learn"])
    exp = eng.tracking.create_experiment("logged")
    lm = eng.logged_models.create_logged_model(exp, name="model")
    base = lm.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    for p in folder.rglob("*"):
        if p.is_file():
            eng.artifacts.put(f"{base}/{p.relative_to(folder).as_posix()}", p.read_bytes())
    eng.logged_models.finalize_logged_model(lm.model_id, "READY")
    assert eng.registrar.drain(WAIT_S)
    tags = {t.key: t.value for t in eng.logged_models.get_logged_model(lm.model_id).info.tags}
    assert tags[ONNX_TAG] == "READY"
    files = ArtifactModelDir(eng.artifacts, base)
    assert "onnx" in read_mlmodel(files.read("MLmodel")).flavors
    np.testing.assert_array_equal(onnx_predict(eng, base, X), model.predict(X))
