"""`?`: every key of the app and of each screen, in one list."""
from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def key_rows() -> list[tuple[str, str, str]]:
    """(where, key, what) for the app's and every screen's bindings. Imported here, not
    at module level, because the screens import nothing of the help screen."""
    from ..app import CairnApp
    from .compare import CompareScreen
    from .experiments import ExperimentsScreen
    from .models import ModelsScreen
    from .run import RunScreen
    from .runs import RunsScreen
    from .serving import ServingScreen

    rows: list[tuple[str, str, str]] = []
    for where, cls in (("everywhere", CairnApp), ("experiments", ExperimentsScreen),
                       ("runs", RunsScreen), ("run", RunScreen), ("compare", CompareScreen),
                       ("models", ModelsScreen), ("serving", ServingScreen)):  # fmt: skip
        for b in cls.BINDINGS:
            if isinstance(b, Binding):
                rows.append((where, b.key_display or b.key, b.description))
    rows.append(("everywhere", "ctrl+p", "Command palette"))
    return rows


class HelpScreen(ModalScreen):
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape,question_mark,q", "dismiss", "Close help")]

    def compose(self) -> ComposeResult:
        lines = ["[b]Keys[/b]", ""]
        last = None
        for where, key, what in key_rows():
            if where != last:
                lines.append(f"\n[b]{where}[/b]")
                last = where
            lines.append(f"  [reverse] {escape(key)} [/reverse]  {escape(what)}")
        lines.append("\n[dim]escape closes this help[/dim]")
        with VerticalScroll(id="help-box"):
            yield Static("\n".join(lines), id="help-text", markup=True)
