"""Snapshots of the experiments, runs, run (overview, metrics, artifacts) and compare
screens on fixed data: an in-memory backend with fixed times, UTC, a fixed terminal
size. `pytest --snapshot-update` rewrites the SVGs."""
from __future__ import annotations

import time
from typing import ClassVar

import pytest

from cairn.engine.query.pagination import Page
from cairn.engine.store.artifacts import FileInfo
from cairn.engine.tracking.entities import Experiment, ExperimentTag, Metric, Param, Run, RunData, RunInfo
from cairn.tui.app import create_tui

T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC


class FixedBackend:
    """Three experiments, a few runs each, a metric history per run and a small artifact
    tree; only what the screens read."""

    def __init__(self):
        self.exps = [
            Experiment(experiment_id=str(i), name=name, artifact_location=f"mlflow-artifacts:/{i}",
                       lifecycle_stage="active", creation_time=T0 + i * 3_600_000,
                       last_update_time=T0 + i * 3_600_000, tags=[ExperimentTag(*t) for t in tags])
            for i, (name, tags) in enumerate([
                ("Default", []), ("churn", [("team", "growth")]), ("vision", [("team", "cv"), ("gpu", "a100")]),
            ])
        ]
        self.runs = {
            e.experiment_id: [
                Run(info=RunInfo(run_id=f"{e.experiment_id}{n:031x}", run_uuid=f"{e.experiment_id}{n:031x}",
                                 run_name=f"run-{n}", experiment_id=e.experiment_id, user_id="", status="FINISHED",
                                 start_time=T0 + 86_400_000 + n * 60_000, end_time=T0 + 86_400_000 + n * 90_000,
                                 artifact_uri="", lifecycle_stage="active"),
                    data=RunData(metrics=[Metric("rmse", 1 / (n + 1), T0, 0)], params=[Param("depth", str(n))]))
                for n in range(int(e.experiment_id) * 3)
            ]
            for e in self.exps
        }

    def describe(self) -> str:
        return "fixed data"

    def search_experiments(self, *args, **kwargs) -> Page[Experiment]:
        return Page(list(reversed(self.exps)))

    def search_runs(self, experiment_ids, filter_string=None, order_by=None, max_results=1000, page_token=None):
        if filter_string:  # the run screen's child-run query: none here
            return Page([])
        runs = [r for i in experiment_ids for r in self.runs[i]]
        return Page(sorted(runs, key=lambda r: -r.info.start_time))

    def get_run(self, run_id: str) -> Run:
        return next(r for runs in self.runs.values() for r in runs if r.info.run_id == run_id)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        scale = 1 + int(run_id[-1], 16) / 4  # each run its own curve, for the compare chart
        return [Metric(key, scale / (s + 1), T0 + s, s) for s in range(20)]

    ARTIFACTS: ClassVar[dict] = {
        None: [FileInfo(path="model", is_dir=True), FileInfo(path="notes.txt", is_dir=False, file_size=42)],
        "model": [FileInfo(path="model/MLmodel", is_dir=False, file_size=310)],
    }

    def list_artifacts(self, run_id: str, path: str | None = None) -> list:
        return self.ARTIFACTS.get(path, [])

    def read_artifact_text(self, run_id: str, path: str, limit: int = 65536) -> tuple[str, bool]:
        return f"{path} of {run_id[:4]}\nsecond line\n", False

    def search_logged_models(self, experiment_ids, filter_string=None, max_results=None, page_token=None):
        return Page([])


@pytest.fixture()
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_snapshot_experiments(snap_compare, utc):
    async def run_before(pilot) -> None:
        screen = pilot.app.screen
        deadline = time.monotonic() + 10
        while not (screen.experiments and len(screen.stats) == len(screen.experiments)):
            assert time.monotonic() < deadline
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(create_tui(FixedBackend()), terminal_size=(100, 20), run_before=run_before)


def test_snapshot_runs_sorted(snap_compare, utc):
    """The runs of `vision`, sorted by rmse (the cursor on its column, then `s`)."""

    async def run_before(pilot) -> None:
        from cairn.tui.screens.runs import RunsScreen

        backend = pilot.app.backend
        pilot.app.push_screen(RunsScreen(backend, backend.exps[2]))
        deadline = time.monotonic() + 10
        while not (isinstance(pilot.app.screen, RunsScreen) and pilot.app.screen.runs and not pilot.app.screen.loading):
            assert time.monotonic() < deadline
            await pilot.pause(0.02)
        screen = pilot.app.screen
        screen.sort_by("metrics.rmse")
        screen.action_toggle_select()
        await pilot.pause()

    assert snap_compare(create_tui(FixedBackend()), terminal_size=(100, 20), run_before=run_before)


async def until(pilot, check) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline
        await pilot.pause(0.02)


async def open_run(pilot):
    """Run-3 of `vision` on the run screen, loaded."""
    from cairn.tui.screens.run import RunScreen

    backend = pilot.app.backend
    pilot.app.push_screen(RunScreen(backend, backend.runs["2"][3].info.run_id))
    await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.loaded)
    return pilot.app.screen


def test_snapshot_run_overview(snap_compare, utc):
    async def run_before(pilot) -> None:
        await open_run(pilot)
        await pilot.pause()

    assert snap_compare(create_tui(FixedBackend()), terminal_size=(100, 24), run_before=run_before)


def test_snapshot_run_metrics(snap_compare, utc):
    """The metrics tab: the table and rmse's chart (20 points)."""

    async def run_before(pilot) -> None:
        screen = await open_run(pilot)
        await pilot.press("t")
        title = screen.query_one("#chart-title")
        await until(pilot, lambda: "20 points" in str(title.render()))
        await pilot.pause()

    assert snap_compare(create_tui(FixedBackend()), terminal_size=(100, 24), run_before=run_before)


def test_snapshot_run_artifacts(snap_compare, utc):
    """The artifacts tab: the tree with `model/` expanded, MLmodel's preview."""

    async def run_before(pilot) -> None:
        screen = await open_run(pilot)
        await pilot.press("a")
        tree = screen.query_one("#run-artifacts")
        await until(pilot, lambda: len(tree.root.children) == 2)
        model = tree.root.children[0]
        model.expand()
        await until(pilot, lambda: model.children)
        tree.select_node(model.children[0])
        preview = screen.query_one("#artifact-preview")
        await until(pilot, lambda: "second line" in str(preview.render()))
        await pilot.pause()

    assert snap_compare(create_tui(FixedBackend()), terminal_size=(100, 24), run_before=run_before)


def test_snapshot_compare_chart(snap_compare, utc):
    """Three runs of `vision` compared: params, rmse with the best starred, the overlaid chart."""

    async def run_before(pilot) -> None:
        from cairn.tui.screens.compare import CompareScreen

        backend = pilot.app.backend
        pilot.app.push_screen(CompareScreen(backend, [r.info.run_id for r in backend.runs["2"][:3]]))
        await until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen) and pilot.app.screen.compared)
        title = pilot.app.screen.query_one("#chart-title")
        await until(pilot, lambda: "3 runs" in str(title.render()))
        await pilot.pause()

    assert snap_compare(create_tui(FixedBackend()), terminal_size=(100, 30), run_before=run_before)
