"""One run: overview (info, tags, parent and children), params, metrics with a chart per
metric, the artifact tree with a preview of text files, and the models the run logged
(MLflow 3 logged models: status, flavor, ONNX outcome, registered versions). Everything
is read in thread workers; a chart's history is downsampled before it is drawn."""
from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Header,
    Static,
    TabbedContent,
    TabPane,
    Tree,
)

from cairn.engine.errors import CairnError
from cairn.engine.loggedmodels.records import LoggedModel
from cairn.engine.models.mlmodel import MLMODEL_FILE, read_mlmodel
from cairn.engine.store.artifacts import FileInfo
from cairn.engine.tracking.entities import Metric, Run
from cairn.tui.backend import Backend
from cairn.tui.messages import BackendFailed, error_text
from cairn.tui.widgets.footer import KeyFooter
from cairn.tui.widgets.run import LOGGED_MODEL_COLUMNS, MetricChart, downsample, logged_model_cells
from cairn.tui.widgets.runs import duration_ms, duration_text, number_text

PARENT_TAG = "mlflow.parentRunId"
MAX_CHILDREN = 500
# A run logs a handful of models; a page this size is all of them.
MAX_MODELS = 200
# An MLmodel is a few KiB; a wide signature makes it longer, never this long.
MAX_MLMODEL_BYTES = 1024 * 1024


