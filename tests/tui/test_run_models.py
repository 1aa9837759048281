"""The run screen's logged-models tab: the models a run logged (MLflow 3), with status,
flavors (from each model's MLmodel; its type without one), the cairn.onnx outcome and the registered versions made from them."""
from __future__ import annotations

import json

import pytest
from pilotwait import wait_for
from textual.widgets import DataTable, Static, TabbedContent

from cairn import engine
from cairn.tui.app import create_tui
from cairn.tui.backend import LocalBackend
from cairn.tui.screens.run import LoggedModelsLoaded, RunScreen

pytestmark = pytest.mark.anyio




@pytest.fixture()
def eng(tmp_path):
    e = engine.open(tmp_path / "data")
    yield e
    e.close()


def cells(table: DataTable, key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]


async def test_logged_models_tab_lists_the_runs_models(eng):
    lm = eng.logged_models
    exp = eng.tracking.create_experiment("models")
    rid = eng.tracking.create_run(exp, run_name="trainer").info.run_id
    other = eng.tracking.create_run(exp, run_name="other").info.run_id
    clf = lm.create_logged_model(exp, name="clf", source_run_id=rid, model_type="sklearn", tags={
        "cairn.onnx": "READY", "mlflow.modelVersions": json.dumps([{"name": "iris", "version": 1},
                                                                   {"name": "iris", "version": 3}])})  # fmt: skip
    lm.finalize_logged_model(clf.model_id, "READY")
    eng.artifacts.put(f"{lm.artifact_root(clf.model_id)}/MLmodel", b"flavors:\n  python_function: {}\n"
                      b"  sklearn: {pickled_model: model.pkl}\n  onnx: {data: model.onnx}\n")  # fmt: skip
    typed = lm.create_logged_model(exp, name="typed", source_run_id=rid, model_type="agent")
    bad = lm.create_logged_model(exp, name="bad-mlmodel", source_run_id=rid)
    eng.artifacts.put(f"{lm.artifact_root(bad.model_id)}/MLmodel", b"{not yaml")
    broken = lm.create_logged_model(exp, name="broken", source_run_id=rid)
    lm.finalize_logged_model(broken.model_id, "FAILED")
    lm.create_logged_model(exp, name="elsewhere", source_run_id=other)

    seen: list[LoggedModelsLoaded] = []
    app = create_tui(LocalBackend(eng))
    async with app.run_test(size=(160, 30), message_hook=lambda m: isinstance(m, LoggedModelsLoaded) and seen.append(m)) as pilot:
        app.push_screen(RunScreen(app.backend, rid))
        await wait_for(pilot, lambda: seen)
        assert sorted(m.info.name for m in seen[0].models) == ["bad-mlmodel", "broken", "clf", "typed"]
        assert seen[0].flavors[clf.model_id] == ["python_function", "sklearn", "onnx"]
        assert seen[0].flavors[bad.model_id] == seen[0].flavors[typed.model_id] == []
        screen = app.screen
        await pilot.press("l")
        assert screen.query_one(TabbedContent).active == "logged-models"
        table = screen.query_one("#run-models", DataTable)
        assert cells(table, clf.model_id) == ["clf", clf.model_id, "READY", "sklearn, onnx", "READY",
                                              "iris v1, iris v3"]  # fmt: skip
        assert cells(table, typed.model_id)[3] == "agent"  # no MLmodel yet: its type
        assert cells(table, bad.model_id)[3] == ""  # an MLmodel that does not parse: nothing, no error
        assert cells(table, broken.model_id)[2:] == ["FAILED", "", "", ""]
        assert "4 logged models" in str(screen.query_one("#run-models-note", Static).render())

        seen.clear()
        app.push_screen(RunScreen(app.backend, eng.tracking.create_run(exp).info.run_id))
        await wait_for(pilot, lambda: seen)
        await pilot.pause()
        assert "no logged models" in str(app.screen.query_one("#run-models-note", Static).render())
