"""The scoring protocol without a server: every request format (JSON's four and CSV)
against matrix-, columns- and tensor-layout signatures, each error with its status and
MLflow error code, and responses shaped as MLflow's pyfunc serving writes them."""
from __future__ import annotations

import io
import json
import math
import re

import msgspec
import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from cairn.app.serving.scoring import ParsedRequest, ScoringError, format_response, parse_request
from cairn.engine.models.onnxconvert import convert_sklearn
from cairn.engine.models.predictor import OnnxPredictor

pytestmark = pytest.mark.filterwarnings("ignore")
JSON = "application/json"


def _f32(df: pd.DataFrame) -> pd.DataFrame:
    # Values exactly representable in float32: the ONNX model and sklearn see one input.
    return df.astype({c: np.float32 for c in df.columns if df[c].dtype.kind == "f"}).astype(
        {c: np.float64 for c in df.columns if df[c].dtype.kind == "f"}
    )


@pytest.fixture(scope="module")
def numeric():
    rng = np.random.default_rng(1)
    df = _f32(pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"]))
    model = LogisticRegression().fit(df, (df.a - df.c > 0).astype(int))
    return df, model, OnnxPredictor(*convert_sklearn(model, df))


@pytest.fixture(scope="module")
def regressor():
    rng = np.random.default_rng(3)
    df = _f32(pd.DataFrame(rng.normal(size=(30, 2)), columns=["u", "v"]))
    model = LinearRegression().fit(df, 2 * df.u - df.v)
    return df, model, OnnxPredictor(*convert_sklearn(model, df))


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(2)
    df = _f32(pd.DataFrame({
        "size": rng.normal(size=60),
        "count": rng.integers(0, 5, 60),
        "color": rng.choice(["red", "green", "blue"], 60),
    }))
    y = np.where((df["size"] > 0) | (df.color == "red"), "keep", "drop")
    pipe = Pipeline([
        ("prep", ColumnTransformer([("oh", OneHotEncoder(), ["color"]), ("sc", StandardScaler(), ["size", "count"])])),
        ("clf", LogisticRegression()),
    ]).fit(df, y)
    return df, pipe, OnnxPredictor(*convert_sklearn(pipe, df))


W = np.array([[1.0, 0.5], [2.0, -1.0], [0.0, 3.0]], dtype=np.float32)


def _onnx(nodes, inputs, outputs, inits=()) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def tensor():
    """y = x @ W: one float input [-1, 3], one output [-1, 2]."""
    data = _onnx(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor("W", TensorProto.FLOAT, [3, 2], W.ravel().tolist())],
    )
    return OnnxPredictor(data)


@pytest.fixture(scope="module")
def two_inputs():
    """sum = x + float(k), twice = k + k: named float and int64 inputs, two outputs."""
    data = _onnx(
        [
            helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["x", "kf"], ["sum"]),
            helper.make_node("Add", ["k", "k"], ["twice"]),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [None, 1]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("twice", TensorProto.INT64, [None, 1]),
        ],
    )
    return OnnxPredictor(data)


def score(predictor, body, content_type: str = JSON) -> tuple[ParsedRequest, object]:
    if not isinstance(body, bytes):
        body = msgspec.json.encode(body)
    parsed = parse_request(content_type, body, predictor.signature)
    return parsed, json.loads(format_response(predictor.run(parsed.feeds), predictor.signature))


def refused(predictor, body, content_type: str = JSON) -> ScoringError:
    if not isinstance(body, bytes):
        body = msgspec.json.encode(body)
    with pytest.raises(ScoringError) as err:
        parse_request(content_type, body, predictor.signature)
    error = json.loads(err.value.body())
    assert set(error) == {"error_code", "message"} and error["message"] == err.value.message
    return err.value


