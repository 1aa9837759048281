"""`Client`: the object-style SDK over a TrackingStore, shaped like MLflow's MlflowClient.

Where the data lives is context.py's (`open_engine`), shared with the fluent API.
Artifact upload and download live here only; the fluent API delegates to a Client.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cairn.engine.errors import CairnError, invalid, not_found
from cairn.engine.sdk.context import current_user, open_engine
from cairn.engine.sdk.pagedlist import PagedList
from cairn.engine.sdk.registryclient import RegistryClientMixin
from cairn.engine.store.artifacts import FileInfo
from cairn.engine.store.timestamps import now_ms
from cairn.engine.tracking.contract import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_RESULTS_DEFAULT,
    TrackingStore,
)
from cairn.engine.tracking.entities import (
    DatasetInput,
    Experiment,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)

# Files are streamed to the store in chunks of this size, never read whole into memory.
_CHUNK = 1 << 20

def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _join(artifact_path: str | None, name: str) -> str:
    return f"{artifact_path.strip('/')}/{name}" if artifact_path else name


class Client(RegistryClientMixin):
    """Object-style access to experiments, runs, run data and artifacts; the model
    registry's methods come from RegistryClientMixin (registryclient.py)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self._engine = open_engine(path)
        self.store: TrackingStore = self._engine.tracking

    # -- experiments ------------------------------------------------------------------
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        tags = {k: str(v) for k, v in tags.items()} if tags else None
        return self.store.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.store.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.store.get_experiment_by_name(name)

    def search_experiments(
        self,
        view_type: int | str = ViewType.ACTIVE_ONLY,
        max_results: int = MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        page = self.store.search_experiments(
            ViewType.parse(view_type), max_results, filter_string, order_by, page_token
        )
        return PagedList(page.items, page.next_page_token)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self.store.rename_experiment(str(experiment_id), new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        self.store.delete_experiment(str(experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        self.store.restore_experiment(str(experiment_id))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self.store.set_experiment_tag(str(experiment_id), key, str(value))

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self.store.delete_experiment_tag(str(experiment_id), key)

    # -- runs -------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        tags = {k: str(v) for k, v in tags.items()} if tags else None
        return self.store.create_run(
            str(experiment_id), current_user(), start_time, tags, run_name
        )

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> RunInfo:
        return self.store.update_run_info(run_id, status, None, name)

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> RunInfo:
        """End a run: status FINISHED unless given, end time now unless given."""
        status = status or RunStatus.FINISHED
        if status not in RunStatus.ALL:
            raise invalid(f"Invalid run status {status!r}: use one of {', '.join(RunStatus.ALL)}")
        return self.store.update_run_info(run_id, status, end_time or now_ms(), None)

    def delete_run(self, run_id: str) -> None:
        self.store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self.store.restore_run(run_id)

    # -- run data ---------------------------------------------------------------------
    def log_param(self, run_id: str, key: str, value: Any) -> Any:
        self.store.log_param(run_id, key, str(value))
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool = True,
    ) -> None:
        metric = Metric(key, _as_float(key, value), timestamp or now_ms(), step or 0)
        self.store.log_metric(run_id, metric, wait=synchronous)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool = True,
    ) -> None:
        """Log any number of values; like MLflow's client, split into batches the store
        accepts (each batch is all-or-nothing, the whole call is not)."""
        metrics, params, tags = list(metrics), list(params), list(tags)
        if len(params) <= MAX_PARAMS_TAGS_PER_BATCH and len(tags) <= MAX_PARAMS_TAGS_PER_BATCH \
                and len(metrics) + len(params) + len(tags) <= MAX_METRICS_PER_BATCH:
            self.store.log_batch(run_id, metrics, params, tags, wait=synchronous)
            return
        for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
            self.store.log_batch(run_id, params=chunk, wait=synchronous)
        for chunk in _chunks(tags, MAX_PARAMS_TAGS_PER_BATCH):
            self.store.log_batch(run_id, tags=chunk, wait=synchronous)
        for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
            self.store.log_batch(run_id, metrics=chunk, wait=synchronous)

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.store.set_tag(run_id, key, str(value))

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.delete_tag(run_id, key)

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        self.store.log_inputs(run_id, list(datasets))

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of the metric, ordered by (step, timestamp, value)."""
        return self.store.get_metric_history(run_id, key).items

    # -- search -----------------------------------------------------------------------
    def search_runs(
        self,
        experiment_ids: str | Sequence[str],
        filter_string: str = "",
        run_view_type: int | str = ViewType.ACTIVE_ONLY,
        max_results: int = MAX_RESULTS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        if isinstance(experiment_ids, (str, int)):
            experiment_ids = [experiment_ids]
        page = self.store.search_runs(
            [str(e) for e in experiment_ids],
            filter_string or None,
            ViewType.parse(run_view_type),
            max_results,
            order_by,
            page_token,
        )
        return PagedList(page.items, page.next_page_token)

    # -- artifacts --------------------------------------------------------------------
    def log_bytes(self, run_id: str, data: bytes | Iterable[bytes], artifact_file: str) -> FileInfo:
        """Store `data` (bytes, or an iterable of chunks) at `artifact_file`."""
        return self.store.put_artifact(run_id, artifact_file, data)

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None
    ) -> FileInfo:
        """Upload one local file to `<artifact_path>/<file name>`."""
        path = Path(local_path)
        if not path.is_file():
            raise invalid(f"log_artifact: {str(path)!r} is not a file")
        return self.log_bytes(run_id, _read_chunks(path), _join(artifact_path, path.name))

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike, artifact_path: str | None = None
    ) -> None:
        """Upload a directory tree; its contents land under `artifact_path` (the root
        when None), as MLflow's log_artifacts."""
        root = Path(local_dir)
        if not root.is_dir():
            raise invalid(f"log_artifacts: {str(root)!r} is not a directory")
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            rel = Path(folder).relative_to(root).as_posix()
            prefix = _join(artifact_path, rel) if rel != "." else (artifact_path or None)
            for name in sorted(files):
                self.log_bytes(run_id, _read_chunks(Path(folder) / name), _join(prefix, name))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> FileInfo:
        return self.log_bytes(run_id, text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> FileInfo:
        """JSON, or YAML when the file name ends in .yaml/.yml (needs pyyaml)."""
        if artifact_file.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise invalid(
                    f"log_dict: cannot write {artifact_file!r}: pyyaml is not installed; "
                    "install it or use a .json file name"
                ) from None
            text = yaml.safe_dump(dictionary, indent=2, default_flow_style=False, sort_keys=False)
        else:
            text = json.dumps(dictionary, indent=2)
        return self.log_text(run_id, text, artifact_file)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        return self.store.list_artifacts(run_id, path or None)

    def download_artifacts(
        self, run_id: str, path: str = "", dst_path: str | os.PathLike | None = None
    ) -> str:
        """Copy the artifact file or directory at `path` ('' = everything) into
        `dst_path` (a new temporary directory when None), keeping its relative path.
        Returns the local path of the downloaded file or directory."""
        path = path.strip("/")
        dst = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp(prefix="cairn-"))
        dst.mkdir(parents=True, exist_ok=True)
        target = _local_target(dst, path)
        if path and self._is_file(run_id, path):
            self._download_file(run_id, path, target)
            return str(target)
        target.mkdir(parents=True, exist_ok=True)
        pending = [path]
        while pending:
            folder = pending.pop()
            for info in self.store.list_artifacts(run_id, folder or None):
                if info.is_dir:
                    _local_target(dst, info.path).mkdir(parents=True, exist_ok=True)
                    pending.append(info.path)
                else:
                    self._download_file(run_id, info.path, _local_target(dst, info.path))
        return str(target)

    def _is_file(self, run_id: str, path: str) -> bool:
        """Whether `path` names a file (False: a directory); not found otherwise."""
        parent, _, _ = path.rpartition("/")
        for info in self.store.list_artifacts(run_id, parent or None):
            if info.path == path:
                return not info.is_dir
        raise not_found(f"No artifact {path!r} in run {run_id}")

    def _download_file(self, run_id: str, path: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        with self.store.open_artifact(run_id, path) as src, open(tmp, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
        os.replace(tmp, target)


def _local_target(dst: Path, artifact_path: str) -> Path:
    """Where an artifact lands under `dst`. The store already rejects '..' and absolute
    paths; checking again keeps a bad entry from ever writing outside `dst`."""
    parts = [p for p in artifact_path.split("/") if p]
    if any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
        raise invalid(f"Refusing to download artifact with unsafe path {artifact_path!r}")
    return dst.joinpath(*parts)


def _as_float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CairnError(
            f"Got invalid value {value!r} for metric {key!r} (timestamp, step): "
            "a metric value must be a number"
        ) from None


__all__ = ["Client"]
