"""`cairn endpoints ...` and `cairn doctor` run as separate processes, as a user types
them, against data directories where `iris` versions 1 and 2 are registered beforehand
through cairn's SDK. One test drives a real `cairn server` with endpoints the CLI
creates, updates and deletes: the server (another process) follows the store."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from clirun import assert_clean_error, cli
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from cairn import engine

REPO = Path(__file__).resolve().parents[2]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
WAIT_S = 30.0

pytestmark = pytest.mark.filterwarnings("ignore")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = COLUMNS
    X = X.astype(np.float32).astype(np.float64)
    return X, {"1": LogisticRegression(max_iter=500).fit(X, y), "2": LogisticRegression(max_iter=500).fit(X, 2 - y)}


def register(path: Path, iris) -> Path:
    """`iris` v1 and v2 (flipped labels), alias champion -> 1, released afterwards."""
    import cairn
    from cairn import engine

    X, models = iris
    cairn.set_tracking_dir(path)
    try:
        for version in ("1", "2"):
            with cairn.start_run():
                info = cairn.sklearn.log_model(models[version], "model", input_example=X[:5])
            assert cairn.register_model(info.model_uri, "iris").status == "READY"
        cairn.Client().set_registered_model_alias("iris", "champion", "1")
    finally:
        cairn.set_tracking_dir(None)
        engine.open(path).close()
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory, iris) -> Path:
    return register(tmp_path_factory.mktemp("cli") / "data", iris)


def show(data: Path, name: str) -> dict:
    return json.loads(cli(data, "endpoints", "show", name, "--json").stdout)["endpoint"]


# -- endpoints ------------------------------------------------------------------------------


def test_create_list_show_update_delete_with_flags(data):
    out = cli(data, "endpoints", "create", "scorer", "--model", "iris", "--version", "1",
              "--max-batch-rows", "16", "--max-wait-ms", "2", "--payload-logging", "--sampling", "0.5").stdout
    assert "created endpoint scorer (config version 1): iris-1: iris v1 100%" in out
    assert "/serving-endpoints/scorer/invocations" in out
    ep = show(data, "scorer")
    [entity] = ep["config"]["served_entities"]
    assert (entity["entity_name"], entity["entity_version"], entity["max_batch_rows"], entity["max_wait_ms"]) == (
        "iris", "1", 16, 2.0)
    assert ep["config"]["auto_capture_config"]["enabled"] is True
    assert ep["config"]["auto_capture_config"]["sampling_fraction"] == 0.5

    cli(data, "endpoints", "create", "follower", "--model", "iris", "--alias", "champion", "--workload-type", "gpu")
    header, _, *rows = cli(data, "endpoints", "list").stdout.splitlines()
    assert header.split()[:3] == ["NAME", "SERVES", "CONFIG"]
    names = [r.split()[0] for r in rows]
    assert "scorer" in names and "follower" in names
    follower = next(r for r in rows if r.startswith("follower"))
    assert "iris@champion 100%" in follower and "off" in follower
    listed = json.loads(cli(data, "endpoints", "list", "--json").stdout)["endpoints"]
    assert show(data, "follower")["config"]["served_entities"][0]["workload_type"] == "GPU"
    assert {e["name"] for e in listed} >= {"scorer", "follower"}

    text = cli(data, "endpoints", "show", "scorer").stdout
    assert "config version   1" in text and "on (0.5)" in text
    assert "iris-1" in text.split("Served entities")[1]

    # Flags change the one entity; what is not given is kept (payload logging included).
    out = cli(data, "endpoints", "update", "scorer", "--version", "2").stdout
    assert "updated endpoint scorer (config version 2): iris-2: iris v2 100%" in out
    ep = show(data, "scorer")
    [entity] = ep["config"]["served_entities"]
    assert (entity["name"], entity["entity_version"], entity["max_batch_rows"]) == ("iris-2", "2", 16)
    assert ep["config"]["auto_capture_config"]["sampling_fraction"] == 0.5
    cli(data, "endpoints", "update", "scorer", "--alias", "champion", "--no-payload-logging")
    ep = show(data, "scorer")
    [entity] = ep["config"]["served_entities"]
    assert (entity["entity_alias"], entity["entity_version"]) == ("champion", "")
    assert ep["config"]["auto_capture_config"]["enabled"] is False
    assert ep["config"]["config_version"] == 3

    assert "deleted endpoint scorer" in cli(data, "endpoints", "delete", "scorer").stdout
    assert_clean_error(cli(data, "endpoints", "show", "scorer", check=False), "scorer", "does not exist")
    cli(data, "endpoints", "delete", "follower")


def test_config_file_in_databricks_shape(data, tmp_path):
    config = {
        "served_entities": [
            {"name": "a", "entity_name": "iris", "entity_version": "1"},
            {"name": "b", "entity_name": "iris", "entity_version": 2, "workload_type": "GPU_SMALL"},
            {"name": "s", "entity_name": "iris", "entity_alias": "champion"},
        ],
        "traffic_config": {"routes": [{"served_entity_name": "a", "traffic_percentage": 70},
                                      {"served_entity_name": "b", "traffic_percentage": 30}]},
        "shadow": {"served_entity_name": "s", "fraction": 0.25},
        "auto_capture_config": {"enabled": True, "catalog_name": "ignored", "schema_name": "ignored"},
        "tags": [{"key": "team", "value": "ml"}],  # a Databricks field Cairn ignores
    }
    bare = tmp_path / "config.json"
    bare.write_text(json.dumps(config))
    out = cli(data, "endpoints", "create", "ab", "--config", str(bare)).stdout
    assert "a: iris v1 70%, b: iris v2 30%, s: iris@champion shadow 0.25" in out
    ep = show(data, "ab")
    assert [e["workload_type"] for e in ep["config"]["served_entities"]] == ["CPU", "GPU", "CPU"]
    assert ep["config"]["shadow"] == {"served_entity_name": "s", "fraction": 0.25}
    text = cli(data, "endpoints", "show", "ab").stdout.split("Served entities")[1]
    assert "shadow 0.25" in text and "70%" in text and "@champion" in text

    # A whole create request (name and config), as `databricks serving-endpoints create --json`.
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"name": "ab2", "config": {"served_entities": config["served_entities"][:1]}}))
    cli(data, "endpoints", "create", "ab2", "--config", str(request))
    assert_clean_error(cli(data, "endpoints", "create", "other", "--config", str(request), check=False), "'ab2'")

    # Flags cannot edit three entities; a file can.
    assert_clean_error(cli(data, "endpoints", "update", "ab", "--version", "2", check=False), "3 entities", "--config")
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"served_entities": config["served_entities"][:1]}))
    cli(data, "endpoints", "update", "ab", "--config", str(one))
    assert [e["name"] for e in show(data, "ab")["config"]["served_entities"]] == ["a"]
    for name in ("ab", "ab2"):
        cli(data, "endpoints", "delete", name)


def test_errors_are_one_line_and_exit_1(data, tmp_path):
    create = ("endpoints", "create", "x")
    assert_clean_error(cli(data, *create, check=False), "--model")
    assert_clean_error(cli(data, *create, "--model", "iris", check=False), "--version", "--alias")
    assert_clean_error(cli(data, *create, "--model", "iris", "--version", "1", "--alias", "a", check=False), "not both")
    assert_clean_error(cli(data, *create, "--model", "iris", "--version", "1", "--sampling", "0.5", check=False),
                       "--payload-logging")
    assert_clean_error(cli(data, *create, "--model", "iris", "--version", "1", "--payload-logging", "--sampling",
                           "2", check=False), "sampling_fraction")
    assert_clean_error(cli(data, *create, "--model", "iris", "--version", "1", "--max-batch-rows", "0", check=False),
                       "max_batch_rows")
    assert_clean_error(cli(data, "endpoints", "create", "bad name!", "--model", "iris", "--version", "1",
                           check=False), "bad name!")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_clean_error(cli(data, *create, "--config", str(bad), check=False), "not valid JSON")
    assert_clean_error(cli(data, *create, "--config", str(tmp_path / "missing.json"), check=False), "missing.json")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({
        "served_entities": [{"name": "a", "entity_name": "iris", "entity_version": "1"},
                            {"name": "b", "entity_name": "iris", "entity_version": "2"}],
        "traffic_config": {"routes": [{"served_entity_name": "a", "traffic_percentage": 60},
                                      {"served_entity_name": "b", "traffic_percentage": 30}]},
    }))
    assert_clean_error(cli(data, *create, "--config", str(split), check=False), "traffic_config.routes", "90")
    assert_clean_error(cli(data, *create, "--config", str(split), "--version", "1", check=False), "not both")
    cli(data, *create, "--model", "iris", "--version", "1")
    assert_clean_error(cli(data, *create, "--model", "iris", "--version", "1", check=False), "already exists")
    assert_clean_error(cli(data, "endpoints", "update", "x", check=False), "nothing to update")
    for action in ("show", "delete", "logs"):
        assert_clean_error(cli(data, "endpoints", action, "nope", check=False), "'nope'")
    assert_clean_error(cli(data, "endpoints", "update", "nope", "--version", "2", check=False), "'nope'")
    assert_clean_error(cli(data, "endpoints", "logs", "x", "--since", "yesterday", check=False), "--since")
    assert_clean_error(cli(data, "endpoints", "logs", "x", "--limit", "0", check=False), "--limit")
    cli(data, "endpoints", "delete", "x")


def test_logs_last_records_since_a_time_and_json(data):
    from cairn import engine
    from cairn.engine.endpoints.contract import PayloadRecord

    cli(data, "endpoints", "create", "logbook", "--model", "iris", "--version", "1", "--payload-logging")
    base = int(time.time() * 1000) - 60_000
    records = [
        PayloadRecord(request_id=f"r{i:02d}", timestamp_ms=base + i * 1000, status_code=400 if i == 7 else 200,
                      latency_ms=1.5 + i, client_request_id=f"c{i}", served_entity_name="iris-1",
                      model_name="iris", model_version="1", request=f'{{"n": {i}}}',
                      response='{"error_code": "BAD"}' if i == 7 else '{"predictions": [0]}')
        for i in range(12)
    ]
    eng = engine.open(data)
    try:
        eng.endpoints.log_payloads("logbook", records)
        eng.flush()
    finally:
        eng.close()

    def request_ids(*args: str) -> list[str]:
        out = cli(data, "endpoints", "logs", "logbook", *args).stdout.splitlines()
        assert out[0].split()[:2] == ["TIME", "STATUS"]
        return [word for line in out[2:] for word in line.split() if word.startswith("r")]

    assert request_ids() == [f"r{i:02d}" for i in range(12)]
    assert request_ids("--limit", "3") == ["r09", "r10", "r11"]  # the newest, oldest first
    assert request_ids("--since", str(base + 5000), "--limit", "2") == ["r05", "r06"]
    iso = datetime.fromtimestamp((base + 10_000) / 1000).isoformat(timespec="milliseconds")
    assert request_ids("--since", iso) == ["r10", "r11"]
    table = cli(data, "endpoints", "logs", "logbook").stdout
    assert "BAD" in next(line for line in table.splitlines() if "r07" in line)
    doc = json.loads(cli(data, "endpoints", "logs", "logbook", "--json", "--limit", "1").stdout)
    [last] = doc["payloads"]
    assert last["request_id"] == "r11" and last["client_request_id"] == "c11"
    assert last["request"] == '{"n": 11}' and last["response"] == '{"predictions": [0]}'
    assert "payloads logged  12" in cli(data, "endpoints", "show", "logbook").stdout
    cli(data, "endpoints", "delete", "logbook")


def test_a_running_server_follows_what_the_cli_does(tmp_path, iris, launch):
    data = register(tmp_path / "data", iris)
    X, models = iris
    proc, url = launch(data, timeout=90)
    rows = X.iloc[::10]
    body = {"dataframe_split": json.loads(rows.to_json(orient="split"))}
    invocations = "/serving-endpoints/live/invocations"

    def wait_for(check, what: str):
        deadline = time.monotonic() + WAIT_S
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    with httpx.Client(base_url=url, timeout=30) as client:
        cli(data, "endpoints", "create", "live", "--model", "iris", "--version", "1", "--payload-logging")
        r = client.post(invocations, json=body, headers={"x-client-request-id": "from-test"})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == models["1"].predict(rows).tolist()

        def logged() -> bool:
            out = cli(data, "endpoints", "logs", "live").stdout
            return r.headers["x-request-id"] in out and "from-test" in out

        wait_for(logged, "the request in `cairn endpoints logs`")

        cli(data, "endpoints", "update", "live", "--version", "2")
        wait_for(lambda: client.post(invocations, json=body).headers.get("x-cairn-model-version") == "iris/2",
                 "the server to serve version 2")
        assert client.post(invocations, json=body).json()["predictions"] == models["2"].predict(rows).tolist()

        cli(data, "endpoints", "delete", "live")
        wait_for(lambda: client.post(invocations, json=body).status_code == 404, "the deleted endpoint to 404")
    launch.stop(proc)


# -- doctor ---------------------------------------------------------------------------------


def doctor(data: Path, *args: str, port: int | None = None) -> subprocess.CompletedProcess:
    return cli(data, "doctor", "--port", str(port or free_port()), *args, check=False)


def checks_of(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    doc = json.loads(proc.stdout)
    return {c["name"]: c for c in doc["checks"]}


def test_doctor_on_a_healthy_data_dir(data):
    cli(data, "endpoints", "create", "doc-cpu", "--model", "iris", "--alias", "champion")
    cli(data, "endpoints", "create", "doc-gpu", "--model", "iris", "--version", "2", "--workload-type", "GPU")
    try:
        proc = doctor(data)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
        assert out.startswith("Cairn ") and str(data) in out and out.rstrip().endswith("healthy")
        for name in ("data directory", "free space", "LMDB", "CPUExecutionProvider", "CUDAExecutionProvider", "port"):
            assert any(line.startswith(name) for line in out.splitlines()), name
        table = out.split("Endpoints (what each would serve, and where)")[1]
        cpu = next(line for line in table.splitlines() if line.startswith("doc-cpu"))
        assert "iris@champion (v1)" in cpu and "READY" in cpu and "CPUExecutionProvider" in cpu

        proc = doctor(data, "--json")
        assert proc.returncode == 0
        doc = json.loads(proc.stdout)
        assert doc["healthy"] is True and doc["data_directory"] == str(data.resolve())
        checks = checks_of(proc)
        assert checks["LMDB"]["status"] == "ok" and "schema 1" in checks["LMDB"]["detail"]
        assert checks["CPUExecutionProvider"]["status"] == "ok"
        # Which wheel: one of Cairn's two extras, exactly one installed, with its version.
        package = checks["ONNX Runtime package"]
        assert package["status"] == "ok" and re.match(r"onnxruntime(-gpu)? \d+\.\d+", package["detail"])
        assert ("CUDA-capable" in package["detail"]) == package["detail"].startswith("onnxruntime-gpu")
        assert checks["port"]["status"] == "ok"
        gpu = checks["endpoint doc-gpu / iris-2"]
        cuda = checks["CUDAExecutionProvider"]
        # Whichever machine runs this: a GPU endpoint gets CUDA where it loads, else a
        # warning that says why (a warning, not a failure: it still serves, on CPU).
        if cuda["status"] == "ok":
            assert gpu["status"] == "ok" and "CUDAExecutionProvider" in gpu["detail"]
        else:
            assert cuda["status"] == "info" and cuda["detail"]
            assert gpu["status"] == "warn" and cuda["detail"] in gpu["detail"] and gpu["fix"]
        served = {(e["endpoint"], e["provider"]) for e in doc["endpoints"]}
        assert ("doc-cpu", "CPUExecutionProvider") in served
    finally:
        cli(data, "endpoints", "delete", "doc-cpu")
        cli(data, "endpoints", "delete", "doc-gpu")


def test_doctor_names_an_endpoint_that_cannot_serve(data):
    refused = cli(data, "endpoints", "create", "ghost", "--model", "iris", "--version", "9", check=False)
    assert refused.returncode == 1 and "served_entities[0] (iris-9): Model Version (name=iris, version=9)" in refused.stderr
    with engine.open(data) as eng:  # a version served, then deleted
        doomed = eng.registry.create_model_version("iris", "file:///nowhere/model").version
    cli(data, "endpoints", "create", "ghost", "--model", "iris", "--version", doomed)
    with engine.open(data) as eng:
        eng.registry.delete_model_version("iris", doomed)
    try:
        proc = doctor(data)
        assert proc.returncode == 1
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("endpoint ghost"))
        assert "FAIL" in line and f"iris v{doomed}" in line
        assert "cairn endpoints update ghost" in proc.stdout.split("To fix:")[1]
    finally:
        cli(data, "endpoints", "delete", "ghost")


def test_doctor_on_broken_data_dirs(tmp_path):
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    proc = doctor(a_file)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    check = checks_of(doctor(a_file, "--json"))["data directory"]
    assert check["status"] == "FAIL" and "is a file" in check["detail"] and check["fix"]
    assert "not healthy" in proc.stdout and "To fix:" in proc.stdout

    damaged = tmp_path / "damaged"
    (damaged / "lmdb").mkdir(parents=True)
    (damaged / "lmdb" / "data.mdb").write_bytes(b"\x17" * 65536)
    proc = doctor(damaged, "--json")
    assert proc.returncode == 1
    check = checks_of(proc)["LMDB"]
    assert check["status"] == "FAIL" and "LMDB" in check["detail"]

    fresh = tmp_path / "new" / "data"  # not created yet: fine, and doctor does not create it
    proc = doctor(fresh)
    assert proc.returncode == 0, proc.stdout
    assert "created on first use" in proc.stdout and not fresh.exists()


def test_doctor_on_an_unwritable_data_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    # Root writes through permissions: an immutable directory stops it (where chattr works).
    as_root = os.geteuid() == 0
    if as_root:
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True, check=False).returncode:
            pytest.skip("running as root where chattr +i is refused: nothing makes a directory unwritable")
    else:
        locked.chmod(0o500)
    try:
        proc = doctor(locked, "--json")
        assert proc.returncode == 1, proc.stdout
        check = checks_of(proc)["data directory"]
        assert check["status"] == "FAIL" and "not writable" in check["detail"] and check["fix"]
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(locked)], check=False)
        else:
            locked.chmod(0o700)


def test_doctor_with_the_port_taken(data):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = doctor(data, port=port)
    assert proc.returncode == 1
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("port"))
    assert "FAIL" in line and f"127.0.0.1:{port} is taken" in line
    assert "--port" in proc.stdout.split("To fix:")[1]


def test_doctor_with_its_own_server_on_the_port(tmp_path, launch):
    data = tmp_path / "served"
    proc, url = launch(data)
    port = int(url.rsplit(":", 1)[1])
    result = doctor(data, port=port)
    launch.stop(proc)
    assert result.returncode == 0, result.stdout
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("port"))
    assert "running Cairn server" in line
