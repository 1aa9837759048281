"""OnnxPredictor: feeds from every input shape serving receives (DataFrame, dict of
columns, records, 2-D list/array, named tensors), errors that name the column, and the
session settings serving relies on."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from cairn.engine.errors import CairnError
from cairn.engine.models.onnxconvert import convert_sklearn
from cairn.engine.models.predictor import OnnxPredictor
from cairn.engine.models.signature import OnnxSignature, TensorSpec

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def numeric():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(60, 3)).astype(np.float32).astype(np.float64), columns=["a", "b", "c"])
    y = (df.a - df.c > 0).astype(int)
    model = LogisticRegression().fit(df, y)
    onnx_bytes, sig = convert_sklearn(model, df)
    return df, model, OnnxPredictor(onnx_bytes, sig)


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({
        "size": rng.normal(size=80).astype(np.float32).astype(np.float64),
        "color": rng.choice(["red", "green", "blue"], 80),
    })
    y = np.where((df["size"] > 0) | (df.color == "red"), "keep", "drop")
    pipe = Pipeline([
        ("prep", ColumnTransformer([("oh", OneHotEncoder(), ["color"]), ("sc", StandardScaler(), ["size"])])),
        ("clf", LogisticRegression()),
    ]).fit(df, y)
    onnx_bytes, sig = convert_sklearn(pipe, df)
    return df, pipe, OnnxPredictor(onnx_bytes, sig)


def test_matrix_layout_accepts_every_input_shape(numeric):
    df, model, predictor = numeric
    expected = model.predict(df)
    assert predictor.signature.layout == "matrix"
    for data in (
        df,
        {k: df[k].tolist() for k in df.columns},
        {k: df[k].to_numpy() for k in df.columns},
        df.to_dict("records"),
        df.to_numpy(),
        df.to_numpy().tolist(),
        df.to_numpy().astype(np.float32),
    ):
        assert (predictor.predict(data) == expected).all(), type(data)


def test_matrix_feeds_are_float32_and_fast_paths_keep_arrays(numeric):
    df, _, predictor = numeric
    feeds = predictor.feeds(df)
    assert list(feeds) == ["X"] and feeds["X"].dtype == np.float32 and feeds["X"].shape == (60, 3)
    x32 = np.ascontiguousarray(df.to_numpy(dtype=np.float32))
    assert predictor.feeds(x32)["X"] is x32  # already right: no copy
    out = predictor.run(feeds)
    assert set(out) == {"label", "probabilities"} and out["probabilities"].shape == (60, 2)


def test_columns_layout_accepts_every_input_shape(mixed):
    df, pipe, predictor = mixed
    expected = pipe.predict(df)
    assert predictor.signature.layout == "columns"
    for data in (df, {k: df[k].tolist() for k in df.columns}, df.to_dict("records"), df.to_numpy(dtype=object).tolist()):
        assert (predictor.predict(data) == expected).all(), type(data)
    feeds = predictor.feeds(df.head(4))
    assert feeds["size"].dtype == np.float32 and feeds["size"].shape == (4, 1)
    assert feeds["color"].dtype == object and feeds["color"].shape == (4, 1)


def test_extra_columns_are_ignored(mixed, numeric):
    df, pipe, predictor = mixed
    assert (predictor.predict(df.assign(note="x")) == pipe.predict(df)).all()
    records = [dict(r, unused=1) for r in df.head(5).to_dict("records")]
    assert (predictor.predict(records) == pipe.predict(df.head(5))).all()
    ndf, model, npred = numeric
    assert (npred.predict({**{k: ndf[k].tolist() for k in ndf}, "z": [0] * len(ndf)}) == model.predict(ndf)).all()


@pytest.mark.parametrize("make", [
    lambda df: df.drop(columns="size"),
    lambda df: {"color": df.color.tolist()},
    lambda df: [{"color": c} for c in df.color],
])
def test_missing_column_is_named(mixed, make):
    df, _, predictor = mixed
    with pytest.raises(CairnError, match="Missing column 'size'") as err:
        predictor.feeds(make(df.head(3)))
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and err.value.http_status == 400


@pytest.mark.parametrize("column,values,words", [
    ("size", ["big", "small", "tiny"], r"'size' must hold numbers \(float32\), got 'big'"),
    ("color", [1.0, 2.0, 3.0], "'color' must hold strings, got 1.0"),
    ("color", ["red", None, "blue"], "'color' must hold strings, got a missing value"),
])
def test_wrong_type_is_named(mixed, column, values, words):
    df, _, predictor = mixed
    bad = df.head(3).assign(**{column: values})
    for data in (bad, bad.to_dict("records"), {k: bad[k].tolist() for k in bad.columns}):
        with pytest.raises(CairnError, match=words):
            predictor.feeds(data)


def test_matrix_wrong_type_and_shape(numeric):
    df, _, predictor = numeric
    with pytest.raises(CairnError, match="Column 'b' must hold numbers"):
        predictor.feeds(df.head(2).assign(b=["x", "y"]))
    with pytest.raises(CairnError, match="Column 'c' must hold numbers .*, got 'x'"):
        predictor.feeds([[1.0, 2.0, "x"]])
    with pytest.raises(CairnError, match="2-D array with 3 columns"):
        predictor.feeds(np.zeros((2, 4)))
    # None among numbers is a missing value (NaN), as MLflow reads it.
    feeds = predictor.feeds([{"a": 1.0, "b": None, "c": 2.0}])
    assert np.isnan(feeds["X"][0, 1])


def test_regressor_predicts_flat_array():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 2)).astype(np.float32).astype(np.float64)
    model = LinearRegression().fit(X, X @ [2.0, -1.0] + 0.5)
    onnx_bytes, sig = convert_sklearn(model, X)
    out = OnnxPredictor(onnx_bytes, sig).predict(X)
    assert out.shape == (40,)
    np.testing.assert_allclose(out, model.predict(X), rtol=1e-5, atol=1e-5)


def _two_input_model() -> bytes:
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 2])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, ["n", 2])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", 2])
    kf = helper.make_tensor_value_info("kf", TensorProto.FLOAT, ["n", 2])
    nodes = [
        helper.make_node("Cast", ["k"], ["k32"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["a", "k32"], ["s"]),
        helper.make_node("Identity", ["k32"], ["kf"]),
    ]
    graph = helper.make_graph(nodes, "g", [a, k], [s, kf])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_tensor_layout():
    predictor = OnnxPredictor(_two_input_model())
    assert predictor.signature.layout == "tensor"
    out = predictor.predict({"a": [[1.5, 2.5]], "k": [[1, 2]]})
    assert set(out) == {"s", "kf"}
    np.testing.assert_allclose(out["s"], [[2.5, 4.5]])
    assert predictor.feeds({"a": [[1.0, 2.0]], "k": [[1, 2]]})["k"].dtype == np.int64
    with pytest.raises(CairnError, match="Missing input 'k'"):
        predictor.feeds({"a": [[1.0, 2.0]]})
    with pytest.raises(CairnError, match=r"Input 'a' must have shape \[-1, 2\]"):
        predictor.feeds({"a": [[1.0, 2.0, 3.0]], "k": [[1, 2]]})
    with pytest.raises(CairnError, match="2 named inputs"):
        predictor.feeds([[1.0, 2.0]])
    with pytest.raises(CairnError, match="Column 'k' must hold integers"):
        predictor.feeds({"a": [[1.0, 2.0]], "k": [["x", "y"]]})


def test_single_tensor_model_takes_a_bare_array():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    predictor = OnnxPredictor(model.SerializeToString())
    np.testing.assert_allclose(predictor.predict([[-1.0, 0.5, 2.0]]), [[0.0, 0.5, 2.0]])
    np.testing.assert_allclose(predictor.predict(pd.DataFrame([[-1.0, 0.5, 2.0]])), [[0.0, 0.5, 2.0]])


def test_session_settings(numeric, tmp_path):
    _, _, predictor = numeric
    assert predictor.providers == ["CPUExecutionProvider"]
    opts = predictor.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.log_severity_level == 3
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    path = tmp_path / "m.onnx"
    path.write_bytes(_two_input_model())
    assert OnnxPredictor(str(path)).signature.input_names() == ["a", "k"]
    with pytest.raises(CairnError, match="ONNX Runtime cannot load"):
        OnnxPredictor(b"\x08\x07garbage", OnnxSignature(inputs=[TensorSpec("X", "float32", [-1, 1])], outputs=[]))


def test_table_feeds_take_columns_and_rows(numeric, mixed):
    df, _, predictor = numeric
    rows = df.head(5).to_numpy().tolist()
    feeds = predictor.table_feeds(["a", "b", "c"], rows)
    assert feeds["X"].dtype == np.float32 and feeds["X"].shape == (5, 3)
    reordered = predictor.table_feeds(["c", "note", "a", "b"], [[r[2], "x", r[0], r[1]] for r in rows])
    np.testing.assert_array_equal(reordered["X"], feeds["X"])
    np.testing.assert_array_equal(predictor.table_feeds(None, rows)["X"], feeds["X"])
    with pytest.raises(CairnError, match="Row 1 has 2 values"):
        predictor.table_feeds(["a", "b", "c"], [[1, 2, 3], [1, 2]])
    with pytest.raises(CairnError, match="Missing column 'b'"):
        predictor.table_feeds(["a", "c"], [[1, 3]])
    mdf, pipe, mpred = mixed
    cols = list(mdf.columns[::-1])
    feeds = mpred.table_feeds(cols, mdf[cols].head(6).to_numpy(dtype=object).tolist())
    assert (mpred.run(feeds)["label"] == pipe.predict(mdf.head(6))).all()
    assert feeds["color"].dtype == object and feeds["size"].dtype == np.float32
    with pytest.raises(CairnError, match="'color' must hold strings"):
        mpred.table_feeds(["size", "color"], [[0.5, 3]])


def test_pyfunc_output_is_what_predict_gives(numeric):
    from cairn.engine.models.predictor import pyfunc_output

    df, model, predictor = numeric
    out = predictor.run(predictor.feeds(df.head(4)))
    assert (pyfunc_output(out, predictor.signature) == model.predict(df.head(4))).all()