def when(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")


class RunLoaded(Message):
    def __init__(self, run: Run, parent: Run | None, children: list[Run]):
        super().__init__()
        self.run, self.parent, self.children = run, parent, children


class RunFailed(Message):
    def __init__(self, message: str):
        super().__init__()
        self.message = message


class HistoryLoaded(Message):
    def __init__(self, key: str, points: list[Metric], total: int):
        super().__init__()
        self.key, self.points, self.total = key, points, total


class ArtifactsListed(Message):
    def __init__(self, path: str | None, files: list[FileInfo]):
        super().__init__()
        self.path, self.files = path, files


class LoggedModelsLoaded(Message):
    def __init__(self, models: list[LoggedModel], flavors: dict[str, list[str]]):
        super().__init__()
        self.models = models
        self.flavors = flavors  # model id -> its MLmodel's flavors ([] without one)


class ArtifactPreview(Message):
    def __init__(self, path: str, text: str, truncated: bool):
        super().__init__()
        self.path, self.text, self.truncated = path, text, truncated


class RunScreen(Screen):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "back", "Back"),
        Binding("o", "tab('overview')", "Overview"),
        Binding("p", "tab('params')", "Params"),
        Binding("t", "tab('metrics')", "Metrics"),
        Binding("a", "tab('artifacts')", "Artifacts"),
        Binding("l", "tab('logged-models')", "Logged models"),
        Binding("u", "parent", "Parent run"),
    ]

    def __init__(self, backend: Backend, run_id: str):
        super().__init__()
        self.backend = backend
        self.run_id = run_id
        self.loaded: Run | None = None
        self.parent_run: Run | None = None
        self.child_runs: list[Run] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="overview", id="run-tabs"):
            with TabPane("Overview", id="overview"):
                yield Static("loading…", id="run-overview")
                yield DataTable(id="run-children", cursor_type="row")
            with TabPane("Params", id="params"):
                yield DataTable(id="run-params", cursor_type="row", zebra_stripes=True)
            with TabPane("Metrics", id="metrics"):
                yield DataTable(id="run-metrics", cursor_type="row")
                yield MetricChart(id="run-chart")
            with TabPane("Artifacts", id="artifacts"), Horizontal():
                yield Tree("artifacts", id="run-artifacts")
                with VerticalScroll(id="artifact-scroll"):
                    yield Static("", id="artifact-preview")
            with TabPane("Logged models", id="logged-models"):
                yield Static("loading…", id="run-models-note")
                yield DataTable(id="run-models", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#run-params", DataTable).add_columns("param", "value")
        self.query_one("#run-metrics", DataTable).add_columns("metric", "latest", "step", "time")
        self.query_one("#run-children", DataTable).add_columns("child run", "status", "start")
        self.query_one("#run-models", DataTable).add_columns(*LOGGED_MODEL_COLUMNS)
        tree = self.query_one("#run-artifacts", Tree)
        tree.root.data = None
        tree.root.expand()
        self.load()
        self.list_dir(None)

    # -- workers -----------------------------------------------------------------------
    @work(thread=True, group="run")
    def load(self) -> None:
        try:
            run = self.backend.get_run(self.run_id)
            parent_id = run.data.tags_dict.get(PARENT_TAG)
            parent = self.backend.get_run(parent_id) if parent_id else None
            children = self.backend.search_runs([run.info.experiment_id], f"tags.`{PARENT_TAG}` = '{self.run_id}'",
                                                max_results=MAX_CHILDREN).items  # fmt: skip
        except CairnError as exc:
            self.post_message(RunFailed(exc.message))
            return
        self.post_message(RunLoaded(run, parent, children))

    @work(thread=True, group="models")
    def load_models(self, experiment_id: str) -> None:
        try:
            page = self.backend.search_logged_models([experiment_id], f"source_run_id = '{self.run_id}'",
                                                     max_results=MAX_MODELS)  # fmt: skip
        except CairnError as exc:
            self.post_message(BackendFailed("list the run's logged models", error_text(exc)))
            return
        self.post_message(LoggedModelsLoaded(page.items, {m.model_id: self._flavors(m) for m in page.items}))

    def _flavors(self, model: LoggedModel) -> list[str]:
        """The flavors its MLmodel names; [] for a model with no readable MLmodel (still
        pending, failed, or not an MLflow model), which the table shows by its type."""
        try:
            text, truncated = self.backend.read_logged_model_text(model, MLMODEL_FILE, MAX_MLMODEL_BYTES)
            return [] if truncated else list(read_mlmodel(text).flavors)
        except CairnError:  # ModelFormatError included
            return []

    @work(thread=True, exclusive=True, group="history")
    def load_history(self, key: str) -> None:
        try:
            points = self.backend.get_metric_history(self.run_id, key)
        except CairnError as exc:
            self.post_message(RunFailed(exc.message))
            return
        self.post_message(HistoryLoaded(key, downsample(points), len(points)))

    @work(thread=True, group="artifacts")
    def list_dir(self, path: str | None) -> None:
        try:
            files = self.backend.list_artifacts(self.run_id, path)
        except CairnError:
            files = []
        self.post_message(ArtifactsListed(path, files))

    @work(thread=True, exclusive=True, group="preview")
    def preview(self, path: str) -> None:
        try:
            text, truncated = self.backend.read_artifact_text(self.run_id, path)
        except CairnError as exc:
            text, truncated = f"cannot read: {exc.message}", False
        self.post_message(ArtifactPreview(path, text, truncated))

    # -- messages ----------------------------------------------------------------------
    def on_run_loaded(self, msg: RunLoaded) -> None:
        self.loaded, self.parent_run, self.child_runs = msg.run, msg.parent, msg.children
        run, info = msg.run, msg.run.info
        self.sub_title = info.run_name
        lines = [
            f"[b]{escape(info.run_name)}[/b]  {info.status}",
            f"run id      {info.run_id}",
            f"experiment  {info.experiment_id}",
            f"start       {when(info.start_time)}",
            f"end         {when(info.end_time)}",
            f"duration    {duration_text(duration_ms(run))}",
            f"user        {escape(info.user_id)}",
            f"artifacts   {escape(info.artifact_uri)}",
        ]
        if msg.parent is not None:
            lines.append(f"parent      {escape(msg.parent.info.run_name)} ({msg.parent.info.run_id})  [dim]u opens it[/dim]")
        datasets = [f"{d.dataset.name} ({d.dataset.digest})" for d in run.inputs.dataset_inputs]
        if datasets:
            lines.append("datasets    " + escape(", ".join(datasets)))
        tags = sorted((t.key, t.value) for t in run.data.tags)
        if tags:
            lines.append("\n[b]tags[/b]")
            lines.extend(f"  {escape(k)} = {escape(v[:200])}" for k, v in tags)
        lines.append(f"\n[b]child runs[/b] ({len(msg.children)})" if msg.children else "\nno child runs")
        self.query_one("#run-overview", Static).update("\n".join(lines))
        children = self.query_one("#run-children", DataTable)
        children.clear()
        children.display = bool(msg.children)
        for c in msg.children:
            children.add_row(c.info.run_name, c.info.status, when(c.info.start_time), key=c.info.run_id)
        params = self.query_one("#run-params", DataTable)
        params.clear()
        for p in sorted(run.data.params, key=lambda p: p.key):
            params.add_row(p.key, p.value, key=p.key)
        metrics = self.query_one("#run-metrics", DataTable)
        metrics.clear()
        for m in sorted(run.data.metrics, key=lambda m: m.key):
            metrics.add_row(m.key, number_text(m.value), str(m.step), when(m.timestamp), key=m.key)
        if run.data.metrics:
            self.load_history(min(m.key for m in run.data.metrics))
        self.load_models(info.experiment_id)

    def on_logged_models_loaded(self, msg: LoggedModelsLoaded) -> None:
        table = self.query_one("#run-models", DataTable)
        table.clear()
        for model in msg.models:
            table.add_row(*logged_model_cells(model, msg.flavors.get(model.model_id, [])), key=model.model_id)
        n = len(msg.models)
        note = f"{n} logged model{'s' if n != 1 else ''}" if n else "no logged models"
        self.query_one("#run-models-note", Static).update(note)

    def on_backend_failed(self, msg: BackendFailed) -> None:
        self.query_one("#run-models-note", Static).update(f"[red]{escape(msg.error)}[/red]")
        self.notify(msg.error, title=f"Could not {msg.action}", severity="error", markup=False)

    def on_run_failed(self, msg: RunFailed) -> None:
        self.query_one("#run-overview", Static).update(f"[red]{escape(msg.message)}[/red]")

    def on_history_loaded(self, msg: HistoryLoaded) -> None:
        self.query_one(MetricChart).show(msg.key, msg.points, msg.total)

    def on_artifacts_listed(self, msg: ArtifactsListed) -> None:
        tree = self.query_one("#run-artifacts", Tree)
        node = tree.root if msg.path is None else self.find_node(tree.root, msg.path)
        if node is None:
            return
        node.remove_children()
        for f in msg.files:
            label = f.path.rsplit("/", 1)[-1]
            if f.is_dir:
                node.add(label + "/", data=f, allow_expand=True)
            else:
                size = "" if f.file_size is None else f"  [dim]{f.file_size:,} B[/dim]"
                node.add_leaf(label + size, data=f)
        if msg.path is None and not msg.files:
            tree.root.set_label("artifacts (none)")

    def find_node(self, node, path: str):
        for child in node.children:
            if isinstance(child.data, FileInfo) and child.data.path == path:
                return child
            if isinstance(child.data, FileInfo) and path.startswith(child.data.path + "/"):
                return self.find_node(child, path)
        return None

    def on_artifact_preview(self, msg: ArtifactPreview) -> None:
        note = "\n[dim]… (preview cut)[/dim]" if msg.truncated else ""
        self.query_one("#artifact-preview", Static).update(f"[b]{escape(msg.path)}[/b]\n{escape(msg.text)}{note}")

    @on(Tree.NodeExpanded, "#run-artifacts")
    def node_expanded(self, event: Tree.NodeExpanded) -> None:
        data = event.node.data
        if isinstance(data, FileInfo) and data.is_dir and not event.node.children:
            self.list_dir(data.path)

    @on(Tree.NodeSelected, "#run-artifacts")
    def node_selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data
        if isinstance(data, FileInfo) and not data.is_dir:
            self.preview(data.path)

    @on(DataTable.RowHighlighted, "#run-metrics")
    def metric_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value:
            self.load_history(event.row_key.value)

    @on(DataTable.RowSelected, "#run-children")
    def child_selected(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(RunScreen(self.backend, event.row_key.value))

    # -- actions -----------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_parent(self) -> None:
        if self.parent_run is not None:
            self.app.push_screen(RunScreen(self.backend, self.parent_run.info.run_id))

    def action_back(self) -> None:
        self.app.pop_screen()
