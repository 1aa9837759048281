"""A model logged from a training set, end to end: lineage to the feature tables at
their Delta versions, and an endpoint that takes only the keys and fills the features
from the online store (real sklearn -> ONNX, real ONNX Runtime, the real manager)."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import cairn
from cairn.app.serving.manager import EndpointManager
from cairn.engine.registry.lineage import lineage_nodes
from cairn.features import FeatureLookup


@pytest.fixture
def trained(fe, eng):
    rng = np.random.default_rng(7)
    ids = np.arange(50)
    feats = pd.DataFrame({"cid": ids, "ts": pd.Timestamp("2024-01-01", tz="UTC"),
                          "spend": rng.uniform(0, 100, 50), "visits": rng.integers(0, 20, 50).astype(float)})
    fe.create_table("cust", primary_keys="cid", timestamp_keys="ts", df=feats)
    labels = pd.DataFrame({"cid": ids, "t": pd.Timestamp("2024-02-01", tz="UTC"), "amount": rng.uniform(0, 5, 50)})
    labels["y"] = 2.0 * feats.spend + 3.0 * feats.visits - labels.amount
    ts = fe.create_training_set(labels, [FeatureLookup("cust", "cid", timestamp_lookup_key="t",
                                                       default_values={"spend": 0.0, "visits": 0.0})],
                                label="y", exclude_columns=["cid", "t"])
    frame = ts.load_df()
    assert list(frame.columns) == ["amount", "y", "spend", "visits"]
    X = frame.drop(columns="y")
    model = LinearRegression().fit(X, frame.y)
    cairn.set_tracking_dir(eng.path)
    try:
        with cairn.start_run():
            info = fe.log_model(model, "model", training_set=ts, registered_model_name="spend")
    finally:
        cairn.set_tracking_dir(None)
    fe.publish_table("cust")
    return model, feats, info


def _invoke(manager, name: str, doc: dict) -> tuple[int, dict]:
    reply = asyncio.run(manager.invoke(name, "application/json", json.dumps(doc).encode(), {}))
    return reply.status, json.loads(reply.body)


def test_lineage_reaches_the_feature_tables_at_their_versions(trained, eng):
    _, _, info = trained
    lin = eng.registry.get_lineage("spend", info.registered_model_version)
    tables = [d for d in lin.datasets if d.source_type == "delta"]
    assert [(d.name, d.context) for d in tables] == [("cust", "training")]
    text = str(lineage_nodes(lin))
    assert "cust" in text and "at version 1" in text
    mv = eng.registry.get_model_version("spend", info.registered_model_version)
    with eng.artifacts.open(f"{mv.storage_location}/feature_spec.json") as f:
        spec = json.loads(f.read())
    assert spec["lookups"][0]["table_name"] == "main.default.cust" and spec["lookups"][0]["table_version"] == 1
    # the training set's inputs and the model's predictions are the version's monitoring baseline
    baseline = eng.monitoring.get_baseline("spend", info.registered_model_version)
    assert baseline.rows == 50 and baseline.names == ["amount", "spend", "visits", "prediction"]


def test_an_endpoint_fills_features_by_key(trained, eng):
    model, feats, info = trained
    eng.endpoints.create_endpoint("spend", {"served_entities": [
        {"entity_name": "spend", "entity_version": str(info.registered_model_version)}]})
    manager = EndpointManager(eng, poll_s=0.05)
    manager.start()
    try:
        rows = [{"cid": 3, "amount": 1.0}, {"cid": 10, "amount": 2.5}]
        status, body = _invoke(manager, "spend", {"dataframe_records": rows})
        assert status == 200, body
        full = pd.DataFrame({"amount": [1.0, 2.5], "spend": feats.spend[[3, 10]].to_numpy(),
                             "visits": feats.visits[[3, 10]].to_numpy()})
        np.testing.assert_allclose(body["predictions"], model.predict(full), rtol=1e-4)
        # dataframe_split works too, and a feature the caller gives wins over the lookup
        status, body = _invoke(manager, "spend", {"dataframe_split": {
            "columns": ["cid", "amount", "spend"], "data": [[3, 1.0, 0.0]]}})
        assert status == 200
        over = pd.DataFrame({"amount": [1.0], "spend": [0.0], "visits": [feats.visits[3]]})
        np.testing.assert_allclose(body["predictions"], model.predict(over), rtol=1e-4)
        # an unknown key takes the lookup's defaults; a row without the key is a 400 naming it
        status, body = _invoke(manager, "spend", {"dataframe_records": [{"cid": 999, "amount": 1.0}]})
        assert status == 200
        np.testing.assert_allclose(body["predictions"], model.predict(
            pd.DataFrame({"amount": [1.0], "spend": [0.0], "visits": [0.0]})), rtol=1e-4)
        status, body = _invoke(manager, "spend", {"dataframe_records": [{"amount": 1.0}]})
        assert status == 400 and "lookup key 'cid'" in body["message"]
        page = manager.metrics.render()
        assert 'cairn_feature_lookups_total{table="cust"} 4.0' in page
        assert 'cairn_feature_lookup_misses_total{table="cust"} 1.0' in page
    finally:
        manager.close()


def test_score_batch_joins_current_features_point_in_time(trained, fe):
    model, feats, info = trained
    rows = pd.DataFrame({"cid": [3, 10, 999], "t": pd.Timestamp("2024-03-01", tz="UTC"), "amount": [1.0, 2.5, 0.5]})
    fe.write_table("cust", feats.iloc[[3]].assign(ts=pd.Timestamp("2024-04-01", tz="UTC"), spend=1e6))  # future
    scored = fe.score_batch(f"models:/spend/{info.registered_model_version}", rows)
    assert list(scored.columns) == ["amount", "spend", "visits", "prediction"]
    want = model.predict(pd.DataFrame({"amount": [1.0, 2.5, 0.5], "spend": [feats.spend[3], feats.spend[10], 0.0],
                                       "visits": [feats.visits[3], feats.visits[10], 0.0]}))
    np.testing.assert_allclose(scored.prediction, want, rtol=1e-4)  # the future row was not used
    same = fe.score_batch(f"runs:/{info.run_id}/model", rows)
    np.testing.assert_allclose(same.prediction, want, rtol=1e-4)
    with pytest.raises(cairn.CairnError, match="was not logged with a training set"):
        fe.score_batch(f"runs:/{info.run_id}/missing", rows)


def test_a_feature_spec_endpoint_serves_features_by_key(fe, eng):
    fe.create_table("cust", primary_keys="cid", df=pd.DataFrame({"cid": [1, 2], "spend": [1.5, 2.5],
                                                                 "tier": ["gold", "silver"]}))
    fe.create_table("prof", primary_keys="cid", df=pd.DataFrame({"cid": [1], "age": [30]}))
    fe.publish_table("cust")
    fe.publish_table("prof")
    spec = fe.create_feature_spec("cust_spec", [
        FeatureLookup("cust", "customer_id", rename_outputs={"spend": "total_spend"}),
        FeatureLookup("prof", "customer_id", default_values={"age": -1})])
    assert spec.feature_columns == ["total_spend", "tier", "age"] and spec.input_columns == ["customer_id"]
    with pytest.raises(cairn.CairnError, match="already exists"):
        fe.create_feature_spec("cust_spec", [FeatureLookup("cust", "customer_id")])
    with pytest.raises(cairn.CairnError, match="no feature 'nope'"):
        fe.create_feature_spec("bad_spec", [FeatureLookup("cust", "cid", feature_names=["nope"])])
    with pytest.raises(cairn.CairnError, match="entity_type: 'TABLE' is not one of MODEL, FEATURE_SPEC"):
        eng.endpoints.create_endpoint("x", {"served_entities": [{"entity_name": "cust_spec", "entity_type": "TABLE"}]})
    eng.endpoints.create_endpoint("feats", {"served_entities": [
        {"entity_name": "cust_spec", "entity_type": "FEATURE_SPEC"}]})
    manager = EndpointManager(eng, poll_s=0.05)
    manager.start()
    try:
        status, body = _invoke(manager, "feats", {"dataframe_records": [{"customer_id": 2}, {"customer_id": 1}]})
        assert status == 200, body
        assert body == {"outputs": [{"customer_id": 2, "total_spend": 2.5, "tier": "silver", "age": -1},
                                    {"customer_id": 1, "total_spend": 1.5, "tier": "gold", "age": 30}]}
        status, body = _invoke(manager, "feats", {"dataframe_split": {"columns": ["customer_id"], "data": [[9]]}})
        assert status == 400 and "customer_id=9" in body["message"] and "'total_spend'" in body["message"]
        status, body = _invoke(manager, "feats", {"dataframe_records": [{"cid": 1}]})
        assert status == 400 and "lookup key 'customer_id'" in body["message"]
        assert manager.describe()[0]["provider"] == "LMDB"
        assert 'cairn_serving_requests_total{endpoint="feats"' in manager.metrics.render()
    finally:
        manager.close()


def test_cairn_models_serve_fills_features_too(trained, eng):
    import httpx

    from cairn.app.serving.batcher import Batcher
    from cairn.app.serving.invocations import create_model_server
    from cairn.app.serving.modelserver import load_served_model

    model, feats, info = trained
    uri = f"models:/spend/{info.registered_model_version}"
    try:
        predictor, version, fill = load_served_model(uri, eng.path)
    finally:
        cairn.set_tracking_dir(None)
    assert fill is not None and version["model_name"] == "spend"
    batcher = Batcher(predictor.run, name=uri)
    app = create_model_server(predictor, model_uri=uri, version_info=version, fill=fill, batcher=batcher)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://model") as c:
            return await c.post("/invocations", json={"dataframe_records": [{"cid": 5, "amount": 2.0}]})

    try:
        r = asyncio.run(call())
    finally:
        batcher.close(drain=True)
    assert r.status_code == 200, r.text
    want = model.predict(pd.DataFrame({"amount": [2.0], "spend": [feats.spend[5]], "visits": [feats.visits[5]]}))
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-4)
