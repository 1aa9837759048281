"""The `cairn` command line, the composition root: argparse parses flags and calls the
factories (`cairn.engine.open`, `cairn.app.server.create_app`, `cairn.tui.app.create_tui`).
It is the one place that may import both the server and the terminal UI (`cairn up`).

Imports: anything in `cairn`; nothing imports it.
"""
