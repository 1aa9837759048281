"""The Models screen driven by Textual's Pilot against a real data directory: `iris` in
main.default (v1 from an autologged run with its dataset, v2 from a plain logged model)
and `prod.vision.digits` (two versions) in a created catalog and schema. Tests assert on
the screen's typed messages and the store's state first, the widgets second."""
from __future__ import annotations

import asyncio
import time

import pytest
from textual.app import App
from textual.widgets import Checkbox, DataTable, Input, RadioButton, Tree

from cairn import engine
from cairn.engine.errors import CairnError
from cairn.tui.app import create_tui
from cairn.tui.backend import LocalBackend
from cairn.tui.screens.models import (
    AliasDeleted,
    AliasSet,
    BackendFailed,
    LineageLoaded,
    ModelsLoaded,
    ModelsScreen,
    StageChanged,
    TransitionsLoaded,
    VersionsLoaded,
)
from cairn.tui.screens.modelwidgets import ConfirmModal, LineageModal, StageModal

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import cairn

    path = tmp_path_factory.mktemp("tui-models") / "data"
    X, y = load_iris(return_X_y=True)
    cairn.set_tracking_dir(path)
    try:
        cairn.set_experiment("iris-exp")
        cairn.autolog()
        with cairn.start_run(run_name="logreg") as run:
            model = LogisticRegression(max_iter=300).fit(X, y)
        cairn.autolog(disable=True)
        with cairn.start_run(run_name="plain"):
            info = cairn.sklearn.log_model(model, "model", input_example=X[:5])
        assert cairn.register_model(f"runs:/{run.info.run_id}/model", "iris").status == "READY"
        assert cairn.register_model(info.model_uri, "iris").status == "READY"
        eng = engine.open(path)
        eng.registry.create_catalog("prod")
        eng.registry.create_schema("prod.vision")
        eng.registry.create_schema("prod.empty")
        for _ in range(2):
            assert cairn.register_model(info.model_uri, "prod.vision.digits").status == "READY"
        eng.registry.transition_model_version_stage("prod.vision.digits", "1", "Production")
        # a version whose registration fails (its source does not exist)
        eng.registry.create_registered_model("prod.vision.broken")
        eng.registry.create_model_version("prod.vision.broken", (path / "missing.onnx").as_uri())
        deadline = time.monotonic() + 30
        while eng.registry.get_model_version("prod.vision.broken", "1").status == "PENDING_REGISTRATION":
            assert time.monotonic() < deadline, "the broken registration never finished"
            time.sleep(0.05)
        eng.close()
    finally:
        cairn.set_tracking_dir(None)
    return path, run.info.run_id


@pytest.fixture
def eng(data):
    opened = engine.open(data[0])
    yield opened
    opened.close()


@pytest.fixture
def registry(eng):
    return eng.registry


@pytest.fixture
def backend(eng):
    return LocalBackend(eng)


class Harness(App):
    """The smallest app that shows the screen (the real one adds navigation)."""

    def __init__(self, backend) -> None:
        super().__init__()
        self.backend = backend

    def on_mount(self) -> None:
        self.push_screen(ModelsScreen(self.backend))


def run_ui(backend, scenario) -> list:
    """Runs `scenario(pilot, screen, messages)` in a headless app; returns the messages."""
    messages: list = []

    async def main() -> None:
        app = Harness(backend)
        async with app.run_test(size=(140, 40), message_hook=messages.append) as pilot:
            await until(pilot, lambda: any(isinstance(m, ModelsLoaded) for m in messages), "the model tree")
            await scenario(pilot, app.screen, messages)

    asyncio.run(main())
    return messages


