"""The fluent tracking API (`cairn.start_run`, `cairn.log_metric`, ...), as MLflow's.

State, all module-level: the store (opened lazily from `set_tracking_dir` or
$CAIRN_HOME on first use), the active experiment, and a per-thread stack of active runs
(nested runs push onto it), as mlflow.tracking.fluent keeps them. Everything that talks
to the store goes through one cached `Client`; only `log_metric`, the hot path, calls the
store directly with the active run id cached on the thread's stack.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from time import time_ns as _time_ns
from typing import Any

from cairn.engine.errors import CairnError, invalid
from cairn.engine.models.signature import column_type
from cairn.engine.registry.entities import ModelVersion
from cairn.engine.sdk import context
from cairn.engine.sdk.client import Client, _as_float
from cairn.engine.sdk.context import current_user
from cairn.engine.sdk.registryclient import AWAIT_DEFAULT_S
from cairn.engine.store.timestamps import now_ms
from cairn.engine.tracking.contract import DEFAULT_EXPERIMENT_ID, MAX_RESULTS_SEARCH_RUNS, TrackingStore
from cairn.engine.tracking.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
    ViewType,
)

PARENT_RUN_ID_TAG = "mlflow.parentRunId"
DATASET_CONTEXT_TAG = "mlflow.data.context"
# MLflow hashes at most this many rows of a dataset for its digest; so do we.
_DIGEST_MAX_ROWS = 10_000

# Reentrant: a thread's first touch of _local registers its stack under this lock.
_lock = threading.RLock()
_client_cache: Client | None = None
_store: TrackingStore | None = None  # _client_cache.store, read directly by log_metric
_active_experiment_id: str | None = None
_all_stacks: dict[int, list[ActiveRun]] = {}  # every thread's stack, for the exit hook


class _RunStack(threading.local):
    """This thread's active runs; `run_id` caches the innermost one's id for log_metric."""

    def __init__(self) -> None:
        self.runs: list[ActiveRun] = []
        self.run_id: str | None = None
        self.last_run_id: str | None = None
        with _lock:
            _all_stacks[threading.get_ident()] = self.runs


_local = _RunStack()


class ActiveRun(Run):
    """The Run returned by `start_run` (a snapshot taken at start); as a context manager
    it ends the run on exit: FINISHED, or FAILED when the block raised."""

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        runs = _local.runs
        ids = [r.info.run_id for r in runs]
        if self.info.run_id in ids:
            status = RunStatus.FINISHED if exc_type is None else RunStatus.FAILED
            # Runs started inside the block and left open end with it, so the stack never
            # keeps a child whose parent is over.
            for _ in range(len(ids) - ids.index(self.info.run_id)):
                end_run(status)
        return False


# -- where the data lives ------------------------------------------------------------


def set_tracking_dir(path: str | os.PathLike | None) -> None:
    """Track into this data directory (None: $CAIRN_HOME or ~/.local/share/cairn).
    Forgets the active experiment, whose id belongs to the previous store."""
    global _client_cache, _store, _active_experiment_id
    with _lock:
        context.set_tracking_dir(path)
        _client_cache = None
        _store = None
        _active_experiment_id = None
        _local.last_run_id = None


get_tracking_dir = context.get_tracking_dir


def _client() -> Client:
    global _client_cache, _store
    c = _client_cache
    if c is None:
        with _lock:
            if _client_cache is None:
                _client_cache = Client()
                _store = _client_cache.store
                # atexit runs handlers last-registered-first, and the store registers
                # its own shutdown when it opens: re-register so ours runs before it.
                atexit.unregister(_end_runs_at_exit)
                atexit.register(_end_runs_at_exit)
            c = _client_cache
    return c


def _end_runs_at_exit() -> None:
    """End every thread's open runs as FINISHED (innermost first) and flush."""
    with _lock:
        stacks = [s for s in _all_stacks.values() if s]
    try:
        if not stacks:
            flush()  # never open a store at exit just to find nothing to do
            return
        c = _client()
        for runs in stacks:
            while runs:
                c.set_terminated(runs.pop().info.run_id, RunStatus.FINISHED)
        c.store.flush()
    except Exception as e:  # an exit hook must not raise; say why data may be missing
        print(f"cairn: could not end active runs at exit: {e}", file=sys.stderr)


