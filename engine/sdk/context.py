"""Where the SDK's data lives and who is calling: `set_tracking_dir` and `open_engine`
are the one resolver that both `Client()` and the fluent API use, so a training script
that calls `cairn.set_tracking_dir(...)` sees the same store from both; `current_user`
is the name MLflow records as a run's and a version's user."""
from __future__ import annotations

import functools
import getpass
import os
from pathlib import Path

from cairn.engine import datadir

_tracking_dir: Path | None = None


def set_tracking_dir(path: str | os.PathLike | None) -> None:
    """Use this data directory for `Client()` and the fluent API (None: $CAIRN_HOME or
    the default). Takes effect for clients created afterwards."""
    global _tracking_dir
    _tracking_dir = Path(path).expanduser() if path is not None else None


def open_engine(path: str | os.PathLike | None = None) -> datadir.Engine:
    """The Engine for `path`, else the directory set by `set_tracking_dir`, else the
    engine's own default ($CAIRN_HOME or ~/.local/share/cairn). engine.open returns the
    same Engine for the same directory, so calling this repeatedly is cheap."""
    return datadir.open(path if path is not None else _tracking_dir)


def get_tracking_dir() -> Path:
    """The data directory the SDK writes to now."""
    return Path(open_engine().path)


@functools.cache
def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers without a passwd entry)
        return "unknown"