def table_bodies(df: pd.DataFrame) -> dict[str, dict]:
    """One table in every JSON shape MLflow's scoring server takes."""
    split = json.loads(df.to_json(orient="split"))
    records = json.loads(df.to_json(orient="records"))
    columns = {c: json.loads(df[c].to_json(orient="values")) for c in df.columns}
    return {
        "split": {"dataframe_split": split},
        "split-no-index": {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        "split-reordered": {"dataframe_split": json.loads(df[df.columns[::-1]].to_json(orient="split"))},
        "split-extra-column": {"dataframe_split": json.loads(df.assign(note="x").to_json(orient="split"))},
        "records": {"dataframe_records": records},
        "instances-records": {"instances": records},
        "instances-rows": {"instances": split["data"]},
        "instances-columns": {"instances": columns},
        "inputs-records": {"inputs": records},
        "inputs-rows": {"inputs": split["data"]},
        "inputs-columns": {"inputs": columns},
    }


# -- formats --------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["numeric", "mixed", "regressor"])
def test_every_json_format_gives_the_sklearn_predictions(fixture, request):
    df, model, predictor = request.getfixturevalue(fixture)
    sample = df.head(7)
    expected = model.predict(sample).tolist()
    for name, body in table_bodies(sample).items():
        parsed, answer = score(predictor, body)
        assert parsed.rows == 7, name
        if fixture == "regressor":
            np.testing.assert_allclose(answer["predictions"], expected, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
            assert answer == {"predictions": expected}, name


@pytest.mark.parametrize("fixture", ["numeric", "mixed"])
def test_csv_gives_the_sklearn_predictions(fixture, request):
    df, model, predictor = request.getfixturevalue(fixture)
    sample = df.head(6)
    expected = model.predict(sample).tolist()
    for text in (sample.to_csv(), sample.to_csv(index=False), sample[sample.columns[::-1]].to_csv(index=False)):
        for content_type in ("text/csv", "text/csv; charset=utf-8", "TEXT/CSV;charset=UTF-8"):
            parsed, answer = score(predictor, text.encode(), content_type)
            assert parsed.rows == 6 and answer == {"predictions": expected}


def test_params_and_client_request_id_pass_through(numeric):
    df, model, predictor = numeric
    body = {"inputs": df.head(2).to_numpy().tolist(), "params": {"threshold": 0.5}, "client_request_id": "r-1"}
    parsed, answer = score(predictor, body)
    assert parsed.params == {"threshold": 0.5} and parsed.client_request_id == "r-1"
    assert answer == {"predictions": model.predict(df.head(2)).tolist()}
    assert score(predictor, {"inputs": [[1, 2, 3]], "params": None})[0].params is None
    err = refused(predictor, {"inputs": [[1, 2, 3]], "params": [1]})
    assert (err.status, err.error_code) == (400, "BAD_REQUEST") and "params" in err.message


def test_nan_and_infinity_tokens_are_read_as_mlflow_reads_them(numeric, tensor):
    # json.dumps writes NaN/Infinity for float('nan')/inf; MLflow's server accepts them.
    parsed = parse_request(JSON, json.dumps({"inputs": [[float("nan"), 1.0, float("inf")]]}).encode(),
                           numeric[2].signature)
    x = parsed.feeds["X"]
    assert np.isnan(x[0, 0]) and x[0, 2] == np.inf
    assert parse_request(JSON, b'{"inputs": [[-Infinity, 0, 1]]}', tensor.signature).feeds["x"][0, 0] == -np.inf


def test_feeds_are_typed_per_signature(numeric, mixed):
    parsed = parse_request(JSON, b'{"inputs": [[1, 2, 3], [4, 5, 6]]}', numeric[2].signature)
    x = parsed.feeds["X"]
    assert x.dtype == np.float32 and x.shape == (2, 3) and x.flags.c_contiguous
    parsed = parse_request(JSON, b'{"dataframe_split": {"columns": ["color", "count", "size"], '
                           b'"data": [["red", 1, 0.5]]}}', mixed[2].signature)
    assert parsed.feeds["color"].dtype == object and parsed.feeds["color"].tolist() == [["red"]]
    assert parsed.feeds["count"].dtype == np.float32 and parsed.feeds["size"].shape == (1, 1)


def test_single_column_and_scalar_rows():
    df = pd.DataFrame({"t": np.arange(20, dtype=np.float64)})
    model = LinearRegression().fit(df, 3 * df.t + 1)
    predictor = OnnxPredictor(*convert_sklearn(model, df))
    for body in ({"instances": [1.0, 2.0]}, {"inputs": {"t": [1.0, 2.0]}},
                 {"dataframe_split": {"columns": ["t"], "data": [1.0, 2.0]}},
                 {"dataframe_split": {"columns": ["t"], "data": [[1.0], [2.0]]}}):
        np.testing.assert_allclose(score(predictor, body)[1]["predictions"], [4.0, 7.0], rtol=1e-5)


# -- tensors --------------------------------------------------------------------------


def test_tensor_model_takes_nested_lists_and_gives_nested_lists(tensor):
    x = [[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]
    expected = (np.array(x, dtype=np.float32) @ W).tolist()
    for body in ({"inputs": x}, {"instances": x}, {"inputs": {"x": x}}, {"instances": [{"x": r} for r in x]},
                 {"dataframe_split": {"columns": ["a", "b", "c"], "data": x}}):
        parsed, answer = score(tensor, body)
        assert parsed.rows == 2 and answer == {"predictions": expected}, body
    parsed, answer = score(tensor, b"a,b,c\n1,2,3\n0,-1,0.5\n", "text/csv")
    assert answer == {"predictions": expected}


def test_named_tensors_give_a_dict_of_outputs(two_inputs):
    body = {"inputs": {"x": [[1.0, 2.0], [3.0, 4.0]], "k": [[1], [2]]}}
    parsed, answer = score(two_inputs, body)
    assert parsed.feeds["k"].dtype == np.int64 and parsed.rows == 2
    expected = {"predictions": {"sum": [[2.0, 3.0], [5.0, 6.0]], "twice": [[2], [4]]}}
    assert answer == expected
    records = {"instances": [{"x": [1.0, 2.0], "k": [1]}, {"x": [3.0, 4.0], "k": [2]}]}
    assert score(two_inputs, records)[1] == expected
    # A CSV column is one value per row: it cannot fill the [-1, 2] input.
    assert "'x'" in refused(two_inputs, b"x,k\n1,1\n", "text/csv").message


def test_tensor_errors_name_the_input(two_inputs, tensor):
    err = refused(two_inputs, {"inputs": {"x": [[1.0, 2.0]]}})
    assert (err.status, err.error_code) == (400, "INVALID_PARAMETER_VALUE") and "'k'" in err.message
    err = refused(tensor, {"inputs": [[1.0, 2.0]]})
    assert "'x'" in err.message and "shape" in err.message
    err = refused(two_inputs, {"inputs": {"x": [[1.0, 2.0]], "k": [["one"]]}})
    assert "'k'" in err.message and "int64" in err.message
    err = refused(two_inputs, b"x,k\n1,one\n", "text/csv")
    assert "'k'" in err.message and "'one'" in err.message


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["numeric", "mixed"])
def test_missing_column_is_a_400_naming_it(fixture, request):
    df, _, predictor = request.getfixturevalue(fixture)
    col = df.columns[1]
    bodies = table_bodies(df.head(3).drop(columns=col))
    for name in ("split", "records", "instances-records", "inputs-columns", "instances-columns"):
        err = refused(predictor, bodies[name])
        assert (err.status, err.error_code) == (400, "INVALID_PARAMETER_VALUE"), name
        assert f"Missing column '{col}'" in err.message, (name, err.message)
    err = refused(predictor, df.head(3).drop(columns=col).to_csv(index=False).encode(), "text/csv")
    assert f"'{col}'" in err.message
    # Rows without names are positional: one too few is a width error naming the count.
    err = refused(predictor, bodies["inputs-rows"])
    assert err.status == 400 and f"{len(df.columns)} columns" in err.message, err.message


@pytest.mark.parametrize("body,words", [
    ({"dataframe_records": [{"size": "big", "count": 1, "color": "red"}]}, r"'size' must hold numbers \(float32\), got 'big'"),
    ({"dataframe_split": {"columns": ["size", "count", "color"], "data": [[0.1, 1, 7]]}}, "'color' must hold strings, got 7"),
    ({"inputs": {"size": [0.1], "count": [1], "color": [None]}}, "'color' must hold strings, got a missing value"),
    ({"instances": [[0.1, "x", "red"]]}, r"'count' must hold numbers \(float32\), got 'x'"),
])
def test_wrong_type_is_a_400_naming_column_and_type(mixed, body, words):
    err = refused(mixed[2], body)
    assert (err.status, err.error_code) == (400, "BAD_REQUEST")  # MLflow's code for a value it cannot convert
    assert re.search(words, err.message), err.message


def test_csv_type_errors(mixed, numeric):
    err = refused(mixed[2], b"size,count,color\n0.5,many,red\n", "text/csv")
    assert err.status == 400 and "'count'" in err.message and "'many'" in err.message
    err = refused(mixed[2], b"size,count,color\n0.5,1,\n", "text/csv")
    assert "'color'" in err.message and "missing" in err.message
    err = refused(numeric[2], b"a,b,c\n1,2\n", "text/csv")
    assert err.error_code == "BAD_REQUEST" and "row 1" in err.message
    # An empty numeric cell is a missing value (NaN), as pandas reads it.
    assert np.isnan(parse_request("text/csv", b"a,b,c\n1,,3\n", numeric[2].signature).feeds["X"][0, 1])


@pytest.mark.parametrize("body,words", [
    (b'{"inputs": [[1, 2, 3]], "extra": 1}', "unknown field 'extra'"),
    (b'{"inputs": [[1, 2, 3]], "instances": [[1, 2, 3]]}', "2 input fields"),
    (b'{"params": {}}', "no input field"),
    (b'{}', "no input field"),
    (b'[[1, 2, 3]]', "Received a list"),
    (b'"x"', "Received a str"),
    (b'{"inputs": [[1, 2, 3]]', "valid JSON"),
    (b'{"dataframe_split": [[1, 2, 3]]}', "must be a dictionary"),
    (b'{"dataframe_split": {"columns": ["a", "b", "c"]}}', "'data' field"),
    (b'{"dataframe_split": {"data": [[1, 2, 3]], "dtype": "x"}}', "'data' field"),
    (b'{"dataframe_split": {"data": 5}}', "list of rows"),
    (b'{"dataframe_records": {"a": [1]}}', "list of records"),
    (b'{"dataframe_records": [[1, 2, 3]]}', "list of records"),
    (b'{"dataframe_records": [{"a": 1, "b": 2, "c": 3}, 4]}', "mixes"),
    (b'{"inputs": []}', "no rows"),
    (b'   ', "empty"),
    (b'', "empty"),
])
def test_malformed_bodies_are_bad_requests(numeric, body, words):
    err = refused(numeric[2], body)
    assert (err.status, err.error_code) == (400, "BAD_REQUEST"), err
    assert words in err.message, err.message


def test_ragged_tables_are_400s(numeric, mixed):
    err = refused(numeric[2], {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [1, 2]]}})
    assert err.status == 400 and "Row 1" in err.message
    err = refused(mixed[2], {"inputs": {"size": [0.1, 0.2], "count": [1], "color": ["red", "red"]}})
    assert err.status == 400 and "'count'" in err.message


