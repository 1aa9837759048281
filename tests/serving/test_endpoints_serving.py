"""Serving endpoints of `cairn server` end to end: a real `python -m cairn.cli --data D
server --port 0` child process on 127.0.0.1, endpoints created over REST
(/api/2.0/serving-endpoints) and scored at /serving-endpoints/NAME/invocations.

One data directory for the module, registered beforehand through cairn's SDK: `iris`
version 1 (a LogisticRegression) and version 2 (the same on flipped labels, so it
predicts differently): every answer can be checked against the version its
`x-cairn-model-version` header names. Each test creates its own endpoints (and its own
alias where it moves one), so the tests do not depend on each other's order.

Load loops are bounded in count and in time, on loopback only; nothing asserts a
timing. Waits for the server's 0.25 s poller are bounded polls."""
from __future__ import annotations

import json
import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Self
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from prometheus_text import parse, samples_of
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from cairn.app.serving.payloadlog import PayloadLogger
from cairn.app.serving.router import key_bucket

pytestmark = pytest.mark.filterwarnings("ignore")

MODEL = "iris"
API = "/api/2.0/serving-endpoints"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
WAIT_S = 30.0  # bound on every wait for the poller or the payload log writer


# -- models, data directory, server -----------------------------------------------------


@pytest.fixture(scope="module")
def iris():
    """(features, {version: model}): v2 learned flipped labels, so most rows differ."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = COLUMNS
    X = X.astype(np.float32).astype(np.float64)  # what the ONNX model sees, exactly
    v1 = LogisticRegression(max_iter=500).fit(X, y)
    v2 = LogisticRegression(max_iter=500).fit(X, 2 - y)
    return X, {"1": v1, "2": v2}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, iris):
    import cairn
    from cairn import engine

    path = tmp_path_factory.mktemp("endpoints-data")
    X, models = iris
    cairn.set_tracking_dir(path)
    try:
        for version in ("1", "2"):
            with cairn.start_run():
                info = cairn.sklearn.log_model(models[version], "model", input_example=X[:5])
            mv = cairn.register_model(info.model_uri, MODEL)
            assert (mv.version, mv.status) == (version, "READY"), mv.status_message
        cairn.Client().set_registered_model_alias(MODEL, "champion", "1")
    finally:
        cairn.set_tracking_dir(None)
        engine.open(path).close()  # released before the server opens it
    return path


@pytest.fixture(scope="module")
def url(data_dir, session_launch):
    proc, base = session_launch(data_dir, timeout=90)
    yield base
    session_launch.stop(proc)


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


# -- helpers ----------------------------------------------------------------------------


def entity(version: str | None = None, alias: str | None = None, **extra) -> dict:
    spec = {"entity_name": MODEL, **extra}
    if alias:
        spec["entity_alias"] = alias
    else:
        spec["entity_version"] = version
    return spec


def create(client: httpx.Client, name: str, config: dict) -> dict:
    r = client.post(API, json={"name": name, "config": config})
    assert r.status_code == 200, r.text
    return r.json()


def split_body(rows) -> str:
    return json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split"))})


def invoke(client: httpx.Client, name: str, body: str | bytes, headers: dict | None = None,
           content_type: str = "application/json") -> httpx.Response:
    return client.post(f"/serving-endpoints/{name}/invocations", content=body,
                       headers={"Content-Type": content_type, **(headers or {})})


def answered_by(r: httpx.Response) -> str:
    """The version that answered: x-cairn-model-version is `model/version`."""
    model, _, version = r.headers["x-cairn-model-version"].partition("/")
    assert model == MODEL
    return version


def expect(iris, version: str, rows) -> list:
    return iris[1][version].predict(rows).tolist()


def error(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error_code", "message"}, body
    assert "Traceback" not in body["message"]
    if code:
        assert body["error_code"] == code, body
    return body["message"]


def wait_until(check, what: str, timeout: float = WAIT_S):
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def payloads(client: httpx.Client, name: str, **params) -> list[dict]:
    """Every logged record in the range, following next_page_token."""
    rows, token = [], None
    for _ in range(10_000):
        query = {**params, **({"page_token": token} if token else {})}
        r = client.get(f"{API}/{name}/payloads", params=query)
        assert r.status_code == 200, r.text
        doc = r.json()
        rows.extend(doc["payloads"])
        token = doc.get("next_page_token")
        if not token:
            return rows
    raise AssertionError("the payload log never ran out of pages")


def binomial_bounds(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd, mean + sigmas * sd


class Hammer:
    """`threads` clients posting `body` to one endpoint until stopped, each at most
    `limit` requests and `max_s` seconds; every answer is kept as (status, version
    that answered or None, predictions or the error text)."""

    def __init__(self, url: str, name: str, body: str, threads: int = 4, limit: int = 5000, max_s: float = 60.0):
        self.results: list[tuple[int, str | None, object]] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_s
        self._threads = [
            threading.Thread(target=self._run, args=(url, name, body, limit), daemon=True) for _ in range(threads)
        ]

    def _run(self, url: str, name: str, body: str, limit: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(limit):
                if self._stop.is_set() or time.monotonic() > self._deadline:
                    return
                try:
                    r = invoke(c, name, body)
                except httpx.HTTPError as exc:  # a failed request is a result too
                    self.results.append((0, None, repr(exc)))
                    continue
                if r.status_code == 200:
                    self.results.append((200, answered_by(r), r.json()["predictions"]))
                else:
                    self.results.append((r.status_code, None, r.text))

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def wait_for(self, count: int) -> None:
        wait_until(lambda: len(self.results) >= count or self._stop.is_set(), f"{count} answers under load")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def check_under_load(iris, rows, results, versions: set[str]) -> None:
    """Every answer under load was a 200 whose predictions are its version's own."""
    failed = [r for r in results if r[0] != 200]
    assert not failed, f"{len(failed)} of {len(results)} requests failed: {failed[:3]}"
    for _, version, predictions in results:
        assert version in versions
        assert predictions == expect(iris, version, rows), version


