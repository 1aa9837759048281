"""Pilot tests over a LocalBackend on a real data directory (conftest.py)."""
from __future__ import annotations

import pytest
from pilotwait import wait_for
from textual.widgets import DataTable, Input, Static

from cairn.tui.app import create_tui
from cairn.tui.screens.compare import CompareScreen
from cairn.tui.screens.experiments import ExperimentsScreen
from cairn.tui.screens.placeholder import PlaceholderScreen
from cairn.tui.screens.run import RunScreen
from cairn.tui.screens.runs import FIRST_PAGE, RunsScreen

SIZE = (140, 40)
# anyio (installed with httpx) runs the async tests; no extra pytest plugin.
pytestmark = pytest.mark.anyio




def names(table: DataTable, column: str = "name") -> list[str]:
    return [str(table.get_cell(row, column)) for row in table.rows]


async def open_experiment(pilot, app, name: str) -> RunsScreen:
    screen = app.screen
    assert isinstance(screen, ExperimentsScreen)
    await wait_for(pilot, lambda: screen.experiments)
    table = screen.query_one("#experiments", DataTable)
    exp_id = next(e.experiment_id for e in screen.experiments if e.name == name)
    table.move_cursor(row=table.get_row_index(exp_id))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
    runs = app.screen
    await wait_for(pilot, lambda: runs.runs and not runs.loading)
    return runs


async def test_experiments_list_and_filter(backend):
    app = create_tui(backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentsScreen)
        await wait_for(pilot, lambda: len(screen.stats) == len(screen.experiments) > 0)
        table = screen.query_one("#experiments", DataTable)
        assert {"alpha", "beta", "big"} <= set(names(table))
        alpha = next(e.experiment_id for e in screen.experiments if e.name == "alpha")
        big = next(e.experiment_id for e in screen.experiments if e.name == "big")
        assert table.get_cell(alpha, "runs") == "5"
        assert table.get_cell(big, "runs") == "5000"
        assert "team=nlp" in table.get_cell(alpha, "tags")
        await pilot.press("slash")
        await pilot.press(*"vision")  # tags match too
        assert names(table) == ["beta"]
        await pilot.press("escape")
        assert len(names(table)) >= 3


async def test_runs_sort_filter_select(backend, tui_data):
    _, ids = tui_data
    app = create_tui(backend)
    async with app.run_test(size=SIZE) as pilot:
        runs = await open_experiment(pilot, app, "alpha")
        table = runs.query_one("#runs", DataTable)
        assert len(table.rows) == 5
        assert "metrics.rmse" in [c.key.value for c in table.ordered_columns]
        # default order: newest first
        assert names(table)[0] == "alpha-child"
        # sort by the rmse column: the cursor's column, then `s`
        table.move_cursor(column=[c.key.value for c in table.ordered_columns].index("metrics.rmse"))
        await pilot.press("s")
        assert names(table)[:4] == ["alpha-1", "alpha-3", "alpha-0", "alpha-2"]
        assert names(table)[-1] == "alpha-child"  # no rmse: last
        await pilot.press("s")  # again: descending, missing still last
        assert names(table)[:4] == ["alpha-2", "alpha-0", "alpha-3", "alpha-1"]
        # select two runs for compare with space
        table.move_cursor(row=0)
        await pilot.press("space")
        await pilot.press("down", "space")
        assert runs.selected == [ids["alpha-2"], ids["alpha-0"]]
        assert table.get_cell(ids["alpha-2"], "sel") == "●"
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.compared)
        compare = app.screen.query_one("#compare", DataTable)
        assert [str(c) for c in compare.get_row("metrics.rmse")[1:]] == ["0.9", "0.5 ★"]
        assert [str(c) for c in compare.get_row("metrics.acc")[1:]] == ["0.1", "0.5 ★"]  # acc: higher is better
        assert compare.get_row("params.alpha")[1].style == "bold yellow"  # 100 vs 1
        assert compare.get_row("params.model")[1].style == ""
        await pilot.press("escape")
        assert app.screen is runs
        # a bad filter: the error is shown inline, the table keeps its rows
        await pilot.press("slash")
        await pilot.press(*"metrics.rmse <<< 1", "enter")
        error = runs.query_one("#runs-error", Static)
        await wait_for(pilot, lambda: str(error.render()).strip())
        assert "rmse" in str(error.render()) or "filter" in str(error.render()).lower()
        assert len(table.rows) == 5
        # a good filter replaces the rows and clears the error
        filt = runs.query_one("#runs-filter", Input)
        filt.value = "metrics.rmse < 0.4"
        await pilot.press("slash", "enter")
        await wait_for(pilot, lambda: len(table.rows) == 2 and not runs.loading)
        assert sorted(names(table)) == ["alpha-1", "alpha-3"]
        assert str(error.render()).strip() == ""


