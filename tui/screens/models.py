"""The Models screen: catalog -> schema -> model on the left, the selected model's versions
and details on the right, and keys to set/delete aliases, transition stages (each behind
a confirmation) and show a version's lineage or the model's history.

Every backend call runs in a thread worker and reports back with a typed message (the
UI thread never blocks on LMDB or HTTP); a failed call posts BackendFailed, which
becomes a notification, so a registry error never takes the UI down. `backend` has the
registry store's method names and signatures (LocalBackend, a remote one, or the store
itself)."""
from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Static, Tree

from cairn.engine.errors import CairnError
from cairn.engine.registry.entities import (
    Catalog,
    Lineage,
    ModelVersion,
    RegisteredModel,
    Schema,
    StageTransition,
    VersionStatus,
)
from cairn.engine.registry.names import parse_model_name
from cairn.tui.messages import BackendFailed, error_text
from cairn.tui.screens.modelwidgets import (
    AliasInputModal,
    ConfirmModal,
    HistoryModal,
    LineageModal,
    PickAliasModal,
    StageModal,
    StageRequest,
    format_ms,
    short_status,
)
from cairn.tui.widgets.footer import KeyFooter

STATUS_STYLES = {VersionStatus.READY: "green", VersionStatus.PENDING: "yellow", VersionStatus.FAILED: "bold red"}
PENDING_POLL_S = 2.0

# The tree: per catalog its schemas, per schema its models (by full name).
ModelTree = list[tuple[Catalog, list[tuple[Schema, list[RegisteredModel]]]]]


class ModelsLoaded(Message):
    def __init__(self, tree: ModelTree) -> None:
        super().__init__()
        self.tree = tree


class VersionsLoaded(Message):
    def __init__(self, model: RegisteredModel, versions: list[ModelVersion]) -> None:
        super().__init__()
        self.model = model
        self.versions = versions


class AliasSet(Message):
    def __init__(self, name: str, alias: str, version: str) -> None:
        super().__init__()
        self.name, self.alias, self.version = name, alias, version


class AliasDeleted(Message):
    def __init__(self, name: str, alias: str) -> None:
        super().__init__()
        self.name, self.alias = name, alias


class StageChanged(Message):
    def __init__(self, version: ModelVersion, archive_existing_versions: bool) -> None:
        super().__init__()
        self.version = version
        self.archive_existing_versions = archive_existing_versions


class LineageLoaded(Message):
    def __init__(self, lineage: Lineage, version: ModelVersion | None) -> None:
        super().__init__()
        self.lineage = lineage
        self.version = version


class TransitionsLoaded(Message):
    def __init__(self, name: str, transitions: list[StageTransition]) -> None:
        super().__init__()
        self.name = name
        self.transitions = transitions


