"""The registration pipeline: how a PENDING_REGISTRATION version becomes READY.

For each new version (the registry store calls `Registrar.submit` once the version is
committed) one background thread:
1. resolves the version's source to files: an artifact-store subtree (`runs:/`,
   `models:/m-...`, `models:/NAME/N`, `mlflow-artifacts:/...`) or a local folder or
   .onnx file (`file://` or a path; only the SDK and CLI register those);
2. copies them to the version's own storage location `registry/<random id>` (opaque
   and never reused, as Unity Catalog's; a renamed or re-created model cannot collide),
   so the version stays whole when its run is deleted (blobs are shared, so the copy
   costs entries, not bytes); the artifact proxy refuses writes there;
3. makes sure the folder holds an ONNX model that loads in ONNX Runtime and matches the
   original model on sample rows (modelpackage.prepare_version: converts a
   scikit-learn model with skl2onnx when the folder has none) and writes model.onnx and
   the updated MLmodel beside the original files;
4. finishes the version READY with its signature, or FAILED_REGISTRATION with the
   reason; a failed version keeps its copied files.

A restart finishes what a crash left pending (`resume_pending`, called by the server at
start and by the SDK when it registers).
Conversion runs in this process: unpickling a model runs its code, which is what
registering a scikit-learn model means anywhere (MLflow loads the same pickle to serve).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from cairn.engine.errors import CairnError, invalid, not_found
from cairn.engine.registry.entities import ModelVersion, VersionStatus
from cairn.engine.store.artifacts import ArtifactStore, check_artifact_path

log = logging.getLogger("cairn.registration")

REGISTRY_PREFIX = "registry"
ARTIFACT_SCHEME = "mlflow-artifacts:"
# Bounds what one local model folder may hold (files are read into the blob store).
MAX_LOCAL_FILES = 10_000
# The logged-model tag that says whether the ONNX conversion was added (or why not).
ONNX_TAG = "cairn.onnx"
# A version tag set at creation: "skip" registers the version without loading its
# original model (its pickle runs code); an import from an unverified bundle sets it.
ORIGINAL_TAG = "cairn.registration.original"
SKIP_ORIGINAL = "skip"


def new_storage_location() -> str:
    """A fresh artifact path for a version's own files."""
    return f"{REGISTRY_PREFIX}/{uuid.uuid4().hex}"


class ArtifactModelDir:
    """A model folder inside the artifact store (modelpackage's ModelDir protocol)."""

    def __init__(self, artifacts: ArtifactStore, prefix: str):
        self._artifacts = artifacts
        self._prefix = prefix
        self._paths: list[str] | None = None

    def paths(self) -> list[str]:
        if self._paths is None:
            cut = len(self._prefix) + 1
            self._paths = [p[cut:] for p, _ in self._artifacts.walk(self._prefix) if len(p) > cut]
        return self._paths

    def read(self, path: str) -> bytes:
        full = f"{self._prefix}/{check_artifact_path(path)}"
        try:
            with self._artifacts.open(full) as f:
                return f.read()
        except CairnError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise KeyError(path) from None
            raise


