"""The Models screen's modals and the lineage tree: small pieces that only take values and
dismiss with a result, so the screen keeps every backend call (and its errors) in one
place. Styles live in tui/styles/models.tcss."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import msgspec
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    Tree,
)

from cairn.engine.registry.entities import Lineage, ModelVersion, Stage, StageTransition
from cairn.engine.registry.lineage import lineage_nodes

CSS_PATH = "../styles/models.tcss"


def short_status(status: str) -> str:
    """PENDING_REGISTRATION / FAILED_REGISTRATION are too wide for a table column."""
    return status.removesuffix("_REGISTRATION")


def format_ms(ms: int) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M")


class ConfirmModal(ModalScreen[bool]):
    """Yes / no for anything that changes the registry; Escape and n say no."""

    CSS_PATH = CSS_PATH
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,n", "answer(False)", "Cancel"), Binding("y", "answer(True)", "Confirm")]

    def __init__(self, question: str) -> None:
        super().__init__(classes="models-modal")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, id="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Confirm (y)", variant="primary", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AliasInputModal(ModalScreen[str | None]):
    """Asks for an alias name; the store validates it (the error becomes a notification)."""

    CSS_PATH = CSS_PATH
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prompt: str) -> None:
        super().__init__(classes="models-modal")
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.prompt, markup=False)
            yield Input(placeholder="alias, e.g. champion", id="alias")
            with Horizontal(classes="buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#alias", Input).focus()

    def _submit(self) -> None:
        value = self.query_one("#alias", Input).value.strip()
        self.dismiss(value or None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PickAliasModal(ModalScreen[str | None]):
    """Picks one of the model's aliases (to delete)."""

    CSS_PATH = CSS_PATH
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, aliases: list[tuple[str, str]]) -> None:
        super().__init__(classes="models-modal")
        self.aliases = aliases

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Delete which alias?")
            yield OptionList(*[f"{a} -> v{v}" for a, v in self.aliases], id="aliases")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.aliases[event.option_index][0])

    def action_cancel(self) -> None:
        self.dismiss(None)


class StageRequest(msgspec.Struct, frozen=True):
    stage: str
    archive_existing_versions: bool
    comment: str


class StageModal(ModalScreen[StageRequest | None]):
    """Target stage, whether to archive the versions already there, and a comment."""

    CSS_PATH = CSS_PATH
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, current: str) -> None:
        super().__init__(classes="models-modal")
        self.title_text = title
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, markup=False)
            with RadioSet(id="stages"):
                for stage in Stage.ALL:
                    yield RadioButton(stage, value=stage == self.current, id=f"stage-{stage.lower()}")
            yield Checkbox("Archive existing versions in that stage", id="archive")
            yield Input(placeholder="comment (optional)", id="comment")
            with Horizontal(classes="buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def result(self) -> StageRequest | None:
        pressed = self.query_one(RadioSet).pressed_button
        if pressed is None:
            return None
        return StageRequest(
            stage=Stage.parse((pressed.id or "").removeprefix("stage-")),
            archive_existing_versions=self.query_one("#archive", Checkbox).value,
            comment=self.query_one("#comment", Input).value.strip(),
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self.result())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.result() if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class LineageModal(ModalScreen[None]):
    """The lineage of one version as an expanded Tree; Escape closes."""

    CSS_PATH = CSS_PATH
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,l", "close", "Close")]

    def __init__(self, lineage: Lineage, version: ModelVersion | None) -> None:
        super().__init__(classes="models-modal")
        self.lineage = lineage
        self.version = version

    def compose(self) -> ComposeResult:
        lin, mv = self.lineage, self.version
        head = f"{lin.name} version {lin.version}"
        if mv is not None:
            head += f"  [{short_status(mv.status)}, stage {mv.current_stage}"
            head += f", aliases: {', '.join(mv.aliases)}]" if mv.aliases else "]"
        # Text, not str: labels hold brackets ("[training]", JSON) that are not markup
        tree: Tree[None] = Tree(Text(head), id="lineage-tree")
        tree.show_root = True

        def add(parent, nodes) -> None:
            for label, kids in nodes:
                if kids:
                    add(parent.add(Text(label), expand=True), kids)
                else:
                    parent.add_leaf(Text(label))

        add(tree.root, lineage_nodes(lin))
        tree.root.expand()
        with Vertical(classes="dialog wide"):
            yield Label("Lineage (Escape closes)")
            yield tree

    def on_mount(self) -> None:
        self.query_one(Tree).focus()

    def action_close(self) -> None:
        self.dismiss(None)


class HistoryModal(ModalScreen[None]):
    """The model's recorded stage and alias changes, oldest first."""

    CSS_PATH = CSS_PATH
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,h", "close", "Close")]

    def __init__(self, name: str, transitions: list[StageTransition]) -> None:
        super().__init__(classes="models-modal")
        self.model_name = name
        self.transitions = transitions

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("time", "version", "change", "user", "comment")
        for t in self.transitions:
            if t.kind == "stage":
                change = f"{t.from_stage} -> {t.to_stage}"
            else:
                change = f"{t.kind.replace('_', ' ')} {t.alias}"
            table.add_row(format_ms(t.timestamp), t.version, change, t.user_id, Text(t.comment))
        with Vertical(classes="dialog wide"):
            yield Label(f"History of {self.model_name} ({len(self.transitions)} changes; Escape closes)")
            yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def action_close(self) -> None:
        self.dismiss(None)
