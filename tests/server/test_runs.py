"""Run endpoints through the official mlflow client (MlflowClient and the fluent API)
against a real `cairn server`, plus raw HTTP for requests the client never sends."""
from __future__ import annotations

import math
import uuid

import httpx
import mlflow
import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.models import Model


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.error_code


@pytest.fixture()
def exp_id(mlflow_client) -> str:
    return mlflow_client.create_experiment(unique("runs"))


# -- runs and their lifecycle --------------------------------------------------------
def test_create_and_get_run(mlflow_client, exp_id):
    run = mlflow_client.create_run(exp_id, start_time=1_700_000_000_000, tags={"team": "nlp"}, run_name="first")
    got = mlflow_client.get_run(run.info.run_id)
    assert got.info.run_name == "first" and got.info.experiment_id == exp_id
    assert got.info.status == "RUNNING" and got.info.lifecycle_stage == "active"
    assert got.info.start_time == 1_700_000_000_000 and got.info.end_time is None
    assert got.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{run.info.run_id}/artifacts"
    assert got.data.tags["team"] == "nlp" and got.data.tags["mlflow.runName"] == "first"
    unnamed = mlflow_client.create_run(exp_id)
    assert unnamed.info.run_name  # a generated name, as MLflow gives


@pytest.mark.parametrize("status", ["SCHEDULED", "FINISHED", "FAILED", "KILLED", "RUNNING"])
def test_update_run_to_every_status(mlflow_client, exp_id, status):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    mlflow_client.update_run(run_id, status=status)
    assert mlflow_client.get_run(run_id).info.status == status


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
def test_set_terminated_sets_status_and_end_time(mlflow_client, exp_id, status):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    mlflow_client.set_terminated(run_id, status=status, end_time=1_700_000_000_123)
    info = mlflow_client.get_run(run_id).info
    assert info.status == status and info.end_time == 1_700_000_000_123
    assert RunStatus.is_terminated(RunStatus.from_string(info.status))


def test_rename_through_update_run(mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id, run_name="before").info.run_id
    mlflow_client.update_run(run_id, name="after")
    run = mlflow_client.get_run(run_id)
    assert run.info.run_name == "after" and run.data.tags["mlflow.runName"] == "after"


def test_fluent_runs_nested_and_logged(mlflow_client):
    exp_name = unique("fluent")
    mlflow.set_experiment(exp_name)
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.01)
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=2)
        mlflow.set_tag("stage", "train")
        mlflow.set_tags({"a": "1", "b": "2"})
        mlflow.log_params({"depth": 3, "opt": "adam"})
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("loss", 0.25)
    got_parent = mlflow_client.get_run(parent.info.run_id)
    got_child = mlflow_client.get_run(child.info.run_id)
    assert got_child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert got_parent.info.status == got_child.info.status == "FINISHED"
    assert got_parent.info.end_time is not None
    assert got_parent.data.params == {"lr": "0.01", "depth": "3", "opt": "adam"}
    assert got_parent.data.metrics == {"loss": 0.5, "acc": 0.9, "f1": 0.8}
    assert {"stage": "train", "a": "1", "b": "2"}.items() <= got_parent.data.tags.items()
    exp = mlflow_client.get_experiment_by_name(exp_name)
    children = mlflow_client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]


def test_failed_fluent_run_is_marked_failed(mlflow_client):
    mlflow.set_experiment(unique("fails"))
    with pytest.raises(ZeroDivisionError), mlflow.start_run() as run:
        1 / 0  # noqa: B018 - the run must end FAILED
    assert mlflow_client.get_run(run.info.run_id).info.status == "FAILED"


def test_delete_and_restore_run(mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id, run_name="doomed").info.run_id
    mlflow_client.delete_run(run_id)
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert mlflow_client.search_runs([exp_id]) == []
    deleted = mlflow_client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [run_id]
    with pytest.raises(MlflowException) as err:
        mlflow_client.log_param(run_id, "p", "1")
    assert error_code(err) == "INVALID_PARAMETER_VALUE"
    mlflow_client.restore_run(run_id)
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "active"
    assert [r.info.run_id for r in mlflow_client.search_runs([exp_id], run_view_type=ViewType.ALL)] == [run_id]


