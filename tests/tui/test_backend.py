"""RemoteBackend against a real `cairn server` on the same data directory answers what
LocalBackend answers: the screens cannot tell them apart."""
from __future__ import annotations

import time

import pytest

from cairn.engine.errors import CairnError
from cairn.tui.backend import Backend, LocalBackend, RemoteBackend


@pytest.fixture(scope="module")
def remote(tui_data, session_launch):
    """One server for the module (each start costs a second or two)."""
    _, url = session_launch(tui_data[0])
    backend = RemoteBackend(url)
    yield backend
    backend.close()


def test_remote_matches_local(backend, remote, tui_data):
    _, ids = tui_data
    assert isinstance(backend, Backend) and isinstance(remote, Backend)
    local_exps = backend.search_experiments().items
    assert remote.search_experiments().items == local_exps

    for name in ("alpha", "beta"):
        local = backend.search_runs([ids[name]], order_by=["metrics.rmse ASC"])
        there = remote.search_runs([ids[name]], order_by=["metrics.rmse ASC"])
        assert [r.info for r in there.items] == [r.info for r in local.items]
        assert [r.data for r in there.items] == [r.data for r in local.items]

    # pages of the big experiment line up
    local = backend.search_runs([ids["big"]], max_results=200)
    there = remote.search_runs([ids["big"]], max_results=200)
    assert [r.info.run_id for r in there.items] == [r.info.run_id for r in local.items]
    assert there.next_page_token is not None
    second = remote.search_runs([ids["big"]], max_results=200, page_token=there.next_page_token)
    assert [r.info.run_id for r in second.items] == [
        r.info.run_id for r in backend.search_runs([ids["big"]], max_results=200, page_token=local.next_page_token).items
    ]

    rid = ids["alpha-0"]
    assert remote.get_run(rid).data == backend.get_run(rid).data
    assert remote.get_metric_history(rid, "rmse") == backend.get_metric_history(rid, "rmse")
    assert remote.list_artifacts(rid) == backend.list_artifacts(rid)
    assert remote.list_artifacts(rid, "notes") == backend.list_artifacts(rid, "notes")
    assert remote.read_artifact_text(rid, "notes/readme.txt") == ("hello from alpha-0\n", False)
    assert remote.read_artifact_text(rid, "notes/readme.txt", limit=5) == ("hello", True)
    assert remote.list_catalogs() == backend.list_catalogs()
    assert remote.list_schemas("main") == backend.list_schemas("main")


def test_remote_bad_filter_is_the_servers_message(backend, remote, tui_data):
    _, ids = tui_data
    with pytest.raises(CairnError) as here:
        backend.search_runs([ids["alpha"]], "metrics.rmse <<< 1")
    with pytest.raises(CairnError) as there:
        remote.search_runs([ids["alpha"]], "metrics.rmse <<< 1")
    assert there.value.error_code == here.value.error_code == "INVALID_PARAMETER_VALUE"
    assert there.value.message == here.value.message


def test_unreachable_server_is_a_cairn_error():
    backend = RemoteBackend("http://127.0.0.1:9", timeout=2)
    with pytest.raises(CairnError, match="Cannot reach"):
        backend.search_experiments()
    assert isinstance(LocalBackend, type)


def test_remote_registry_reads_and_writes(backend, remote, tui_data):
    """What the Models screen uses: writes through the server, read back both ways."""
    _, ids = tui_data
    reg = backend.eng.registry
    reg.create_registered_model("tui-backend-model")
    reg.create_model_version("tui-backend-model", f"runs:/{ids['alpha-0']}/model", run_id=ids["alpha-0"])
    # The registration pipeline finishes the version (FAILED here: no model in the run)
    # in the background; wait, so both reads see one state.
    deadline = time.monotonic() + 10
    while reg.get_model_version("tui-backend-model", 1).status == "PENDING_REGISTRATION":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    remote.set_registered_model_alias("tui-backend-model", "champion", 1)
    mv = remote.transition_model_version_stage("tui-backend-model", "1", "Staging", comment="from the TUI")
    assert mv.current_stage == "Staging"
    assert remote.get_registered_model("tui-backend-model") == backend.get_registered_model("tui-backend-model")
    flt = "name = 'tui-backend-model'"
    assert remote.search_registered_models(flt).items == backend.search_registered_models(flt).items
    assert remote.search_model_versions(flt).items == backend.search_model_versions(flt).items
    assert remote.get_lineage("tui-backend-model", 1) == backend.get_lineage("tui-backend-model", "1")
    assert remote.list_transitions("tui-backend-model", 1) == backend.list_transitions("tui-backend-model", 1)
    assert {"alias_set", "stage"} <= {t.kind for t in backend.list_transitions("tui-backend-model")}
    remote.delete_registered_model_alias("tui-backend-model", "champion")
    assert backend.get_registered_model("tui-backend-model").aliases == []


def test_remote_logged_models_match_local(backend, remote, tui_data):
    """What the run screen's logged-models tab reads; statuses in the engine's short names."""
    _, ids = tui_data
    lm = backend.eng.logged_models
    made = lm.create_logged_model(ids["beta"], name="tui-backend-lm", model_type="sklearn", tags={"cairn.onnx": "READY"},
                                  source_run_id=ids["alpha-1"])  # fmt: skip
    lm.finalize_logged_model(made.model_id, "READY")
    lm.log_logged_model_params(made.model_id, {"alpha": "1"})
    flt = f"source_run_id = '{ids['alpha-1']}'"
    local = backend.search_logged_models([ids["beta"]], flt)
    assert [m.info.name for m in local.items] == ["tui-backend-lm"] and local.items[0].info.status == "READY"
    assert remote.search_logged_models([ids["beta"]], flt).items == local.items
    with pytest.raises(CairnError) as there:
        remote.search_logged_models([ids["beta"]], "nonsense ==")
    assert there.value.error_code == "INVALID_PARAMETER_VALUE"

    # Its files (the tab reads the MLmodel's flavors), local and through the artifact proxy.
    mlmodel = "flavors:\n  sklearn: {pickled_model: model.pkl}\n  onnx: {data: model.onnx}\n"
    backend.eng.artifacts.put(f"{lm.artifact_root(made.model_id)}/MLmodel", mlmodel.encode())
    [model] = local.items
    assert backend.read_logged_model_text(model, "MLmodel") == (mlmodel, False)
    assert remote.read_logged_model_text(model, "MLmodel") == (mlmodel, False)
    assert remote.read_logged_model_text(model, "MLmodel", limit=8) == (mlmodel[:8], True)
    for side in (backend, remote):
        with pytest.raises(CairnError) as missing:
            side.read_logged_model_text(model, "no-such-file")
        assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.anyio
async def test_screens_over_remote(remote, tui_data):
    """The same screens, unchanged, over HTTP."""
    from test_app import SIZE, names, open_experiment  # tests/tui is on sys.path
    from textual.widgets import DataTable

    from cairn.tui.app import create_tui

    app = create_tui(remote)
    async with app.run_test(size=SIZE) as pilot:
        runs = await open_experiment(pilot, app, "alpha")
        assert sorted(names(runs.query_one("#runs", DataTable))) == [
            "alpha-0", "alpha-1", "alpha-2", "alpha-3", "alpha-child"
        ]  # fmt: skip
        assert remote.url in app.sub_title
