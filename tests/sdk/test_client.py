"""Client against a real store: experiments, runs, run data, search and artifacts."""
from __future__ import annotations

from pathlib import Path

import pytest

import cairn
from cairn import CairnError, Metric, Param, RunStatus, RunTag, ViewType, engine


def test_experiment_lifecycle(client):
    exp_id = client.create_experiment("exp-a", tags={"team": "ml", "n": 1})
    exp = client.get_experiment(exp_id)
    assert exp.name == "exp-a" and exp.tags_dict == {"team": "ml", "n": "1"}
    assert client.get_experiment_by_name("exp-a").experiment_id == exp_id
    assert client.get_experiment_by_name("nope") is None
    with pytest.raises(CairnError) as err:
        client.create_experiment("exp-a")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"

    client.rename_experiment(exp_id, "exp-b")
    assert client.get_experiment(exp_id).name == "exp-b"
    client.set_experiment_tag(exp_id, "stage", "prod")
    client.delete_experiment_tag(exp_id, "team")
    assert client.get_experiment(exp_id).tags_dict == {"n": "1", "stage": "prod"}

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    active = {e.name for e in client.search_experiments()}
    assert "exp-b" not in active and "Default" in active
    assert [e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)] == ["exp-b"]
    client.restore_experiment(exp_id)
    assert "exp-b" in {e.name for e in client.search_experiments(view_type="ACTIVE_ONLY")}


def test_search_experiments_pages(client):
    for i in range(5):
        client.create_experiment(f"e{i}")
    first = client.search_experiments(max_results=2, filter_string="name LIKE 'e%'",
                                      order_by=["name ASC"])
    assert [e.name for e in first] == ["e0", "e1"] and first.token
    names = [e.name for e in first]
    token = first.token
    while token:
        page = client.search_experiments(max_results=2, filter_string="name LIKE 'e%'",
                                         order_by=["name ASC"], page_token=token)
        names += [e.name for e in page]
        token = page.token
    assert names == ["e0", "e1", "e2", "e3", "e4"]


def test_run_lifecycle(client):
    exp_id = client.create_experiment("runs")
    run = client.create_run(exp_id, tags={"k": "v"}, run_name="first")
    run_id = run.info.run_id
    assert run.info.status == RunStatus.RUNNING and run.info.run_name == "first"
    assert run.data.tags_dict["k"] == "v" and run.info.user_id

    client.update_run(run_id, name="renamed")
    assert client.get_run(run_id).data.tags_dict["mlflow.runName"] == "renamed"
    info = client.set_terminated(run_id, end_time=123456)
    assert info.status == RunStatus.FINISHED and info.end_time == 123456
    client.set_terminated(run_id, RunStatus.FAILED)
    assert client.get_run(run_id).info.status == RunStatus.FAILED
    with pytest.raises(CairnError):
        client.set_terminated(run_id, "DONE")

    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs(exp_id) == []
    assert [r.info.run_id for r in client.search_runs(exp_id, run_view_type=ViewType.ALL)] == [run_id]
    with pytest.raises(CairnError):
        client.log_param(run_id, "p", 1)
    client.restore_run(run_id)
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [run_id]
    with pytest.raises(CairnError) as err:
        client.get_run("0" * 32)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_run_data(client):
    run_id = client.create_run("0").info.run_id
    assert client.log_param(run_id, "lr", 0.01) == 0.01
    client.log_metric(run_id, "loss", 0.5, step=1, timestamp=5)
    client.log_metric(run_id, "loss", 0.25, step=2)
    client.log_batch(
        run_id,
        metrics=[Metric("acc", 0.9, 10, 0)],
        params=[Param("depth", "3")],
        tags=[RunTag("t", "1")],
    )
    client.set_tag(run_id, "other", 2)
    client.delete_tag(run_id, "t")
    run = client.get_run(run_id)
    assert run.data.params_dict == {"lr": "0.01", "depth": "3"}
    assert run.data.metrics_dict == {"loss": 0.25, "acc": 0.9}
    assert "t" not in run.data.tags_dict and run.data.tags_dict["other"] == "2"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [
        (1, 0.5), (2, 0.25)
    ]
    with pytest.raises(CairnError):
        client.log_param(run_id, "lr", 0.02)