def flush() -> None:
    """Wait until every metric logged so far is committed."""
    if _store is not None:
        _store.flush()


# -- run context tags ----------------------------------------------------------------


@functools.cache
def _resolved_context_tags() -> tuple[tuple[str, str], ...]:
    main = sys.argv[0] if sys.argv and sys.argv[0] else None
    tags = {
        "mlflow.user": current_user(),
        "mlflow.source.name": main or "<console>",
        "mlflow.source.type": "LOCAL",
    }
    folder = Path(main).resolve().parent if main and os.path.isfile(main) else Path.cwd()
    if commit := _git_commit(folder):
        tags["mlflow.source.git.commit"] = commit
    return tuple(tags.items())


def context_tags() -> dict[str, str]:
    """The tags MLflow puts on every new run: user, source script, source type and,
    when the script is in a git work tree, its commit. Resolved once per process."""
    return dict(_resolved_context_tags())


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=3,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) in (40, 64) else None


# -- experiments ---------------------------------------------------------------------


def set_experiment(name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Make an experiment active for new runs, creating it by name if missing. A
    deleted experiment is an error (restore it with Client.restore_experiment)."""
    global _active_experiment_id
    if (name is None) == (experiment_id is None):
        raise invalid("set_experiment: give exactly one of `name` or `experiment_id`")
    c = _client()
    if experiment_id is not None:
        exp = c.get_experiment(str(experiment_id))
    else:
        exp = c.get_experiment_by_name(name)
        if exp is None:
            try:
                exp = c.get_experiment(c.create_experiment(name))
            except CairnError:
                # Another process may have created it between our lookup and create.
                exp = c.get_experiment_by_name(name)
                if exp is None:
                    raise
    if exp.lifecycle_stage == LifecycleStage.DELETED:
        raise invalid(
            f"Cannot set a deleted experiment {exp.name!r} (id {exp.experiment_id}) as the "
            "active experiment; restore it first"
        )
    _active_experiment_id = exp.experiment_id
    return exp


def _experiment_id() -> str:
    return _active_experiment_id or DEFAULT_EXPERIMENT_ID


def get_experiment(experiment_id: str) -> Experiment:
    return _client().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    return _client().get_experiment_by_name(name)


# -- runs ----------------------------------------------------------------------------


def _push(run: ActiveRun) -> None:
    _local.runs.append(run)
    _local.run_id = run.info.run_id


def _pop() -> ActiveRun:
    runs = _local.runs
    run = runs.pop()
    _local.run_id = runs[-1].info.run_id if runs else None
    _local.last_run_id = run.info.run_id
    return run


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    description: str | None = None,
) -> ActiveRun:
    """Start a new run (or resume `run_id`) and make it the active run.

    With a run already active, `nested=True` starts a child of it (tagged
    mlflow.parentRunId); otherwise it is an error. `parent_run_id` nests under that run
    (it must be the active run, if there is one)."""
    runs = _local.runs
    if runs and not nested:
        raise invalid(
            f"Run with UUID {runs[0].info.run_id} is already active. To start a new run, "
            "first end the current run with cairn.end_run(). To start a nested run, call "
            "start_run with nested=True"
        )
    c = _client()
    user_tags = {k: str(v) for k, v in (tags or {}).items()}
    if description:
        user_tags["mlflow.note.content"] = description
    if run_id:
        run = _resume_run(c, run_id, run_name, user_tags)
    else:
        if parent_run_id:
            if runs and runs[-1].info.run_id != parent_run_id:
                raise invalid(
                    f"Current run with UUID {runs[-1].info.run_id} does not match the "
                    f"specified parent_run_id {parent_run_id}"
                )
            if c.get_run(parent_run_id).info.lifecycle_stage == LifecycleStage.DELETED:
                raise invalid(f"Cannot start a run under deleted parent run {parent_run_id}")
        elif runs:
            parent_run_id = runs[-1].info.run_id
        all_tags = context_tags()
        all_tags.update(user_tags)
        if parent_run_id:
            all_tags[PARENT_RUN_ID_TAG] = parent_run_id
        exp_id = str(experiment_id) if experiment_id is not None else _experiment_id()
        run = c.create_run(exp_id, tags=all_tags, run_name=run_name)
    active = ActiveRun(info=run.info, data=run.data, inputs=run.inputs)
    _push(active)
    return active


def _resume_run(c: Client, run_id: str, run_name: str | None, tags: dict[str, str]) -> Run:
    run = c.get_run(run_id)
    if _active_experiment_id is not None and run.info.experiment_id != _active_experiment_id:
        raise invalid(
            f"Cannot resume run {run_id}: it belongs to experiment {run.info.experiment_id}, "
            f"not the active experiment {_active_experiment_id}"
        )
    if run.info.lifecycle_stage == LifecycleStage.DELETED:
        raise invalid(f"Cannot resume run {run_id}: it is deleted")
    c.store.update_run_info(run_id, RunStatus.RUNNING, run.info.end_time, run_name)
    if tags:
        c.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    return c.get_run(run_id)


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the innermost active run (if any) with `status` and the current end time."""
    if not _local.runs:
        return
    run = _pop()
    # No flush needed: the writer runs operations in order, and every buffered metric
    # point already has its drain operation queued ahead of this status change.
    _client().set_terminated(run.info.run_id, status)


def active_run() -> ActiveRun | None:
    runs = _local.runs
    return runs[-1] if runs else None


def last_active_run() -> Run | None:
    """The active run, else the run most recently ended in this thread, fetched fresh."""
    run_id = _local.run_id or _local.last_run_id
    return _client().get_run(run_id) if run_id else None


def _run_id() -> str:
    """The active run's id, starting a run when none is active (as MLflow does)."""
    return _local.run_id or start_run().info.run_id


def get_run(run_id: str) -> Run:
    return _client().get_run(run_id)


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int | str = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: Sequence[str] | None = None,
    output_format: str = "list",
    experiment_names: Sequence[str] | None = None,
):
    """Runs matching `filter_string` across all pages, up to `max_results`, from the
    given experiments (default: the active one). `output_format="pandas"` returns a
    DataFrame like MLflow's (needs pandas)."""
    c = _client()
    ids = [str(e) for e in experiment_ids] if experiment_ids else []
    for name in experiment_names or ():
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            ids.append(exp.experiment_id)
    if not ids and not experiment_names:
        ids = [_experiment_id()]
    runs: list[Run] = []
    token = None
    while ids and len(runs) < max_results:
        n = min(max_results - len(runs), MAX_RESULTS_SEARCH_RUNS)
        page = c.search_runs(ids, filter_string, run_view_type, n, order_by, token)
        runs.extend(page)
        token = page.token
        if token is None:
            break
    if output_format == "list":
        return runs
    if output_format == "pandas":
        return _runs_frame(runs)
    raise invalid(f"Unsupported output_format {output_format!r}: use 'list' or 'pandas'")


