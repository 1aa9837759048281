"""ONNX packaging of models: package_sklearn -> prepare_version -> OnnxPredictor round
trips, directories written by the official mlflow client, ONNX files registered
directly, MLmodel files and input examples, and the refusals (with their reasons)."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from cairn.engine.errors import CairnError
from cairn.engine.models.errors import ConversionError, ModelFormatError, RegistrationError, VerificationError
from cairn.engine.models.mlmodel import add_onnx_flavor, read_input_example, read_mlmodel, write_input_example
from cairn.engine.models.modeldir import LocalModelDir, MemoryModelDir
from cairn.engine.models.onnxconvert import convert_sklearn
from cairn.engine.models.onnxverify import verify
from cairn.engine.models.package import mlmodel_for_onnx, package_sklearn, prepare_onnx_file, prepare_version
from cairn.engine.models.predictor import OnnxPredictor
from cairn.engine.models.signature import OnnxSignature, signature_from_onnx, to_mlflow_signature
from cairn.engine.models.sklearnmodel import load_sklearn_model

pytestmark = pytest.mark.filterwarnings("ignore")


def _f32(a: np.ndarray) -> np.ndarray:
    """float64 values that float32 holds exactly: both models then see the same numbers."""
    return a.astype(np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = _f32(rng.normal(size=(240, 4)) * [1.0, 3.0, 0.5, 10.0])
    y = (X[:, 0] + X[:, 1] / 3 > 0).astype(np.int64)
    y3 = np.digitize(X[:, 0] - X[:, 2], [-0.6, 0.6])
    yr = X @ np.array([1.5, -2.0, 4.0, 0.3]) + 7.0
    return X, y, y3, yr


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    n = 200
    df = pd.DataFrame({
        "age": _f32(rng.normal(40, 12, n)),
        "visits": rng.integers(0, 9, n),
        "plan": rng.choice(["basic", "plus", "pro"], n),
    })
    y = np.where((df.age > 40) ^ (df.plan == "pro"), "churn", "stay")
    pipe = Pipeline([
        ("prep", ColumnTransformer([
            ("onehot", OneHotEncoder(), ["plan"]),
            ("scale", StandardScaler(), ["age", "visits"]),
        ])),
        ("clf", LogisticRegression()),
    ]).fit(df, y)
    return df, pipe


def _fit(name: str, data):
    X, y, y3, yr = data
    scaled = X / [1, 3, 0.5, 10]
    model, Xm, target = {
        "logistic": (LogisticRegression(max_iter=500), X, y3),
        "random_forest": (RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0), X, y),
        "gradient_boosting": (GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0), X, y3),
        "hist_gradient_boosting": (HistGradientBoostingClassifier(max_iter=10, random_state=0), X, y),
        "mlp": (MLPClassifier((8,), max_iter=300, random_state=0), scaled, y3),
        "random_forest_regressor": (RandomForestRegressor(n_estimators=5, max_depth=6, random_state=0), X, yr),
        "linear_regression": (LinearRegression(), X, yr),
    }[name]
    return model.fit(Xm, target), Xm


def _assert_same_predictions(predicted, expected, regressor: bool) -> None:
    predicted, expected = np.asarray(predicted), np.asarray(expected)
    assert predicted.shape == expected.shape
    if regressor:
        np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-5)
    else:
        assert (predicted == expected).all()


def _without_onnx(files: dict[str, bytes]) -> dict[str, bytes]:
    """The sklearn-only directory: what the official mlflow client logs."""
    out = {k: v for k, v in files.items() if k != "model.onnx"}
    mlmodel = read_mlmodel(out["MLmodel"])
    del mlmodel.flavors["onnx"]
    out["MLmodel"] = mlmodel.dump().encode()
    return out


def _write(files: dict[str, bytes], path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(content)
    return path


# -- round trips: package -> prepare -> predict --------------------------------------


@pytest.mark.parametrize("name", [
    "logistic", "random_forest", "gradient_boosting", "hist_gradient_boosting", "mlp",
    "random_forest_regressor", "linear_regression",
])
def test_numeric_round_trip(data, name):
    model, X = _fit(name, data)
    X = _f32(X)
    regressor = name.endswith("regressor") or name == "linear_regression"
    packaged = package_sklearn(model, X, run_id="r1")
    assert packaged.onnx_error is None
    assert packaged.signature.layout == "matrix"
    assert [c.name for c in packaged.signature.columns] == ["x0", "x1", "x2", "x3"]
    assert packaged.signature.output_names() == (["predictions"] if regressor else ["label", "probabilities"])
    mlmodel = read_mlmodel(packaged.files["MLmodel"])
    assert {"python_function", "sklearn", "onnx"} <= set(mlmodel.flavors)
    assert mlmodel.flavors["python_function"]["loader_module"] == "mlflow.sklearn"

    # Cairn's own directory: the onnx flavor is checked and verified again.
    prepared = prepare_version(MemoryModelDir(packaged.files))
    assert prepared.source_flavor == "onnx" and prepared.verified_rows == 20
    assert prepared.signature == packaged.signature and prepared.mlmodel is None
    # The same directory without the onnx flavor: converted from the pickle.
    converted = prepare_version(MemoryModelDir(_without_onnx(packaged.files)))
    assert converted.source_flavor == "sklearn" and converted.onnx_path == "model.onnx"
    assert "onnx" in read_mlmodel(converted.mlmodel).flavors
    predictor = OnnxPredictor(converted.onnx, converted.signature)
    _assert_same_predictions(predictor.predict(X), model.predict(X), regressor)


def test_hist_gradient_boosting_thresholds_near_training_values():
    """More distinct values than bins: the split thresholds are quantiles, within a
    float32 step of training values. Nearest rounding of those thresholds flipped rows
    (39 of 300 here); the conversion rounds them down, so every training row agrees."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)) * [1, 10, 100, 0.1, 1000]
    y = (X[:, 0] + X[:, 1] / 10 > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    onnx_bytes, sig = convert_sklearn(model, X)
    report = verify(onnx_bytes, sig, model, X)
    assert report.rows == 300 and report.max_abs_diff < 1e-6


def test_mixed_pipeline_round_trip(frame, tmp_path):
    df, pipe = frame
    packaged = package_sklearn(pipe, df, run_id="r2", pickle_format="pickle")
    sig = packaged.signature
    assert packaged.onnx_error is None and sig.layout == "columns"
    assert [(t.name, t.type, t.shape) for t in sig.inputs] == [
        ("age", "float32", [-1, 1]), ("visits", "float32", [-1, 1]), ("plan", "string", [-1, 1])
    ]
    assert [(c.name, c.type) for c in sig.columns] == [("age", "double"), ("visits", "long"), ("plan", "string")]
    assert sig.outputs[0].type == "string"
    mlmodel = read_mlmodel(packaged.files["MLmodel"])
    assert json.loads(mlmodel.signature["inputs"])[2] == {"type": "string", "name": "plan", "required": True}
    assert json.loads(mlmodel.signature["outputs"]) == [{"type": "string", "required": True}]
    assert mlmodel.flavors["sklearn"]["serialization_format"] == "pickle"
    example = json.loads(packaged.files["input_example.json"])
    assert example["columns"] == ["age", "visits", "plan"] and len(example["data"]) == 20

    prepared = prepare_version(LocalModelDir(_write(_without_onnx(packaged.files), tmp_path / "m")))
    assert prepared.signature.layout == "columns" and prepared.verified_rows == 20
    predictor = OnnxPredictor(prepared.onnx, prepared.signature)
    assert (predictor.predict(df) == pipe.predict(df)).all()
    assert (predictor.predict(df.to_dict("records")) == pipe.predict(df)).all()


def test_numeric_frame_with_feature_names(data):
    X, y, _, _ = data
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = LogisticRegression().fit(df, y)
    packaged = package_sklearn(model, df, run_id=None)
    assert packaged.signature.layout == "matrix"
    assert [c.name for c in packaged.signature.columns] == ["a", "b", "c", "d"]
    predictor = OnnxPredictor(packaged.files["model.onnx"], packaged.signature)
    # Columns are taken by name: another order, and an extra column, change nothing.
    shuffled = df[["d", "b", "a", "c"]].assign(extra="ignored")
    assert (predictor.predict(shuffled) == model.predict(df)).all()


def test_records_and_sparse_samples(frame, data):
    df, pipe = frame
    packaged = package_sklearn(pipe, df.head(30).to_dict("records"), run_id=None)
    assert packaged.onnx_error is None and packaged.signature.layout == "columns"
    assert read_mlmodel(packaged.files["MLmodel"]).saved_input_example_info["type"] == "dataframe"
    import scipy.sparse

    X, y, _, _ = data
    model = LogisticRegression().fit(scipy.sparse.csr_matrix(X), y)
    packaged = package_sklearn(model, scipy.sparse.csr_matrix(X), run_id=None)
    assert packaged.onnx_error is None and packaged.signature.layout == "matrix"


def test_name_selecting_pipeline_on_numeric_frame_feeds_columns(data):
    X, y, _, _ = data
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    pipe = Pipeline([
        ("prep", ColumnTransformer([("scale", StandardScaler(), ["a", "c"])], remainder="drop")),
        ("clf", LogisticRegression()),
    ]).fit(df, y)
    onnx_bytes, sig = convert_sklearn(pipe, df)
    assert sig.layout == "columns" and sig.input_names() == ["a", "b", "c", "d"]
    assert verify(onnx_bytes, sig, pipe, df).rows == len(df)


def test_pyfunc_loads_packaged_directory(frame, tmp_path):
    import mlflow.pyfunc
    import mlflow.sklearn

    df, pipe = frame
    path = _write(package_sklearn(pipe, df, run_id="r3").files, tmp_path / "model")
    assert (np.asarray(mlflow.pyfunc.load_model(str(path)).predict(df)) == pipe.predict(df)).all()
    assert (mlflow.sklearn.load_model(str(path)).predict(df) == pipe.predict(df)).all()
    # The onnx flavor is MLflow's own: mlflow.onnx loads the file it names.
    import mlflow.onnx

    assert mlflow.onnx.load_model(str(path)).graph.output[0].name == "label"


# -- models skl2onnx cannot convert --------------------------------------------------


class MedianSplitClassifier(ClassifierMixin, BaseEstimator):
    """A custom estimator: skl2onnx has no converter for it."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.median_ = np.median(np.asarray(X)[:, 0])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return self.classes_[(np.asarray(X)[:, 0] > self.median_).astype(int)]


def test_unconvertible_model(data):
    X, y, _, _ = data
    model = MedianSplitClassifier().fit(X, y)
    with pytest.raises(ConversionError, match="MedianSplitClassifier"):
        convert_sklearn(model, X)
    packaged = package_sklearn(model, X, run_id="r4")
    assert packaged.signature is None and "MedianSplitClassifier" in packaged.onnx_error
    assert "model.onnx" not in packaged.files and "model.pkl" in packaged.files
    assert "onnx" not in read_mlmodel(packaged.files["MLmodel"]).flavors
    with pytest.raises(RegistrationError, match="Conversion to ONNX failed.*MedianSplitClassifier") as err:
        prepare_version(MemoryModelDir(packaged.files))
    assert isinstance(err.value, CairnError) and err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_unconvertible_step_inside_pipeline(data):
    X, y, _, _ = data
    pipe = Pipeline([("scale", StandardScaler()), ("clf", MedianSplitClassifier())]).fit(X, y)
    with pytest.raises(ConversionError) as err:
        convert_sklearn(pipe, X)
    assert "Pipeline" in err.value.message and "MedianSplitClassifier" in err.value.message


def test_verification_failure_names_rows(data):
    X, _, y3, _ = data
    model = LogisticRegression(max_iter=500).fit(X, y3)
    onnx_bytes, sig = convert_sklearn(model, X)
    other = LogisticRegression(max_iter=500).fit(X, (y3 + 1) % 3)
    with pytest.raises(VerificationError, match=r"of 240 sample rows.*first bad row \d+"):
        verify(onnx_bytes, sig, other, X)


# -- directories written by the official mlflow client -------------------------------


@pytest.mark.parametrize("fmt,with_example", [
    ("pickle", True), ("cloudpickle", False), ("skops", True),
])
def test_official_mlflow_sklearn_directory(data, tmp_path, fmt, with_example):
    import mlflow.sklearn

    X, _, y3, _ = data
    model = RandomForestClassifier(n_estimators=4, max_depth=5, random_state=0).fit(X, y3)
    path = tmp_path / "mlflow_model"
    mlflow.sklearn.save_model(
        model, str(path), serialization_format=fmt, pip_requirements=["scikit-learn"],
        input_example=X[:5] if with_example else None,
        # mlflow checks the file loads; skops asks for its tree type to be named.
        skops_trusted_types=["sklearn.tree._tree.Tree"] if fmt == "skops" else None,
    )
    assert load_sklearn_model(LocalModelDir(path)).n_estimators == 4
    prepared = prepare_version(LocalModelDir(path))
    assert prepared.source_flavor == "sklearn"
    assert prepared.verified_rows == (5 if with_example else 20)  # else synthesized rows
    assert prepared.signature.layout == "matrix"
    mlmodel = read_mlmodel(prepared.mlmodel)
    assert mlmodel.flavors["onnx"]["data"] == "model.onnx"
    assert mlmodel.flavors["sklearn"]["serialization_format"] == fmt
    assert mlmodel.flavors["python_function"]["loader_module"] == "mlflow.sklearn"
    predictor = OnnxPredictor(prepared.onnx, prepared.signature)
    assert (predictor.predict(X) == model.predict(X)).all()


@pytest.mark.parametrize("with_signature", [True, False])
def test_official_mlflow_mixed_pipeline_without_example(frame, tmp_path, with_signature):
    """No input example: rows are synthesized from the MLflow signature (else from the
    estimator's feature_names_in_), text columns from the categories the encoder knows
    (OneHotEncoder refuses unknown ones)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    df, pipe = frame
    path = tmp_path / "mlflow_pipe"
    mlflow.sklearn.save_model(
        pipe, str(path), serialization_format="cloudpickle", pip_requirements=["scikit-learn"],
        signature=infer_signature(df, pipe.predict(df)) if with_signature else None,
    )
    prepared = prepare_version(LocalModelDir(path))
    assert prepared.signature.layout == "columns" and prepared.verified_rows == 20
    predictor = OnnxPredictor(prepared.onnx, prepared.signature)
    assert (predictor.predict(df) == pipe.predict(df)).all()


def test_official_mlflow_onnx_directory_with_external_data(data, tmp_path):
    """mlflow.onnx.save_model keeps tensors over 1 KiB in a separate file: the version
    gets a self-contained copy, and the onnx flavor names it."""
    import mlflow.onnx
    import mlflow.pyfunc

    X, _, y3, _ = data
    model = MLPClassifier((100,), max_iter=200, random_state=0).fit(X / 10, y3)
    onnx_bytes, _ = convert_sklearn(model, X / 10)
    import onnx
    from onnx import numpy_helper

    onx = onnx.load_model_from_string(onnx_bytes)
    for tensor in onx.graph.initializer:  # raw_data, as exporters write it: onnx moves only those
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    path = tmp_path / "mlflow_onnx"
    mlflow.onnx.save_model(onx, str(path), pip_requirements=["onnx"])
    assert len(list(path.iterdir())) > 5  # model.onnx plus its external tensor file
    prepared = prepare_version(LocalModelDir(path))
    assert prepared.source_flavor == "onnx" and prepared.onnx_path == "model-embedded.onnx"
    assert read_mlmodel(prepared.mlmodel).flavors["onnx"]["data"] == "model-embedded.onnx"
    assert prepared.signature.layout == "tensor" and prepared.signature.input_names() == ["X"]
    predictor = OnnxPredictor(prepared.onnx, prepared.signature)
    assert (predictor.predict(_f32(X / 10)) == model.predict(_f32(X / 10))).all()
    # Written back, the directory still loads in MLflow from the embedded copy.
    (path / "model-embedded.onnx").write_bytes(prepared.onnx)
    (path / "MLmodel").write_bytes(prepared.mlmodel)
    out = mlflow.pyfunc.load_model(str(path)).predict(X[:3].astype(np.float32) / 10)
    assert list(out["label"]) == list(model.predict(_f32(X[:3] / 10)))


# -- ONNX files registered directly --------------------------------------------------


def _helper_model() -> bytes:
    """Two named inputs, as a PyTorch export has: y = a @ W + b (b a [N, 2] tensor)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "W")
    nodes = [helper.make_node("MatMul", ["a", "W"], ["aw"]), helper.make_node("Add", ["aw", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [a, b], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_onnx_file_from_helper():
    prepared = prepare_onnx_file(_helper_model())
    sig = prepared.signature
    assert sig.layout == "tensor" and sig.columns == []
    assert [(t.name, t.type, t.shape) for t in sig.inputs] == [("a", "float32", [-1, 3]), ("b", "float32", [-1, 2])]
    assert [(t.name, t.type, t.shape) for t in sig.outputs] == [("y", "float32", [-1, 2])]
    assert prepared.onnx_path == "model.onnx" and prepared.source_flavor == "onnx"
    mlflow_sig = to_mlflow_signature(sig)
    assert json.loads(mlflow_sig["inputs"])[0] == {
        "type": "tensor", "name": "a", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}
    }
    out = OnnxPredictor(prepared.onnx).predict({"a": [[1, 0, 0], [0, 0, 1]], "b": np.ones((2, 2))})
    np.testing.assert_allclose(out, [[1, 2], [5, 6]])


def test_onnx_file_from_skl2onnx(data, tmp_path):
    import mlflow.pyfunc
    from skl2onnx import to_onnx

    X, y, _, _ = data
    model = LogisticRegression().fit(X, y)
    onx = to_onnx(model, X[:1].astype(np.float32), options={"zipmap": False})
    prepared = prepare_onnx_file(onx.SerializeToString())
    sig = prepared.signature
    assert [(t.name, t.type, t.shape) for t in sig.inputs] == [("X", "float32", [-1, 4])]
    assert [(t.name, t.type) for t in sig.outputs] == [("label", "int64"), ("probabilities", "float32")]
    assert (OnnxPredictor(prepared.onnx).predict(X) == model.predict(_f32(X))).all()
    # With mlmodel_for_onnx beside it, the file is an MLflow model directory.
    path = _write({"model.onnx": prepared.onnx, "MLmodel": mlmodel_for_onnx(prepared.onnx, sig)}, tmp_path / "d")
    out = mlflow.pyfunc.load_model(str(path)).predict(X[:4].astype(np.float32))
    assert list(out["label"]) == list(model.predict(_f32(X[:4])))


def test_bare_folder_with_one_onnx_file():
    prepared = prepare_version(MemoryModelDir({"net/exported.onnx": _helper_model()}))
    assert prepared.onnx_path == "net/exported.onnx"
    assert read_mlmodel(prepared.mlmodel).flavors["onnx"]["data"] == "net/exported.onnx"
    assert prepared.signature.input_names() == ["a", "b"]


@pytest.mark.parametrize("files,reason", [
    ({"notes.txt": b"x"}, "no MLmodel file and no .onnx file"),
    ({"a.onnx": b"x", "b.onnx": b"y"}, "2 .onnx files"),
    ({"model.onnx": b"not onnx"}, "Not a readable ONNX model"),
    ({"MLmodel": b"flavors: [unclosed"}, "Invalid MLmodel"),
    ({"MLmodel": b"flavors:\n  pytorch:\n    model_data: data\n  python_function:\n    loader_module: mlflow.pytorch\n"},
     "flavor pytorch: export it with torch.onnx.export"),
    ({"MLmodel": b"flavors:\n  sklearn:\n    pickled_model: model.pkl\n    serialization_format: pickle\n"},
     "model file 'model.pkl' is missing"),
    ({"MLmodel": b"flavors:\n  onnx:\n    data: model.onnx\n"}, "'model.onnx' is missing"),
])
def test_registration_refusals(files, reason):
    with pytest.raises(RegistrationError, match=reason):
        prepare_version(MemoryModelDir(files))


# -- MLmodel files, input examples, signatures ---------------------------------------


def test_mlmodel_round_trip_keeps_unknown_keys():
    text = (
        "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n  sklearn:\n    pickled_model: model.pkl\n"
        "mlflow_version: 3.17.2\nmodel_id: null\nmodel_uuid: abc\nprompts: null\nrun_id: r\n"
        "utc_time_created: '2026-01-01 00:00:00.000000'\ncustom_key: {nested: [1, 2]}\n"
    )
    m = read_mlmodel(text)
    assert m.run_id == "r" and m.model_uuid == "abc" and m.artifact_path == "model"
    add_onnx_flavor(m, "model.onnx", onnx_version="1.23.2")
    again = read_mlmodel(m.dump().encode())
    assert again.extra["custom_key"] == {"nested": [1, 2]} and again.extra["mlflow_version"] == "3.17.2"
    assert "model_id" in again.extra and again.extra["model_id"] is None
    assert again.flavors["python_function"]["loader_module"] == "mlflow.sklearn"
    assert again.flavors["onnx"] == {
        "code": None, "data": "model.onnx", "onnx_session_options": None, "onnx_version": "1.23.2",
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    }
    with pytest.raises(ModelFormatError, match="no flavors"):
        read_mlmodel("run_id: x\n")


@pytest.mark.parametrize("content,info,expected", [
    ({"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}, {"type": "dataframe", "pandas_orient": "split"},
     [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]),
    ({"data": [[1, 2]]}, {"type": "dataframe", "pandas_orient": "values"}, [[1, 2]]),
    ([{"a": 1}, {"a": 2}], {"type": "json_object"}, [{"a": 1}, {"a": 2}]),
    ({"inputs": {"a": [[1, 2]], "b": [[3]]}}, {"type": "ndarray"}, {"a": [[1, 2]], "b": [[3]]}),
    ({"inputs": [[1.5, 2.5]]}, None, [[1.5, 2.5]]),
    ([[1, 2], [3, 4]], {"type": "ndarray"}, [[1, 2], [3, 4]]),
    ({"a": 1, "b": "x"}, {"type": "json_object"}, [{"a": 1, "b": "x"}]),
])
def test_read_input_example_formats(content, info, expected):
    files = {"input_example.json": json.dumps(content).encode()}
    mlmodel = read_mlmodel(
        "flavors: {sklearn: {}}\n" + (f"saved_input_example_info: {json.dumps(info)}\n" if info else "")
    )
    assert read_input_example(MemoryModelDir(files), mlmodel) == expected
    assert read_input_example(MemoryModelDir({}), mlmodel) is None


def test_write_input_example_matches_mlflow(frame, tmp_path):
    from mlflow.models import Model
    from mlflow.models.utils import _save_example

    df, _ = frame
    for sample in (df.head(3), df[["age", "visits"]].to_numpy()[:3]):
        ours, info = write_input_example(sample)
        model = Model()
        _save_example(model, sample, str(tmp_path))
        assert json.loads(ours) == json.loads((tmp_path / "input_example.json").read_text())
        assert info == model.saved_input_example_info


def test_signature_from_onnx_and_msgpack_round_trip(data):
    import msgspec

    X, y, _, _ = data
    onnx_bytes, sig = convert_sklearn(LogisticRegression().fit(X, y), X)
    graph = signature_from_onnx(onnx_bytes)
    assert graph.layout == "tensor" and graph.inputs == sig.inputs and graph.columns == []
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(sig), type=OnnxSignature) == sig
    mlflow_sig = to_mlflow_signature(sig)
    assert json.loads(mlflow_sig["inputs"])[0] == {"type": "double", "name": "x0", "required": True}
    assert json.loads(mlflow_sig["outputs"]) == [
        {"type": "tensor", "name": "label", "tensor-spec": {"dtype": "int64", "shape": [-1]}},
        {"type": "tensor", "name": "probabilities", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}},
    ]
    with pytest.raises(ModelFormatError):
        signature_from_onnx(b"\x00garbage")


# -- loading the sklearn flavor ------------------------------------------------------


def test_load_sklearn_model_refusals(data):
    import skops.io

    X, y, _, _ = data
    with pytest.raises(ModelFormatError, match="no MLmodel"):
        load_sklearn_model(MemoryModelDir({}))
    with pytest.raises(ModelFormatError, match="no sklearn flavor"):
        load_sklearn_model(MemoryModelDir({"MLmodel": b"flavors: {onnx: {data: m.onnx}}\n"}))
    with pytest.raises(ModelFormatError, match="Unknown sklearn serialization_format 'joblib'"):
        load_sklearn_model(MemoryModelDir({
            "MLmodel": b"flavors: {sklearn: {pickled_model: m.pkl, serialization_format: joblib}}\n",
            "m.pkl": b"",
        }))
    custom = skops.io.dumps(MedianSplitClassifier().fit(X, y))
    with pytest.raises(ModelFormatError, match="not trusted: .*MedianSplitClassifier"):
        load_sklearn_model(MemoryModelDir({
            "MLmodel": b"flavors: {sklearn: {pickled_model: m.skops, serialization_format: skops}}\n",
            "m.skops": custom,
        }))
    # A file that unpickles to something other than an estimator is not a model.
    with pytest.raises(ModelFormatError, match="m.pkl does not hold a scikit-learn model: it loaded as dict"):
        load_sklearn_model(MemoryModelDir({
            "MLmodel": b"flavors: {sklearn: {pickled_model: m.pkl, serialization_format: pickle}}\n",
            "m.pkl": pickle.dumps({"coef": [1.0]}),
        }))