def test_metric_history_is_ordered_by_timestamp_then_step(client):
    # MLflow's SQL store orders history by (timestamp, step, value); so does Cairn.
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "loss", 0.5, step=1, timestamp=2000)
    client.log_metric(run_id, "loss", 0.25, step=2, timestamp=5)
    client.log_metric(run_id, "loss", 0.75, step=0, timestamp=2000)
    assert [(m.timestamp, m.step) for m in client.get_metric_history(run_id, "loss")] == [
        (5, 2),
        (2000, 0),
        (2000, 1),
    ]


def test_log_batch_beyond_store_limits_is_split(client):
    run_id = client.create_run("0").info.run_id
    params = [Param(f"p{i:03d}", str(i)) for i in range(250)]
    metrics = [Metric("m", float(i), 1, i) for i in range(2500)]
    client.log_batch(run_id, metrics=metrics, params=params)
    run = client.get_run(run_id)
    assert len(run.data.params_dict) == 250
    assert len(client.get_metric_history(run_id, "m")) == 2500


def test_search_runs_pages_and_filters(client):
    exp_id = client.create_experiment("s")
    ids = []
    for i in range(5):
        run_id = client.create_run(exp_id, start_time=1000 + i).info.run_id
        client.log_metric(run_id, "score", i)
        ids.append(run_id)
    page = client.search_runs(exp_id, "metrics.score >= 1", max_results=3)
    assert [r.info.run_id for r in page] == ids[::-1][:3] and page.token
    rest = client.search_runs(exp_id, "metrics.score >= 1", max_results=3, page_token=page.token)
    assert [r.info.run_id for r in rest] == [ids[1]] and rest.token is None
    ordered = client.search_runs([exp_id], order_by=["metrics.score ASC"])
    assert [r.info.run_id for r in ordered] == ids


def test_artifacts(client, tmp_path):
    run_id = client.create_run("0").info.run_id
    f = tmp_path / "model.txt"
    f.write_text("weights")
    client.log_artifact(run_id, f)
    client.log_artifact(run_id, f, artifact_path="nested/dir")
    client.log_text(run_id, "plain", "notes.txt")
    client.log_bytes(run_id, [b"ab", b"cd"], "chunks.bin")
    client.log_dict(run_id, {"x": [1, 2]}, "d.json")

    root = client.list_artifacts(run_id)
    assert [(i.path, i.is_dir) for i in root] == [
        ("chunks.bin", False), ("d.json", False), ("model.txt", False),
        ("nested", True), ("notes.txt", False),
    ]
    assert root[2].file_size == len("weights")
    assert [i.path for i in client.list_artifacts(run_id, "nested/dir")] == ["nested/dir/model.txt"]

    got = Path(client.download_artifacts(run_id, "chunks.bin", tmp_path / "dl"))
    assert got.read_bytes() == b"abcd"
    temp = Path(client.download_artifacts(run_id, "nested"))  # into a new temp dir
    assert (temp / "dir" / "model.txt").read_text() == "weights"
    with pytest.raises(CairnError) as err:
        client.download_artifacts(run_id, "missing.txt", tmp_path / "x")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(CairnError):
        client.log_artifact(run_id, tmp_path / "nope.txt")
    with pytest.raises(CairnError):
        client.log_text(run_id, "x", "../escape.txt")


def test_client_and_fluent_share_the_tracking_dir(client, data_dir):
    with cairn.start_run() as run:
        cairn.log_param("p", 1)
    assert client.get_run(run.info.run_id).data.params_dict == {"p": "1"}
    assert cairn.get_tracking_dir() == data_dir.resolve()


def test_client_with_explicit_path(tmp_path):
    other = tmp_path / "other"
    c = cairn.Client(other)
    try:
        exp_id = c.create_experiment("only-here")
        assert cairn.Client().get_experiment_by_name("only-here") is None
        assert c.get_experiment(exp_id).name == "only-here"
    finally:
        engine.open(other).close()


def test_cairn_home_is_the_default(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CAIRN_HOME", str(home))
    cairn.set_tracking_dir(None)
    try:
        with cairn.start_run() as run:
            pass
        assert cairn.get_tracking_dir() == home.resolve()
        assert cairn.Client(home).get_run(run.info.run_id).info.status == RunStatus.FINISHED
    finally:
        engine.open(home).close()
