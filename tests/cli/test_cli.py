"""The `cairn` command line, run for real against a temporary data directory.

The demo trains once per module (it is the slow part); every other test reads what it
wrote, in-process through `main()` and once as a separate process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.cli import tables
from cairn.cli.main import main

REPO = Path(__file__).resolve().parents[2]
DEMO_RUNS = {
    "iris-logreg",
    "breast-cancer-forest",
    "wine-scaled-svc",
    "wine-tree-grid",
    "diabetes-ridge-0.1",
    "diabetes-ridge-1",
    "diabetes-ridge-10",
    "hand-logged-curve",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(data dir, what `cairn demo` printed). CAIRN_HOME points into tmp as well, so a
    command that forgot --data could never touch the real home directory."""
    data = tmp_path_factory.mktemp("cairn-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_HOME", str(tmp_path_factory.mktemp("cairn-home")))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(["--data", str(data), "demo"])
        assert rc == 0
        yield str(data), out.getvalue()


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def list_runs_json(capsys, data: str, *extra: str) -> list[dict]:
    rc, out, err = run_cli(
        capsys,
        "--data",
        data,
        "runs",
        "list",
        "--experiment",
        "cairn-demo",
        "--json",
        *extra,
    )
    assert rc == 0, err
    return json.loads(out)["runs"]


def run_id_named(capsys, data: str, name: str) -> str:
    runs = list_runs_json(capsys, data, "--filter", f"attributes.run_name = '{name}'")
    assert len(runs) == 1, runs
    return runs[0]["info"]["run_id"]


def test_demo_prints_a_line_per_run(demo):
    _, printed = demo
    lines = [line for line in printed.splitlines() if line.strip()]
    for name in DEMO_RUNS:
        assert any(line.split()[0] == name for line in lines), (name, printed)
    assert "cairn-demo" in lines[-1]


def test_demo_registers_verified_models(demo):
    from cairn import engine

    data, printed = demo
    assert "registered iris v1 (READY) Production @champion" in printed
    with engine.open(data) as eng:
        iris = eng.registry.get_model_version_by_alias("iris", "champion")
        assert (iris.status, iris.current_stage) == ("READY", "Production")
        assert iris.signature is not None
        forest = eng.registry.get_latest_versions("breast-cancer", ["Staging"])
        assert [v.status for v in forest] == ["READY"]


