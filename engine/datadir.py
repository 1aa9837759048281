"""One data directory opened as one `Engine`: the LMDB environment, the blob folder and
every room's store on them. `open(path)` is the engine's one factory.

One data directory holds one LMDB environment (`<dir>/lmdb`) and a blob folder
(`<dir>/blobs`). A process opens each directory once: opening it again returns the same
Engine, because LMDB forbids two environments on one file in one process. The schema
version is stamped and checked here, at open.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import lmdb

from cairn.engine.endpoints.lmdbstore import ENDPOINT_TABLES, LmdbEndpointStore
from cairn.engine.errors import CairnError
from cairn.engine.features.records import FEATURE_TABLES
from cairn.engine.features.store import FeatureStore
from cairn.engine.governance.records import GOVERNANCE_TABLES
from cairn.engine.governance.store import Governance
from cairn.engine.loggedmodels.lmdbstore import LoggedModelStore
from cairn.engine.loggedmodels.records import LOGGED_MODEL_TABLES
from cairn.engine.monitoring.records import MONITORING_TABLES
from cairn.engine.monitoring.store import MonitorStore
from cairn.engine.registry.lmdbstore import LmdbRegistryStore
from cairn.engine.registry.records import REGISTRY_TABLES
from cairn.engine.registry.registration import Registrar
from cairn.engine.store.artifacts import ARTIFACT_TABLES, BLOBS_DIR, ArtifactStore, BlobStore
from cairn.engine.store.keys import read_u32, u32
from cairn.engine.store.lmdbenv import DEFAULT_MAP_SIZE, Batch, LmdbEnv
from cairn.engine.tracking.lmdbstore import LmdbTrackingStore
from cairn.engine.tracking.records import SCHEMA_VERSION, TRACKING_TABLES

_SCHEMA_KEY = b"schema_version"
_open_engines: dict[Path, "Engine"] = {}
_open_lock = threading.Lock()


def default_data_dir() -> Path:
    """$CAIRN_HOME, else ~/.local/share/cairn (XDG_DATA_HOME respected)."""
    home = os.environ.get("CAIRN_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "cairn"


class Engine:
    """Everything one data directory holds, opened once per process.

    Every `open()` of the same directory returns this object and counts one holder;
    `close()` releases one holder, and the environment closes with the last one.
    """

    def __init__(self, path: Path, map_size: int):
        self.path = path
        tables = {**TRACKING_TABLES, **ARTIFACT_TABLES, **LOGGED_MODEL_TABLES, **REGISTRY_TABLES, **ENDPOINT_TABLES,
                  **FEATURE_TABLES, **MONITORING_TABLES, **GOVERNANCE_TABLES}
        self.env = LmdbEnv(path / "lmdb", tables, map_size)
        _check_schema(self.env)
        self.blobs = BlobStore(path / BLOBS_DIR)
        self.artifacts = ArtifactStore(self.env, self.blobs)
        self.tracking = LmdbTrackingStore(self.env, self.artifacts)
        # MLflow 3's logged models share the tracking store's interned key names.
        self.logged_models = LoggedModelStore(self.env, self.tracking.names, self.artifacts)
        self.registry = LmdbRegistryStore(self.env, self.tracking, self.logged_models)
        # Finishes new versions in a background thread (see resume_pending for old ones).
        self.registrar = Registrar(self.registry, self.tracking, self.logged_models, self.artifacts)
        self.endpoints = LmdbEndpointStore(self.env, self.registry)
        # Feature tables' records and online rows; the Delta side is sdk.features.offline_store.
        self.features = FeatureStore(self.env, path)
        # Baselines, endpoint monitors and their windows (read from the payload log).
        self.monitoring = MonitorStore(self.env, self.endpoints, self.registry, self.artifacts)
        # Principals, credentials and the audit log (who is calling, what happened).
        self.governance = Governance(self.env)
        self._holders = 0

    def flush(self) -> None:
        self.env.flush()

    def storage_info(self) -> dict[str, int]:
        """What `cairn doctor` reports: the stored schema version (and the newest this
        Cairn reads), the LMDB map's size and the bytes its pages use."""
        with self.env.read() as txn:
            raw = txn.get(_SCHEMA_KEY, db=self.env.dbs["meta"])
        info, stat = self.env.env.info(), self.env.env.stat()
        return {
            "schema_version": read_u32(raw) if raw else 0,
            "supported_schema_version": SCHEMA_VERSION,
            "map_size": info["map_size"],
            "used_bytes": (info["last_pgno"] + 1) * stat["psize"],
        }

    def close(self) -> None:
        """Release one holder; the last one commits what is queued and closes."""
        with _open_lock:
            if self._holders <= 0:
                return
            self._holders -= 1
            if self._holders:
                self.env.flush()
                return
            _open_engines.pop(self.path, None)
        self.registrar.close()
        self.env.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open(path: str | os.PathLike | None = None, *, map_size: int = DEFAULT_MAP_SIZE) -> Engine:  # noqa: A001
    """Open (creating if needed) the data directory `path` (default: default_data_dir())."""
    root = Path(path).expanduser() if path is not None else default_data_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        with _open_lock:
            eng = _open_engines.get(root)
            if eng is None:
                eng = _open_engines[root] = Engine(root, map_size)
            eng._holders += 1
            return eng
    except (OSError, lmdb.Error) as exc:
        raise CairnError(f"Cannot open the data directory {root}: {exc}", "INVALID_STATE") from None


def _check_schema(lenv: LmdbEnv) -> None:
    """Stamp a new store with the schema version; refuse one written by a newer Cairn.
    Older versions would be migrated here, in one write transaction."""

    def op(b: Batch) -> int:
        raw = b.txn.get(_SCHEMA_KEY, db=b.dbs["meta"])
        if raw is None:
            b.txn.put(_SCHEMA_KEY, u32(SCHEMA_VERSION), db=b.dbs["meta"])
            return SCHEMA_VERSION
        return read_u32(raw)

    version = lenv.write(op)
    if version > SCHEMA_VERSION:
        lenv.close()
        raise CairnError(
            f"The data directory {lenv.path.parent} was written by a newer Cairn "
            f"(schema {version}; this one reads up to {SCHEMA_VERSION}). Upgrade Cairn.",
            "INVALID_STATE",
        )