def test_unknown_run_is_resource_does_not_exist(mlflow_client):
    with pytest.raises(MlflowException) as err:
        mlflow_client.get_run(uuid.uuid4().hex)
    assert error_code(err) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as err:
        mlflow_client.log_metric(uuid.uuid4().hex, "m", 1.0)
    assert error_code(err) == "RESOURCE_DOES_NOT_EXIST"


# -- params, tags, metrics -----------------------------------------------------------
def test_params_are_write_once(mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    mlflow_client.log_param(run_id, "alpha", "0.1")
    mlflow_client.log_param(run_id, "alpha", "0.1")  # the same value again is fine
    mlflow_client.log_param(run_id, "empty", "")
    with pytest.raises(MlflowException) as err:
        mlflow_client.log_param(run_id, "alpha", "0.2")
    assert error_code(err) == "INVALID_PARAMETER_VALUE"
    assert "alpha" in err.value.message and "0.2" in err.value.message
    assert mlflow_client.get_run(run_id).data.params == {"alpha": "0.1", "empty": ""}


def test_tags_set_overwrite_and_delete(mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    mlflow_client.set_tag(run_id, "k", "v1")
    mlflow_client.set_tag(run_id, "k", "v2")
    mlflow_client.set_tag(run_id, "blank", "")
    tags = mlflow_client.get_run(run_id).data.tags
    assert tags["k"] == "v2" and tags["blank"] == ""
    mlflow_client.delete_tag(run_id, "k")
    assert "k" not in mlflow_client.get_run(run_id).data.tags
    with pytest.raises(MlflowException) as err:
        mlflow_client.delete_tag(run_id, "k")
    assert error_code(err) == "RESOURCE_DOES_NOT_EXIST"
    mlflow_client.set_tag(run_id, "mlflow.runName", "renamed-by-tag")
    assert mlflow_client.get_run(run_id).info.run_name == "renamed-by-tag"


def test_metrics_with_steps_and_nonfinite_values(mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    for step, value in enumerate([1.0, 0.5, 0.25]):
        mlflow_client.log_metric(run_id, "loss", value, timestamp=1000 + step, step=step)
    mlflow_client.log_metric(run_id, "nan", float("nan"), step=0)
    mlflow_client.log_metric(run_id, "pinf", float("inf"))
    mlflow_client.log_metric(run_id, "ninf", float("-inf"))
    metrics = mlflow_client.get_run(run_id).data.metrics
    assert metrics["loss"] == 0.25
    assert math.isnan(metrics["nan"]) and metrics["pinf"] == math.inf and metrics["ninf"] == -math.inf
    history = mlflow_client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [(0, 1.0, 1000), (1, 0.5, 1001), (2, 0.25, 1002)]
    assert math.isnan(mlflow_client.get_metric_history(run_id, "nan")[0].value)


def test_log_batch_and_its_limits(mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    metrics = [Metric("m", float(i), 1000 + i, i) for i in range(1500)]  # the client splits these
    params = [Param(f"p{i}", str(i)) for i in range(20)]
    tags = [RunTag(f"t{i}", "x" * 100) for i in range(20)]
    mlflow_client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    run = mlflow_client.get_run(run_id)
    assert run.data.metrics["m"] == 1499.0 and len(run.data.params) == 20
    assert len(mlflow_client.get_metric_history(run_id, "m")) == 1500

    # The client's own store sends one request as given: the server enforces the limits.
    store = mlflow_client._tracking_client.store
    too_many = [
        ([Metric("m", 1.0, 1, i) for i in range(1001)], [], [], "1000 metrics"),
        ([], [Param(f"q{i}", "v") for i in range(101)], [], "100 params"),
        ([], [], [RunTag(f"u{i}", "v") for i in range(101)], "100 tags"),
    ]
    for m, p, t, says in too_many:
        with pytest.raises(MlflowException) as err:
            store.log_batch(run_id, metrics=m, params=p, tags=t)
        assert error_code(err) == "INVALID_PARAMETER_VALUE" and says in err.value.message
    # All or nothing: a bad param value fails the batch and writes none of it.
    with pytest.raises(MlflowException) as err:
        store.log_batch(run_id, metrics=[Metric("never", 1.0, 1, 0)], params=[Param("p0", "changed")], tags=[])
    assert error_code(err) == "INVALID_PARAMETER_VALUE"
    assert "never" not in mlflow_client.get_run(run_id).data.metrics


def test_key_and_value_lengths(mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    cases = [
        lambda: mlflow_client.log_param(run_id, "k" * 251, "v"),
        lambda: mlflow_client.log_param(run_id, "long", "v" * 6001),
        lambda: mlflow_client.set_tag(run_id, "long", "v" * 8001),
        lambda: mlflow_client.log_metric(run_id, "../escape", 1.0),
    ]
    for call in cases:
        with pytest.raises(MlflowException) as err:
            call()
        assert error_code(err) == "INVALID_PARAMETER_VALUE"
    mlflow_client.log_param(run_id, "k" * 250, "v" * 6000)  # exactly at the limits


def test_overlong_run_name_refused_at_create_as_at_update(mlflow_client, exp_id):
    with pytest.raises(MlflowException) as err:
        mlflow_client.create_run(exp_id, run_name="n" * 8001)
    assert error_code(err) == "INVALID_PARAMETER_VALUE"


def test_concurrent_clients_lose_nothing(mlflow_client, exp_id):
    """Many clients at once share the engine's group commit; each write is there after."""
    from concurrent.futures import ThreadPoolExecutor

    run_ids = [mlflow_client.create_run(exp_id).info.run_id for _ in range(4)]

    def work(worker: int) -> None:
        run_id = run_ids[worker % 4]
        for i in range(25):
            mlflow_client.log_metric(run_id, "shared", float(i), timestamp=worker * 100 + i, step=i)
        mlflow_client.log_batch(run_id, params=[Param(f"w{worker}", str(worker))], metrics=[Metric(f"own{worker}", 1.0, 1, 0)])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(work, range(16)))
    for k, run_id in enumerate(run_ids):
        run = mlflow_client.get_run(run_id)
        workers = [w for w in range(16) if w % 4 == k]
        assert run.data.params == {f"w{w}": str(w) for w in workers}
        assert {f"own{w}" for w in workers} <= run.data.metrics.keys()
        assert len(mlflow_client.get_metric_history(run_id, "shared")) == 25 * len(workers)


def test_log_input_and_search_by_dataset(mlflow_client):
    mlflow.set_experiment(unique("datasets"))
    name = unique("iris")
    with mlflow.start_run() as run:
        dataset = mlflow.data.from_numpy(np.arange(12.0).reshape(4, 3), name=name)
        mlflow.log_input(dataset, context="training")
        mlflow.log_input(dataset, context="training")  # logged once
    with mlflow.start_run():
        pass
    got = mlflow_client.get_run(run.info.run_id)
    [inp] = got.inputs.dataset_inputs
    assert inp.dataset.name == name and inp.dataset.digest == dataset.digest
    assert {t.key: t.value for t in inp.tags} == {"mlflow.data.context": "training"}
    exp_id = run.info.experiment_id
    found = mlflow_client.search_runs([exp_id], filter_string=f"datasets.name = '{name}'")
    assert [r.info.run_id for r in found] == [run.info.run_id]
    found = mlflow_client.search_runs([exp_id], filter_string="datasets.context = 'training'")
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_record_logged_model_appends_history_tag(mlflow_client, exp_id):
    import json

    run_id = mlflow_client.create_run(exp_id).info.run_id
    for path in ("model", "other"):
        model = Model(artifact_path=path, run_id=run_id, flavors={"python_function": {}})
        mlflow_client._record_logged_model(run_id, model)
    history = json.loads(mlflow_client.get_run(run_id).data.tags["mlflow.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["model", "other"]


def test_logged_model_links_on_runs(mlflow_client):
    """MLflow 3: a run lists the models it produced and consumed, and metrics that name a
    model are linked to it (the client reads these back to link later metrics)."""
    from mlflow.entities import LoggedModelInput, LoggedModelOutput

    mlflow.set_experiment(unique("links"))
    with mlflow.start_run() as run:
        run_id, exp = run.info.run_id, run.info.experiment_id
        model = mlflow_client.create_logged_model(exp, name="clf", source_run_id=run_id)
        mlflow_client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=3)])
        upstream = mlflow_client.create_logged_model(exp, name="upstream")
        mlflow_client.log_inputs(run_id, models=[LoggedModelInput(upstream.model_id)])
        mlflow.log_metric("acc", 0.9, step=3, model_id=model.model_id)
        mlflow_client.log_batch(run_id, metrics=[Metric("f1", 0.7, 5, 3, model_id=model.model_id)])
    got = mlflow_client.get_run(run_id)
    assert [(o.model_id, o.step) for o in got.outputs.model_outputs] == [(model.model_id, 3)]
    # The fluent log_metric also records `model` as an input: its in-memory run did not
    # see the output logged through the client.
    assert {i.model_id for i in got.inputs.model_inputs} == {upstream.model_id, model.model_id}
    assert got.data.metrics == {"acc": 0.9, "f1": 0.7}
    linked = mlflow_client.get_logged_model(model.model_id).metrics
    assert sorted((m.key, m.value, m.step, m.run_id) for m in linked) == [("acc", 0.9, 3, run_id), ("f1", 0.7, 3, run_id)]
    [found] = mlflow_client.search_runs([exp])
    assert found.outputs.model_outputs[0].model_id == model.model_id
    assert upstream.model_id in {i.model_id for i in found.inputs.model_inputs}

    # A metric naming an unknown model is refused whole: the run gets no point either.
    store = mlflow_client._tracking_client.store
    ghost = "m-" + uuid.uuid4().hex
    with pytest.raises(MlflowException) as err:
        store.log_metric(run_id, Metric("ghost", 1.0, 1, 0, model_id=ghost))
    assert error_code(err) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as err:
        store.log_batch(run_id, metrics=[Metric("ghost", 1.0, 1, 0, model_id=ghost)], params=[], tags=[])
    assert error_code(err) == "RESOURCE_DOES_NOT_EXIST"
    assert "ghost" not in mlflow_client.get_run(run_id).data.metrics


# -- search ------------------------------------------------------------------------------
@pytest.fixture()
def populated(mlflow_client):
    """Six runs with distinct params, metrics, tags, names and statuses."""
    exp_id = mlflow_client.create_experiment(unique("search"))
    runs = []
    for i in range(6):
        run = mlflow_client.create_run(
            exp_id, run_name=f"trial-{i}", start_time=1_700_000_000_000 + i, tags={"family": "tree" if i % 2 else "linear"}
        )
        rid = run.info.run_id
        mlflow_client.log_batch(
            rid,
            metrics=[Metric("acc", 0.5 + i / 10, 1, 0), Metric("loss", float(6 - i), 1, 0)],
            params=[Param("model", "rf" if i < 3 else "gbm"), Param("depth", str(i))],
        )
        if i >= 4:
            mlflow_client.set_terminated(rid, "FINISHED" if i == 4 else "FAILED")
        runs.append(rid)
    return exp_id, runs


def ids(found) -> list[str]:
    return [r.info.run_id for r in found]


def test_search_filters(mlflow_client, populated):
    exp_id, runs = populated
    search = lambda f, **kw: ids(mlflow_client.search_runs([exp_id], filter_string=f, **kw))
    # Default order: start_time DESC.
    assert search("metrics.acc > 0.75") == [runs[5], runs[4], runs[3]]
    assert search("metrics.loss <= 2") == [runs[5], runs[4]]
    assert search("params.model = 'rf'") == [runs[2], runs[1], runs[0]]
    assert search("params.model = 'rf' AND metrics.acc >= 0.6") == [runs[2], runs[1]]
    assert search("tags.family LIKE 'tr%'") == [runs[5], runs[3], runs[1]]
    assert search("tags.family ILIKE 'LIN%'") == [runs[4], runs[2], runs[0]]
    assert search("attributes.status = 'FINISHED'") == [runs[4]]
    assert search("attributes.status != 'RUNNING'") == [runs[5], runs[4]]
    assert search("attributes.run_name = 'trial-3'") == [runs[3]]
    assert search("run_name LIKE 'trial-%'") == runs[::-1]
    assert search(f"attributes.run_id IN ('{runs[0]}', '{runs[3]}')") == [runs[3], runs[0]]
    assert search("params.`depth` = '2'") == [runs[2]]
    assert search("metrics.acc > 5") == []
    with pytest.raises(MlflowException) as err:
        search("metrics.acc >>> 1")
    assert error_code(err) == "INVALID_PARAMETER_VALUE"


def test_search_order_by(mlflow_client, populated):
    exp_id, runs = populated
    order = lambda *o: ids(mlflow_client.search_runs([exp_id], order_by=list(o)))
    assert order("metrics.acc DESC") == runs[::-1]
    assert order("metrics.loss ASC") == runs[::-1]
    assert order("params.model ASC", "metrics.acc DESC") == [runs[5], runs[4], runs[3], runs[2], runs[1], runs[0]]
    assert order("params.model DESC", "attributes.start_time ASC") == [runs[0], runs[1], runs[2], runs[3], runs[4], runs[5]]
    assert order("tags.family ASC", "attributes.run_name DESC") == [runs[4], runs[2], runs[0], runs[5], runs[3], runs[1]]
    assert order("attributes.start_time ASC") == runs


def test_search_pages_with_tokens(mlflow_client):
    exp_id = mlflow_client.create_experiment(unique("pages"))
    created = [mlflow_client.create_run(exp_id, start_time=1_000 + i).info.run_id for i in range(23)]
    for i, rid in enumerate(created):
        mlflow_client.log_metric(rid, "score", float(i))
    seen, token, pages = [], None, 0
    while True:
        page = mlflow_client.search_runs([exp_id], max_results=5, order_by=["metrics.score ASC"], page_token=token)
        seen += ids(page)
        pages += 1
        token = page.token
        if not token:
            break
    assert pages == 5 and seen == created
    # A filter narrows what pages hold; the token carries on the same query.
    first = mlflow_client.search_runs([exp_id], filter_string="metrics.score >= 10", max_results=10)
    rest = mlflow_client.search_runs([exp_id], filter_string="metrics.score >= 10", max_results=10, page_token=first.token)
    assert ids(first) + ids(rest) == created[10:][::-1] and not rest.token
    # The fluent search gathers every page itself.
    assert len(mlflow.search_runs([exp_id], max_results=23, output_format="list")) == 23


def test_search_across_experiments(mlflow_client):
    a = mlflow_client.create_experiment(unique("a"))
    b = mlflow_client.create_experiment(unique("b"))
    ra = mlflow_client.create_run(a, start_time=2).info.run_id
    rb = mlflow_client.create_run(b, start_time=1).info.run_id
    assert ids(mlflow_client.search_runs([a, b])) == [ra, rb]


# -- raw HTTP: requests the client never sends -----------------------------------------
def api(server_url: str, path: str) -> str:
    return f"{server_url}/api/2.0/mlflow/runs/{path}"


def assert_error(r: httpx.Response, status: int, code: str, *says: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    for s in says:
        assert s in body["message"], body


def test_raw_malformed_bodies(server_url, mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    headers = {"content-type": "application/json"}
    r = httpx.post(api(server_url, "log-parameter"), content=b'{"run_id": ', headers=headers)
    assert r.status_code == 400 and set(r.json()) == {"error_code", "message"}  # BAD_REQUEST
    r = httpx.post(api(server_url, "log-parameter"), json={"run_id": 12345, "key": "k", "value": "v"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "run_id")
    r = httpx.post(api(server_url, "create"), json={"experiment_id": exp_id, "start_time": "abc"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "start_time")
    r = httpx.post(api(server_url, "create"), json={"start_time": 5})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "experiment_id")
    r = httpx.post(api(server_url, "log-metric"), json={"run_id": run_id, "key": "m", "timestamp": 1})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "value")
    r = httpx.post(api(server_url, "log-metric"), json={"run_id": run_id, "key": "m", "value": "high", "timestamp": 1})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "value")
    r = httpx.post(api(server_url, "log-metric"), json={"key": "m", "value": 1, "timestamp": 1})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "run_id")
    r = httpx.post(api(server_url, "log-batch"), json={"run_id": run_id, "metrics": [{"key": "m", "value": 1}]})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "timestamp")
    r = httpx.post(api(server_url, "log-batch"), json={"run_id": run_id, "params": "not a list"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "params")
    r = httpx.post(api(server_url, "update"), json={"run_id": run_id, "status": "EXPLODED"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "EXPLODED")
    r = httpx.post(api(server_url, "update"), json={"run_id": run_id, "status": 9})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = httpx.post(api(server_url, "search"), json={"experiment_ids": [exp_id], "run_view_type": "SOME"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = httpx.post(api(server_url, "search"), json={"experiment_ids": [exp_id], "max_results": 50_001})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "max_results")
    r = httpx.post(api(server_url, "search"), json={"experiment_ids": [exp_id], "page_token": "!!"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "page token")
    r = httpx.post(api(server_url, "log-model"), json={"run_id": run_id, "model_json": "{nope"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "Malformed model info")
    r = httpx.post(api(server_url, "log-model"), json={"run_id": run_id, "model_json": "{}"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "missing mandatory fields")


def test_raw_lenient_protobuf_json(server_url, mlflow_client, exp_id):
    """protobuf JSON may spell int64 as strings and enums as numbers; MLflow accepts both."""
    run_id = mlflow_client.create_run(exp_id).info.run_id
    r = httpx.post(api(server_url, "log-metric"), json={"run_id": run_id, "key": "m", "value": "Infinity", "timestamp": "17", "step": "3"})
    assert r.status_code == 200 and r.json() == {}
    r = httpx.post(api(server_url, "update"), json={"run_uuid": run_id, "status": 3, "end_time": "99"})
    assert r.status_code == 200 and r.json()["run_info"]["status"] == "FINISHED" and r.json()["run_info"]["end_time"] == 99
    run = httpx.get(api(server_url, "get"), params={"run_uuid": run_id}).json()["run"]
    assert run["data"]["metrics"] == [{"key": "m", "value": "Infinity", "timestamp": 17, "step": 3}]


def test_raw_unknown_and_invalid_run_ids(server_url):
    missing = uuid.uuid4().hex
    r = httpx.get(api(server_url, "get"), params={"run_id": missing})
    assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST", missing)
    r = httpx.post(api(server_url, "delete"), json={"run_id": missing})
    assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = httpx.post(api(server_url, "log-batch"), json={"run_id": missing, "params": [{"key": "k", "value": "v"}]})
    assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = httpx.post(api(server_url, "log-inputs"), json={"run_id": missing})
    assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = httpx.get(api(server_url, "get"), params={"run_id": "../../etc/passwd"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "run ID")
    r = httpx.post(api(server_url, "set-tag"), json={"run_id": "XYZ", "key": "k", "value": "v"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = httpx.get(api(server_url, "get"))
    assert_error(r, 400, "INVALID_PARAMETER_VALUE", "run_id")
    r = httpx.post(api(server_url, "create"), json={"experiment_id": "424242"})
    assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = httpx.post(api(server_url, "create"), json={"experiment_id": "not-a-number"})
    assert_error(r, 400, "INVALID_PARAMETER_VALUE")


def test_raw_huge_body_is_refused_with_json_error(server_url, mlflow_client, exp_id):
    run_id = mlflow_client.create_run(exp_id).info.run_id
    big = b'{"run_id": "%s", "key": "k", "value": "' % run_id.encode() + b"x" * (17 * 1024 * 1024) + b'"}'
    r = httpx.post(api(server_url, "log-parameter"), content=big, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code in (400, 413)
    body = r.json()
    assert set(body) == {"error_code", "message"} and "Traceback" not in body["message"]
    # The server is unharmed and the param was not written.
    assert "k" not in mlflow_client.get_run(run_id).data.params