# -- CRUD and formats -------------------------------------------------------------------


def test_crud_then_every_format_gives_the_sklearn_predictions(client, iris):
    X, _ = iris
    created = create(client, "formats", {"served_entities": [entity("1")]})
    assert created["config"]["served_entities"][0]["name"] == "iris-1"
    assert created["config"]["traffic_config"]["routes"] == [
        {"served_entity_name": "iris-1", "traffic_percentage": 100}
    ]
    assert client.get(f"{API}/formats").json()["id"] == created["id"]
    assert "formats" in [e["name"] for e in client.get(API).json()["endpoints"]]

    rows = X.iloc[::15]
    expected = expect(iris, "1", rows)
    split = json.loads(rows.to_json(orient="split"))
    records = json.loads(rows.to_json(orient="records"))
    bodies = {
        "dataframe_split": {"dataframe_split": split},
        "dataframe_records": {"dataframe_records": records},
        "instances (records)": {"instances": records},
        "instances (rows)": {"instances": split["data"]},
        "inputs (columns)": {"inputs": {c: rows[c].tolist() for c in COLUMNS}},
        "inputs (rows)": {"inputs": split["data"], "params": {"unused": 1}},
    }
    for fmt, body in bodies.items():
        r = invoke(client, "formats", json.dumps(body))
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"predictions": expected}, fmt
        assert r.headers["served-model-name"] == "iris-1"
        assert answered_by(r) == "1"
        assert len(r.headers["x-request-id"]) == 32
    for csv in (rows.to_csv(index=False), rows.to_csv()):
        r = invoke(client, "formats", csv, content_type="text/csv; charset=utf-8")
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected

    assert client.delete(f"{API}/formats").json() == {}
    error(client.get(f"{API}/formats"), 404, "RESOURCE_DOES_NOT_EXIST")
    # The live endpoint goes with the poller's next round.
    wait_until(lambda: invoke(client, "formats", split_body(rows)).status_code == 404, "the deleted endpoint to 404")