def _runs_frame(runs: list[Run]):
    try:
        import pandas as pd
    except ImportError:
        raise invalid("search_runs(output_format='pandas') needs pandas installed") from None
    rows = []
    for r in runs:
        i = r.info
        row = {
            "run_id": i.run_id,
            "experiment_id": i.experiment_id,
            "status": i.status,
            "artifact_uri": i.artifact_uri,
            "start_time": pd.to_datetime(i.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(i.end_time, unit="ms", utc=True) if i.end_time else None,
        }
        row.update({f"metrics.{m.key}": m.value for m in r.data.metrics})
        row.update({f"params.{p.key}": p.value for p in r.data.params})
        row.update({f"tags.{t.key}": t.value for t in r.data.tags})
        rows.append(row)
    return pd.DataFrame(rows)


# -- logging to the active run -------------------------------------------------------


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
    synchronous: bool = False,
) -> None:
    """Log one metric point. Returns once queued; the point is committed within
    milliseconds, at `flush()`, at `end_run()` or at exit. This is the hot path: no
    lookups beyond the cached run id."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = _as_float(key, value)  # raises the CairnError that names the metric
    (_store or _client().store).log_metric(
        run_id or _local.run_id or _run_id(),
        Metric(key, value, timestamp or _time_ns() // 1_000_000, step or 0),
        wait=synchronous,
    )


def log_metrics(
    metrics: dict[str, float],
    step: int | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
    synchronous: bool = False,
) -> None:
    """Log several metrics at one step and time, in one batch."""
    ts, st = timestamp or now_ms(), step or 0
    points = [Metric(k, _as_float(k, v), ts, st) for k, v in metrics.items()]
    _client().log_batch(run_id or _run_id(), metrics=points, synchronous=synchronous)


def log_param(key: str, value: Any) -> Any:
    """Params are write-once: a different value for a logged key is a CairnError."""
    return _client().log_param(_run_id(), key, value)


def log_params(params: dict[str, Any]) -> None:
    _client().log_batch(_run_id(), params=[Param(k, str(v)) for k, v in params.items()])


def set_tag(key: str, value: Any) -> None:
    _client().set_tag(_run_id(), key, value)


def set_tags(tags: dict[str, Any]) -> None:
    _client().log_batch(_run_id(), tags=[RunTag(k, str(v)) for k, v in tags.items()])


def delete_tag(key: str) -> None:
    _client().delete_tag(_run_id(), key)


def log_artifact(local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
    _client().log_artifact(_run_id(), local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
    _client().log_artifacts(_run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    _client().log_text(_run_id(), text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str) -> None:
    """Write `dictionary` as JSON, or YAML when artifact_file ends in .yaml/.yml."""
    _client().log_dict(_run_id(), dictionary, artifact_file)


def log_input(dataset: Any, context: str | None = None, tags: dict[str, str] | None = None) -> None:
    """Record a dataset the run used: an engine Dataset, or a pandas DataFrame / numpy
    array (described with `make_dataset`). `context` ("training", "testing", ...) is
    the input tag mlflow.data.context."""
    if not isinstance(dataset, Dataset):
        dataset = make_dataset(dataset)
    input_tags = [InputTag(k, str(v)) for k, v in (tags or {}).items()]
    if context:
        input_tags.append(InputTag(DATASET_CONTEXT_TAG, context))
    _client().log_inputs(_run_id(), [DatasetInput(dataset=dataset, tags=input_tags)])


# -- describing datasets -------------------------------------------------------------


def make_dataset(
    data: Any, name: str | None = None, source: str | None = None, targets: Any = None
) -> Dataset:
    """Describe a DataFrame or array-like (plus optional `targets`) as MLflow's
    from_pandas / from_numpy do: MLflow's schema and profile JSON, a source (a URI if
    given, else the code that logged it) and an 8-hex sha256 digest of the data. The
    digest covers the targets too, so the same features with other labels differ."""
    if source is not None:
        source_type, source_json = "local", json.dumps({"uri": str(source)})
    else:
        source_type, source_json = "code", json.dumps({"tags": context_tags()})
    targets = _as_array(targets) if targets is not None else None
    if _is_dataframe(data):
        # MLflow's pandas schema describes the frame's columns only.
        schema: dict[str, Any] = {"mlflow_colspec": infer_schema(data)}
        profile = {"num_rows": len(data), "num_elements": int(data.size)}
    else:
        data = _as_array(data)
        tensors = {"features": json.dumps(infer_schema(data))}
        profile = _array_profile("features", data)
        if targets is not None:
            tensors["targets"] = json.dumps(infer_schema(targets))
            profile.update(_array_profile("targets", targets))
        schema = {"mlflow_tensorspec": tensors}
    parts = [_data_bytes(data)] + ([_data_bytes(targets)] if targets is not None else [])
    return Dataset(
        name=name or "dataset",
        digest=hashlib.sha256(b"".join(parts)).hexdigest()[:8],
        source_type=source_type,
        source=source_json,
        schema=json.dumps(schema),
        profile=json.dumps(profile),
    )


def infer_schema(data: Any) -> list[dict[str, Any]]:
    """MLflow's schema JSON (as a list) for a DataFrame (a column spec per column) or an
    array (one tensor spec, batch dimension -1). Also used for model signatures."""
    if _is_dataframe(data):
        return [
            {"type": column_type(dtype), "name": str(col), "required": True}
            for col, dtype in data.dtypes.items()
        ]
    data = _as_array(data)
    shape = [-1, *data.shape[1:]]
    return [{"type": "tensor", "tensor-spec": {"dtype": str(data.dtype), "shape": shape}}]


def _is_dataframe(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "dtypes")


def _as_array(data: Any):
    if hasattr(data, "dtype") and hasattr(data, "shape"):  # ndarray, Series, sparse
        return data
    import numpy as np

    return np.asarray(data)


def _array_profile(prefix: str, a: Any) -> dict[str, Any]:
    out = {f"{prefix}_shape": list(a.shape), f"{prefix}_size": int(getattr(a, "size", 0))}
    if hasattr(a, "nbytes"):
        out[f"{prefix}_nbytes"] = int(a.nbytes)
    return out


def _data_bytes(data: Any) -> bytes:
    """Deterministic bytes of the first rows plus the full shape and layout."""
    header = f"{type(data).__name__}|{getattr(data, 'shape', '')}|".encode()
    if _is_dataframe(data):
        import pandas as pd

        head = data.head(_DIGEST_MAX_ROWS)
        header += "|".join(f"{c}:{t}" for c, t in data.dtypes.items()).encode()
        try:
            return header + pd.util.hash_pandas_object(head, index=False).values.tobytes()
        except TypeError:  # unhashable cells (lists, dicts)
            return header + head.to_csv(index=False).encode()
    if hasattr(data, "tocsr"):  # scipy sparse: hash the stored structure, not a dense copy
        m = data.tocsr()[:_DIGEST_MAX_ROWS]
        return header + m.data.tobytes() + m.indices.tobytes() + m.indptr.tobytes()
    import numpy as np

    head = np.asarray(data[:_DIGEST_MAX_ROWS]) if getattr(data, "ndim", 1) else np.asarray(data)
    header += str(head.dtype).encode()
    if head.dtype.kind == "O":  # object arrays hold pointers; hash their text instead
        return header + repr(head.tolist()).encode()
    return header + np.ascontiguousarray(head).tobytes()


# -- registry ------------------------------------------------------------------------
def register_model(
    model_uri: str,
    name: str,
    tags: Mapping[str, Any] | None = None,
    await_registration_for: int = AWAIT_DEFAULT_S,
) -> ModelVersion:
    """Register `model_uri` as a new version of `name` (the registered model is created
    when missing), as mlflow.register_model. Sources: `runs:/RUN/PATH`,
    `models:/m-<id>`, `models:/NAME/N`, `models:/NAME@ALIAS`, a local MLflow model
    folder or a local .onnx file. Waits for the version to be READY (returned) or
    FAILED_REGISTRATION (a CairnError with the reason)."""
    client = _client()
    client._ensure_registered_model(name)
    return client.create_model_version(name, model_uri, tags=tags, await_creation_for=await_registration_for)


__all__ = [
    "ActiveRun", "active_run", "context_tags", "delete_tag", "end_run", "flush",
    "get_experiment", "get_experiment_by_name", "get_run", "get_tracking_dir", "infer_schema",
    "last_active_run", "log_artifact", "log_artifacts", "log_dict", "log_input", "log_metric",
    "log_metrics", "log_param", "log_params", "log_text", "make_dataset", "register_model", "search_runs",
    "set_experiment", "set_tag", "set_tags", "set_tracking_dir", "start_run",
]
