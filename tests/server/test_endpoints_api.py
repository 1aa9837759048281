"""/api/2.0/serving-endpoints against a real `cairn server`: create, list, get, update
config, delete in Databricks' shape, the errors, and the payload log read by time range
and page tokens. The payload records are logged by this test process through its own
Engine on the server's data directory (LMDB serves two processes at once), exactly as
the server's own log writer would commit them."""

from __future__ import annotations

import uuid

import httpx
import pytest

from cairn import engine
from cairn.engine.endpoints.contract import PayloadRecord

API = "/api/2.0/serving-endpoints"
T0 = 1_700_000_000_000
MODEL = "endpoints_api_iris"  # its own name: the session's server is shared


def unique(prefix: str = "ep") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def config(version: str = "1", **extra) -> dict:
    return {"served_entities": [{"entity_name": MODEL, "entity_version": version}], **extra}


@pytest.fixture(scope="module", autouse=True)
def served_model(server_url):
    """What the configs serve (versions 1-3, @champion at 2): an endpoint naming a
    missing version is refused."""
    with httpx.Client(base_url=f"{server_url}/api/2.0/mlflow", timeout=30) as c:
        assert c.post("/registered-models/create", json={"name": MODEL}).status_code == 200
        for _ in range(3):
            resp = c.post("/model-versions/create", json={"name": MODEL, "source": "file:///nowhere/model"})
            assert resp.status_code == 200, resp.text
        assert c.post("/registered-models/alias", json={"name": MODEL, "alias": "champion",
                                                         "version": "2"}).status_code == 200


@pytest.fixture()
def http(server_url):
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