def test_signature_errors_are_400s_naming_the_column(client, iris):
    X, _ = iris
    create(client, "strict", {"served_entities": [entity("1")]})
    record = json.loads(X.iloc[:1].to_json(orient="records"))[0]
    missing = {k: v for k, v in record.items() if k != "petal_width"}
    msg = error(invoke(client, "strict", json.dumps({"dataframe_records": [missing]})), 400, "INVALID_PARAMETER_VALUE")
    assert "'petal_width'" in msg
    msg = error(invoke(client, "strict", json.dumps({"dataframe_records": [{**record, "sepal_width": "wide"}]})),
                400, "BAD_REQUEST")  # as MLflow: a missing column is INVALID_PARAMETER_VALUE, a bad value BAD_REQUEST
    assert "'sepal_width'" in msg and "'wide'" in msg
    msg = error(invoke(client, "strict", "sepal_length,sepal_width,petal_length,petal_width\n5.1,x,1.4,0.2\n",
                       content_type="text/csv"), 400)
    assert "'sepal_width'" in msg
    # A refused body does not poison the endpoint.
    assert invoke(client, "strict", split_body(X.iloc[:3])).json()["predictions"] == expect(iris, "1", X.iloc[:3])


def test_protocol_errors(client, url, iris):
    X, _ = iris
    create(client, "protocol", {"served_entities": [entity("1")]})
    body = split_body(X.iloc[:2])
    msg = error(invoke(client, "no-such-endpoint", body), 404, "RESOURCE_DOES_NOT_EXIST")
    assert "no-such-endpoint" in msg
    error(client.post("/serving-endpoints/protocol", content=body), 404, "ENDPOINT_NOT_FOUND")
    r = client.get("/serving-endpoints/protocol/invocations")
    error(r, 405)
    assert r.headers["allow"] == "POST"
    error(client.put("/serving-endpoints/protocol/invocations", content=body), 405)
    for content_type in ("text/plain", "application/xml", "application/json; charset=latin-1"):
        error(invoke(client, "protocol", body, content_type=content_type), 415)
    assert "valid JSON" in error(invoke(client, "protocol", "{"), 400, "BAD_REQUEST")

    # Over the 16 MiB limit by its declared length: refused before a byte of it is read,
    # so a raw socket can ask without sending the body.
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(b"POST /serving-endpoints/protocol/invocations HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 17000000\r\n\r\n")
        reader = s.makefile("rb")
        status_line = reader.readline()
        headers = dict(line.decode().rstrip("\r\n").lower().split(": ", 1) for line in iter(reader.readline, b"\r\n"))
        body_413 = json.loads(reader.read(int(headers["content-length"])))
    assert status_line.split()[1] == b"413", status_line
    assert "16777216" in body_413["message"]
    # The server is fine afterwards.
    assert invoke(client, "protocol", body).json()["predictions"] == expect(iris, "1", X.iloc[:2])


# -- traffic ----------------------------------------------------------------------------


def two_way(client: httpx.Client, name: str, **extra) -> None:
    create(client, name, {
        "served_entities": [entity("1", name="a"), entity("2", name="b")],
        "traffic_config": {"routes": [{"served_entity_name": "a", "traffic_percentage": 70},
                                      {"served_entity_name": "b", "traffic_percentage": 30}]},
        **extra,
    })


def test_traffic_split_70_30_within_binomial_bounds(client, iris):
    X, _ = iris
    two_way(client, "split")
    rows = X.iloc[::10]
    body = split_body(rows)
    n = 3000

    def call(_):
        return invoke(client, "split", body)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, range(n)))
    assert all(r.status_code == 200 for r in answers)
    counts = {"a": 0, "b": 0}
    for r in answers:
        served = r.headers["served-model-name"]
        counts[served] += 1
        # The entity named in the header is the one that answered.
        assert r.json()["predictions"] == expect(iris, {"a": "1", "b": "2"}[served], rows)
    low, high = binomial_bounds(n, 0.7)
    assert low <= counts["a"] <= high, counts


