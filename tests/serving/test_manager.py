"""The live endpoints in-process (app/serving/manager.py) over a real engine: registered
ONNX versions, real ONNX Runtime sessions, the real poller. What the server tests cannot
see from outside: sessions unloaded when idle (scale-to-zero) and loaded again, and the
swap to a new config."""
from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from cairn import engine
from cairn.app.serving.manager import EndpointManager
from cairn.engine.models.package import package_sklearn

WAIT_S = 30.0


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    first = LogisticRegression(max_iter=500).fit(X, y)
    second = LogisticRegression(max_iter=500).fit(X, (y + 1) % 3)  # predicts differently
    return X, first, second


@pytest.fixture
def eng(tmp_path, iris):
    X, first, second = iris
    e = engine.open(tmp_path / "data")
    exp = e.tracking.create_experiment("serving")
    e.registry.create_registered_model("iris")
    for model in (first, second):
        run = e.tracking.create_run(exp, user_id="t", start_time=1, tags={})
        base = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
        for path, data in package_sklearn(model, X[:20], run_id=None).files.items():
            e.artifacts.put(f"{base}/model/{path}", data)
        mv = e.registry.create_model_version("iris", f"runs:/{run.info.run_id}/model")
        assert e.registrar.wait("iris", mv.version, 120).status == "READY"
    yield e
    e.close()


def invoke(manager, name: str, X) -> tuple[int, list, dict]:
    body = json.dumps({"inputs": X.tolist()}).encode()
    reply = asyncio.run(manager.invoke(name, "application/json", body, {}))
    preds = json.loads(reply.body).get("predictions") if reply.status == 200 else None
    return reply.status, preds, dict(reply.headers)


def wait_for(check, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_idle_scale_to_zero_entity_unloads_and_loads_again(eng, iris):
    X, first, _ = iris
    eng.endpoints.create_endpoint(
        "lazy", {"served_entities": [{"entity_name": "iris", "entity_version": "1", "scale_to_zero_enabled": True}]}
    )
    manager = EndpointManager(eng, poll_s=0.02, idle_unload_s=0.1)
    manager.start()
    try:
        status, preds, _ = invoke(manager, "lazy", X[:5])
        assert (status, preds) == (200, first.predict(X[:5]).tolist())
        model = manager.live("lazy").entities["iris-1"].model
        wait_for(lambda: not model.loaded, "the idle session to unload")
        status, preds, _ = invoke(manager, "lazy", X[:5])
        assert (status, preds) == (200, first.predict(X[:5]).tolist())
        assert model.loads == 2
    finally:
        manager.close()


def test_an_entity_without_scale_to_zero_stays_loaded(eng, iris):
    X, _, _ = iris
    eng.endpoints.create_endpoint("warm", {"served_entities": [{"entity_name": "iris", "entity_version": "1"}]})
    manager = EndpointManager(eng, poll_s=0.02, idle_unload_s=0.0)
    manager.start()
    try:
        assert invoke(manager, "warm", X[:1])[0] == 200
        model = manager.live("warm").entities["iris-1"].model
        time.sleep(0.2)  # several poll rounds, all past the idle bound
        assert model.loaded and model.loads == 1
    finally:
        manager.close()


def test_config_update_swaps_to_the_new_version_and_delete_answers_404(eng, iris):
    X, first, second = iris
    eng.endpoints.create_endpoint("swap", {"served_entities": [{"entity_name": "iris", "entity_version": "1"}]})
    manager = EndpointManager(eng, poll_s=0.02)
    manager.start()
    try:
        assert invoke(manager, "swap", X[:5])[1] == first.predict(X[:5]).tolist()
        eng.endpoints.update_config("swap", {"served_entities": [{"entity_name": "iris", "entity_version": "2"}]})
        wait_for(lambda: invoke(manager, "swap", X[:5])[2].get(b"x-cairn-model-version") == b"iris/2", "v2")
        assert invoke(manager, "swap", X[:5])[1] == second.predict(X[:5]).tolist()
        eng.endpoints.delete_endpoint("swap")
        wait_for(lambda: invoke(manager, "swap", X[:1])[0] == 404, "the endpoint to go")
    finally:
        manager.close()


def test_an_endpoint_whose_version_is_missing_is_503_naming_it(eng, iris):
    X, _, _ = iris
    # An endpoint must name a version that exists; the version can be deleted later.
    doomed = eng.registry.create_model_version("iris", "file:///nowhere/model").version
    eng.endpoints.create_endpoint("ghost", {"served_entities": [{"entity_name": "iris", "entity_version": doomed}]})
    eng.registry.delete_model_version("iris", doomed)
    manager = EndpointManager(eng)
    try:
        for _ in range(3):  # the failed build's answer is reused, not rebuilt per request
            reply = asyncio.run(manager.invoke("ghost", "application/json", b'{"inputs": [[1, 2, 3, 4]]}', {}))
            assert reply.status == 503
            assert f"version={doomed}".encode() in reply.body
        # Updating the config to a version that exists (a new stamp) serves at once.
        eng.endpoints.update_config("ghost", {"served_entities": [{"entity_name": "iris", "entity_version": "2"}]})
        assert invoke(manager, "ghost", X[:1])[0] == 200
    finally:
        manager.close()
