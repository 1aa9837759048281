"""How a subcommand meets the engine: argparse's handler opens the data directory
(engine.open gives every caller in a process the same Engine) and hands it over."""
from __future__ import annotations

import argparse

from cairn import engine


def with_engine(command, *extra):
    """A handler calling `command(engine, args, *extra)` on the `--data` directory."""

    def run(args: argparse.Namespace) -> int:
        return command(engine.open(args.data), args, *extra)

    return run