async def until(pilot, check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        # the notifications say why (a BackendFailed) when the wait was in vain
        assert time.monotonic() < deadline, f"timed out waiting for {what}; {notifications(pilot)}"
        await pilot.pause(0.02)


def of(messages, kind) -> list:
    return [m for m in messages if isinstance(m, kind)]


async def open_model(pilot, screen: ModelsScreen, messages, name: str) -> None:
    """Moves the tree's cursor to the model and presses Enter, as a user would."""
    tree = screen.query_one("#model-tree", Tree)
    node = next(n for n in walk(tree.root) if n.data == ("model", name))
    tree.focus()
    tree.move_cursor(node)
    await pilot.press("enter")
    await until(pilot, lambda: screen.model is not None and screen.model.full_name == name
                and screen.query_one("#versions", DataTable).row_count == len(screen.versions) > 0,
                f"the versions of {name}")
    if messages is not None:  # None where the app runs without a message hook (snapshots)
        assert of(messages, VersionsLoaded)


def walk(node):
    for child in node.children:
        yield child
        yield from walk(child)


def notifications(pilot) -> list[str]:
    return [n.message for n in pilot.app._notifications]


# -- tests --------------------------------------------------------------------------------
def test_tree_lists_catalogs_schemas_and_models_and_a_model_its_versions(backend, capsys):
    async def scenario(pilot, screen, messages):
        loaded = of(messages, ModelsLoaded)[-1].tree
        shape = {c.name: {s.full_name: [m.full_name for m in ms] for s, ms in schemas} for c, schemas in loaded}
        assert shape["main"]["main.default"] == ["main.default.iris"]
        assert shape["prod"] == {"prod.empty": [], "prod.vision": ["prod.vision.broken", "prod.vision.digits"]}
        labels = [str(n.label) for n in walk(screen.query_one("#model-tree", Tree).root)]
        assert labels[:3] == ["main", "default (1)", "iris"]
        assert {"prod", "vision (2)", "empty (0)", "digits", "broken"} <= set(labels)

        await open_model(pilot, screen, messages, "main.default.iris")
        assert [v.version for v in screen.versions] == ["2", "1"]
        table = screen.query_one("#versions", DataTable)
        assert [str(c.label) for c in table.columns.values()] == [
            "version", "status", "stage", "aliases", "run id", "created"]
        assert [str(cell) for cell in table.get_row_at(0)[:3]] == ["2", "READY", "None"]

        await open_model(pilot, screen, messages, "prod.vision.digits")
        assert [(v.version, v.current_stage) for v in screen.versions] == [("2", "None"), ("1", "Production")]
        screen.select_version("1")
        assert "version 1: READY" in str(screen.query_one("#version-info").render())

        await open_model(pilot, screen, messages, "prod.vision.broken")
        failed = screen.versions[0]
        assert failed.status == "FAILED_REGISTRATION" and failed.status_message
        assert str(screen.query_one("#versions", DataTable).get_row_at(0)[1]) == "FAILED"
        assert failed.status_message in str(screen.query_one("#version-info").render())

        loads = len(of(messages, ModelsLoaded))
        await pilot.press("r")  # refresh: the tree is rebuilt, the cursor stays on the model
        await until(pilot, lambda: len(of(messages, ModelsLoaded)) > loads, "the refreshed tree")
        tree = screen.query_one("#model-tree", Tree)
        await until(pilot, lambda: tree.cursor_node is not None and tree.cursor_node.data == (
            "model", "prod.vision.broken"), "the cursor back on the model")

    run_ui(backend, scenario)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # Textual owns the terminal: nothing may print


def test_set_alias_through_the_modal_and_confirmation(registry, backend):
    async def scenario(pilot, screen, messages):
        await open_model(pilot, screen, messages, "main.default.iris")
        screen.select_version("1")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(pilot.app.screen, type(pilot.app.screen)) and
                    pilot.app.screen.query(Input), "the alias input")
        pilot.app.screen.query_one(Input).value = "champion"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: of(messages, AliasSet), "AliasSet")
        msg = of(messages, AliasSet)[-1]
        assert (msg.name, msg.alias, msg.version) == ("main.default.iris", "champion", "1")
        assert registry.get_model_version_by_alias("iris", "champion").version == "1"
        await until(pilot, lambda: screen.versions and "champion" in screen.versions[1].aliases, "the new alias row")
        assert screen.query_one("#versions", DataTable).get_row_at(1)[3] == "champion"

        # and delete it again: pick it, confirm
        await pilot.press("d")
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "PickAliasModal", "the alias picker")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: of(messages, AliasDeleted), "AliasDeleted")
        with pytest.raises(CairnError):
            registry.get_model_version_by_alias("iris", "champion")
        kinds = [t.kind for t in registry.list_transitions("iris", "1")]
        assert kinds[-2:] == ["alias_set", "alias_deleted"]

    run_ui(backend, scenario)


