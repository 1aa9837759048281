"""The endpoint store (engine/endpoints/contract.py is the spec) on a real LMDB store:
endpoint CRUD, config checks and their messages, config stamps, persistence, and the
payload logs (batched async writes, time-range paging, counts, deletion in chunks)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from cairn import engine
from cairn.engine.endpoints import lmdbstore as endpoints_module
from cairn.engine.endpoints.contract import (
    DEFAULT_MAX_BATCH_ROWS,
    AutoCaptureConfig,
    EndpointConfig,
    PayloadRecord,
    Route,
    ServedEntity,
    ShadowConfig,
    TrafficConfig,
)
from cairn.engine.errors import CairnError
from cairn.engine.store.keys import u64

T0 = 1_700_000_000_000
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def models(register_versions):
    """The versions and aliases these configs serve: an endpoint refuses a missing one."""

    def register(e) -> None:
        register_versions(e, "iris", 3, {"champion": 2})
        register_versions(e, "m")
        register_versions(e, "m" * 255)
        register_versions(e, "vision.resnet", 1, {"champion": 1})
        register_versions(e, "cat.vision.resnet", 7)

    return register


@pytest.fixture
def eng(tmp_path: Path, models):
    e = engine.open(tmp_path / "data")
    models(e)
    yield e
    e.close()


def one(version="1", **kw) -> dict:
    return {"served_entities": [{"entity_name": "iris", "entity_version": version, **kw}]}


def two(a=70, b=30) -> dict:
    return {
        "served_entities": [
            {"name": "a", "entity_name": "iris", "entity_version": "1"},
            {"name": "b", "entity_name": "iris", "entity_alias": "champion"},
        ],
        "traffic_config": {
            "routes": [
                {"served_entity_name": "a", "traffic_percentage": a},
                {"served_entity_name": "b", "traffic_percentage": b},
            ]
        },
    }


def error(call, code="INVALID_PARAMETER_VALUE") -> str:
    with pytest.raises(CairnError) as err:
        call()
    assert err.value.error_code == code, err.value
    return err.value.message


def records(n: int, start: int = T0, per_ms: int = 1, prefix: str = "r") -> list[PayloadRecord]:
    """n records, `per_ms` of them in each millisecond from `start`."""
    return [
        PayloadRecord(
            request_id=f"{prefix}{i}",
            timestamp_ms=start + i // per_ms,
            status_code=200,
            latency_ms=0.5,
            served_entity_name="iris-1",
            model_name="iris",
            model_version="1",
            request='{"inputs": [[1, 2]]}',
            response='{"predictions": [0]}',
        )
        for i in range(n)
    ]


# -- endpoints ----------------------------------------------------------------------------
def test_create_get_list_normalizes_the_config(eng):
    store = eng.endpoints
    ep = store.create_endpoint("iris-prod", one(version=1), creator="ana")
    assert ep.name == "iris-prod" and ep.creator == "ana" and ep.config_version == 1
    assert len(ep.id) == 32 and ep.creation_timestamp == ep.last_updated_timestamp > 0
    (se,) = ep.config.served_entities
    # Defaults filled in: the name, the version as a string, batching, one 100% route.
    assert se.name == "iris-1" and se.entity_version == "1" and se.entity_alias == ""
    assert (se.workload_type, se.max_batch_rows, se.max_wait_ms, se.max_queue_rows, se.max_workers) == (
        "CPU",
        DEFAULT_MAX_BATCH_ROWS,
        0.0,
        4096,
        0,
    )
    assert ep.config.traffic_config == TrafficConfig(
        routes=[Route(served_entity_name="iris-1", traffic_percentage=100)]
    )
    assert ep.config.auto_capture_config == AutoCaptureConfig()
    assert ep.config.shadow is None
    assert store.get_endpoint("iris-prod") == ep
    store.create_endpoint("a-first", one())
    store.create_endpoint("z_last", one())
    assert [e.name for e in store.list_endpoints()] == ["a-first", "iris-prod", "z_last"]


def test_structs_aliases_and_gpu_names(eng):
    config = EndpointConfig(
        served_entities=[
            ServedEntity(entity_name="vision.resnet", entity_alias="champion", workload_type="GPU_SMALL"),
            ServedEntity(entity_name="cat.vision.resnet", entity_version="07", max_wait_ms=2, max_workers=3),
        ],
        traffic_config=TrafficConfig(
            routes=[
                Route(served_entity_name="resnet-champion", traffic_percentage=0),
                Route(served_entity_name="resnet-7", traffic_percentage=100),
            ]
        ),
        auto_capture_config=AutoCaptureConfig(enabled=True, sampling_fraction=0.25, max_payload_bytes=0),
    )
    ep = eng.endpoints.create_endpoint("resnet", config)
    a, b = ep.config.served_entities
    assert (a.name, a.entity_alias, a.workload_type) == ("resnet-champion", "champion", "GPU")
    assert (b.name, b.entity_version, b.max_wait_ms, b.max_workers) == ("resnet-7", "7", 2.0, 3)
    assert ep.config.auto_capture_config.sampling_fraction == 0.25
    assert config.served_entities[0].name == ""  # the caller's config is not changed


def test_update_bumps_config_version_and_keeps_capture(eng, distinct_clock):
    store = eng.endpoints
    cfg = one()
    cfg["auto_capture_config"] = {"enabled": True, "sampling_fraction": 0.5}
    first = store.create_endpoint("upd", cfg)
    second = store.update_config("upd", two())
    assert second.config_version == 2 and second.id == first.id
    assert second.creation_timestamp == first.creation_timestamp < second.last_updated_timestamp
    assert [r.traffic_percentage for r in second.config.traffic_config.routes] == [70, 30]
    # An omitted auto_capture_config keeps the current one.
    assert second.config.auto_capture_config == AutoCaptureConfig(enabled=True, sampling_fraction=0.5)
    with_shadow = two(100, 0)
    with_shadow["traffic_config"]["routes"].pop()
    with_shadow["shadow"] = {"served_entity_name": "b", "fraction": 0.1}
    with_shadow["auto_capture_config"] = {"enabled": False}
    third = store.update_config("upd", with_shadow)
    assert third.config_version == 3 and third.config.shadow == ShadowConfig(served_entity_name="b", fraction=0.1)
    assert third.config.auto_capture_config.enabled is False
    # An omitted shadow removes it.
    fourth = store.update_config("upd", two())
    assert fourth.config.shadow is None and fourth.config_version == 4
    assert store.get_endpoint("upd") == fourth
    # A failed update changes nothing.
    error(lambda: store.update_config("upd", two(50, 40)))
    assert store.get_endpoint("upd") == fourth


def test_shadow_with_default_route(eng):
    cfg = two()
    del cfg["traffic_config"]
    cfg["shadow"] = {"served_entity_name": "b"}
    ep = eng.endpoints.create_endpoint("shadowed", cfg)
    assert ep.config.traffic_config.routes == [Route(served_entity_name="a", traffic_percentage=100)]
    assert ep.config.shadow == ShadowConfig(served_entity_name="b", fraction=1.0)


def test_config_stamps_tell_a_recreated_endpoint(eng):
    store = eng.endpoints
    assert store.config_stamps() == {} and store.config_versions() == {}
    first = store.create_endpoint("s1", one())
    store.create_endpoint("s2", one())
    store.update_config("s2", one("2"))
    stamps = store.config_stamps()
    assert stamps["s1"] == (first.id, 1) and stamps["s2"].config_version == 2
    assert store.config_versions() == {"s1": 1, "s2": 2}
    store.delete_endpoint("s1")
    again = store.create_endpoint("s1", one())
    assert again.config_version == 1 and again.id != first.id
    assert store.config_stamps()["s1"] == (again.id, 1)


def test_missing_and_duplicate_endpoints(eng):
    store = eng.endpoints
    store.create_endpoint("dup", one())
    assert (
        error(lambda: store.create_endpoint("dup", one()), "RESOURCE_ALREADY_EXISTS")
        == "Endpoint 'dup' already exists."
    )
    for call in (
        lambda: store.get_endpoint("nope"),
        lambda: store.update_config("nope", one()),
        lambda: store.delete_endpoint("nope"),
        lambda: store.read_payloads("nope"),
        lambda: store.payload_count("nope"),
    ):
        assert error(call, "RESOURCE_DOES_NOT_EXIST") == "Endpoint 'nope' does not exist."
    store.delete_endpoint("dup")
    error(lambda: store.get_endpoint("dup"), "RESOURCE_DOES_NOT_EXIST")
    assert store.list_endpoints() == []


def test_served_model_versions_must_exist(eng):
    """As Databricks: an endpoint that names a missing model, version or alias is
    refused (naming the served entity and what is missing), on create and update, and
    nothing of it is written."""
    store = eng.endpoints
    ghost = {"served_entities": [{"entity_name": "ghost", "entity_version": "1"}]}
    assert "ghost" in error(lambda: store.create_endpoint("x", ghost), "RESOURCE_DOES_NOT_EXIST")
    missing = error(lambda: store.create_endpoint("x", one("9")), "RESOURCE_DOES_NOT_EXIST")
    assert missing.startswith("served_entities[0] (iris-9): ") and "iris" in missing and "9" in missing
    no_alias = _set(two(), "served_entities.1.entity_alias", "gone")
    with pytest.raises(CairnError, match=r"served_entities\[1\] \(b\): .*gone"):
        store.create_endpoint("x", no_alias)
    assert store.list_endpoints() == []
    store.create_endpoint("x", one())
    error(lambda: store.update_config("x", one("9")), "RESOURCE_DOES_NOT_EXIST")
    assert store.get_endpoint("x").config_version == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name: an endpoint name is required"),
        (None, "name: an endpoint name is required"),
        ("x" * 64, "name: 'xxxx"),
        ("a b", "name: 'a b' contains a space; endpoint names may contain only letters, digits, '_' and '-'"),
        ("a.b", "name: 'a.b' contains '.'"),
        ("a/b", "name: 'a/b' contains '/'"),
    ],
)
def test_endpoint_name_errors(eng, name, message):
    assert error(lambda: eng.endpoints.create_endpoint(name, one())).startswith(message)


def test_longest_endpoint_name(eng):
    assert eng.endpoints.create_endpoint("x" * 63, one()).name == "x" * 63


def _set(cfg: dict, path: str, value) -> dict:
    """A copy of cfg with the dotted path (list indexes as numbers) set; None deletes."""
    cfg = copy.deepcopy(cfg)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = cfg
    for p in parents:
        node = node[p]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return cfg


SE0 = "served_entities.0"
ROUTES = "traffic_config.routes"
CONFIG_ERRORS = [
    (_set(two(), "served_entities", []), "served_entities: at least one served entity is required"),
    (
        {"served_entities": [{"name": f"e{i}", "entity_name": "m", "entity_version": "1"} for i in range(16)]},
        "served_entities: at most 15 are allowed, got 16",
    ),
    (
        _set(two(), "served_entities.1.entity_version", "2"),
        "served_entities[1]: give entity_version or entity_alias, not both",
    ),
    (_set(two(), f"{SE0}.entity_version", None), "served_entities[0]: give entity_version or entity_alias"),
    (_set(two(), f"{SE0}.entity_version", ""), "served_entities[0]: give entity_version or entity_alias"),
    (_set(two(), f"{SE0}.entity_name", "a b"), "served_entities[0].entity_name: Invalid registered model name 'a b'"),
    (_set(two(), f"{SE0}.entity_name", "a.b.c.d"), "served_entities[0].entity_name: Invalid registered model name"),
    (_set(two(), f"{SE0}.entity_name", ""), "served_entities[0].entity_name: Missing value"),
    (
        _set(two(), f"{SE0}.entity_version", "x1"),
        "served_entities[0].entity_version: must be a positive integer, got 'x1'",
    ),
    (_set(two(), f"{SE0}.entity_version", 0), "served_entities[0].entity_version: must be a positive integer, got 0"),
    (_set(two(), f"{SE0}.entity_version", -3), "served_entities[0].entity_version: must be a positive integer"),
    (
        _set(two(), "served_entities.1.entity_alias", "no way"),
        "served_entities[1].entity_alias: Invalid alias name: 'no way'",
    ),
    (_set(two(), f"{SE0}.workload_type", "TPU"), "served_entities[0].workload_type: 'TPU' is not one of CPU, GPU"),
    (
        _set(two(), f"{SE0}.max_batch_rows", 0),
        "served_entities[0].max_batch_rows: must be an integer from 1 to 65536, got 0",
    ),
    (
        _set(two(), f"{SE0}.max_batch_rows", 65537),
        "served_entities[0].max_batch_rows: must be an integer from 1 to 65536",
    ),
    (_set(two(), f"{SE0}.max_wait_ms", -1), "served_entities[0].max_wait_ms: must be a number from 0 to 1000, got -1"),
    (_set(two(), f"{SE0}.max_wait_ms", 1001), "served_entities[0].max_wait_ms: must be a number from 0 to 1000"),
    (
        _set(two(), f"{SE0}.max_queue_rows", 0),
        "served_entities[0].max_queue_rows: must be an integer from 1 to 10000000",
    ),
    (
        _set(two(), f"{SE0}.max_workers", -1),
        "served_entities[0].max_workers: must be an integer from 0 to 1024, got -1",
    ),
    (_set(two(), f"{SE0}.max_workers", True), "served_entities[0].max_workers: Expected `int`, got `bool`"),
    (
        _set(two(), f"{SE0}.scale_to_zero_enabled", 1),
        "served_entities[0].scale_to_zero_enabled: Expected `bool`, got `int`",
    ),
    (_set(two(), f"{SE0}.name", "a b"), "served_entities[0].name: 'a b' contains a space; served entity names"),
    (
        _set(two(), "served_entities.1.name", "a"),
        "served_entities[1].name: 'a' is already the name of served_entities[0]",
    ),
    (
        _set(two(), "traffic_config", None),
        "traffic_config: required with more than one served entity; give routes for a, b",
    ),
    (
        _set(two(), f"{ROUTES}.1.served_entity_name", "c"),
        "traffic_config.routes[1].served_entity_name: 'c' is not a served entity",
    ),
    (
        _set(two(), f"{ROUTES}.1.served_entity_name", "a"),
        "traffic_config.routes[1].served_entity_name: 'a' has a route already",
    ),
    (
        _set(two(), f"{ROUTES}.0.traffic_percentage", 170),
        "traffic_config.routes[0].traffic_percentage: must be an integer from 0 to 100, got 170",
    ),
    (
        _set(two(), f"{ROUTES}.0.traffic_percentage", 70.5),
        "traffic_config.routes[0].traffic_percentage: Expected `int`, got `float`",
    ),
    (two(60, 30), "traffic_config.routes: percentages sum to 90, must be 100"),
    (
        _set(two(), ROUTES, [{"served_entity_name": "a", "traffic_percentage": 100}]),
        "traffic_config.routes: no route for 'b'; every served entity except the shadow needs one",
    ),
    (_set(two(), "shadow", {"served_entity_name": "zz"}), "shadow.served_entity_name: 'zz' is not a served entity"),
    (
        _set(two(), "shadow", {"served_entity_name": "b"}),
        "traffic_config.routes[1].served_entity_name: 'b' is the shadow; it gets a copy of traffic, never a route",
    ),
    (_set(one(), "shadow", {"served_entity_name": "iris-1"}), "shadow: the shadow cannot be the only served entity"),
    (
        _set(_set(two(100, 0), f"{ROUTES}.1", None), "shadow", {"served_entity_name": "b", "fraction": 0}),
        "shadow.fraction: must be a number above 0 and at most 1, got 0.0",
    ),
    (
        _set(_set(two(100, 0), f"{ROUTES}.1", None), "shadow", {"served_entity_name": "b", "fraction": 1.5}),
        "shadow.fraction: must be a number above 0 and at most 1, got 1.5",
    ),
    (
        _set(one(), "auto_capture_config", {"sampling_fraction": 2}),
        "auto_capture_config.sampling_fraction: must be a number from 0 to 1, got 2",
    ),
    (
        _set(one(), "auto_capture_config", {"max_payload_bytes": -1}),
        "auto_capture_config.max_payload_bytes: must be an integer from 0 to 16777216, got -1",
    ),
    (_set(one(), f"{SE0}.max_batch_rows", "many"), "served_entities[0].max_batch_rows: Expected `int`, got `str`"),
    ({"traffic_config": {"routes": []}}, "config: Object missing required field `served_entities`"),
    (_set(one(), f"{SE0}.entity_name", None), "served_entities[0]: Object missing required field `entity_name`"),
]


@pytest.mark.parametrize(("config", "message"), CONFIG_ERRORS)
def test_config_errors_name_the_field(eng, config, message):
    store = eng.endpoints
    assert error(lambda: store.create_endpoint("bad", config)).startswith(message)
    store.create_endpoint("good", one())
    assert error(lambda: store.update_config("good", config)).startswith(message)
    assert store.get_endpoint("good").config_version == 1
    store.delete_endpoint("good")


def test_config_errors_of_python_callers(eng):
    store = eng.endpoints
    assert (
        error(lambda: store.create_endpoint("bad", None))
        == "config: an endpoint config with served_entities is required"
    )
    assert (
        error(lambda: store.create_endpoint("bad", "iris")) == "config: must be an EndpointConfig or a mapping, got str"
    )
    bad = EndpointConfig(served_entities=["iris"])
    assert error(lambda: store.create_endpoint("bad", bad)).startswith("served_entities[0]: must be an object")
    bad = EndpointConfig(
        served_entities=[ServedEntity(entity_name="iris", entity_version="1")], traffic_config={"routes": []}
    )
    assert error(lambda: store.create_endpoint("bad", bad)) == "traffic_config: must be an object with a list of routes"
    # Structs built in Python skip msgspec's type checks: the store makes its own.
    loose = ServedEntity(entity_name="iris", entity_version="1", max_workers=True, scale_to_zero_enabled=1)
    message = error(lambda: store.create_endpoint("bad", EndpointConfig(served_entities=[loose])))
    assert message == "served_entities[0].scale_to_zero_enabled: must be true or false, got 1"
    loose.scale_to_zero_enabled = False
    message = error(lambda: store.create_endpoint("bad", EndpointConfig(served_entities=[loose])))
    assert message == "served_entities[0].max_workers: must be an integer from 0 to 1024, got True"
    routes = TrafficConfig(routes=[Route(served_entity_name="iris-1", traffic_percentage=100.0)])
    bad = EndpointConfig(served_entities=[ServedEntity(entity_name="iris", entity_version="1")], traffic_config=routes)
    message = error(lambda: store.create_endpoint("bad", bad))
    assert message == "traffic_config.routes[0].traffic_percentage: must be an integer from 0 to 100, got 100.0"
    long_model = _set(one(), f"{SE0}.entity_name", "m" * 255)
    assert "the default name; give a shorter one" in error(lambda: store.create_endpoint("bad", long_model))
    assert store.list_endpoints() == []


def test_endpoints_survive_reopen(tmp_path, models):
    path = tmp_path / "reopen"
    with engine.open(path) as eng:
        models(eng)
        first = eng.endpoints.create_endpoint("keep", two())
        second = eng.endpoints.update_config("keep", one())
        eng.endpoints.log_payloads("keep", records(10))
    with engine.open(path) as eng:
        assert eng.endpoints.get_endpoint("keep") == second and second.id == first.id
        assert eng.endpoints.config_stamps() == {"keep": (first.id, 2)}
        assert eng.endpoints.payload_count("keep") == 10
        # The id counter and the seq counter go on where they were.
        other = eng.endpoints.create_endpoint("other", one())
        assert other.id != first.id
        eng.endpoints.log_payloads("keep", records(5, start=T0, prefix="late"))
        eng.flush()
        got = eng.endpoints.read_payloads("keep", max_results=100).items
        assert [r.request_id for r in got] == ["r0", "late0", "r1", "late1", "r2", "late2"] + [
            "r3",
            "late3",
            "r4",
            "late4",
            "r5",
            "r6",
            "r7",
            "r8",
            "r9",
        ]


# -- payload logs -------------------------------------------------------------------------
def test_log_and_page_through_thousands(eng):
    store = eng.endpoints
    store.create_endpoint("logs", one())
    store.create_endpoint("quiet", one())
    batch = records(3000, per_ms=3)  # three records in each millisecond
    for i in range(0, len(batch), 250):
        store.log_payloads("logs", batch[i : i + 250])
    eng.flush()
    assert store.payload_count("logs") == 3000 and store.payload_count("quiet") == 0
    assert store.read_payloads("quiet").items == []
    seen, token, pages = [], None, 0
    while True:
        page = store.read_payloads("logs", max_results=700, page_token=token)
        seen += page.items
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert pages == 5 and seen == batch  # oldest first; logging order within a millisecond
    # A time range: [T0 + 100, T0 + 200) holds 300 records, paged by 128.
    got, token = [], None
    while True:
        page = store.read_payloads("logs", start_ms=T0 + 100, end_ms=T0 + 200, max_results=128, page_token=token)
        got += page.items
        token = page.next_page_token
        if not token:
            break
    assert got == batch[300:600]
    assert store.read_payloads("logs", end_ms=T0).items == []
    assert store.read_payloads("logs", start_ms=T0 + 999, max_results=10).items == batch[2997:]
    assert store.read_payloads("logs").items == batch[:100]  # default page size


def test_page_tokens_hold_a_position(eng):
    store = eng.endpoints
    store.create_endpoint("pos", one())
    store.log_payloads("pos", records(10, start=T0 + 10))
    eng.flush()
    page = store.read_payloads("pos", max_results=4)
    assert [r.request_id for r in page.items] == ["r0", "r1", "r2", "r3"]
    # Records logged meanwhile, older than the position, never shift the next page.
    store.log_payloads("pos", records(5, start=T0, prefix="old"))
    eng.flush()
    nxt = store.read_payloads("pos", max_results=4, page_token=page.next_page_token)
    assert [r.request_id for r in nxt.items] == ["r4", "r5", "r6", "r7"]
    assert store.read_payloads("pos", max_results=3).items[0].request_id == "old0"


def test_payload_read_errors(eng):
    store = eng.endpoints
    store.create_endpoint("errs", one())
    for token in ("garbage!", "abcd", "eyJvZmZzZXQiOiAxfQ=="):
        assert error(lambda t=token: store.read_payloads("errs", page_token=t)).startswith("page_token:")
    assert "max_results" in error(lambda: store.read_payloads("errs", max_results=0))
    assert "max_results" in error(lambda: store.read_payloads("errs", max_results=10_001))
    assert error(lambda: store.read_payloads("errs", start_ms="now")).startswith("start_ms: must be an integer")
    assert error(lambda: store.read_payloads("errs", end_ms=1.5)).startswith("end_ms: must be an integer")
    bad = records(1)[0]
    bad.request = {"not": "text"}
    assert error(lambda: store.log_payloads("errs", [bad])).startswith("records: a record field has the wrong type")
    assert error(lambda: store.log_payloads("", records(1))) == "endpoint: an endpoint name is required"
    store.log_payloads("errs", [])  # nothing to do
    eng.flush()
    assert store.payload_count("errs") == 0


def test_record_fields_round_trip(eng):
    store = eng.endpoints
    store.create_endpoint("fields", one())
    rec = PayloadRecord(
        request_id="req-1",
        client_request_id="client-9",
        timestamp_ms=T0,
        status_code=429,
        latency_ms=12.25,
        served_entity_name="b",
        model_name="main.default.iris",
        model_version="3",
        request="x" * 10,
        response="",
        truncated=True,
        shadow=True,
    )
    store.log_payloads("fields", [rec])
    eng.flush()
    assert store.read_payloads("fields").items == [rec]


def test_queued_records_of_a_deleted_endpoint_are_dropped(eng):
    store = eng.endpoints
    store.create_endpoint("gone", one())
    store.log_payloads("never", records(3))  # no such endpoint: dropped, no error
    store.delete_endpoint("gone")
    store.log_payloads("gone", records(3))
    eng.flush()
    store.create_endpoint("gone", one())
    assert store.payload_count("gone") == 0 and store.read_payloads("gone").items == []


def test_delete_removes_the_log_in_chunks(eng, monkeypatch):
    monkeypatch.setattr(endpoints_module, "PURGE_CHUNK", 100)
    store = eng.endpoints
    store.create_endpoint("big", one())
    store.create_endpoint("neighbour", one())
    for i in range(10):
        store.log_payloads("big", records(105, start=T0 + i * 1000))
    store.log_payloads("neighbour", records(7))
    eng.flush()
    assert store.payload_count("big") == 1050
    commits = []
    write = eng.env.write
    monkeypatch.setattr(eng.env, "write", lambda op, **kw: commits.append(op) or write(op, **kw))
    store.delete_endpoint("big")
    assert len(commits) == 1 + 11  # the endpoint, then 1,050 keys in chunks of 100
    assert _log_keys(eng) == 7
    assert store.read_payloads("neighbour").items == records(7)


def _log_keys(eng) -> int:
    with eng.env.read() as txn:
        return txn.stat(eng.env.dbs["payload_logs"])["entries"]


def test_a_log_orphaned_by_a_crash_is_removed_on_open(tmp_path, models):
    path = tmp_path / "crash"
    with engine.open(path) as eng:
        models(eng)
        eng.endpoints.create_endpoint("orphan", one())
        eng.endpoints.create_endpoint("kept", one())
        eng.endpoints.log_payloads("orphan", records(50))
        eng.endpoints.log_payloads("kept", records(5))
        eng.flush()

        def crash_mid_delete(b):  # what delete_endpoint commits before it purges the log
            eid = b.txn.get(b"orphan", db=b.dbs["endpoint_names"])
            b.txn.delete(b"orphan", db=b.dbs["endpoint_names"])
            b.txn.delete(eid, db=b.dbs["endpoints"])
            return eid

        assert eng.env.write(crash_mid_delete) == u64(1)
        assert _log_keys(eng) == 55
    with engine.open(path) as eng:
        assert _log_keys(eng) == 5
        assert eng.endpoints.payload_count("kept") == 5


def test_async_writes_are_durable_after_flush(tmp_path, models):
    """Committed means visible to another process while this one still holds the store."""
    path = tmp_path / "durable"
    eng = engine.open(path)
    try:
        models(eng)
        eng.endpoints.create_endpoint("dur", one())
        batch = records(2000, per_ms=2)
        for i in range(0, 2000, 100):
            eng.endpoints.log_payloads("dur", batch[i : i + 100])  # returns at once
        eng.flush()
        probe = "import sys; from cairn import engine; e = engine.open(sys.argv[1]); print(e.endpoints.payload_count('dur')); e.close()"
        out = subprocess.run(
            [sys.executable, "-c", probe, str(path)], check=False, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert out.stdout.strip() == "2000", out.stderr
    finally:
        eng.close()
    with engine.open(path) as eng:
        assert eng.endpoints.read_payloads("dur", max_results=10_000).items == batch
