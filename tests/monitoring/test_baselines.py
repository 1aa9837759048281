"""Baselines kept with the model: autologging and log_model(training_data=) write the
profile of the training inputs and predictions into the model folder, registration
copies it with the version, and a monitor measures drift against it with no
`cairn monitors baseline` step. A profile that cannot be made never costs the model."""
from __future__ import annotations

import json

import msgspec
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import cairn
from cairn import engine
from cairn.engine.endpoints.contract import PayloadRecord
from cairn.engine.errors import CairnError
from cairn.engine.monitoring.profiles import BASELINE_FILE, BASELINE_ROWS, profile_columns
from cairn.engine.sdk.modellogging import BASELINE_ERROR_TAG

T0 = 1_700_002_800_000  # on the hour


@pytest.fixture
def sdk(sdk_data):
    return sdk_data


def _frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return X, (2 * X.a - X.b).to_numpy()


def test_autolog_keeps_the_baseline_and_a_monitor_uses_it(sdk):
    X, y = _frame(2000)
    cairn.autolog()
    with cairn.start_run() as run:
        model = LinearRegression().fit(X, y)
    mv = cairn.register_model(f"runs:/{run.info.run_id}/model", "lin")
    eng = engine.open(sdk)
    try:
        profile = eng.monitoring.get_baseline("lin", mv.version)
        assert profile.rows == 2000 and profile.names == ["a", "b", "prediction"]
        a = profile.column("a")
        assert a.mean == pytest.approx(X.a.mean()) and a.std == pytest.approx(X.a.std())
        assert profile.column("prediction").mean == pytest.approx(model.predict(X).mean())
        # the file travelled with the version (the run's copy can go, the version's stays)
        with eng.artifacts.open(f"{eng.registry.get_model_version('lin', mv.version).storage_location}/"
                                f"{BASELINE_FILE}") as f:
            assert msgspec.msgpack.decode(f.read())["rows"] == 2000

        eng.endpoints.create_endpoint("ep", {"served_entities": [{"entity_name": "lin", "entity_version": "1"}]})
        eng.monitoring.create_monitor("ep", ["1 hour"], settle_s=0)
        rng = np.random.default_rng(3)
        recs = []
        for i in range(1500):
            row = {"a": float(rng.normal() + 1.0), "b": float(rng.normal())}  # a shifted by one std
            recs.append(PayloadRecord(request_id=f"r{i}", timestamp_ms=T0 + i * 2000, status_code=200,
                                      latency_ms=1.0, served_entity_name="lin-1", model_name="lin",
                                      model_version="1", request=json.dumps({"dataframe_records": [row]}),
                                      response=json.dumps({"predictions": [2 * row["a"] - row["b"]]})))
        eng.endpoints.log_payloads("ep", recs)
        eng.env.flush()
        eng.monitoring.refresh("ep", now=T0 + 7_200_000)
        [w] = eng.monitoring.windows("ep")
        drifted = {c.name for c in w.drift.columns if c.drifted}
        assert w.note == "" and "a" in drifted and "b" not in drifted and "prediction" in drifted

        # a baseline set by hand takes the place of the logged one
        eng.monitoring.set_baseline("lin", 1, profile_columns({"a": [0.0, 1.0, 2.0]}))
        assert eng.monitoring.get_baseline("lin", 1).names == ["a"]
    finally:
        eng.close()


def test_log_model_profiles_at_most_baseline_rows_evenly_spaced(sdk):
    X, y = _frame(BASELINE_ROWS + 10_000, seed=1)
    X = X.sort_values("a", ignore_index=True)  # a sorted file: the first rows alone would mislead
    model = LinearRegression().fit(X, y[X.index])
    with cairn.start_run():
        info = cairn.sklearn.log_model(model, name="m", input_example=X.head(3), training_data=X,
                                       registered_model_name="sorted")
    assert BASELINE_FILE in info.files
    eng = engine.open(sdk)
    try:
        profile = eng.monitoring.get_baseline("sorted", info.registered_model_version)
        assert profile.rows == BASELINE_ROWS and f"{BASELINE_ROWS + 10_000:,} rows" in profile.source
        assert profile.column("a").quantiles[3] == pytest.approx(X.a.median(), abs=0.01)
    finally:
        eng.close()


def test_arrays_are_named_as_the_payload_log_names_rows(sdk):
    X, y = _frame(300, seed=2)
    model = LinearRegression().fit(X.to_numpy(), y)
    with cairn.start_run():
        info = cairn.sklearn.log_model(model, name="m", training_data=X.to_numpy(), registered_model_name="arr")
    eng = engine.open(sdk)
    try:
        assert eng.monitoring.get_baseline("arr", 1).names == ["input_0", "input_1", "prediction"]
        assert info.registered_model_version == 1
    finally:
        eng.close()


def test_a_profile_that_fails_keeps_the_model_and_says_why(sdk):
    X, y = _frame(100, seed=4)
    model = LinearRegression().fit(X, y)
    with cairn.start_run() as run:
        info = cairn.sklearn.log_model(model, name="m", input_example=X.head(3), training_data=X[["a"]],
                                       registered_model_name="half")
    assert BASELINE_FILE not in info.files and "model.onnx" in info.files
    tags = cairn.get_run(run.info.run_id).data.tags
    tag = tags[BASELINE_ERROR_TAG] if isinstance(tags, dict) else next(t.value for t in tags
                                                                        if t.key == BASELINE_ERROR_TAG)
    assert "feature" in tag.lower()  # sklearn names the missing column
    eng = engine.open(sdk)
    try:
        with pytest.raises(CairnError, match="has no baseline profile.*training_data="):
            eng.monitoring.get_baseline("half", 1)
        with pytest.raises(CairnError, match="half"):
            eng.monitoring.get_baseline("half", 5)  # no such version: named, not "no baseline"
    finally:
        eng.close()