def test_cancelling_a_confirmation_changes_nothing(registry, backend):
    before = (registry.get_registered_model("iris").aliases, registry.list_transitions("iris"))

    async def scenario(pilot, screen, messages):
        await open_model(pilot, screen, messages, "main.default.iris")
        await pilot.press("a")
        await until(pilot, lambda: pilot.app.screen is not screen, "the alias input")
        pilot.app.screen.query_one(Input).value = "nope"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the confirmation")
        await pilot.press("escape")
        await until(pilot, lambda: pilot.app.screen is screen, "back on the screen")

        await pilot.press("t")
        await until(pilot, lambda: isinstance(pilot.app.screen, StageModal), "the stage modal")
        pilot.app.screen.query_one("#stage-staging", RadioButton).value = True
        await pilot.click("#ok")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the confirmation")
        await pilot.click("#no")
        await until(pilot, lambda: pilot.app.screen is screen, "back on the screen")
        await pilot.pause(0.1)
        assert not of(messages, AliasSet) and not of(messages, StageChanged)

    run_ui(backend, scenario)
    assert (registry.get_registered_model("iris").aliases, registry.list_transitions("iris")) == before
    assert registry.get_model_version("iris", "2").current_stage == "None"


def test_transition_with_archive_existing_moves_the_stage_and_records_it(registry, backend):
    async def scenario(pilot, screen, messages):
        await open_model(pilot, screen, messages, "prod.vision.digits")
        screen.select_version("2")
        await pilot.press("t")
        await until(pilot, lambda: isinstance(pilot.app.screen, StageModal), "the stage modal")
        modal = pilot.app.screen
        modal.query_one("#stage-production", RadioButton).value = True
        modal.query_one("#archive", Checkbox).value = True
        modal.query_one("#comment", Input).value = "better f1"
        await pilot.click("#ok")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the confirmation")
        assert "archiving" in str(pilot.app.screen.question)
        await pilot.press("y")
        await until(pilot, lambda: of(messages, StageChanged), "StageChanged")
        msg = of(messages, StageChanged)[-1]
        assert (msg.version.version, msg.version.current_stage, msg.archive_existing_versions) == (
            "2", "Production", True)
        await until(pilot, lambda: [v.current_stage for v in screen.versions] == ["Production", "Archived"],
                    "the refreshed stages")
        assert screen.selected_version.version == "2"  # the cursor stays on the version

        await pilot.press("h")
        await until(pilot, lambda: of(messages, TransitionsLoaded), "the history")
        await until(pilot, lambda: type(pilot.app.screen).__name__ == "HistoryModal", "the history modal")
        assert pilot.app.screen.query_one(DataTable).row_count == len(of(messages, TransitionsLoaded)[-1].transitions)
        await pilot.press("escape")

    run_ui(backend, scenario)
    assert registry.get_model_version("prod.vision.digits", "2").current_stage == "Production"
    assert registry.get_model_version("prod.vision.digits", "1").current_stage == "Archived"
    moves = [(t.version, t.from_stage, t.to_stage, t.comment)
             for t in registry.list_transitions("prod.vision.digits") if t.kind == "stage"]
    assert ("2", "None", "Production", "better f1") in moves
    assert any(v == "1" and (f, to) == ("Production", "Archived") for v, f, to, _ in moves)


def test_lineage_tree_shows_the_run_and_its_dataset(backend, data):
    run_id = data[1]

    async def scenario(pilot, screen, messages):
        await open_model(pilot, screen, messages, "main.default.iris")
        screen.select_version("1")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(pilot.app.screen, LineageModal), "the lineage modal")
        lin = of(messages, LineageLoaded)[-1].lineage
        assert lin.run_id == run_id and lin.datasets
        tree = pilot.app.screen.query_one("#lineage-tree", Tree)
        labels = [str(n.label) for n in walk(tree.root)]
        assert any(f"run logreg ({run_id})" in x and "experiment iris-exp" in x for x in labels)
        assert "datasets" in labels
        assert any(f"digest {lin.datasets[0].digest}" in x and "[training]" in x for x in labels)
        assert any(x.startswith("source ") for x in labels)
        await pilot.press("escape")
        await until(pilot, lambda: pilot.app.screen is screen, "the lineage closed")

    run_ui(backend, scenario)


