"""The key footer every screen shows: Textual's Footer, rebuilt once per burst of
binding changes instead of once per change.

Textual's Footer recomposes (every key widget mounted again, its styles applied again)
on each `bindings_updated` signal, and opening a screen sends several (the screen
stack, then each focus change). Opening an experiment of 5,000 runs spent 300-400 ms of
the UI thread in those rebuilds, ahead of drawing the first page of runs
(bench/uispeed.py); one pending rebuild at a time draws the same footer."""
from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    _rebuild_pending = False

    def bindings_changed(self, screen: Screen) -> None:
        # As Footer.bindings_changed, but a rebuild already queued covers this change too:
        # it reads the bindings when it runs, not when it was asked for.
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._rebuild_pending:
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False
        await self.recompose()