def test_sticky_routing_by_key(client, iris):
    X, _ = iris
    two_way(client, "sticky")
    body = split_body(X.iloc[:1])
    seen: dict[str, set[str]] = {}
    for round_ in range(3):
        for i in range(200):
            key = f"user-{i}"
            r = invoke(client, "sticky", body, {"x-cairn-routing-key": key})
            assert r.status_code == 200, r.text
            seen.setdefault(key, set()).add(r.headers["served-model-name"])
    assert all(len(entities) == 1 for entities in seen.values()), seen
    # The hash is stable across processes: the server's choice is the one computed here
    # (routes in order: buckets 0-69 -> a, 70-99 -> b).
    for key, (served,) in seen.items():
        assert served == ("a" if key_bucket(key) < 70 else "b"), key
    assert {s for (s,) in seen.values()} == {"a", "b"}


def test_shadow_answers_are_logged_never_returned(client, iris):
    X, _ = iris
    create(client, "shadowed", {
        "served_entities": [entity("1", name="primary"), entity("2", name="candidate")],
        "traffic_config": {"routes": [{"served_entity_name": "primary", "traffic_percentage": 100}]},
        "shadow": {"served_entity_name": "candidate", "fraction": 1.0},
        "auto_capture_config": {"enabled": True, "sampling_fraction": 1.0},
    })
    rows = X.iloc[::10]
    body = split_body(rows)
    ids = set()
    for _ in range(30):
        r = invoke(client, "shadowed", body)
        assert r.status_code == 200, r.text
        assert r.headers["served-model-name"] == "primary" and answered_by(r) == "1"
        assert r.json()["predictions"] == expect(iris, "1", rows)
        ids.add(r.headers["x-request-id"])
    logged = wait_until(lambda: (p := payloads(client, "shadowed")) and len(p) >= 60 and p, "60 logged records")
    assert len(logged) == 60
    primary = [p for p in logged if not p["shadow"]]
    shadow = [p for p in logged if p["shadow"]]
    assert {p["request_id"] for p in primary} == {p["request_id"] for p in shadow} == ids
    assert {(p["served_entity_name"], p["model_version"]) for p in primary} == {("primary", "1")}
    assert {(p["served_entity_name"], p["model_version"]) for p in shadow} == {("candidate", "2")}
    for p in shadow:
        assert p["status_code"] == 200
        assert json.loads(p["response"])["predictions"] == expect(iris, "2", rows)
        assert p["request"] == body


# -- following the registry under load ----------------------------------------------------


def set_alias(client: httpx.Client, alias: str, version: str) -> None:
    r = client.post("/api/2.0/mlflow/registered-models/alias", json={"name": MODEL, "alias": alias, "version": version})
    assert r.status_code == 200, r.text


def wait_for_version(client: httpx.Client, name: str, body: str, version: str) -> None:
    wait_until(lambda: answered_by(invoke(client, name, body)) == version, f"{name} to serve version {version}")


def test_alias_move_under_load_fails_no_request(client, url, iris):
    X, _ = iris
    set_alias(client, "moving", "1")
    create(client, "follower", {"served_entities": [entity(alias="moving", name="live")]})
    rows = X.iloc[::10]
    body = split_body(rows)
    assert answered_by(invoke(client, "follower", body)) == "1"
    with Hammer(url, "follower", body) as hammer:
        hammer.wait_for(100)
        set_alias(client, "moving", "2")
        wait_for_version(client, "follower", body, "2")
        moved_at = len(hammer.results)
        hammer.wait_for(moved_at + 100)
    check_under_load(iris, rows, hammer.results, {"1", "2"})
    assert {v for _, v, _ in hammer.results} == {"1", "2"}
    # Once moved, it stays moved.
    assert {answered_by(invoke(client, "follower", body)) for _ in range(20)} == {"2"}