class ModelsScreen(Screen):
    CSS_PATH = "../styles/models.tcss"
    TITLE = "Models"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "set_alias", "Set alias"),
        Binding("d", "delete_alias", "Delete alias"),
        Binding("t", "transition", "Stage"),
        Binding("l", "lineage", "Lineage"),
        Binding("h", "history", "History"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, backend: Any, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.backend = backend
        self.tree_data: ModelTree = []
        self.model: RegisteredModel | None = None  # the model whose versions are shown
        self.versions: list[ModelVersion] = []  # in the table's row order
        self._wanted: str | None = None  # the model whose versions were asked for last
        self._poll: Timer | None = None

    # -- layout --------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="models-body"):
            tree: Tree[tuple[str, str]] = Tree("Registry", id="model-tree")
            tree.show_root = False
            yield tree
            with Vertical(id="model-detail"):
                yield Static("Select a model (Enter) to see its versions.", id="model-info", markup=False)
                table: DataTable = DataTable(id="versions", cursor_type="row", zebra_stripes=True)
                table.add_columns("version", "status", "stage", "aliases", "run id", "created")
                yield table
                yield Static("", id="version-info", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#model-tree", Tree).focus()
        self.load_models()

    # -- workers (threads: the backend blocks) ---------------------------------------
    @work(thread=True, exclusive=True, group="models-tree")
    def load_models(self) -> None:
        try:
            catalogs = self.backend.list_catalogs()
            schemas = {c.name: self.backend.list_schemas(c.name) for c in catalogs}
            models: list[RegisteredModel] = []
            token = None
            while True:
                page = self.backend.search_registered_models(max_results=1000, page_token=token)
                models.extend(page.items)
                token = page.next_page_token
                if not token:
                    break
        except Exception as exc:  # noqa: BLE001 - any backend failure is shown, not raised
            self.post_message(BackendFailed("list models", error_text(exc)))
            return
        self.post_message(ModelsLoaded(group_models(catalogs, schemas, models)))

    @work(thread=True, exclusive=True, group="models-versions")
    def load_versions(self, name: str) -> None:
        try:
            model = self.backend.get_registered_model(name)
            page = self.backend.search_model_versions(
                f"name = '{full_name_of(model)}'", 10_000, ["version_number DESC"], None)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed(f"load {name}", error_text(exc)))
            return
        self.post_message(VersionsLoaded(model, list(page.items)))

    @work(thread=True, group="models-action")
    def set_alias(self, name: str, alias: str, version: str) -> None:
        try:
            self.backend.set_registered_model_alias(name, alias, version)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed(f"set alias {alias}", error_text(exc)))
            return
        self.post_message(AliasSet(name, alias, version))

    @work(thread=True, group="models-action")
    def delete_alias(self, name: str, alias: str) -> None:
        try:
            self.backend.delete_registered_model_alias(name, alias)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed(f"delete alias {alias}", error_text(exc)))
            return
        self.post_message(AliasDeleted(name, alias))

    @work(thread=True, group="models-action")
    def transition(self, name: str, version: str, request: StageRequest) -> None:
        try:
            mv = self.backend.transition_model_version_stage(
                name, version, request.stage,
                archive_existing_versions=request.archive_existing_versions, comment=request.comment)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed(f"transition to {request.stage}", error_text(exc)))
            return
        self.post_message(StageChanged(mv, request.archive_existing_versions))

    @work(thread=True, group="models-action")
    def load_lineage(self, name: str, version: ModelVersion) -> None:
        try:
            lineage = self.backend.get_lineage(name, version.version)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed("lineage", error_text(exc)))
            return
        self.post_message(LineageLoaded(lineage, version))

    @work(thread=True, group="models-action")
    def load_history(self, name: str) -> None:
        try:
            transitions = self.backend.list_transitions(name)
        except Exception as exc:  # noqa: BLE001
            self.post_message(BackendFailed("history", error_text(exc)))
            return
        self.post_message(TransitionsLoaded(name, transitions))

    # -- messages from the workers ---------------------------------------------------
    def on_models_loaded(self, message: ModelsLoaded) -> None:
        self.tree_data = message.tree
        tree = self.query_one("#model-tree", Tree)
        tree.clear()
        current = None
        for catalog, schemas in message.tree:
            c_node = tree.root.add(f"{catalog.name}", data=("catalog", catalog.name), expand=True)
            for schema, models in schemas:
                s_node = c_node.add(f"{schema.name} ({len(models)})", data=("schema", schema.full_name), expand=True)
                for model in models:
                    full = full_name_of(model)
                    leaf = s_node.add_leaf(full.rsplit(".", 1)[-1], data=("model", full))
                    if self.model is not None and full == full_name_of(self.model):
                        current = leaf
        # A refresh keeps the cursor on the open model (its highlight reloads nothing);
        # reading last_line lays the new nodes out, so the node has its line.
        if current is not None and tree.last_line >= 0:
            tree.move_cursor(current)

    def on_versions_loaded(self, message: VersionsLoaded) -> None:
        if self._wanted != full_name_of(message.model):
            return  # an older load answering after the user moved on (threads finish anyway)
        keep = self.selected_version.version if self.selected_version and self.model and (
            full_name_of(self.model) == full_name_of(message.model)) else None
        self.model, self.versions = message.model, message.versions
        self.query_one("#model-info", Static).update(model_summary(message.model, len(message.versions)))
        table = self.query_one("#versions", DataTable)
        table.clear()
        for mv in message.versions:
            status = Text(short_status(mv.status), style=STATUS_STYLES.get(mv.status, ""))
            # the run id is cut to 12 characters (as git shortens commits) so the table fits
            # 120 columns; the full one is in the panel below and in the lineage
            table.add_row(mv.version, status, mv.current_stage, ", ".join(mv.aliases),
                          mv.run_id[:12], format_ms(mv.creation_timestamp), key=mv.version)
        if keep is not None:
            for i, mv in enumerate(message.versions):
                if mv.version == keep:
                    table.move_cursor(row=i)
        self._show_version()
        # A version still registering finishes in the background: look again shortly,
        # so PENDING turns READY / FAILED without the user pressing r.
        if self._poll is not None:
            self._poll.stop()
            self._poll = None
        if any(mv.status == VersionStatus.PENDING for mv in message.versions):
            self._poll = self.set_timer(PENDING_POLL_S, self._reload)

    def on_alias_set(self, message: AliasSet) -> None:
        self.notify(f"{message.name}@{message.alias} -> version {message.version}", title="Alias set", markup=False)
        self._reload()

    def on_alias_deleted(self, message: AliasDeleted) -> None:
        self.notify(f"Deleted alias {message.alias} of {message.name}", title="Alias deleted", markup=False)
        self._reload()

    def on_stage_changed(self, message: StageChanged) -> None:
        mv = message.version
        extra = " (others in that stage archived)" if message.archive_existing_versions else ""
        self.notify(f"{mv.name} version {mv.version} is now {mv.current_stage}{extra}", title="Stage changed",
                    markup=False)
        self._reload()

    def on_lineage_loaded(self, message: LineageLoaded) -> None:
        self.app.push_screen(LineageModal(message.lineage, message.version))

    def on_transitions_loaded(self, message: TransitionsLoaded) -> None:
        self.app.push_screen(HistoryModal(message.name, message.transitions))

    def on_backend_failed(self, message: BackendFailed) -> None:
        # markup=False: messages quote user input (filters, names) that may hold "["
        self.notify(message.error, title=f"Could not {message.action}", severity="error", timeout=8, markup=False)

    # -- selection -------------------------------------------------------------------
    @on(Tree.NodeSelected, "#model-tree")
    @on(Tree.NodeHighlighted, "#model-tree")
    def _model_chosen(self, event: Tree.NodeSelected | Tree.NodeHighlighted) -> None:
        data = event.node.data
        if not data or data[0] != "model":
            return
        name = data[1]
        if self.model is not None and full_name_of(self.model) == name and not isinstance(event, Tree.NodeSelected):
            return
        self.open_model(name)

    def open_model(self, name: str) -> None:
        self._wanted = name
        self.load_versions(name)

    @on(DataTable.RowHighlighted, "#versions")
    def _version_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_version()

    @property
    def selected_version(self) -> ModelVersion | None:
        table = self.query_one("#versions", DataTable)
        if not self.versions or table.row_count == 0:
            return None
        row = table.cursor_row
        return self.versions[row] if 0 <= row < len(self.versions) else None

    def select_version(self, version: str) -> None:
        for i, mv in enumerate(self.versions):
            if mv.version == version:
                self.query_one("#versions", DataTable).move_cursor(row=i)
                self._show_version()
                return
        raise KeyError(version)

    def _show_version(self) -> None:
        mv = self.selected_version
        self.query_one("#version-info", Static).update(version_summary(mv) if mv else "")

    def _reload(self) -> None:
        if self.model is not None:
            self.open_model(full_name_of(self.model))

    def _need_version(self) -> ModelVersion | None:
        mv = self.selected_version
        if mv is None:
            self.notify("Select a model and one of its versions first.", severity="warning")
        return mv

    # -- actions -----------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.load_models()
        self._reload()

    def action_set_alias(self) -> None:
        mv = self._need_version()
        if mv is None:
            return
        name = full_name_of(self.model or mv)

        def confirmed(yes: bool | None, alias: str) -> None:
            if yes:
                self.set_alias(name, alias, mv.version)

        def got_alias(alias: str | None) -> None:
            if alias:
                self.app.push_screen(ConfirmModal(f"Point alias '{alias}' of {mv.name} at version {mv.version}?"),
                                     lambda yes: confirmed(yes, alias))

        self.app.push_screen(AliasInputModal(f"Alias for {mv.name} version {mv.version}:"), got_alias)

    def action_delete_alias(self) -> None:
        model = self.model
        if model is None:
            self.notify("Select a model first.", severity="warning")
            return
        aliases = [(a.alias, a.version) for a in model.aliases]
        if not aliases:
            self.notify(f"{model.name} has no aliases.", severity="warning")
            return

        def confirmed(yes: bool | None, alias: str) -> None:
            if yes:
                self.delete_alias(full_name_of(model), alias)

        def picked(alias: str | None) -> None:
            if alias:
                self.app.push_screen(ConfirmModal(f"Delete alias '{alias}' of {model.name}?"),
                                     lambda yes: confirmed(yes, alias))

        self.app.push_screen(PickAliasModal(aliases), picked)

    def action_transition(self) -> None:
        mv = self._need_version()
        if mv is None:
            return
        name = full_name_of(self.model or mv)

        def confirmed(yes: bool | None, request: StageRequest) -> None:
            if yes:
                self.transition(name, mv.version, request)

        def got_request(request: StageRequest | None) -> None:
            if request is None:
                return
            question = f"Move {mv.name} version {mv.version} from {mv.current_stage} to {request.stage}"
            if request.archive_existing_versions:
                question += f", archiving the other {request.stage} versions"
            self.app.push_screen(ConfirmModal(question + "?"), lambda yes: confirmed(yes, request))

        self.app.push_screen(StageModal(f"Stage of {mv.name} version {mv.version}", mv.current_stage), got_request)

    def action_lineage(self) -> None:
        mv = self._need_version()
        if mv is not None:
            self.load_lineage(full_name_of(self.model or mv), mv)

    def action_history(self) -> None:
        if self.model is None:
            self.notify("Select a model first.", severity="warning")
            return
        self.load_history(full_name_of(self.model))


