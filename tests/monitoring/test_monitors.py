"""Monitors on a real LMDB over a real payload log: windows per granularity and served
entity, drift against the version's baseline and the window before, incremental
refresh (final windows are not read again), and the errors a user meets."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cairn.engine.endpoints.contract import PayloadRecord
from cairn.engine.errors import CairnError
from cairn.engine.monitoring.profiles import profile_columns
from cairn.engine.monitoring.records import ALL

HOUR = 3_600_000
T0 = 1_700_002_800_000  # on the hour


@pytest.fixture
def served(eng, tmp_path):
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    from cairn.engine.sdk.client import Client

    X = np.random.default_rng(0).normal(size=(50, 2))
    path = tmp_path / "r.onnx"
    path.write_bytes(to_onnx(Ridge().fit(X, X.sum(1)), X[:1].astype(np.float32), target_opset=17).SerializeToString())
    client = Client(eng.path)
    client._ensure_registered_model("r")
    client.create_model_version("r", str(path))
    client.create_model_version("r", str(path))
    eng.endpoints.create_endpoint("ep", {"served_entities": [
        {"name": "a", "entity_name": "r", "entity_version": "1"},
        {"name": "b", "entity_name": "r", "entity_version": "2"}],
        "traffic_config": {"routes": [{"served_entity_name": "a", "traffic_percentage": 50},
                                      {"served_entity_name": "b", "traffic_percentage": 50}]}})
    rng = np.random.default_rng(1)
    eng.monitoring.set_baseline("r", "1", profile_columns({"x0": rng.normal(size=5000).tolist(),
                                                           "x1": rng.normal(size=5000).tolist()}))
    return eng


def log(eng, start_ms: int, n: int, shift: float = 0.0, seed: int = 2, step_ms: int = 300) -> None:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        row = [float(rng.normal() + shift), float(rng.normal())]
        entity, version = ("a", "1") if i % 2 == 0 else ("b", "2")
        recs.append(PayloadRecord(request_id=f"{start_ms}-{i}", timestamp_ms=start_ms + i * step_ms,
                                  status_code=200 if i % 50 else 500, latency_ms=1.0 + i % 7,
                                  served_entity_name=entity, model_name="r", model_version=version,
                                  request=json.dumps({"inputs": [row]}),
                                  response=json.dumps({"predictions": [sum(row)]})))
    eng.endpoints.log_payloads("ep", recs)
    eng.env.flush()


def test_windows_drift_and_incremental_refresh(served):
    eng = served
    m = eng.monitoring.create_monitor("ep", ["5 minutes", "1 hour"], settle_s=60)
    assert m.granularities == [300, 3600]
    log(eng, T0, 2000)  # 10 minutes: two 5-minute windows, the same distribution
    first = eng.monitoring.refresh("ep", now=T0 + 2 * HOUR)
    assert first.payloads_read == 2000
    windows = eng.monitoring.windows("ep", "5 minutes")
    assert [w.start_ms - T0 for w in windows] == [0, 300_000] and all(w.final for w in windows)
    w0 = windows[0]
    assert (w0.requests, w0.errors, w0.rows) == (1000, 20, 980) and w0.latency_p50_ms == 4.0
    assert w0.model == "main.default.r/1" and not w0.drift.drifted and w0.consecutive is None
    assert windows[1].consecutive is not None and not windows[1].consecutive.drifted
    per_entity = eng.monitoring.windows("ep", "5 minutes", entity="b")
    assert per_entity[0].requests == 500 and per_entity[0].drift is None
    assert "no baseline for main.default.r version 2" in per_entity[0].note
    assert {c.name for c in w0.profile.columns} == {"x0", "x1", "prediction"}

    log(eng, T0 + HOUR, 1000, shift=1.0, seed=3)  # the next hour: x0 moved by one std
    second = eng.monitoring.refresh("ep", now=T0 + 3 * HOUR)
    assert second.payloads_read == 1000  # final windows are not read again
    shifted = eng.monitoring.windows("ep", "5 minutes", start_ms=T0 + HOUR)[0]
    x0 = next(c for c in shifted.drift.columns if c.name == "x0")
    x1 = next(c for c in shifted.drift.columns if c.name == "x1")
    assert x0.drifted and not x1.drifted and shifted.drift.drifted  # one of two columns: half
    hours = eng.monitoring.windows("ep", "1 hour", entity=ALL)
    assert [w.requests for w in hours] == [2000, 1000]

    log(eng, T0 + 3 * HOUR, 10)  # 300 ms apart: a window still open is computed again on the next refresh
    eng.monitoring.refresh("ep", now=T0 + 3 * HOUR + 1000)  # a refresh reads up to its `now`, not what came after
    open_window = eng.monitoring.windows("ep", "5 minutes", start_ms=T0 + 3 * HOUR)
    assert open_window[0].requests == 4 and not open_window[0].final
    eng.monitoring.refresh("ep", now=T0 + 3 * HOUR + 5000)
    assert eng.monitoring.windows("ep", "5 minutes", start_ms=T0 + 3 * HOUR)[0].requests == 10
    log(eng, T0 + 3 * HOUR + 10_000, 5, seed=9)
    third = eng.monitoring.refresh("ep", now=T0 + 3 * HOUR + 20_000)
    assert third.payloads_read == 15
    assert eng.monitoring.windows("ep", "5 minutes", start_ms=T0 + 3 * HOUR)[0].requests == 15


def test_errors_name_what_is_wrong(served):
    eng = served
    with pytest.raises(CairnError, match="Endpoint 'nope' does not exist"):
        eng.monitoring.create_monitor("nope")
    with pytest.raises(CairnError, match="Invalid granularity 'fortnightly'"):
        eng.monitoring.create_monitor("ep", ["fortnightly"])
    eng.monitoring.create_monitor("ep")
    with pytest.raises(CairnError, match="already has a monitor"):
        eng.monitoring.create_monitor("ep")
    with pytest.raises(CairnError, match="has no 3600 s windows|has no 60 s windows"):
        eng.monitoring.windows("ep", "1 minute")
    with pytest.raises(CairnError, match="version 2 has no baseline profile: make one with"):
        eng.monitoring.get_baseline("r", "2")
    with pytest.raises(CairnError, match="Model Version .* not found|does not exist|not found"):
        eng.monitoring.set_baseline("r", "9", profile_columns({"x": [1.0]}))
    # alert rules name columns the served versions' baselines have (version 1's: x0, x1)
    with pytest.raises(CairnError, match=r"alerts\[0\].column: the endpoint's models have no column 'x9' "
                                         r"\(their baselines have x0, x1\)"):
        eng.monitoring.set_alerts("ep", [{"name": "a", "metric": "psi", "op": ">", "threshold": 0.2, "column": "x9"}])
    with pytest.raises(CairnError, match=r"alerts\[0\].column: only drift metrics are per column"):
        eng.monitoring.set_alerts("ep", [{"name": "a", "metric": "accuracy", "op": "<", "threshold": 0.9,
                                          "column": "x0"}])
    assert eng.monitoring.set_alerts("ep", [{"name": "a", "metric": "psi", "op": ">", "threshold": 0.2,
                                             "column": "x0"}]).alerts[0].column == "x0"
    eng.monitoring.delete_monitor("ep")
    with pytest.raises(CairnError, match="has no monitor"):
        eng.monitoring.refresh("ep")


def test_labels_posted_later_give_quality_as_scikit_learn_computes_it(served):
    from sklearn.metrics import mean_absolute_error, r2_score

    eng = served
    eng.monitoring.create_monitor("ep", ["5 minutes"], settle_s=0, problem_type="regression")
    log(eng, T0, 200)
    eng.monitoring.refresh("ep", now=T0 + HOUR)  # final before any label exists
    assert eng.monitoring.windows("ep")[0].labeled == 0
    rows = eng.endpoints.read_payloads("ep", max_results=1000).items
    truth, preds = {}, []
    for i, r in enumerate(rows):
        if r.status_code < 400 and i % 3 == 0:
            pred = json.loads(r.response)["predictions"][0]
            truth[r.request_id] = pred + (0.5 if i % 2 else -0.25)
            preds.append(pred)
    assert eng.monitoring.log_labels("ep", truth) == len(truth)  # all already read by the refresh
    eng.monitoring.refresh("ep", now=T0 + HOUR)  # the labeled window is computed again
    w = eng.monitoring.windows("ep")[0]
    assert w.labeled == len(truth) and w.final
    ys = list(truth.values())
    assert w.quality["mae"] == pytest.approx(mean_absolute_error(ys, preds))
    assert w.quality["r2"] == pytest.approx(r2_score(ys, preds))
    with pytest.raises(CairnError, match="labels\\['x'\\]: a number"):
        eng.monitoring.log_labels("ep", {"x": {"not": "a label"}})


def test_classification_quality_matches_scikit_learn():
    from sklearn import metrics

    from cairn.engine.monitoring.quality import quality

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300).tolist()
    p1 = np.clip(np.asarray(y) * 0.6 + rng.normal(0.2, 0.25, 300), 0, 1)
    pred = (p1 > 0.5).astype(int).tolist()
    got, n = quality({"prediction": pred, "prediction_0": (1 - p1).tolist(), "prediction_1": p1.tolist()}, y)
    assert n == 300
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(metrics.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, p1))


def test_alerts_fire_and_resolve_and_tell_a_webhook(served):
    import http.server
    import threading

    got: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        eng = served
        eng.monitoring.create_monitor("ep", ["5 minutes"], settle_s=0)
        eng.monitoring.set_alerts("ep", [
            {"name": "x0 moved", "metric": "psi", "op": ">", "threshold": 0.2, "column": "x0"},
            {"name": "slow", "metric": "latency_p99_ms", "op": ">", "threshold": 50},
            {"name": "any column", "metric": "wasserstein", "op": ">=", "threshold": 0.1}],
            webhook_url=f"http://127.0.0.1:{hook.server_port}/hook")
        log(eng, T0, 600, shift=1.0)
        r = eng.monitoring.refresh("ep", now=T0 + HOUR)
        assert sorted(a.name for a in r.alerts_changed) == ["any column", "x0 moved"]
        states = {rule.name: state for rule, state in eng.monitoring.alerts("ep")}
        assert states["x0 moved"].state == "firing" and states["x0 moved"].value > 0.2
        assert states["slow"].state == "ok" and states["slow"].value == pytest.approx(7.0, abs=1.0)
        assert ("ep", "x0 moved", True) in eng.monitoring.firing()
        assert got and {a["name"] for a in got[0]["alerts"]} == {"any column", "x0 moved"}

        log(eng, T0 + HOUR, 600, seed=11)  # back to the training distribution
        r = eng.monitoring.refresh("ep", now=T0 + 2 * HOUR)
        states = {rule.name: state for rule, state in eng.monitoring.alerts("ep")}
        assert states["x0 moved"].state == "ok" and states["x0 moved"].fired == 1
        assert {a.name for a in r.alerts_changed} == {"any column", "x0 moved"} and len(got) == 2
        with pytest.raises(CairnError, match="metric: one of"):
            eng.monitoring.set_alerts("ep", [{"name": "x", "metric": "vibes", "op": ">", "threshold": 1}])
        with pytest.raises(CairnError, match="no 60 s windows"):
            eng.monitoring.set_alerts("ep", [{"name": "x", "metric": "psi", "op": ">", "threshold": 1,
                                              "granularity": "1 minute"}])
    finally:
        hook.shutdown()


def test_a_paced_refresh_rests_and_a_stopped_one_writes_nothing(served):
    """The server's refresher paces a refresh to a share of a core (app/monitorloop.py):
    its wall time is at least 1/share of its CPU time, and the server stopping abandons
    it before it writes anything."""
    import threading
    import time

    from cairn.app.monitorloop import Pacer, Stopped

    eng = served
    eng.monitoring.create_monitor("ep", ["5 minutes"], settle_s=0)
    log(eng, T0, 3000)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        eng.monitoring.refresh("ep", now=T0 + HOUR, pace=Pacer(0.25, stop, slice_s=0.001))
    assert eng.monitoring.windows("ep") == [] and eng.monitoring.get_monitor("ep").last_refresh_ms == 0

    cpu, wall = time.thread_time(), time.perf_counter()
    paced = eng.monitoring.refresh("ep", now=T0 + HOUR, pace=Pacer(0.25, threading.Event(), slice_s=0.001))
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    assert paced.payloads_read == 3000 and [w.requests for w in eng.monitoring.windows("ep")] == [1000, 1000, 1000]
    assert wall >= 2.5 * cpu  # rests of 3x the work (share 25%), less what the writer thread did for it