def test_config_update_under_load_fails_no_request(client, url, iris):
    X, _ = iris
    create(client, "pinned", {"served_entities": [entity("1")]})
    rows = X.iloc[::10]
    body = split_body(rows)
    assert answered_by(invoke(client, "pinned", body)) == "1"
    with Hammer(url, "pinned", body) as hammer:
        hammer.wait_for(100)
        r = client.put(f"{API}/pinned/config", json={"served_entities": [entity("2")]})
        assert r.status_code == 200, r.text
        assert r.json()["config"]["config_version"] == 2
        wait_for_version(client, "pinned", body, "2")
        hammer.wait_for(len(hammer.results) + 100)
    check_under_load(iris, rows, hammer.results, {"1", "2"})
    r = invoke(client, "pinned", body)
    assert (r.headers["served-model-name"], answered_by(r)) == ("iris-2", "2")


# -- overload -----------------------------------------------------------------------------


def test_overload_is_429_with_retry_after_and_the_server_recovers(client, iris):
    X, _ = iris
    # One queued row at most, and a worker that holds each batch open 300 ms: requests
    # arriving meanwhile find the queue full.
    create(client, "tight", {"served_entities": [entity("1", max_queue_rows=1, max_wait_ms=300)]})
    body = split_body(X.iloc[:1])
    assert invoke(client, "tight", body).status_code == 200  # built and loaded first

    answers: list[httpx.Response] = []
    with ThreadPoolExecutor(8) as pool:
        # Bursts of 8 at once; a few, in case a loaded machine staggers the first one.
        for _ in range(3):
            answers += pool.map(lambda _: invoke(client, "tight", body), range(8))
            if any(r.status_code == 429 for r in answers):
                break
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) == {200, 429}, statuses
    busy = next(r for r in answers if r.status_code == 429)
    error(busy, 429, "REQUEST_LIMIT_EXCEEDED")
    assert int(busy.headers["retry-after"]) >= 1
    r = invoke(client, "tight", body)
    assert r.status_code == 200 and r.json()["predictions"] == expect(iris, "1", X.iloc[:1])


# -- payload log ---------------------------------------------------------------------------


