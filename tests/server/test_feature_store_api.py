"""/api/2.0/feature-store on a real `cairn server` (another process, ephemeral
loopback port): create, write (Arrow IPC and JSON), read, tags, publish, online lookup,
delete, and MLflow's error codes for bad requests."""
from __future__ import annotations

import uuid

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc

API = "/api/2.0/feature-store"


def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_feature_tables_over_http(server_url):
    name = f"api_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server_url, timeout=30) as c:
        r = c.post(f"{API}/feature-tables/create", json={
            "name": name, "primary_keys": ["cid"], "timestamp_keys": ["ts"],
            "schema": {"cid": "long", "ts": "timestamp", "spend": "double"}, "tags": {"team": "growth"}})
        assert r.status_code == 200, r.text
        assert r.json()["feature_table"]["features"] == ["spend"]
        rows = pa.table({"cid": pa.array([1, 2], pa.int64()),
                         "ts": pa.array([1_704_067_200_000_000] * 2, pa.timestamp("us", tz="UTC")),
                         "spend": [1.5, 2.5]})
        r = c.post(f"{API}/feature-tables/write", params={"name": name}, content=_arrow(rows),
                   headers={"content-type": "application/vnd.apache.arrow.stream"})
        assert r.json() == {"version": 1}, r.text
        r = c.post(f"{API}/feature-tables/write", params={"name": name},
                   json={"records": [{"cid": 3, "ts": "2024-01-02T00:00:00Z", "spend": 3.5}]})
        assert r.json() == {"version": 2}, r.text
        r = c.get(f"{API}/feature-tables/read", params={"name": name, "version": 1})
        assert r.json()["total_rows"] == 2
        assert c.post(f"{API}/feature-tables/set-tag", json={"name": name, "key": "k", "value": "v"}).status_code == 200
        got = c.get(f"{API}/feature-tables/get", params={"name": name}).json()["feature_table"]
        assert got["tags"] == {"team": "growth", "k": "v"} and got["delta_version"] == 2
        assert name in [t["name"] for t in c.get(f"{API}/feature-tables/list").json()["feature_tables"]]
        r = c.post(f"{API}/feature-tables/publish", json={"name": name})
        assert r.json()["online_rows"] == 3, r.text
        r = c.post(f"{API}/online/lookup", json={"name": name, "keys": [[3], [9]]})
        assert r.json() == {"results": [{"spend": 3.5}, None]}

        spec = c.post(f"{API}/feature-specs/create", json={
            "name": f"{name}_spec", "features": [{"table_name": name, "lookup_key": "customer_id"}]})
        assert spec.status_code == 200, spec.text
        assert spec.json()["feature_spec"]["feature_columns"] == ["spend"]
        assert c.get(f"{API}/feature-specs/get", params={"name": f"{name}_spec"}).status_code == 200
        bad_spec = c.post(f"{API}/feature-specs/create", json={
            "name": f"{name}_bad", "features": [{"table_name": name, "lookup_key": "cid", "feature_names": ["x"]}]})
        assert bad_spec.status_code == 400 and "no feature 'x'" in bad_spec.json()["message"]
        assert c.delete(f"{API}/feature-specs/delete", params={"name": f"{name}_spec"}).status_code == 200

        # bad requests: MLflow's codes, the field or column named, nothing written
        bad = c.post(f"{API}/feature-tables/write", params={"name": name},
                     json={"records": [{"cid": 4, "ts": "2024-01-02T00:00:00Z", "spend": "x"}]})
        assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "'spend'" in bad.json()["message"]
        dup = c.post(f"{API}/feature-tables/write", params={"name": name},
                     json={"records": [{"cid": 4, "ts": "2024-01-02T00:00:00Z", "spend": 1.0}] * 2})
        assert dup.status_code == 400 and "Duplicate key" in dup.json()["message"]
        assert c.get(f"{API}/feature-tables/get", params={"name": name}).json()["feature_table"]["delta_version"] == 2
        missing = c.get(f"{API}/feature-tables/get", params={"name": "nope_" + name})
        assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        again = c.post(f"{API}/feature-tables/create", json={"name": name, "primary_keys": ["cid"],
                                                             "schema": {"cid": "long", "v": "double"}})
        assert again.status_code == 400 and again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
        assert c.post(f"{API}/feature-tables/write", params={"name": name}, content=b"garbage",
                      headers={"content-type": "application/vnd.apache.arrow.stream"}).status_code == 400
        assert c.delete(f"{API}/feature-tables/delete", params={"name": name}).status_code == 200
        assert c.get(f"{API}/feature-tables/get", params={"name": name}).status_code == 404
