"""A screen that says something is not there yet (a mode whose module is missing)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Static

from cairn.tui.widgets.footer import KeyFooter


class PlaceholderScreen(Screen):
    def __init__(self, title: str, text: str):
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"[b]{self.title_text}[/b]\n\n{self.text}", id="placeholder", markup=True)
        yield KeyFooter()