def test_experiments_list_shows_the_demo(demo, capsys):
    data, _ = demo
    rc, out, err = run_cli(capsys, "--data", data, "experiments", "list")
    assert rc == 0, err
    header, rule, *rows = out.splitlines()
    assert header.split()[:2] == ["ID", "NAME"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert any("cairn-demo" in row.split() for row in rows)


def test_experiments_list_json(demo, capsys):
    data, _ = demo
    rc, out, _ = run_cli(
        capsys, "--data", data, "experiments", "list", "--all", "--json"
    )
    assert rc == 0
    names = {e["name"] for e in json.loads(out)["experiments"]}
    assert "cairn-demo" in names


def test_runs_list_table_has_the_demo_runs(demo, capsys):
    data, _ = demo
    rc, out, err = run_cli(
        capsys, "--data", data, "runs", "list", "--experiment", "cairn-demo"
    )
    assert rc == 0, err
    header = out.splitlines()[0]
    for column in ("RUN ID", "NAME", "STATUS", "START", "DURATION"):
        assert column in header
    names = {row.split()[1] for row in out.splitlines()[2:]}
    assert DEMO_RUNS <= names
    assert "FINISHED" in out


def test_runs_list_filter_and_order(demo, capsys):
    data, _ = demo
    rc, out, err = run_cli(
        capsys,
        "--data",
        data,
        "runs",
        "list",
        "--experiment",
        "cairn-demo",
        "--filter",
        "metrics.test_r2 > -100",
        "--order-by",
        "metrics.test_r2 DESC",
    )
    assert rc == 0, err
    rows = out.splitlines()[2:]
    assert sorted(row.split()[1] for row in rows) == [
        "diabetes-ridge-0.1",
        "diabetes-ridge-1",
        "diabetes-ridge-10",
    ]
    # The sort key gets a column, first among the metrics.
    assert "test_r2" in out.splitlines()[0]

    runs = list_runs_json(
        capsys,
        data,
        "--filter",
        "metrics.test_r2 > -100",
        "--order-by",
        "metrics.test_r2 DESC",
    )
    scores = [
        {m["key"]: m["value"] for m in r["data"]["metrics"]}["test_r2"] for r in runs
    ]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_runs_list_max_limits_and_says_so(demo, capsys):
    data, _ = demo
    rc, out, err = run_cli(capsys, "--data", data, "runs", "list", "--max", "2")
    assert rc == 0
    assert len(out.splitlines()) == 4  # header, rule, two runs
    assert "--max" in err


def test_runs_show_text(demo, capsys):
    data, _ = demo
    run_id = run_id_named(capsys, data, "iris-logreg")
    rc, out, err = run_cli(capsys, "--data", data, "runs", "show", run_id)
    assert rc == 0, err
    assert run_id in out and "iris-logreg" in out and "cairn-demo" in out
    for section in ("Params", "Metrics", "Tags", "Datasets", "Artifacts"):
        assert f"\n{section}" in out
    assert "max_iter" in out and "test_accuracy" in out


def test_runs_show_json_has_everything_autolog_wrote(demo, capsys):
    data, _ = demo
    run_id = run_id_named(capsys, data, "iris-logreg")
    rc, out, _ = run_cli(capsys, "--data", data, "runs", "show", run_id, "--json")
    assert rc == 0
    doc = json.loads(out)
    run = doc["run"]
    assert run["info"]["run_id"] == run_id
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["max_iter"] == "500"
    assert run["inputs"]["dataset_inputs"], (
        "autolog should record the training data set"
    )
    assert any(not a["is_dir"] for a in doc["artifacts"]), (
        "autolog should log the model"
    )


def test_hand_logged_curve_has_fifty_steps(demo, capsys):
    data, _ = demo
    run_id = run_id_named(capsys, data, "hand-logged-curve")
    rc, out, _ = run_cli(capsys, "--data", data, "runs", "show", run_id, "--json")
    assert rc == 0
    latest = {m["key"]: m for m in json.loads(out)["run"]["data"]["metrics"]}
    assert latest["loss"]["step"] == 49
    assert latest["loss"]["value"] < 0.5


def test_bad_filter_is_a_clear_error(demo, capsys):
    data, _ = demo
    rc, out, err = run_cli(
        capsys, "--data", data, "runs", "list", "--filter", "metrics.rmse >>> 1"
    )
    assert rc == 1
    assert err.startswith("error: ") and "Traceback" not in err
    assert out == ""


def test_unknown_run_and_experiment_exit_1(demo, capsys):
    data, _ = demo
    rc, _, err = run_cli(capsys, "--data", data, "runs", "show", "0" * 32)
    assert rc == 1 and err.startswith("error: ") and "Traceback" not in err
    rc, _, err = run_cli(
        capsys, "--data", data, "runs", "list", "--experiment", "no-such-experiment"
    )
    assert rc == 1 and "no-such-experiment" in err


def test_up_keeps_existing_demo_data(demo, capsys):
    data, _ = demo
    before = len(list_runs_json(capsys, data))
    rc, out, err = run_cli(capsys, "--data", data, "up", "--no-server")
    assert rc == 0, err
    assert data in out and "runs list" in out
    assert len(list_runs_json(capsys, data)) == before


def test_cli_as_a_separate_process(demo):
    data, _ = demo
    env = {**os.environ, "CAIRN_HOME": data}
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "cairn.cli",
            "--data",
            data,
            "runs",
            "list",
            "--experiment",
            "cairn-demo",
        ],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "hand-logged-curve" in ok.stdout

    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "cairn.cli",
            "--data",
            data,
            "runs",
            "list",
            "--filter",
            "params.alpha ==",
        ],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_table_renderer_aligns_columns():
    text = tables.render(
        ["NAME", "SCORE"], [["a", 1.5], ["longer", 10.25], ["c", None]]
    )
    lines = text.splitlines()
    assert lines[0] == "NAME    SCORE"
    assert lines[2] == "a         1.5"  # numbers right-aligned under their header
    assert lines[3] == "longer  10.25"
    assert lines[4] == "c"