class Failing:
    """A backend whose reads work but whose listing and alias calls fail."""

    def __init__(self, inner, broken: set[str]) -> None:
        self.inner, self.broken = inner, broken

    def __getattr__(self, name):
        if name in self.broken:
            def fail(*args, **kwargs):
                raise CairnError(f"{name} is down for maintenance [retry later]", "INTERNAL_ERROR")
            return fail
        return getattr(self.inner, name)


def test_backend_errors_become_notifications(backend):
    async def scenario(pilot, screen, messages):
        await open_model(pilot, screen, messages, "main.default.iris")
        await pilot.press("a")
        await until(pilot, lambda: pilot.app.screen is not screen, "the alias input")
        pilot.app.screen.query_one(Input).value = "latest"  # reserved: the store refuses it
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: of(messages, BackendFailed), "BackendFailed")
        assert "latest" in of(messages, BackendFailed)[-1].error
        await until(pilot, lambda: any("latest" in n for n in notifications(pilot)), "the notification")
        assert pilot.app.is_running and pilot.app.screen is screen

    run_ui(backend, scenario)

    failing = Failing(backend, {"list_transitions"})

    async def broken(pilot, screen, messages):
        await open_model(pilot, screen, messages, "main.default.iris")
        await pilot.press("h")
        await until(pilot, lambda: any("down for maintenance" in n for n in notifications(pilot)), "notification")
        assert pilot.app.screen is screen

    run_ui(failing, broken)

    messages: list = []

    async def main() -> None:
        app = Harness(Failing(backend, {"list_catalogs"}))
        async with app.run_test(message_hook=messages.append) as pilot:
            await until(pilot, lambda: of(messages, BackendFailed), "the failed listing")
            await until(pilot, lambda: notifications(pilot), "the notification")
            assert "list_catalogs is down for maintenance [retry later]" in notifications(pilot)[0] and app.is_running

    asyncio.run(main())


def test_in_the_real_app_m_opens_the_screen_and_its_keys_reach_it(backend):
    """Inside create_tui: the app's own keys (e, m, q, ?) must not shadow the screen's,
    and the modal flow works in the models mode."""
    messages: list = []

    async def main() -> None:
        app = create_tui(backend)
        async with app.run_test(size=(140, 40), message_hook=messages.append) as pilot:
            await pilot.press("m")
            await until(pilot, lambda: of(messages, ModelsLoaded), "the model tree")
            screen = app.screen
            assert isinstance(screen, ModelsScreen)
            await open_model(pilot, screen, messages, "prod.vision.digits")
            await pilot.press("l")
            await until(pilot, lambda: isinstance(app.screen, LineageModal), "the lineage modal")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back on the models screen")

    asyncio.run(main())


def test_over_a_remote_server(data, registry, launch):
    """`cairn ui --remote`: the same flow through RemoteBackend and a real `cairn server`
    on the data directory (the server writes; this process's store sees it)."""
    from cairn.tui.backend import RemoteBackend

    _, url = launch(data[0])
    remote = RemoteBackend(url)

    async def scenario(pilot, screen, messages):
        await open_model(pilot, screen, messages, "prod.vision.digits")
        screen.select_version("1")
        await pilot.press("a")
        await until(pilot, lambda: pilot.app.screen is not screen, "the alias input")
        pilot.app.screen.query_one(Input).value = "remote-pick"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: of(messages, AliasSet), "AliasSet")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(pilot.app.screen, LineageModal), "the lineage modal")
        assert of(messages, LineageLoaded)[-1].lineage.run_id == screen.versions[-1].run_id != ""

    try:
        run_ui(remote, scenario)
    finally:
        remote.close()
    assert registry.get_model_version_by_alias("prod.vision.digits", "remote-pick").version == "1"


# -- snapshots on fixed data ---------------------------------------------------------------
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC: fixed data draws the same every time


