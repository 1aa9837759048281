"""The fluent API against a real store: run lifecycle, nesting, logging, artifacts, search."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import cairn
from cairn import CairnError, RunStatus, engine

REPO = Path(__file__).resolve().parents[2]


def test_context_manager_finishes_run():
    with cairn.start_run(run_name="ok") as run:
        assert cairn.active_run().info.run_id == run.info.run_id
        assert run.info.status == RunStatus.RUNNING
    assert cairn.active_run() is None
    stored = cairn.get_run(run.info.run_id)
    assert stored.info.status == RunStatus.FINISHED
    assert stored.info.end_time is not None and stored.info.end_time >= stored.info.start_time
    assert stored.info.run_name == "ok"


def test_context_manager_marks_failed_on_exception():
    with pytest.raises(ZeroDivisionError):
        with cairn.start_run() as run:
            1 / 0
    stored = cairn.get_run(run.info.run_id)
    assert stored.info.status == RunStatus.FAILED
    assert stored.info.end_time is not None
    assert cairn.active_run() is None


def test_new_run_carries_context_tags():
    with cairn.start_run(tags={"team": "ml"}) as run:
        pass
    tags = cairn.get_run(run.info.run_id).data.tags_dict
    assert tags["team"] == "ml"
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == sys.argv[0]
    assert tags["mlflow.user"]


def test_nested_runs():
    with cairn.start_run() as parent:
        with pytest.raises(CairnError, match="already active"):
            cairn.start_run()
        with cairn.start_run(nested=True) as child:
            assert cairn.active_run().info.run_id == child.info.run_id
            with cairn.start_run(nested=True, run_name="grandchild") as grandchild:
                pass
        assert cairn.active_run().info.run_id == parent.info.run_id
    child_tags = cairn.get_run(child.info.run_id).data.tags_dict
    assert child_tags["mlflow.parentRunId"] == parent.info.run_id
    grand_tags = cairn.get_run(grandchild.info.run_id).data.tags_dict
    assert grand_tags["mlflow.parentRunId"] == child.info.run_id
    assert "mlflow.parentRunId" not in cairn.get_run(parent.info.run_id).data.tags_dict
    children = cairn.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [r.info.run_id for r in children] == [child.info.run_id]


def test_leaving_parent_block_ends_open_children():
    with cairn.start_run() as parent:
        child = cairn.start_run(nested=True)
    assert cairn.active_run() is None
    assert cairn.get_run(child.info.run_id).info.status == RunStatus.FINISHED
    assert cairn.get_run(parent.info.run_id).info.status == RunStatus.FINISHED


def test_parent_run_id_without_active_run():
    with cairn.start_run() as parent:
        pass
    with cairn.start_run(parent_run_id=parent.info.run_id) as child:
        pass
    tags = cairn.get_run(child.info.run_id).data.tags_dict
    assert tags["mlflow.parentRunId"] == parent.info.run_id


def test_end_run_status_and_last_active_run():
    run = cairn.start_run()
    assert cairn.last_active_run().info.run_id == run.info.run_id
    cairn.end_run(RunStatus.KILLED)
    assert cairn.active_run() is None
    last = cairn.last_active_run()
    assert last.info.run_id == run.info.run_id and last.info.status == RunStatus.KILLED
    cairn.end_run()  # nothing active: a no-op


def test_resume_run_by_id():
    with cairn.start_run() as run:
        cairn.log_param("a", 1)
    with cairn.start_run(run_id=run.info.run_id, tags={"resumed": "yes"}) as again:
        assert again.info.status == RunStatus.RUNNING
        cairn.log_param("b", 2)
    stored = cairn.get_run(run.info.run_id)
    assert stored.data.params_dict == {"a": "1", "b": "2"}
    assert stored.data.tags_dict["resumed"] == "yes"
    assert stored.info.status == RunStatus.FINISHED


def test_logging_without_active_run_starts_one():
    cairn.log_param("lr", 0.1)
    run = cairn.active_run()
    assert run is not None
    cairn.end_run()
    assert cairn.get_run(run.info.run_id).data.params_dict == {"lr": "0.1"}


def test_param_write_once_error_is_cairn_error():
    with cairn.start_run() as run:
        assert cairn.log_param("alpha", 0.5) == 0.5
        cairn.log_param("alpha", 0.5)  # same value again: fine
        with pytest.raises(CairnError) as err:
            cairn.log_param("alpha", 0.7)
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "alpha" in err.value.message
        cairn.log_params({"beta": 1, "gamma": "x"})
    assert cairn.get_run(run.info.run_id).data.params_dict == {
        "alpha": "0.5", "beta": "1", "gamma": "x"
    }


def test_metric_steps_and_history_order(client):
    with cairn.start_run() as run:
        for step in (3, 0, 2, 1):
            cairn.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1000 + step)
        cairn.log_metric("loss", float("nan"), step=4, timestamp=2000)
        cairn.log_metrics({"acc": 0.9, "f1": np.float32(0.5)}, step=7)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [m.value for m in history[:4]] == [1.0, 0.5, 1 / 3, 0.25]
    assert np.isnan(history[4].value)
    metrics = cairn.get_run(run.info.run_id).data.metrics_dict
    assert metrics["acc"] == 0.9 and metrics["f1"] == 0.5
    assert [m.step for m in client.get_metric_history(run.info.run_id, "acc")] == [7]


def test_log_metric_rejects_non_numbers():
    with cairn.start_run():
        with pytest.raises(CairnError, match="loss"):
            cairn.log_metric("loss", "high")


def test_metrics_visible_after_flush_while_running():
    with cairn.start_run() as run:
        for i in range(1000):
            cairn.log_metric("m", i, step=i)
        cairn.flush()
        assert cairn.get_run(run.info.run_id).data.metrics_dict["m"] == 999.0


def test_tags_set_and_delete():
    with cairn.start_run() as run:
        cairn.set_tag("stage", "dev")
        cairn.set_tags({"owner": "me", "n": 3})
        cairn.delete_tag("stage")
        with pytest.raises(CairnError):
            cairn.delete_tag("stage")
    tags = cairn.get_run(run.info.run_id).data.tags_dict
    assert "stage" not in tags and tags["owner"] == "me" and tags["n"] == "3"


def test_text_dict_and_artifacts_round_trip(client, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5000)  # > one 1 MiB chunk
    single = tmp_path / "notes.md"
    single.write_text("# notes")
    with cairn.start_run() as run:
        cairn.log_text("hello wörld", "texts/hello.txt")
        cairn.log_dict({"a": 1, "b": [1, 2]}, "config.json")
        cairn.log_dict({"a": 1, "b": [1, 2]}, "config.yaml")
        cairn.log_artifacts(src, artifact_path="data")
        cairn.log_artifacts(src)
        cairn.log_artifact(single, artifact_path="docs")
    run_id = run.info.run_id

    root = [f.path for f in client.list_artifacts(run_id)]
    assert root == sorted(root)
    assert {"texts", "config.json", "config.yaml", "data", "docs", "a.txt", "sub"} <= set(root)

    out = Path(client.download_artifacts(run_id, "", tmp_path / "all"))
    assert (out / "texts" / "hello.txt").read_text(encoding="utf-8") == "hello wörld"
    assert json.loads((out / "config.json").read_text()) == {"a": 1, "b": [1, 2]}
    import yaml

    assert yaml.safe_load((out / "config.yaml").read_text()) == {"a": 1, "b": [1, 2]}
    assert (out / "data" / "a.txt").read_text() == "alpha"
    assert (out / "data" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    assert (out / "sub" / "b.bin").exists() and (out / "a.txt").exists()
    assert (out / "docs" / "notes.md").read_text() == "# notes"

    one = Path(client.download_artifacts(run_id, "data/a.txt", tmp_path / "one"))
    assert one == tmp_path / "one" / "data" / "a.txt" and one.read_text() == "alpha"
    sub = Path(client.download_artifacts(run_id, "data/sub", tmp_path / "sub"))
    assert sub.is_dir() and (sub / "b.bin").stat().st_size == 256 * 5000


def test_search_runs_with_filter_and_order():
    cairn.set_experiment("search")
    for i, acc in enumerate([0.2, 0.9, 0.6]):
        with cairn.start_run(run_name=f"r{i}"):
            cairn.log_param("idx", i)
            cairn.log_metric("acc", acc)
            cairn.set_tag("kind", "even" if i % 2 == 0 else "odd")
    good = cairn.search_runs(filter_string="metrics.acc > 0.5", order_by=["metrics.acc DESC"])
    assert [r.data.params_dict["idx"] for r in good] == ["1", "2"]
    even = cairn.search_runs(filter_string="tags.kind = 'even' and params.idx = '2'")
    assert [r.info.run_name for r in even] == ["r2"]
    assert len(cairn.search_runs(max_results=2)) == 2
    assert cairn.search_runs(experiment_ids=["0"]) == []
    by_name = cairn.search_runs(experiment_names=["search"], filter_string="metrics.acc < 0.5")
    assert [r.info.run_name for r in by_name] == ["r0"]
    with pytest.raises(CairnError):
        cairn.search_runs(filter_string="metrics.acc >>> 1")


def test_search_runs_pandas():
    pd = pytest.importorskip("pandas")
    with cairn.start_run() as run:
        cairn.log_metric("acc", 0.5)
        cairn.log_param("p", "v")
    frame = cairn.search_runs(output_format="pandas")
    assert isinstance(frame, pd.DataFrame)
    assert frame.loc[0, "run_id"] == run.info.run_id
    assert frame.loc[0, "metrics.acc"] == 0.5 and frame.loc[0, "params.p"] == "v"


def test_set_experiment_creates_reuses_and_refuses_deleted(client):
    exp = cairn.set_experiment("trials")
    assert cairn.set_experiment("trials").experiment_id == exp.experiment_id
    with cairn.start_run() as run:
        pass
    assert run.info.experiment_id == exp.experiment_id
    assert cairn.get_experiment_by_name("trials").experiment_id == exp.experiment_id
    assert cairn.set_experiment(experiment_id=exp.experiment_id).name == "trials"
    client.delete_experiment(exp.experiment_id)
    with pytest.raises(CairnError, match="deleted"):
        cairn.set_experiment("trials")
    with pytest.raises(CairnError):
        cairn.set_experiment()
    with pytest.raises(CairnError) as err:
        cairn.set_experiment(experiment_id="999")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_log_input_numpy_and_pandas():
    pd = pytest.importorskip("pandas")
    X = np.arange(12, dtype=np.float64).reshape(3, 4)
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2], "c": ["x", "y"]})
    with cairn.start_run() as run:
        cairn.log_input(X, context="training")
        cairn.log_input(df, context="eval", tags={"split": "test"})
        cairn.log_input(cairn.make_dataset(df, name="named", source="s3://b/k.csv"))
    inputs = cairn.get_run(run.info.run_id).inputs.dataset_inputs
    by_name = {}
    for i in inputs:
        by_name.setdefault(i.dataset.name, []).append(i)
    arrays = [i for i in by_name["dataset"] if "mlflow_tensorspec" in i.dataset.schema]
    frames = [i for i in by_name["dataset"] if "mlflow_colspec" in i.dataset.schema]
    tensor = json.loads(arrays[0].dataset.schema)["mlflow_tensorspec"]
    assert json.loads(tensor["features"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}
    ]
    assert {(t.key, t.value) for t in arrays[0].tags} == {("mlflow.data.context", "training")}
    assert json.loads(frames[0].dataset.schema)["mlflow_colspec"] == [
        {"type": "double", "name": "a", "required": True},
        {"type": "long", "name": "b", "required": True},
        {"type": "string", "name": "c", "required": True},
    ]
    assert {(t.key, t.value) for t in frames[0].tags} == {
        ("mlflow.data.context", "eval"), ("split", "test")
    }
    named = by_name["named"][0].dataset
    assert named.source_type == "local" and json.loads(named.source) == {"uri": "s3://b/k.csv"}
    assert frames[0].dataset.source_type == "code"


def test_dataset_digest_is_stable_and_content_sensitive():
    X = np.random.default_rng(0).normal(size=(50, 3))
    a = cairn.make_dataset(X, targets=np.arange(50))
    assert a.digest == cairn.make_dataset(X.copy(), targets=np.arange(50)).digest
    assert len(a.digest) == 8
    X2 = X.copy()
    X2[10, 1] += 1
    assert cairn.make_dataset(X2, targets=np.arange(50)).digest != a.digest
    assert cairn.make_dataset(X).digest != a.digest
    objects = np.array([["a", 1], ["b", 2]], dtype=object)
    assert cairn.make_dataset(objects).digest == cairn.make_dataset(objects.copy()).digest


def test_runs_are_per_thread():
    seen = {}

    def worker():
        seen["active"] = cairn.active_run()
        with cairn.start_run() as r:
            seen["run"] = r.info.run_id

    with cairn.start_run() as main_run:
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen["active"] is None
    assert seen["run"] != main_run.info.run_id
    assert cairn.get_run(seen["run"]).info.status == RunStatus.FINISHED


def test_run_left_open_is_finished_and_flushed_at_exit(data_dir):
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import cairn
        cairn.set_tracking_dir({str(data_dir / "sub")!r})
        run = cairn.start_run()
        for i in range(5000):
            cairn.log_metric("m", i, step=i)
        print(run.info.run_id)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "could not end" not in out.stderr
    run_id = out.stdout.strip()
    reader = cairn.Client(data_dir / "sub")
    try:
        run = reader.get_run(run_id)
        assert run.info.status == RunStatus.FINISHED and run.info.end_time
        assert len(reader.get_metric_history(run_id, "m")) == 5000
    finally:
        engine.open(data_dir / "sub").close()
