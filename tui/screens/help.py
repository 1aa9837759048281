"""`?`: every key of the app and of each screen, in one list."""
from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def key_rows(app_bindings: Iterable[Binding | tuple]) -> list[tuple[str, str, str]]:
    """(where, key, what) for the app's bindings (given by the app, which imports this
    screen) and every screen's. The screens are imported here, not at module level: the
    Models and Serving screens load only when first opened."""
    from cairn.tui.screens.compare import CompareScreen
    from cairn.tui.screens.experiments import ExperimentsScreen
    from cairn.tui.screens.models import ModelsScreen
    from cairn.tui.screens.run import RunScreen
    from cairn.tui.screens.runs import RunsScreen
    from cairn.tui.screens.serving import ServingScreen

    rows: list[tuple[str, str, str]] = []
    for where, bindings in (("everywhere", app_bindings), ("experiments", ExperimentsScreen.BINDINGS),
                            ("runs", RunsScreen.BINDINGS), ("run", RunScreen.BINDINGS),
                            ("compare", CompareScreen.BINDINGS), ("models", ModelsScreen.BINDINGS),
                            ("serving", ServingScreen.BINDINGS)):  # fmt: skip
        for b in bindings:
            if isinstance(b, Binding):
                rows.append((where, b.key_display or b.key, b.description))
    rows.append(("everywhere", "ctrl+p", "Command palette"))
    return rows


class HelpScreen(ModalScreen):
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape,question_mark,q", "dismiss", "Close help")]

    def __init__(self, rows: list[tuple[str, str, str]]):
        super().__init__()
        self._rows = rows

    def compose(self) -> ComposeResult:
        lines = ["[b]Keys[/b]", ""]
        last = None
        for where, key, what in self._rows:
            if where != last:
                lines.append(f"\n[b]{where}[/b]")
                last = where
            lines.append(f"  [reverse] {escape(key)} [/reverse]  {escape(what)}")
        lines.append("\n[dim]escape closes this help[/dim]")
        with VerticalScroll(id="help-box"):
            yield Static("\n".join(lines), id="help-text", markup=True)