class FixedBackend:
    """The registry methods the screen calls, answering fixed entities (no LMDB, no
    clock), so a snapshot compares only how the screen draws."""

    def __init__(self) -> None:
        from cairn.engine.query.pagination import Page
        from cairn.engine.registry.entities import (
            Catalog,
            Lineage,
            LineageDataset,
            ModelVersion,
            RegisteredModel,
            RegisteredModelAlias,
            RegisteredModelTag,
            Schema,
        )

        self.Page = Page
        self.catalogs = [Catalog(name="main"), Catalog(name="prod")]
        self.schemas = {"main": [Schema(name="default", catalog_name="main", full_name="main.default")],
                        "prod": [Schema(name="vision", catalog_name="prod", full_name="prod.vision")]}
        self.models = [
            RegisteredModel(name="iris", full_name="main.default.iris", creation_timestamp=T0,
                            last_updated_timestamp=T0, description="Iris species classifier",
                            tags=[RegisteredModelTag("team", "ml")],
                            aliases=[RegisteredModelAlias("champion", "2")]),
            RegisteredModel(name="prod.vision.digits", full_name="prod.vision.digits",
                            creation_timestamp=T0, last_updated_timestamp=T0),
        ]
        self.versions = [
            ModelVersion(name="iris", full_name="main.default.iris", version=v, creation_timestamp=T0 + i * 60_000,
                         last_updated_timestamp=T0, status=status, status_message=msg, current_stage=stage,
                         aliases=aliases, run_id=f"{i:032x}" if i < 3 else "",
                         source=f"runs:/{i:032x}/model" if i < 3 else "file:///tmp/missing.onnx")
            for i, v, status, msg, stage, aliases in [
                (3, "3", "FAILED_REGISTRATION", "No ONNX model or MLmodel at file:///tmp/missing.onnx", "None", []),
                (2, "2", "READY", "", "Production", ["champion"]),
                (1, "1", "READY", "", "Archived", []),
            ]
        ]
        self.lineage = Lineage(
            name="iris", version="2", run_id=f"{2:032x}", run_name="logreg", experiment_id="1",
            experiment_name="iris-exp", source_name="train.py", source_type="LOCAL", git_commit="0" * 40,
            datasets=[LineageDataset(name="iris", digest="338ea5e1", source_type="local",
                                     source='{"uri": "file:///data/iris.csv"}', context="training")])

    def list_catalogs(self):
        return self.catalogs

    def list_schemas(self, catalog):
        return self.schemas[catalog]

    def search_registered_models(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        return self.Page(self.models)

    def get_registered_model(self, name):
        return next(m for m in self.models if name in (m.name, m.full_name))

    def search_model_versions(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        return self.Page(self.versions if "iris" in (filter_string or "") else [])

    def get_lineage(self, name, version):
        return self.lineage


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def snapshot_app_on_iris(version: str):
    async def run_before(pilot) -> None:
        screen = pilot.app.screen
        await until(pilot, lambda: screen.query_one("#model-tree", Tree).root.children, "the model tree")
        await open_model(pilot, screen, None, "main.default.iris")
        screen.select_version(version)
        screen.query_one("#versions", DataTable).focus()
        await pilot.pause()

    return run_before


def test_snapshot_versions_with_a_failed_one(snap_compare, utc):
    assert snap_compare(Harness(FixedBackend()), terminal_size=(120, 30), run_before=snapshot_app_on_iris("3"))


def test_snapshot_lineage(snap_compare, utc):
    before = snapshot_app_on_iris("2")

    async def run_before(pilot) -> None:
        await before(pilot)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(pilot.app.screen, LineageModal), "the lineage modal")
        await pilot.pause()

    assert snap_compare(Harness(FixedBackend()), terminal_size=(120, 30), run_before=run_before)


def test_models_without_full_name_are_placed_by_their_display_name():
    """A remote server in MLflow's JSON shape may omit full_name: `iris` is
    main.default.iris, `team.churn` is main.team.churn."""
    from cairn.engine.registry.entities import Catalog, RegisteredModel, Schema
    from cairn.tui.screens.models import group_models

    models = [RegisteredModel(name=n, creation_timestamp=0, last_updated_timestamp=0)
              for n in ("iris", "team.churn", "prod.vision.digits")]
    tree = group_models([Catalog(name="main")],
                        {"main": [Schema(name="default", catalog_name="main", full_name="main.default")]}, models)
    shape = {c.name: {s.full_name: [m.name for m in ms] for s, ms in schemas} for c, schemas in tree}
    assert shape == {"main": {"main.default": ["iris"], "main.team": ["team.churn"]},
                     "prod": {"prod.vision": ["prod.vision.digits"]}}
