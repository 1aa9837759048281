"""`cairn models serve` as a user runs it: a real `python -m cairn.cli --data D models
serve -m URI --port 0` child process on 127.0.0.1, driven over HTTP.

Three servers, one per kind of URI: a registered version by alias (a mixed-type pipeline
with a text column, registered through cairn's SDK here), an MLflow model folder saved by
mlflow.sklearn (converted on load) and a bare .onnx file. Every scoring format must give
the sklearn model's own predictions; every error is MLflow's JSON with its status."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

pytestmark = pytest.mark.filterwarnings("ignore")

REPO = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}


# -- models and servers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed():
    """A pipeline over a number, a count and a text column, with text labels."""
    rng = np.random.default_rng(2)
    df = pd.DataFrame({
        "size": rng.normal(size=60).astype(np.float32).astype(np.float64),
        "count": rng.integers(0, 5, 60),
        "color": rng.choice(["red", "green", "blue"], 60),
    })
    y = np.where((df["size"] > 0) | (df.color == "red"), "keep", "drop")
    pipe = Pipeline([
        ("prep", ColumnTransformer([("oh", OneHotEncoder(), ["color"]), ("sc", StandardScaler(), ["size", "count"])])),
        ("clf", LogisticRegression()),
    ]).fit(df, y)
    return df, pipe


@pytest.fixture(scope="module")
def numeric():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(60, 4)).astype(np.float32).astype(np.float64), columns=["a", "b", "c", "d"])
    return df, LogisticRegression().fit(df, (df.a - df.c > 0).astype(int))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, mixed):
    """A data directory where `mixed` is registered (version 1, alias @champion)."""
    import cairn
    from cairn import engine

    path = tmp_path_factory.mktemp("serve-data")
    df, pipe = mixed
    cairn.set_tracking_dir(path)
    try:
        with cairn.start_run():
            info = cairn.sklearn.log_model(pipe, input_example=df.head(5))
        mv = cairn.register_model(info.model_uri, "scoring-mixed")
        assert mv.status == "READY", mv.status_message
        cairn.Client().set_registered_model_alias("scoring-mixed", "champion", mv.version)
    finally:
        cairn.set_tracking_dir(None)
        engine.open(path).close()
    return path


SERVE = ("models", "serve")


@pytest.fixture(scope="module")
def registry_server(data_dir, session_launch):
    proc, url = session_launch(data_dir, "-m", "models:/scoring-mixed@champion", command=SERVE, timeout=90)
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client
    session_launch.stop(proc)


@pytest.fixture(scope="module")
def mlflow_dir_server(tmp_path_factory, numeric, session_launch):
    import mlflow.sklearn

    df, model = numeric
    folder = tmp_path_factory.mktemp("mlflow-model") / "model"
    mlflow.sklearn.save_model(model, str(folder), input_example=df.head(5), pip_requirements=["scikit-learn"])
    proc, url = session_launch(
        tmp_path_factory.mktemp("empty-data"), "-m", str(folder), "--max-body-bytes", "4096", command=SERVE, timeout=90
    )
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client
    session_launch.stop(proc)


def table_bodies(df: pd.DataFrame) -> dict[str, dict]:
    split = json.loads(df.to_json(orient="split"))
    records = json.loads(df.to_json(orient="records"))
    columns = {c: json.loads(df[c].to_json(orient="values")) for c in df.columns}
    return {
        "dataframe_split": {"dataframe_split": split},
        "dataframe_records": {"dataframe_records": records},
        "instances (records)": {"instances": records},
        "instances (rows)": {"instances": split["data"]},
        "inputs (columns)": {"inputs": columns},
        "inputs (rows)": {"inputs": split["data"], "params": {"unused": 1}},
    }


def predictions(client: httpx.Client, content: bytes | str, content_type: str = "application/json") -> list:
    r = client.post("/invocations", content=content, headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()["predictions"]


# -- formats ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["registry", "mlflow-dir"])
def test_every_format_gives_the_sklearn_predictions(which, request, mixed, numeric):
    client = request.getfixturevalue("registry_server" if which == "registry" else "mlflow_dir_server")
    df, model = mixed if which == "registry" else numeric
    sample = df.head(8)
    expected = model.predict(sample).tolist()
    for name, body in table_bodies(sample).items():
        assert predictions(client, json.dumps(body)) == expected, name
    for text in (sample.to_csv(), sample.to_csv(index=False)):
        assert predictions(client, text, "text/csv; charset=utf-8") == expected


def test_mlflow_client_side_helpers_score(mlflow_dir_server, registry_server, numeric, mixed):
    from mlflow.models import convert_input_example_to_serving_input

    for client, (df, model) in ((mlflow_dir_server, numeric), (registry_server, mixed)):
        sample = df.tail(6)
        expected = model.predict(sample).tolist()
        assert predictions(client, convert_input_example_to_serving_input(sample)) == expected
        body = '{"dataframe_split": ' + sample.to_json(orient="split") + "}"
        assert predictions(client, body) == expected


def test_onnx_file(tmp_path, numeric, launch):
    from cairn.engine.models.onnxconvert import convert_sklearn

    df, model = numeric
    path = tmp_path / "numeric.onnx"
    path.write_bytes(convert_sklearn(model, df)[0])
    proc, url = launch(tmp_path / "data", "-m", str(path), command=SERVE, timeout=90)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            sample = df.head(5)
            expected = model.predict(sample).tolist()
            assert predictions(client, json.dumps({"inputs": sample.to_numpy().tolist()})) == expected
            assert predictions(client, sample.to_csv(index=False), "text/csv") == expected
            assert client.get("/version").json()["model_uri"] == str(path)
    finally:
        launch.stop(proc)


# -- other routes -----------------------------------------------------------------------


def test_ping_health_version(registry_server):
    for path in ("/ping", "/health"):
        r = registry_server.get(path)
        assert r.status_code == 200
    version = registry_server.get("/version").json()
    assert version["model_uri"] == "models:/scoring-mixed@champion"
    assert (version["model_name"], version["model_version"]) == ("scoring-mixed", "1")
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version["version"])


# -- errors -----------------------------------------------------------------------------


def error(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error_code", "message"}, body
    assert "Traceback" not in body["message"]
    if code:
        assert body["error_code"] == code
    return body["message"]


def test_signature_errors_are_400s_naming_the_column(registry_server):
    post = registry_server.post
    msg = error(post("/invocations", json={"dataframe_records": [{"size": 0.1, "count": 1}]}), 400, "INVALID_PARAMETER_VALUE")
    assert "'color'" in msg
    msg = error(post("/invocations", json={"inputs": {"size": ["big"], "count": [1], "color": ["red"]}}), 400,
                "BAD_REQUEST")  # as MLflow: "could not convert string to float"
    assert "'size'" in msg and "float32" in msg and "'big'" in msg
    msg = error(post("/invocations", content="size,count,color\n0.5,x,red\n", headers={"Content-Type": "text/csv"}), 400)
    assert "'count'" in msg


def test_protocol_errors(registry_server):
    post = registry_server.post
    assert "valid JSON" in error(post("/invocations", content="{", headers=JSON), 400, "BAD_REQUEST")
    assert "'bogus'" in error(post("/invocations", json={"inputs": [], "bogus": 1}), 400, "BAD_REQUEST")
    assert "2 input fields" in error(post("/invocations", json={"inputs": [[1]], "instances": [[1]]}), 400)
    assert "empty" in error(post("/invocations", content=b"", headers=JSON), 400, "BAD_REQUEST")
    for content_type in ("text/plain", "application/json; charset=latin-1", "application/vnd.apache.parquet"):
        error(post("/invocations", content=b"{}", headers={"Content-Type": content_type}), 415)
    error(post("/invocations", content=b'{"inputs": [[1]]}'), 415)  # no content type at all
    assert "/nowhere" in error(registry_server.get("/nowhere"), 404, "ENDPOINT_NOT_FOUND")
    error(post("/ping", content=b""), 405)
    r = registry_server.get("/invocations")
    error(r, 405)
    assert r.headers["allow"] == "POST"
    r = registry_server.put("/invocations", json={})
    error(r, 405)


def test_body_limit_is_413(mlflow_dir_server, numeric):
    df, model = numeric
    big = json.dumps({"inputs": df.to_numpy().tolist() * 4})
    assert len(big) > 4096
    assert "4096" in error(mlflow_dir_server.post("/invocations", content=big, headers=JSON), 413)

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000].encode()

    error(mlflow_dir_server.post("/invocations", content=chunks(), headers=JSON), 413)
    # The server is still fine afterwards.
    small = df.head(2)
    assert predictions(mlflow_dir_server, json.dumps({"inputs": small.to_numpy().tolist()})) == model.predict(small).tolist()


def test_a_full_queue_is_429_with_retry_after_and_the_server_recovers(data_dir, mixed, launch):
    # One queued row at most, and a worker that holds each batch open 300 ms: requests
    # arriving meanwhile find the queue full.
    proc, url = launch(
        data_dir, "-m", "models:/scoring-mixed/1", "--max-queue-rows", "1", "--max-wait-ms", "300",
        command=SERVE, timeout=90,
    )
    df, pipe = mixed
    body = json.dumps({"dataframe_records": json.loads(df.head(1).to_json(orient="records"))})
    try:
        with httpx.Client(base_url=url, timeout=30) as client:

            def call(_):
                return client.post("/invocations", content=body, headers=JSON)

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(call, range(8)))
            statuses = sorted(r.status_code for r in answers)
            assert set(statuses) == {200, 429}, statuses
            busy = next(r for r in answers if r.status_code == 429)
            error(busy, 429, "REQUEST_LIMIT_EXCEEDED")
            assert int(busy.headers["retry-after"]) >= 1
            assert predictions(client, body) == pipe.predict(df.head(1)).tolist()
    finally:
        launch.stop(proc)


def test_bad_uri_exits_with_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "--data", str(tmp_path / "d"), "models", "serve", "-m", "models:/nope/1"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_a_model_folder_is_prepared_once_and_kept(tmp_path, numeric, launch):
    """The folder's conversion runs in a child process and is kept in the data
    directory by content: the next start loads it without converting."""
    import mlflow.sklearn

    df, model = numeric
    folder = tmp_path / "model"
    mlflow.sklearn.save_model(model, str(folder), input_example=df.head(5), pip_requirements=["scikit-learn"])
    data = tmp_path / "data"
    body = '{"dataframe_split": ' + df.head(3).to_json(orient="split") + "}"
    stamps = []
    for _ in range(2):
        proc, url = launch(data, "-m", f"file://{folder}", command=SERVE, timeout=90)
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                assert predictions(client, body) == model.predict(df.head(3)).tolist()
        finally:
            launch.stop(proc)
        [entry] = (data / "cache" / "prepared-models").iterdir()
        assert {p.name for p in entry.iterdir()} == {"model.onnx", "signature.msgpack"}
        stamps.append((entry / "model.onnx").stat().st_mtime_ns)
    assert stamps[0] == stamps[1]  # the second start did not prepare it again


def test_a_folder_cairn_cannot_serve_exits_with_the_reason(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: my.module\n")
    r = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "--data", str(tmp_path / "d"), "models", "serve", "-m", str(folder)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr.startswith("error: "), r.stderr
    assert "cannot convert" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d" / "cache" / "prepared-models").exists() or not any(
        (tmp_path / "d" / "cache" / "prepared-models").iterdir()
    )


def test_sigterm_stops_the_model_server_cleanly(data_dir, launch):
    """systemd and `kill` stop it with SIGTERM: requests answered, then exit status 0
    (not a kill by the signal uvicorn re-raises after its graceful shutdown)."""
    proc, url = launch(data_dir, "-m", "models:/scoring-mixed/1", command=SERVE, timeout=90)
    assert httpx.get(f"{url}/ping", timeout=10).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