def full_name_of(entity: RegisteredModel | ModelVersion) -> str:
    """The three-part name, which keys the tree and every call; a server that omits
    `full_name` (MLflow's JSON shape) still sends the display name, which parses."""
    if entity.full_name:
        return entity.full_name
    try:
        return parse_model_name(entity.name).full
    except CairnError:
        return entity.name


def group_models(catalogs: list[Catalog], schemas: dict[str, list[Schema]],
                 models: list[RegisteredModel]) -> ModelTree:
    """Puts each model under its catalog and schema (from its three-part full name);
    a schema the listing missed (created meanwhile) still gets a node."""
    by_schema: dict[str, list[RegisteredModel]] = {}
    for m in models:
        full = full_name_of(m)
        by_schema.setdefault(full.rsplit(".", 1)[0], []).append(m)
    known = {s.full_name for ss in schemas.values() for s in ss}
    extra: dict[str, list[Schema]] = {}
    for full in by_schema.keys() - known:
        cat, _, sch = full.partition(".")
        extra.setdefault(cat, []).append(Schema(name=sch, catalog_name=cat, full_name=full))
    names = [c.name for c in catalogs] + sorted(extra.keys() - {c.name for c in catalogs})
    by_name = {c.name: c for c in catalogs}
    tree: ModelTree = []
    for cname in names:
        cat = by_name.get(cname) or Catalog(name=cname)
        ss = sorted(schemas.get(cname, []) + extra.get(cname, []), key=lambda s: s.name)
        tree.append((cat, [(s, sorted(by_schema.get(s.full_name, []), key=full_name_of)) for s in ss]))
    return tree


def model_summary(model: RegisteredModel, count: int) -> str:
    lines = [f"{full_name_of(model)}  {count} version(s)"]
    if model.description:
        lines.append(model.description)
    if model.aliases:
        lines.append("aliases: " + ", ".join(f"{a.alias} -> v{a.version}" for a in model.aliases))
    if model.tags:
        lines.append("tags: " + ", ".join(f"{t.key}={t.value}" for t in model.tags))
    return "\n".join(lines)


def version_summary(mv: ModelVersion) -> str:
    lines = [f"version {mv.version}: {mv.status}" + (f" - {mv.status_message}" if mv.status_message else "")]
    if mv.description:
        lines.append(mv.description)
    lines.append(f"source {mv.source}" + (f"  run {mv.run_id}" if mv.run_id else ""))
    if mv.tags:
        lines.append("tags: " + ", ".join(f"{t.key}={t.value}" for t in mv.tags))
    return "\n".join(lines)