@pytest.mark.parametrize("content_type", [
    None, "", "text/plain", "application/x-www-form-urlencoded", "application/vnd.apache.parquet",
    "application/json; charset=latin-1", "application/json; format=pandas-split",
])
def test_other_content_types_are_415(numeric, content_type):
    err = refused(numeric[2], b'{"inputs": [[1, 2, 3]]}', content_type)
    assert err.status == 415


# -- responses ------------------------------------------------------------------------


def test_responses_match_mlflow_pyfunc_serving(numeric, mixed, regressor):
    from mlflow.pyfunc.scoring_server import predictions_to_json

    for df, model, predictor in (numeric, mixed, regressor):
        sample = df.head(5)
        out = io.StringIO()
        predictions_to_json(model.predict(sample), out)
        ours = json.loads(format_response(predictor.run(predictor.feeds(sample)), predictor.signature))
        theirs = json.loads(out.getvalue())
        assert set(ours) == set(theirs) == {"predictions"}
        if model is regressor[1]:
            np.testing.assert_allclose(ours["predictions"], theirs["predictions"], rtol=1e-5, atol=1e-5)
        else:
            assert ours == theirs


def test_non_finite_values_are_written_as_mlflow_writes_them(tensor):
    from mlflow.pyfunc.scoring_server import predictions_to_json

    outputs = {"y": np.array([[np.nan, 1.5], [np.inf, -np.inf]], dtype=np.float32)}
    body = format_response(outputs, tensor.signature).decode()
    out = io.StringIO()
    predictions_to_json(outputs["y"], out)
    assert body.replace(" ", "") == out.getvalue().replace(" ", "")
    parsed = json.loads(body)["predictions"]
    assert math.isnan(parsed[0][0]) and parsed[1] == [math.inf, -math.inf]


def test_slice_picks_one_requests_rows_of_a_batch(numeric):
    df, model, predictor = numeric
    outputs = predictor.run(predictor.feeds(df.head(10)))
    expected = model.predict(df.head(10)).tolist()
    assert json.loads(format_response(outputs, predictor.signature, slice(3, 6))) == {"predictions": expected[3:6]}
