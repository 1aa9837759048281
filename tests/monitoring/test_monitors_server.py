"""A monitor end to end, as a user runs it: a baseline from a CSV of training inputs
(`cairn monitors baseline`), an endpoint with payload logging on a real `cairn server`,
requests scored over HTTP, then a refresh and the windows over REST and in the CLI:
the shifted column is named as drifted, the other is not."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")


def cairn(data, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cairn.cli", "--data", str(data), *args], capture_output=True,
                          text=True, timeout=120)


def test_drift_from_scored_requests(tmp_path, launch):
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 2))
    onnx_path = tmp_path / "ridge.onnx"
    onnx_path.write_bytes(to_onnx(Ridge().fit(X, X.sum(1)), X[:1].astype(np.float32),
                                  target_opset=17).SerializeToString())
    assert cairn(data, "models", "register", str(onnx_path), "ridge").returncode == 0
    csv = tmp_path / "train.csv"
    csv.write_text("x0,x1\n" + "\n".join(f"{a},{b}" for a, b in X))
    out = cairn(data, "monitors", "baseline", "ridge", "1", "--from-file", str(csv))
    assert out.returncode == 0, out.stderr
    assert "3,000 rows, 2 columns" in out.stdout and "numeric" in out.stdout
    bad = cairn(data, "monitors", "baseline", "ridge", "7", "--from-file", str(csv))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr

    _, url = launch(data)
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/api/2.0/serving-endpoints/", json={"name": "score", "config": {
            "served_entities": [{"entity_name": "ridge", "entity_version": "1"}],
            "auto_capture_config": {"enabled": True}}})
        assert r.status_code == 200, r.text
        missing = c.post("/api/2.0/monitors/create", json={"endpoint_name": "nope"})
        assert missing.status_code == 404 and "Endpoint 'nope' does not exist" in missing.json()["message"]
        r = c.post("/api/2.0/monitors/create", json={"endpoint_name": "score", "granularities": ["1 hour"]})
        assert r.status_code == 200 and r.json()["monitor"]["granularities_s"] == [3600]
        r = c.put("/api/2.0/monitors/alerts", json={"endpoint_name": "score", "alerts": [
            {"name": "x0 moved", "metric": "psi", "op": ">", "threshold": 0.2, "column": "x0"}]})
        assert r.status_code == 200 and r.json()["alerts"][0]["state"] == "ok", r.text
        shifted = np.column_stack([rng.normal(size=600) + 1.0, rng.normal(size=600)])
        for i in range(0, 600, 20):  # 30 requests of 20 rows
            r = c.post("/serving-endpoints/score/invocations",
                       json={"dataframe_split": {"columns": ["x0", "x1"], "data": shifted[i:i + 20].tolist()}})
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20  # the payload log is written off the request path
        while c.get("/api/2.0/serving-endpoints/score/payloads").json().get("payloads", []).__len__() < 30:
            assert time.monotonic() < deadline, "the payload log never caught up"
            time.sleep(0.2)
        r = c.post("/api/2.0/monitors/refresh", json={"endpoint_name": "score"})
        assert r.status_code == 200 and r.json()["payloads_read"] == 30, r.text
        assert c.get("/api/2.0/monitors/alerts", params={"endpoint_name": "score"}).json()["alerts"][0]["state"] \
            == "firing"
        assert 'cairn_monitor_alert_firing{alert="x0 moved",endpoint="score"} 1.0' in c.get("/metrics").text
        windows = c.get("/api/2.0/monitors/metrics", params={"endpoint_name": "score"}).json()["windows"]
        assert len(windows) == 1 and windows[0]["requests"] == 30 and windows[0]["rows"] == 600
        assert windows[0]["final"] is False and "profile" not in windows[0]
        drift = {col["name"]: col for col in windows[0]["drift"]["columns"]}
        assert drift["x0"]["drifted"] and drift["x0"]["method"] == "wasserstein"
        assert not drift["x1"]["drifted"] and windows[0]["drift"]["drifted"]
        with_profiles = c.get("/api/2.0/monitors/metrics", params={"endpoint_name": "score", "profiles": "true"})
        cols = {col["name"] for col in with_profiles.json()["windows"][0]["profile"]["columns"]}
        assert cols == {"x0", "x1", "prediction"}
        bad = c.get("/api/2.0/monitors/metrics", params={"endpoint_name": "score", "granularity": "fortnightly"})
        assert bad.status_code == 400 and "Invalid granularity" in bad.json()["message"]

        # ground truth a day later, from a file keyed by Databricks' request id: 0.1 off
        logged = c.get("/api/2.0/serving-endpoints/score/payloads").json()["payloads"]
        labels = tmp_path / "labels.jsonl"
        labels.write_text("\n".join(json.dumps({"request_id": p["request_id"], "label": [
            v[0] + 0.1 for v in json.loads(p["response"])["predictions"]]}) for p in logged))
        out = cairn(data, "monitors", "labels", "score", str(labels))
        assert out.returncode == 0 and "30 labels for score; 30 for requests already read" in out.stdout, out.stderr
        assert c.post("/api/2.0/monitors/refresh", json={"endpoint_name": "score"}).status_code == 200
        w = c.get("/api/2.0/monitors/metrics", params={"endpoint_name": "score"}).json()["windows"][0]
        assert w["labeled"] == 600 and abs(w["quality"]["mae"] - 0.1) < 1e-6

    shown = cairn(data, "monitors", "metrics", "score")
    assert shown.returncode == 0 and "DRIFT: x0" in shown.stdout and "x1" not in shown.stdout.split("DRIFT:")[1]
    empty = cairn(data, "monitors", "metrics", "score", "--since", "2999-01-01")
    assert empty.returncode == 0 and "No windows for 'score' since 2999-01-01: nothing logged" in empty.stderr
    listed = cairn(data, "monitors", "list")
    assert "score" in listed.stdout and "3600" in listed.stdout
    assert cairn(data, "monitors", "delete", "score").returncode == 0
    gone = cairn(data, "monitors", "show", "score")
    assert gone.returncode == 1 and "has no monitor" in gone.stderr


def test_the_server_refreshes_monitors_in_the_background(tmp_path, launch):
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    data = tmp_path / "data"
    X = np.random.default_rng(1).normal(size=(50, 2))
    onnx_path = tmp_path / "ridge.onnx"
    onnx_path.write_bytes(to_onnx(Ridge().fit(X, X.sum(1)), X[:1].astype(np.float32),
                                  target_opset=17).SerializeToString())
    assert cairn(data, "models", "register", str(onnx_path), "ridge").returncode == 0
    _, url = launch(data, "--monitor-interval", "0.5")
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/api/2.0/serving-endpoints/", json={"name": "bg", "config": {
            "served_entities": [{"entity_name": "ridge", "entity_version": "1"}],
            "auto_capture_config": {"enabled": True}}}).status_code == 200
        assert c.post("/api/2.0/monitors/create", json={"endpoint_name": "bg"}).status_code == 200
        for _ in range(5):
            assert c.post("/serving-endpoints/bg/invocations", json={"inputs": [[1.0, 2.0]]}).status_code == 200
        deadline = time.monotonic() + 20
        while True:  # nobody asks for a refresh: the server's refresher does it
            windows = c.get("/api/2.0/monitors/metrics", params={"endpoint_name": "bg"}).json()["windows"]
            if windows and windows[0]["requests"] == 5:
                break
            assert time.monotonic() < deadline, f"no background refresh: {windows}"
            time.sleep(0.3)
        assert "no baseline for main.default.ridge version 1" in windows[0]["note"]
        assert c.get("/api/2.0/monitors/get", params={"endpoint_name": "bg"}).json()["monitor"]["last_refresh_ms"] > 0