async def test_big_experiment_pages_in(backend, monkeypatch):
    shown: list[int] = []  # rows on screen after each page was drawn, in order
    draw = RunsScreen.on_runs_page

    def counted(self, msg):  # passes through: only records what each page drew
        draw(self, msg)
        shown.append(len(self.runs))

    monkeypatch.setattr(RunsScreen, "on_runs_page", counted)
    app = create_tui(backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        # Run counts read every run: let them finish so the timing is the runs screen's.
        await wait_for(pilot, lambda: len(screen.stats) == len(screen.experiments) > 0)
        table = screen.query_one("#experiments", DataTable)
        big = next(e.experiment_id for e in screen.experiments if e.name == "big")
        table.move_cursor(row=table.get_row_index(big))
        # Not pilot.press: it returns only once the app is idle, after every page.
        screen.action_open()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        runs = app.screen
        rows = runs.query_one("#runs", DataTable)
        assert names(rows)[0] == "big-4999"
        # Drawn at once: the first page alone, before the rest. (How fast is a bench
        # figure, never a timed assertion here.)
        assert shown[0] == FIRST_PAGE
        await wait_for(pilot, lambda: not runs.loading)
        assert len(rows.rows) == 5000 == len(set(rows.rows))
        assert len(shown) > 2 and shown[-1] == 5000
        assert rows.cursor_row == 0


async def test_live_refresh_keeps_cursor(backend, tui_data):
    _, ids = tui_data
    app = create_tui(backend)
    async with app.run_test(size=SIZE) as pilot:
        runs = await open_experiment(pilot, app, "alpha")
        table = runs.query_one("#runs", DataTable)
        table.move_cursor(row=2)
        before = runs.cursor_run_id()
        running = ids["alpha-3"]
        assert str(table.get_cell(running, "status")) == "RUNNING"
        backend.eng.tracking.update_run_info(running, "FINISHED", None, None)
        try:
            runs.refresh_running()
            await wait_for(pilot, lambda: str(table.get_cell(running, "status")) == "FINISHED")
            assert runs.cursor_run_id() == before
        finally:
            backend.eng.tracking.update_run_info(running, "RUNNING", None, None)


async def test_run_detail(backend, tui_data):
    _, ids = tui_data
    app = create_tui(backend)
    async with app.run_test(size=SIZE) as pilot:
        runs = await open_experiment(pilot, app, "alpha")
        table = runs.query_one("#runs", DataTable)
        table.move_cursor(row=table.get_row_index(ids["alpha-0"]))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.loaded is not None)
        run = app.screen
        assert run.parent_run is None
        assert [c.info.run_name for c in run.child_runs] == ["alpha-child"]
        assert "alpha-0" in str(run.query_one("#run-overview", Static).render())
        params = run.query_one("#run-params", DataTable)
        assert [str(params.get_row(k)[1]) for k in ("alpha", "model")] == ["1", "ridge"]
        await pilot.press("t")
        title = run.query_one("#chart-title", Static)
        await wait_for(pilot, lambda: "acc (1 point" in str(title.render()))
        metrics = run.query_one("#run-metrics", DataTable)
        metrics.move_cursor(row=metrics.get_row_index("rmse"))  # the chart follows the cursor
        await wait_for(pilot, lambda: "rmse (51 points)" in str(title.render()))
        await pilot.press("a")
        tree = run.query_one("#run-artifacts")
        await wait_for(pilot, lambda: tree.root.children)
        notes = tree.root.children[0]
        notes.expand()
        await wait_for(pilot, lambda: notes.children)
        tree.select_node(notes.children[0])
        preview = run.query_one("#artifact-preview", Static)
        await wait_for(pilot, lambda: "hello from alpha-0" in str(preview.render()))
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("e")  # from deep inside: back to the experiments list
        assert isinstance(app.screen, ExperimentsScreen)


async def test_help_models_and_quit(backend):
    app = create_tui(backend)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        text = str(app.screen.query_one("#help-text", Static).render())
        for key in ("e", "m", "v", "q", "s", "space", "ctrl+p", "l", "["):
            assert f" {key} " in text
        await pilot.press("escape")
        await pilot.press("m")
        try:
            from cairn.tui.screens.models import ModelsScreen  # noqa: F401 - built by another session
        except ImportError:
            assert isinstance(app.screen, PlaceholderScreen)
        await pilot.press("e")
        assert isinstance(app.screen, ExperimentsScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Experiments", "Models", "Help", "Filter", "Reload"} <= set(titles)
        await pilot.press("q")
    assert app.return_code == 0


def test_no_screen_key_hides_an_app_key():
    """A screen's binding wins over the app's: one on a mode key would make that mode
    unreachable from the screen (as `s` once did on the runs table)."""
    from cairn.tui.app import CairnApp
    from cairn.tui.screens.help import key_rows

    app_keys = {k for b in CairnApp.BINDINGS for k in (*b.key.split(","), b.key_display) if k}
    clashes = [(where, key) for where, key, _ in key_rows(CairnApp.BINDINGS) if where != "everywhere" and key in app_keys]
    assert clashes == []
    # every screen's bindings are in the help, with a description
    assert all(what for _, _, what in key_rows(CairnApp.BINDINGS))
