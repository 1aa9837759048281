"""`cairn models|catalogs|schemas ...` run as separate processes against a temporary
data directory, as a user types them: a training script autologs one run (in a git
work tree, so lineage has a commit), then the commands register, promote, show and
trace it."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from clirun import assert_clean_error, cli, run_train_script, write_train_script

REPO = Path(__file__).resolve().parents[2]



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data dir, run id, git commit, path of an .onnx file)."""
    work = tmp_path_factory.mktemp("project")
    data = str(tmp_path_factory.mktemp("cairn-data"))
    write_train_script(work)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(git + ["init", "-q"], cwd=work, check=True)
    subprocess.run(git + ["add", "train.py"], cwd=work, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "train"], cwd=work, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True,
                            text=True, check=True).stdout.strip()
    run_id = run_train_script(work, data)

    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    X = np.random.default_rng(0).normal(size=(50, 3))
    ridge = Ridge().fit(X, X @ [1.0, 2.0, 3.0])
    onnx_path = work / "ridge.onnx"
    onnx_path.write_bytes(to_onnx(ridge, X[:1].astype(np.float32), target_opset=17).SerializeToString())
    return data, run_id, commit, str(onnx_path)


@pytest.fixture(scope="module")
def registered(trained):
    """The run registered twice as `iris`, the .onnx file as `ridge`."""
    data, run_id, _, onnx_path = trained
    first = cli(data, "models", "register", f"runs:/{run_id}/model", "iris", "--tag", "team=ml")
    assert "iris version 1: READY" in first.stdout
    cli(data, "models", "register", f"runs:/{run_id}/model", "iris")
    out = cli(data, "models", "register", onnx_path, "ridge").stdout
    assert "ridge version 1: READY" in out
    return trained


def test_list_shows_every_model(registered):
    data = registered[0]
    out = cli(data, "models", "list").stdout
    header, _, *rows = out.splitlines()
    assert header.split()[:2] == ["NAME", "LATEST"]
    assert [r.split()[:2] for r in rows] == [["iris", "2"], ["ridge", "1"]]
    doc = json.loads(cli(data, "models", "list", "--json", "--filter", "name = 'ridge'").stdout)
    assert [m["name"] for m in doc["registered_models"]] == ["ridge"]


def test_alias_transition_then_show_and_versions(registered):
    data = registered[0]
    assert "iris@champion -> version 1" in cli(data, "models", "alias", "iris", "champion", "1").stdout
    cli(data, "models", "alias", "iris", "challenger", "2")
    out = cli(data, "models", "transition", "iris", "1", "production", "--comment", "ship it").stdout
    assert "iris version 1 is now in stage Production" in out
    cli(data, "models", "transition", "iris", "2", "Staging")

    show = cli(data, "models", "show", "iris").stdout
    assert "main.default.iris" in show
    aliases = show.split("Aliases")[1].split("Latest versions")[0]
    assert "champion" in aliases and "challenger" in aliases
    latest = show.split("Latest versions")[1].split("Tags")[0].splitlines()
    assert any(line.split()[:2] == ["Staging", "2"] for line in latest)
    assert any(line.split()[:2] == ["Production", "1"] for line in latest)

    versions = cli(data, "models", "versions", "iris").stdout.splitlines()
    assert versions[0].split()[:3] == ["VERSION", "STAGE", "STATUS"]
    assert [r.split()[:3] for r in versions[2:]] == [
        ["2", "Staging", "READY"], ["1", "Production", "READY"]
    ]
    assert "champion" in versions[3] and "challenger" in versions[2]

    history = cli(data, "models", "history", "iris", "1").stdout
    assert "None -> Production" in history and "ship it" in history and "@champion set" in history

    cli(data, "models", "alias", "iris", "challenger", "--delete")
    doc = json.loads(cli(data, "models", "show", "iris", "--json").stdout)["registered_model"]
    assert [a["alias"] for a in doc["aliases"]] == ["champion"]


def test_transition_archive_existing(registered):
    data = registered[0]
    cli(data, "models", "transition", "ridge", "1", "Production")
    cli(data, "models", "register", registered[3], "ridge")
    cli(data, "models", "transition", "ridge", "2", "Production", "--archive-existing")
    rows = [r.split()[:2] for r in cli(data, "models", "versions", "ridge").stdout.splitlines()[2:]]
    assert rows == [["2", "Production"], ["1", "Archived"]]


def test_lineage_prints_a_tree(registered):
    data, run_id, commit, _ = registered
    out = cli(data, "models", "lineage", "iris", "1").stdout
    lines = out.splitlines()
    assert lines[0].startswith("iris version 1")
    assert "READY" in lines[0]
    text = "\n".join(lines)
    assert f"run logreg ({run_id})" in text and "experiment iris-exp" in text
    assert "digest" in text and "[training]" in text
    assert "train.py" in text
    assert f"git commit {commit}" in text
    assert any(line.startswith(("├─ ", "└─ ")) for line in lines[1:])
    assert any(line.startswith(("│  ├─ ", "│  └─ ", "   ├─ ", "   └─ ")) for line in lines)
    doc = json.loads(cli(data, "models", "lineage", "iris", "1", "--json").stdout)["lineage"]
    assert doc["run_id"] == run_id and doc["git_commit"] == commit

    onnx_tree = cli(data, "models", "lineage", "ridge", "1").stdout
    assert "ridge.onnx" in onnx_tree and "no run recorded" in onnx_tree


def test_catalogs_and_schemas(registered):
    data = registered[0]
    cli(data, "catalogs", "create", "edge", "--comment", "devices")
    cli(data, "schemas", "create", "edge.vision")
    assert "edge" in cli(data, "catalogs", "list").stdout
    assert "edge.vision" in cli(data, "schemas", "list", "edge").stdout
    out = cli(data, "models", "register", registered[3], "edge.vision.ridge").stdout
    assert "edge.vision.ridge version 1: READY" in out


def test_errors_are_one_line_and_exit_1(registered, tmp_path):
    data = registered[0]
    assert_clean_error(cli(data, "models", "show", "nope", check=False), "nope")
    assert_clean_error(cli(data, "models", "versions", "nope", check=False), "nope")
    assert_clean_error(cli(data, "models", "transition", "iris", "1", "Bogus", check=False), "Bogus")
    assert_clean_error(cli(data, "models", "alias", "iris", "x", "99", check=False), "99")
    assert_clean_error(cli(data, "models", "lineage", "iris", "99", check=False), "99")
    assert_clean_error(
        cli(data, "models", "register", str(tmp_path / "missing"), "x", check=False), "missing"
    )
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    proc = cli(data, "models", "register", str(bad), "broken", check=False)
    assert_clean_error(proc, "FAILED_REGISTRATION")


def test_delete(registered):
    data = registered[0]
    cli(data, "models", "register", registered[3], "scratch")
    cli(data, "models", "register", registered[3], "scratch")
    cli(data, "models", "delete", "scratch", "--version", "1")
    rows = [r.split()[0] for r in cli(data, "models", "versions", "scratch").stdout.splitlines()[2:]]
    assert rows == ["2"]
    cli(data, "models", "delete", "scratch")
    assert_clean_error(cli(data, "models", "show", "scratch", check=False), "scratch")