def test_payload_log_holds_every_request_and_pages_by_time(client, iris):
    X, _ = iris
    create(client, "logged", {
        "served_entities": [entity("1")],
        "auto_capture_config": {"enabled": True, "sampling_fraction": 1.0},
    })
    sent = {}  # request id -> (client request id, body, status, response text)
    for i in range(24):
        rows = X.iloc[i:i + 1 + i % 3]
        body = split_body(rows)
        if i % 8 == 7:  # some failures are logged too
            body = json.dumps({"dataframe_records": [{"sepal_length": 1.0}]})
        r = invoke(client, "logged", body, {"x-client-request-id": f"client-{i}"})
        sent[r.headers["x-request-id"]] = (f"client-{i}", body, r.status_code, r.text)
        time.sleep(0.002)  # spread the timestamps over a few milliseconds
    assert sorted(s for _, _, s, _ in sent.values()) == [200] * 21 + [400] * 3

    logged = wait_until(lambda: (p := payloads(client, "logged")) and len(p) >= len(sent) and p, "24 records")
    assert len(logged) == len(sent)
    assert [p["timestamp_ms"] for p in logged] == sorted(p["timestamp_ms"] for p in logged)
    for p in logged:
        client_id, body, status, response = sent[p["request_id"]]
        assert p["client_request_id"] == client_id
        assert p["request"] == body
        assert p["response"] == response
        assert p["status_code"] == status
        assert p["latency_ms"] > 0
        assert (p["served_entity_name"], p["model_name"], p["model_version"]) == ("iris-1", MODEL, "1")
        assert p["shadow"] is False and p["truncated"] is False

    # Pages of 5 hold the same records in the same order.
    assert payloads(client, "logged", max_results=5) == logged
    first = client.get(f"{API}/logged/payloads", params={"max_results": 5}).json()
    assert len(first["payloads"]) == 5 and first["next_page_token"]
    # A time range splits the log at any timestamp: [start, t) and [t, end).
    t = logged[len(logged) // 2]["timestamp_ms"]
    before = payloads(client, "logged", end_time_ms=t, max_results=4)
    after = payloads(client, "logged", start_time_ms=t, max_results=4)
    assert before + after == logged
    assert all(p["timestamp_ms"] < t for p in before) and all(p["timestamp_ms"] >= t for p in after)
    window = payloads(client, "logged", start_time_ms=logged[3]["timestamp_ms"],
                      end_time_ms=logged[-3]["timestamp_ms"], max_results=3)
    assert window == [p for p in logged if logged[3]["timestamp_ms"] <= p["timestamp_ms"] < logged[-3]["timestamp_ms"]]


def test_payload_log_sampling(client, iris):
    X, _ = iris
    create(client, "sampled", {
        "served_entities": [entity("1")],
        "auto_capture_config": {"enabled": True, "sampling_fraction": 0.5},
    })
    body = split_body(X.iloc[:2])
    n = 400
    with ThreadPoolExecutor(4) as pool:
        ids = [r.headers["x-request-id"] for r in pool.map(lambda _: invoke(client, "sampled", body), range(n))]
    # Sampling hashes the request id, so the sample is known from the ids returned.
    rule = PayloadLogger(lambda records: None, sampling_fraction=0.5)
    try:
        chosen = {i for i in ids if rule.sampled(i)}
    finally:
        rule.close()
    low, high = binomial_bounds(n, 0.5)
    assert low <= len(chosen) <= high
    logged = wait_until(lambda: (p := payloads(client, "sampled")) and len(p) >= len(chosen) and p,
                        f"{len(chosen)} sampled records")
    assert {p["request_id"] for p in logged} == chosen
    assert len(logged) == len(chosen)


# -- metrics -------------------------------------------------------------------------------


def test_metrics_parse_and_count_the_requests(client, iris):
    X, _ = iris
    create(client, "metered", {"served_entities": [entity("1", name="m")]})
    good = split_body(X.iloc[:3])
    for _ in range(8):
        assert invoke(client, "metered", good).status_code == 200
    for _ in range(2):
        assert invoke(client, "metered", json.dumps({"inputs": {"sepal_length": [1.0]}})).status_code == 400
    assert invoke(client, "metered", good, content_type="text/plain").status_code == 415
    for i in range(5):  # names nobody created must not become label values
        assert invoke(client, f"nobody-{i}", good).status_code == 404

    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = parse(r.text)
    labels = (("endpoint", "metered"), ("served_entity", "m"), ("version", "1"))

    def value(sample: str, **extra) -> float:
        key = (sample, tuple(sorted((*labels, *extra.items()))))
        return samples_of(families, sample).get(key, 0.0)

    assert value("cairn_serving_requests_total", status_class="2xx") == 8
    assert value("cairn_serving_requests_total", status_class="4xx") == 3
    assert value("cairn_serving_errors_total", status="400") == 2
    assert value("cairn_serving_errors_total", status="415") == 1
    assert value("cairn_serving_request_latency_seconds_count") == 11
    # 8 answered requests of 3 rows went through the batcher.
    assert value("cairn_serving_batch_rows_sum") == 24
    assert value("cairn_serving_queue_depth") == 0
    assert ("cairn_serving_model_load_seconds_count", tuple(sorted(labels))) in samples_of(
        families, "cairn_serving_model_load_seconds_count")
    endpoints = {dict(lbl).get("endpoint") for fam in families.values() for _, lbl, _ in fam["samples"]}
    assert not any(e and e.startswith("nobody-") for e in endpoints), endpoints