def error_of(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code, body
    assert "Traceback" not in body["message"]
    return body["message"]


def test_create_get_list_update_delete(http):
    name = unique()
    resp = http.post(API, json={"name": name, "config": config(auto_capture_config={"enabled": True})})
    assert resp.status_code == 200, resp.text
    ep = resp.json()
    assert ep["name"] == name and len(ep["id"]) == 32 and ep["creation_timestamp"] > 0
    assert ep["state"] == {"config_update": "NOT_UPDATING"}
    cfg = ep["config"]
    assert cfg["config_version"] == 1
    assert cfg["served_entities"][0]["name"] == f"{MODEL}-1" and cfg["served_entities"][0]["entity_version"] == "1"
    assert cfg["traffic_config"] == {"routes": [{"served_entity_name": f"{MODEL}-1", "traffic_percentage": 100}]}
    assert cfg["auto_capture_config"]["enabled"] is True and "shadow" not in cfg
    assert http.get(f"{API}/{name}").json() == ep
    assert name in [e["name"] for e in http.get(API).json()["endpoints"]]

    # PUT .../config takes the config itself (Databricks' EndpointCoreConfigInput, whose
    # `name` repeats the endpoint's and is ignored).
    update = {
        "name": name,
        "served_entities": [
            {"name": "old", "entity_name": MODEL, "entity_version": 1},
            {"name": "new", "entity_name": f"main.default.{MODEL}", "entity_alias": "champion", "workload_type": "GPU"},
            {"name": "shadow", "entity_name": MODEL, "entity_version": "3"},
        ],
        "traffic_config": {
            "routes": [
                {"served_entity_name": "old", "traffic_percentage": 90},
                {"served_entity_name": "new", "traffic_percentage": 10},
            ]
        },
        "shadow": {"served_entity_name": "shadow", "fraction": 0.5},
    }
    resp = http.put(f"{API}/{name}/config", json=update)
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert updated["id"] == ep["id"] and updated["config"]["config_version"] == 2
    assert [s["name"] for s in updated["config"]["served_entities"]] == ["old", "new", "shadow"]
    assert updated["config"]["served_entities"][1]["entity_alias"] == "champion"
    assert updated["config"]["shadow"] == {"served_entity_name": "shadow", "fraction": 0.5}
    assert updated["config"]["auto_capture_config"]["enabled"] is True  # omitted: kept
    assert http.get(f"{API}/{name}").json() == updated

    assert http.delete(f"{API}/{name}").json() == {}
    error_of(http.get(f"{API}/{name}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert name not in [e["name"] for e in http.get(API).json()["endpoints"]]


def test_list_is_ordered_by_name(http):
    names = [unique("zz-order") for _ in range(3)]
    for n in names:
        assert http.post(API, json={"name": n, "config": config()}).status_code == 200
    listed = [e["name"] for e in http.get(API).json()["endpoints"]]
    assert listed == sorted(listed)
    assert set(names) <= set(listed)
    for n in names:
        http.delete(f"{API}/{n}")


def test_errors(http):
    name = unique()
    assert http.post(API, json={"name": name, "config": config()}).status_code == 200
    message = error_of(http.post(API, json={"name": name, "config": config()}), 400, "RESOURCE_ALREADY_EXISTS")
    assert message == f"Endpoint '{name}' already exists."
    missing = unique("missing")
    for resp in (
        http.get(f"{API}/{missing}"),
        http.put(f"{API}/{missing}/config", json=config()),
        http.delete(f"{API}/{missing}"),
        http.get(f"{API}/{missing}/payloads"),
    ):
        assert error_of(resp, 404, "RESOURCE_DOES_NOT_EXIST") == f"Endpoint '{missing}' does not exist."

    bad = config()
    bad["traffic_config"] = {"routes": [{"served_entity_name": f"{MODEL}-1", "traffic_percentage": 90}]}
    message = error_of(http.put(f"{API}/{name}/config", json=bad), 400, "INVALID_PARAMETER_VALUE")
    assert message == "traffic_config.routes: percentages sum to 90, must be 100"
    both = config()
    both["served_entities"][0]["entity_alias"] = "champion"
    message = error_of(http.post(API, json={"name": unique(), "config": both}), 400, "INVALID_PARAMETER_VALUE")
    assert message == "served_entities[0]: give entity_version or entity_alias, not both"
    typed = config()
    typed["served_entities"][0]["max_batch_rows"] = "lots"
    message = error_of(http.post(API, json={"name": unique(), "config": typed}), 400, "INVALID_PARAMETER_VALUE")
    assert message == "served_entities[0].max_batch_rows: Expected `int`, got `str`"
    message = error_of(http.post(API, json={"name": unique(), "config": config("9")}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert message.startswith(f"served_entities[0] ({MODEL}-9): ") and "9" in message
    message = error_of(http.put(f"{API}/{name}/config", json={"served_entities": [
        {"entity_name": "nowhere_model", "entity_alias": "champion"}]}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert "nowhere_model" in message
    message = error_of(http.post(API, json={"name": "a b", "config": config()}), 400, "INVALID_PARAMETER_VALUE")
    assert message.startswith("name: 'a b' contains a space")
    message = error_of(http.post(API, json={"config": config()}), 400, "INVALID_PARAMETER_VALUE")
    assert "Missing value for required parameter 'name'" in message
    message = error_of(http.post(API, json={"name": unique()}), 400, "INVALID_PARAMETER_VALUE")
    assert message == "config: a JSON object with served_entities is required"
    message = error_of(http.put(f"{API}/{name}/config", json=[1, 2]), 400, "INVALID_PARAMETER_VALUE")
    assert message == "config: a JSON object with served_entities is required"
    error_of(http.get(f"{API}/{name}/payloads", params={"max_results": "many"}), 400, "INVALID_PARAMETER_VALUE")
    error_of(http.get(f"{API}/{name}/payloads", params={"max_results": 0}), 400, "INVALID_PARAMETER_VALUE")
    message = error_of(
        http.get(f"{API}/{name}/payloads", params={"page_token": "nope"}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert message.startswith("page_token:")
    # Nothing above changed the endpoint.
    assert http.get(f"{API}/{name}").json()["config"]["config_version"] == 1
    http.delete(f"{API}/{name}")


def test_payloads_page_by_time(http, server):
    _url, data_dir = server
    name = unique("logged")
    assert http.post(API, json={"name": name, "config": config()}).status_code == 200
    records = [
        PayloadRecord(
            request_id=f"req-{i}",
            client_request_id=f"client-{i}",
            timestamp_ms=T0 + i // 2,
            status_code=200 if i % 10 else 400,
            latency_ms=1.5,
            served_entity_name=f"{MODEL}-1",
            model_name=MODEL,
            model_version="1",
            request='{"inputs": [[5.1, 3.5, 1.4, 0.2]]}',
            response='{"predictions": [0]}',
            truncated=i == 3,
        )
        for i in range(500)
    ]
    eng = engine.open(data_dir)
    try:
        for i in range(0, 500, 50):
            eng.endpoints.log_payloads(name, records[i : i + 50])
        eng.flush()
    finally:
        eng.close()

    def read_all(**params) -> tuple[list[dict], int]:
        out, token, pages = [], None, 0
        while True:
            query = {**params, **({"page_token": token} if token else {})}
            resp = http.get(f"{API}/{name}/payloads", params=query)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            out += body["payloads"]
            pages += 1
            token = body.get("next_page_token")
            if not token:
                return out, pages

    got, pages = read_all(max_results=120)
    assert pages == 5 and [p["request_id"] for p in got] == [r.request_id for r in records]
    assert got[3] == {
        "request_id": "req-3",
        "timestamp_ms": T0 + 1,
        "status_code": 200,
        "latency_ms": 1.5,
        "client_request_id": "client-3",
        "served_entity_name": f"{MODEL}-1",
        "model_name": MODEL,
        "model_version": "1",
        "request": '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}',
        "response": '{"predictions": [0]}',
        "truncated": True,
        "shadow": False,
    }
    # [T0 + 100, T0 + 150): records 200-299, oldest first, end exclusive.
    window, pages = read_all(start_time_ms=T0 + 100, end_time_ms=T0 + 150, max_results=30)
    assert pages == 4 and [p["request_id"] for p in window] == [f"req-{i}" for i in range(200, 300)]
    first = http.get(f"{API}/{name}/payloads").json()
    assert len(first["payloads"]) == 100 and "next_page_token" in first  # the default page
    http.delete(f"{API}/{name}")
