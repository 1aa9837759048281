"""`cairn ui`: the terminal UI on the local data directory (in-process) or, with
`--remote URL`, on a running Cairn server. Textual loads only when this command runs."""
from __future__ import annotations

import argparse
import os


def add_command(sub) -> None:
    ui = sub.add_parser("ui", help="the terminal UI (local data directory, or --remote URL)")
    ui.add_argument("--remote", metavar="URL", default=None,
                    help="a running Cairn server, e.g. http://127.0.0.1:5000 (default: the local data directory)")  # fmt: skip
    ui.add_argument("--token", metavar="TOKEN", default=None,
                    help="with --remote on a server started with --auth: a personal access token "
                         "(default: $MLFLOW_TRACKING_TOKEN)")
    ui.set_defaults(handler=cmd_ui, needs_store=False)


def cmd_ui(args: argparse.Namespace) -> int:
    from cairn.tui.app import create_tui
    from cairn.tui.backend import LocalBackend, RemoteBackend

    if args.remote:
        backend = RemoteBackend(args.remote, token=args.token or os.environ.get("MLFLOW_TRACKING_TOKEN"))
    else:
        from cairn import engine

        backend = LocalBackend(engine.open(args.data))
    create_tui(backend).run()
    return 0
