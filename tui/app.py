"""The Textual app: `create_tui(backend)` is the one factory.

The app owns navigation only. Each top-level area (experiments, models) is a Textual
mode with its own screen stack, so jumping from a run's detail to the models and back
keeps where you were. Screens get all their data from the `Backend` (tui/backend.py)
in thread workers and never touch the engine directly.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from cairn.tui.backend import Backend
from cairn.tui.screens.experiments import ExperimentsScreen
from cairn.tui.screens.help import HelpScreen, key_rows
from cairn.tui.screens.placeholder import PlaceholderScreen

STYLES = Path(__file__).parent / "styles"


def models_screen(backend: Backend) -> Screen:
    """The Models screen (tui/screens/models.py, built separately), imported only when
    first shown; until it exists the mode shows a placeholder instead of failing."""
    try:
        from cairn.tui.screens.models import ModelsScreen
    except ImportError:
        return PlaceholderScreen("Models", "The models screen is not built yet.")
    return ModelsScreen(backend)


def serving_screen(backend: Backend) -> Screen:
    """The Serving screen (tui/screens/serving.py), imported when first shown, as above."""
    try:
        from cairn.tui.screens.serving import ServingScreen
    except ImportError:
        return PlaceholderScreen("Serving", "The serving screen is not built yet.")
    return ServingScreen(backend)


def features_screen(backend: Backend) -> Screen:
    """The Features screen (tui/screens/features.py), imported when first shown."""
    from cairn.tui.screens.features import FeaturesScreen

    return FeaturesScreen(backend)


def monitors_screen(backend: Backend) -> Screen:
    """The Monitors screen (tui/screens/monitors.py), imported when first shown."""
    from cairn.tui.screens.monitors import MonitorsScreen

    return MonitorsScreen(backend)


def audit_screen(backend: Backend) -> Screen:
    """The Audit screen (tui/screens/audit.py), imported when first shown."""
    from cairn.tui.screens.audit import AuditScreen

    return AuditScreen(backend)


UI_SWITCH_INTERVAL_S = 0.001


class CairnApp(App):
    TITLE = "Cairn"
    CSS_PATH: ClassVar[list[Path]] = [STYLES / f"{name}.tcss" for name in ("app", "experiments", "runs", "run", "compare")]
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("e", "show_experiments", "Experiments"),
        Binding("m", "show_models", "Models"),
        # `v`, not `s`: the runs table sorts with `s`, and a screen's key would hide a mode's.
        Binding("v", "show_serving", "Serving"),
        Binding("f", "show_features", "Features"),
        Binding("w", "show_monitors", "Monitors"),
        Binding("g", "show_audit", "Audit", show=False),  # in ? and the palette: the footer is full
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, backend: Backend):
        super().__init__()
        self.backend = backend
        self.sub_title = backend.describe()

    def on_mount(self) -> None:
        # Workers read the store in threads, and each LMDB call releases the GIL; taking
        # it back waits out the switch interval while the UI thread lays out a screen
        # (5 ms by default, for each of hundreds of reads). At 1 ms, the first page of a
        # 5,000-run experiment shows in a median 75 ms instead of 250 ms
        # (bench/uispeed.py). Process-wide, so it is restored when the UI ends.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, UI_SWITCH_INTERVAL_S))
        self.add_mode("experiments", lambda: ExperimentsScreen(self.backend))
        self.add_mode("models", lambda: models_screen(self.backend))
        self.add_mode("serving", lambda: serving_screen(self.backend))
        self.add_mode("features", lambda: features_screen(self.backend))
        self.add_mode("monitors", lambda: monitors_screen(self.backend))
        self.add_mode("audit", lambda: audit_screen(self.backend))
        self.switch_mode("experiments")

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)

    def action_show_experiments(self) -> None:
        if self.current_mode != "experiments":
            self.switch_mode("experiments")
            return
        # Already there: `e` goes back to the list itself, from a runs or run screen.
        while len(self.screen_stack) > 1 and not isinstance(self.screen, ExperimentsScreen):
            self.pop_screen()

    def action_show_models(self) -> None:
        self.switch_mode("models")

    def action_show_serving(self) -> None:
        self.switch_mode("serving")

    def action_show_features(self) -> None:
        self.switch_mode("features")

    def action_show_monitors(self) -> None:
        self.switch_mode("monitors")

    def action_show_audit(self) -> None:
        self.switch_mode("audit")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(key_rows(self.BINDINGS)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Experiments", "List experiments (e)", self.action_show_experiments)
        yield SystemCommand("Models", "Registered models (m)", self.action_show_models)
        yield SystemCommand("Serving", "Endpoints and live serving figures (v)", self.action_show_serving)
        yield SystemCommand("Features", "Feature tables and their online copies (f)", self.action_show_features)
        yield SystemCommand("Monitors", "Endpoint monitors: drift, quality, alerts (w)", self.action_show_monitors)
        yield SystemCommand("Audit", "Who did what, and whether the log's chain is whole (g)",
                            self.action_show_audit)
        yield SystemCommand("Help", "Every key (?)", self.action_help)
        # The current screen's own actions, so the palette reaches everything a key does.
        for binding in getattr(screen, "BINDINGS", ()):
            if isinstance(binding, Binding) and binding.description:
                action = binding.action

                def run(action: str = action) -> None:
                    self.call_later(screen.run_action, action)

                yield SystemCommand(binding.description, f"{binding.description} ({binding.key_display or binding.key})", run)


def create_tui(backend: Backend) -> CairnApp:
    return CairnApp(backend)
