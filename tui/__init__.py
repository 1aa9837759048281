"""The Textual terminal UI: `app.create_tui(backend)` is its one factory; screens/ holds
one module per screen, widgets/ what they draw, styles/ the .tcss files. Workers read
through a `backend.Backend` (the engine in-process, or a server over HTTP).

Imports: `cairn.engine` and `cairn.app`; never `cairn.cli`.
"""
