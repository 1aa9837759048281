"""This appliance's identity: a stable id made once per data directory, plus the host.

A model bundle records it as its origin, so an imported version says which appliance
(and which of its versions) it came from, and importing the same version again is
recognised. The id lives in a file beside the LMDB environment, not in it: it must
survive a store that is rebuilt, and reading it needs no open environment.
"""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import msgspec

from cairn.engine.errors import INVALID_STATE, CairnError

IDENTITY_FILE = "appliance.json"


class ApplianceIdentity(msgspec.Struct, kw_only=True):
    appliance_id: str
    hostname: str = ""


def appliance_identity(data_dir: str | os.PathLike) -> ApplianceIdentity:
    """The data directory's identity, created on first use; `hostname` is the current
    host's name (a disk moved to another machine keeps its id)."""
    path = Path(data_dir) / IDENTITY_FILE
    try:
        stored = _read(path)
        if stored is None:
            _create(path)
            stored = _read(path)
    except OSError as exc:
        raise CairnError(f"Cannot read or create the appliance identity {path}: {exc.strerror or exc}",
                         INVALID_STATE) from None
    if stored is None:
        raise CairnError(f"The appliance identity {path} vanished while it was created", INVALID_STATE)
    return ApplianceIdentity(appliance_id=stored, hostname=socket.gethostname())


def _read(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        ident = msgspec.json.decode(raw, type=ApplianceIdentity)
    except msgspec.DecodeError:
        raise CairnError(f"The appliance identity {path} is not valid JSON: fix or remove it "
                         "(removing it gives this appliance a new identity)", INVALID_STATE) from None
    return ident.appliance_id


def _create(path: Path) -> None:
    """Write a new id with O_EXCL-like semantics: two processes creating it at once end
    up with the same id (the loser's link fails and it reads the winner's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    ident = ApplianceIdentity(appliance_id=uuid.uuid4().hex, hostname=socket.gethostname())
    with open(tmp, "wb") as f:
        f.write(msgspec.json.encode(ident))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # fails if another process got there first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