class Registrar:
    """One thread that registers pending versions in order; `wait` lets a caller (the
    REST handler, the SDK) block until its version is finished."""

    def __init__(self, registry, tracking, logged_models, artifacts: ArtifactStore):
        self._registry = registry
        self._tracking = tracking
        self._logged_models = logged_models
        self._artifacts = artifacts
        # ("version", full name, version) or ("logged", model id, ""); None stops.
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue()
        self._done = threading.Condition()
        self._busy = 0  # items queued or in progress (guarded by _done)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._resumed = False
        registry.on_pending = self.submit
        logged_models.on_ready = self.submit_logged_model

    def resume_pending(self) -> None:
        """Queue every version still PENDING_REGISTRATION (what a crash left), once.

        Not done on open: a short-lived process (a CLI listing) must not take over
        versions that a server sharing the data directory is registering right now. The
        server calls this at start, the SDK when it registers a model."""
        with self._lock:
            if self._resumed:
                return
            self._resumed = True
        for full_name, version in self._registry.pending_versions():
            self.submit(full_name, version)

    # -- queueing --------------------------------------------------------------------
    def submit(self, full_name: str, version: str) -> None:
        """Register a version the store just created PENDING."""
        self._put(("version", full_name, str(version)))

    def submit_logged_model(self, model_id: str) -> None:
        """Add the ONNX conversion to a logged model just finalized READY (the mlflow
        client logs scikit-learn models without one). Queued in order with versions, so
        a registration of the same model that follows sees the converted files."""
        self._put(("logged", model_id, ""))

    def _put(self, item: tuple[str, str, str]) -> None:
        with self._lock:
            if self._closed:
                return  # the next open finishes it (it stays pending in the store)
            if self._thread is None:
                # Started on first use: an engine that registers nothing has no thread.
                self._thread = threading.Thread(target=self._loop, name="cairn-registrar", daemon=True)
                self._thread.start()
            with self._done:
                self._busy += 1
            self._queue.put(item)

    def wait(self, name: str, version: str | int, timeout: float = 60.0) -> ModelVersion:
        """The version once it has left PENDING_REGISTRATION, or as it is after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._done:
            while True:
                mv = self._registry.get_model_version(name, version)
                left = deadline - time.monotonic()
                if mv.status != VersionStatus.PENDING or left <= 0:
                    return mv
                self._done.wait(min(left, 1.0))

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is queued or in progress; False if `timeout` passed."""
        with self._done:
            return self._done.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        """Stop after the version in progress; queued ones stay pending for next time."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=120)

    # -- the worker ------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, key, version = item
            try:
                if kind == "version":
                    self._register(key, version)
                else:
                    self._convert_logged_model(key)
            except Exception:  # never let one item stop the thread
                log.exception("%s %s %s: unexpected failure", kind, key, version)
            with self._done:
                self._busy -= 1
                self._done.notify_all()

    def _register(self, full_name: str, version: str) -> None:
        registry = self._registry
        try:
            mv = registry.get_model_version(full_name, version)
        except CairnError:
            return  # deleted while queued
        if mv.status != VersionStatus.PENDING:
            return
        dst = new_storage_location()
        try:
            run_id, model_id = self._copy_source(mv, dst)
            prepared = self._package(dst, load_original=mv.tags_dict.get(ORIGINAL_TAG) != SKIP_ORIGINAL)
        except CairnError as exc:
            self._finish(full_name, version, VersionStatus.FAILED, exc.message, dst)
            return
        except Exception as exc:  # a converter's own crash is still a reason to show
            self._finish(full_name, version, VersionStatus.FAILED, f"{type(exc).__name__}: {exc}", dst)
            return
        self._finish(
            full_name, version, VersionStatus.READY, "", dst,
            signature=prepared.signature, run_id=run_id, model_id=model_id,
        )

    def _finish(self, full_name, version, status, message, dst, **extra) -> None:
        try:
            self._registry.finish_registration(
                full_name, version, status=status, status_message=message[:2000],
                storage_location=dst if self._has_files(dst) else "", **extra,
            )
        except CairnError as exc:
            # Deleted meanwhile, or finished by another process sharing the data dir.
            log.info("not finishing %s version %s: %s", full_name, version, exc.message)

    def _has_files(self, prefix: str) -> bool:
        return next(iter(self._artifacts.walk(prefix)), None) is not None

    def _convert_logged_model(self, model_id: str) -> None:
        """Write model.onnx and the onnx flavor into a READY logged model that has only
        the sklearn flavor; the outcome is the model's `cairn.onnx` tag (READY or the
        reason it failed), so a failure is visible but never fails the logged model."""
        from cairn.engine.models.mlmodel import read_mlmodel

        try:
            model = self._logged_models.get_logged_model(model_id)
            prefix = proxy_path(model.info.artifact_uri)
            model_dir = ArtifactModelDir(self._artifacts, prefix)
            if "MLmodel" not in model_dir.paths():
                return
            flavors = read_mlmodel(model_dir.read("MLmodel")).flavors
        except (CairnError, ValueError):
            return  # deleted meanwhile, stored elsewhere, or not an MLflow model
        if "onnx" in flavors or "sklearn" not in flavors:
            return
        try:
            self._package(prefix)
            outcome = "READY"
        except CairnError as exc:
            outcome = f"FAILED: {exc.message}"
        except Exception as exc:
            outcome = f"FAILED: {type(exc).__name__}: {exc}"
        try:
            self._logged_models.set_logged_model_tags(model_id, {ONNX_TAG: outcome[:5000]})
        except CairnError:
            pass  # deleted meanwhile

    # -- sources ---------------------------------------------------------------------
    def _copy_source(self, mv: ModelVersion, dst: str) -> tuple[str | None, str | None]:
        """Copy the version's source files to `dst`; return the (run_id, model_id) the
        source revealed."""
        source = mv.source
        local = _local_path(source)
        if local is not None:
            self._copy_local(local, dst)
            return None, None
        prefix, run_id, model_id = self._resolve(mv)
        self._artifacts.copy(prefix, dst)
        return run_id or None, model_id or None

    def _resolve(self, mv: ModelVersion) -> tuple[str, str, str]:
        """(artifact prefix, run_id, model_id) of an artifact-store source."""
        source = mv.source
        if source.startswith("runs:/"):
            rest = source[len("runs:/"):].strip("/")
            run_id, _, path = rest.partition("/")
            run = self._tracking.get_run(run_id)
            base = proxy_path(run.info.artifact_uri)
            return (f"{base}/{path}" if path else base), run_id, ""
        if source.startswith("models:/"):
            rest = source[len("models:/"):].strip("/")
            if rest.startswith("m-") and "/" not in rest:
                model = self._logged_models.get_logged_model(rest)
                return proxy_path(model.info.artifact_uri), model.info.source_run_id or "", rest
            base = self._source_version(mv)
            if base.status != VersionStatus.READY or not base.storage_location:
                raise invalid(f"Source {source} is not a READY model version (it is {base.status})")
            return base.storage_location, base.run_id, base.model_id
        if source.startswith(ARTIFACT_SCHEME):
            return proxy_path(source), "", ""
        if "://" in source:
            raise invalid(
                f"Unsupported model source {source!r}: use runs:/, models:/, mlflow-artifacts:/ "
                "or a local path"
            )
        return check_artifact_path(source), "", ""

    def _source_version(self, mv: ModelVersion) -> ModelVersion:
        """The version a `models:/NAME/N|@ALIAS|/stage` source named: the store pinned
        it when this version was created (lineage's derived_from), so a moved alias
        does not change what gets copied."""
        derived = self._registry.get_lineage(mv.name, mv.version).derived_from
        name, _, version = derived.removeprefix("models:/").rpartition("/")
        if not name or not version:
            raise invalid(f"Model source {mv.source!r} names no model version")
        return self._registry.get_model_version(name, version)

    def _copy_local(self, path: Path, dst: str) -> None:
        if path.is_file():
            with path.open("rb") as f:
                self._artifacts.put(f"{dst}/{path.name}", f)
            return
        if not path.is_dir():
            raise not_found(f"Model source {str(path)!r} does not exist")
        files = [p for p in sorted(path.rglob("*")) if p.is_file()]
        if len(files) > MAX_LOCAL_FILES:
            raise invalid(f"Model folder {str(path)!r} holds {len(files)} files (at most {MAX_LOCAL_FILES})")
        for p in files:
            rel = p.relative_to(path).as_posix()
            with p.open("rb") as f:
                self._artifacts.put(f"{dst}/{check_artifact_path(rel)}", f)

    # -- packaging -------------------------------------------------------------------
    def _package(self, dst: str, *, load_original: bool = True):
        # Imported here: skl2onnx and onnxruntime cost a second at import, and a server
        # that registers nothing should not pay it at start.
        from cairn.engine.models.package import mlmodel_for_onnx, prepare_onnx_file, prepare_version

        model_dir = ArtifactModelDir(self._artifacts, dst)
        paths = model_dir.paths()
        if "MLmodel" not in paths:
            onnx_files = [p for p in paths if p.endswith(".onnx")]
            if len(onnx_files) == 1:
                prepared = prepare_onnx_file(model_dir.read(onnx_files[0]))
                if onnx_files[0] != prepared.onnx_path:
                    self._artifacts.put(f"{dst}/{prepared.onnx_path}", prepared.onnx)
                self._artifacts.put(f"{dst}/MLmodel", mlmodel_for_onnx(prepared.onnx, prepared.signature))
                return prepared
        prepared = prepare_version(model_dir, load_original=load_original)
        if prepared.onnx_path not in paths:
            self._artifacts.put(f"{dst}/{prepared.onnx_path}", prepared.onnx)
        if prepared.mlmodel is not None:
            self._artifacts.put(f"{dst}/MLmodel", prepared.mlmodel)
        return prepared


def proxy_path(uri: str) -> str:
    """The artifact-store path of an `mlflow-artifacts:` URI (with or without a host)."""
    if uri.startswith(ARTIFACT_SCHEME):
        rest = uri[len(ARTIFACT_SCHEME):]
        if rest.startswith("//"):  # mlflow-artifacts://host:port/path
            rest = urlparse(uri).path
        return check_artifact_path(rest.strip("/"))
    raise invalid(f"Artifact location {uri!r} is not served by this appliance")


def _local_path(source: str) -> Path | None:
    """A local folder or file source: file:// URIs and absolute paths."""
    if source.startswith("file://"):
        return Path(unquote(urlparse(source).path))
    if source.startswith("/") or (len(source) > 2 and source[1] == ":" and source[2] in "\\/"):
        return Path(source)
    return None

