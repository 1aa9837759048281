"""The tracking store's contract. Docstrings are the spec; `tracking.LmdbTrackingStore`
implements it, and every layer above (SDK, HTTP API, TUI) talks to this interface.

Conventions, as MLflow's abstract store:
- Ids are strings: experiments are decimal integers ("0" is the Default experiment),
  runs are 32 lowercase hex characters.
- Times are integer milliseconds since the epoch.
- Deletion is soft: a deleted experiment or run keeps all its data, has
  lifecycle_stage "deleted", can be restored, and is hidden from ACTIVE_ONLY searches.
  Writing to a deleted run or into a deleted experiment is INVALID_PARAMETER_VALUE.
- Pagination: `page_token` is opaque (None = first page); a page's `next_page_token` is
  None when nothing follows. Tokens stay valid while the data does not change.
- Errors are `CairnError` with MLflow's codes: RESOURCE_DOES_NOT_EXIST for unknown ids,
  RESOURCE_ALREADY_EXISTS for duplicate names, INVALID_PARAMETER_VALUE otherwise.
- Durability: every method that returns has committed its write, except `log_metric`
  and metric points in `log_batch` with `wait=False`, which are committed with the next
  group-commit batch (in practice within milliseconds, always within 50 ms) and at
  `flush()` / `close()` / interpreter exit.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from cairn.engine.query.pagination import Page
from cairn.engine.store.artifacts import FileInfo
from cairn.engine.tracking.entities import DatasetInput, Experiment, Metric, Param, Run, RunInfo, RunTag

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"

# MLflow's limits (mlflow/utils/validation.py).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_RESULTS_SEARCH_RUNS = 50_000
MAX_RESULTS_DEFAULT = 1000
MAX_RESULTS_HISTORY = 25_000


class TrackingStore(ABC):
    # -- experiments ------------------------------------------------------------------
    @abstractmethod
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        """Create an experiment and return its id.

        `name` must be non-empty and unique among all experiments, deleted ones included
        (RESOURCE_ALREADY_EXISTS otherwise). Ids are allocated in increasing order.
        `artifact_location` defaults to "mlflow-artifacts:/<id>".
        """

    @abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment, deleted or not; RESOURCE_DOES_NOT_EXIST if unknown."""

    @abstractmethod
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment with exactly this name (deleted ones too), or None."""

    @abstractmethod
    def search_experiments(
        self,
        view_type: int = 1,
        max_results: int = MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[Experiment]:
        """Experiments matching `filter_string` (MLflow's experiment grammar: `name`,
        `creation_time`, `last_update_time` and `tags.<key>` with = != LIKE ILIKE and,
        for times, < <= > >=; clauses joined by AND).

        Ordered by `order_by` (e.g. ["name ASC", "creation_time DESC"]; attributes
        experiment_id, name, creation_time, last_update_time), then by experiment_id
        descending, as MLflow's SQL store; without order_by the order is
        creation_time DESC, experiment_id ASC.
        """

    @abstractmethod
    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Rename; the new name must be unique. Renaming a deleted experiment is invalid."""

    @abstractmethod
    def delete_experiment(self, experiment_id: str) -> None:
        """Soft-delete the experiment and, as MLflow does, mark its runs deleted too."""

    @abstractmethod
    def restore_experiment(self, experiment_id: str) -> None:
        """Undo delete_experiment, restoring the runs it deleted."""

    @abstractmethod
    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set (last write wins) a tag on an active experiment."""

    @abstractmethod
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        """Remove a tag; RESOURCE_DOES_NOT_EXIST if it is not set."""

    # -- runs -------------------------------------------------------------------------
    @abstractmethod
    def create_run(
        self,
        experiment_id: str,
        user_id: str = "",
        start_time: int | None = None,
        tags: Sequence[RunTag] | dict[str, str] | None = None,
        run_name: str | None = None,
    ) -> Run:
        """Create a RUNNING run in an active experiment.

        A missing `run_name` takes the `mlflow.runName` tag if given, else a generated
        "adjective-noun-NNN" name; the `mlflow.runName` tag is always set to the name.
        `start_time` defaults to now. Nested runs carry the `mlflow.parentRunId` tag.
        The run's artifact_uri is "<experiment artifact_location>/<run_id>/artifacts".
        """

    @abstractmethod
    def get_run(self, run_id: str) -> Run:
        """The run with params, tags, latest metrics and dataset inputs."""

    @abstractmethod
    def experiment_of_run(self, run_id: str) -> str:
        """The id of the experiment a run (active or deleted) belongs to; a run never
        moves, so callers may remember it. RESOURCE_DOES_NOT_EXIST as get_run."""

    @abstractmethod
    def update_run_info(
        self, run_id: str, status: str | None, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        """Change status (one of RunStatus.ALL), end time and/or name of an active run.
        A new name also updates the `mlflow.runName` tag."""

    @abstractmethod
    def delete_run(self, run_id: str) -> None:
        """Soft-delete a run."""

    @abstractmethod
    def restore_run(self, run_id: str) -> None:
        """Undo delete_run."""

    # -- run data ---------------------------------------------------------------------
    @abstractmethod
    def log_param(self, run_id: str, key: str, value: str) -> None:
        """Params are write-once: logging the same value again is a no-op, a different
        value is INVALID_PARAMETER_VALUE naming the key, the old and the new value."""

    @abstractmethod
    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Set a run tag (last write wins). Setting `mlflow.runName` renames the run."""

    @abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a run tag; RESOURCE_DOES_NOT_EXIST if it is not set."""

    @abstractmethod
    def log_metric(self, run_id: str, metric: Metric, *, wait: bool = False) -> None:
        """Append one metric point. Values may be NaN or +-inf and are stored as given.
        Points are never overwritten; an identical (key, step, timestamp, value) point is
        stored once. The run's latest value for the key is the point with the greatest
        (step, timestamp, value)."""

    @abstractmethod
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        *,
        wait: bool = True,
    ) -> None:
        """Log many values at once, all or nothing. Limits: 1000 metrics, 100 params,
        100 tags, 1000 entities in all. Params follow log_param's write-once rule; a
        param repeated inside one batch with different values is invalid."""

    @abstractmethod
    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        """Record dataset inputs. Datasets are kept once per experiment by (name,
        digest); logging the same input twice keeps one entry."""

    @abstractmethod
    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[Metric]:
        """All points of one metric ordered by (timestamp, step, value) ascending, as
        MLflow's SQL store returns them; identical points appear once. Without
        max_results everything is returned in one page."""

    @abstractmethod
    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        key: str,
        max_results: int,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[tuple[str, Metric]]:
        """About `max_results` points per run, sampled evenly over the step range, as
        MLflow's get-history-bulk-interval: each run's first and last step in the range
        are always kept, so a page may hold max_results + 1 steps (MLflow does too)."""

    # -- search -----------------------------------------------------------------------
    @abstractmethod
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        run_view_type: int = 1,
        max_results: int = MAX_RESULTS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[Run]:
        """Runs of the given experiments matching MLflow's search_runs grammar.

        Filter: comparisons joined by AND over `metrics.<k>`, `params.<k>`, `tags.<k>`,
        `attributes.<a>` (run_id, run_name, status, start_time, end_time, user_id,
        artifact_uri, lifecycle_stage) and `datasets.<name|digest|context>`; keys may be
        quoted with backticks or double quotes; operators = != > >= < <= LIKE ILIKE
        IN NOT IN (IN for run_id and datasets). A bad filter is INVALID_PARAMETER_VALUE
        saying where it is wrong.
        Order: each `order_by` entry is "<entity>.<key> [ASC|DESC]"; runs missing a
        sort key, and NaN metrics, come last. Ties and the default order:
        start_time DESC, then run_id ASC.
        """

    # -- artifacts --------------------------------------------------------------------
    @abstractmethod
    def put_artifact(self, run_id: str, path: str, data: bytes | Iterable[bytes]) -> FileInfo:
        """Store bytes at `path` in the run's artifact tree (replacing a file there).

        `path` is relative and '/'-separated; absolute paths, '..' segments, empty
        segments, backslashes and NUL bytes are INVALID_PARAMETER_VALUE. The content is
        written to a content-addressed blob (temp file, fsync, rename) before the tree
        entry is committed, so a reader never sees a partial file.
        """

    @abstractmethod
    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """Immediate children of `path` (the root when None), sorted by path, with
        paths relative to the run's artifact root, as MLflow's stores list them."""

    @abstractmethod
    def open_artifact(self, run_id: str, path: str):
        """A binary file object for reading one artifact; RESOURCE_DOES_NOT_EXIST if absent."""

    # -- lifecycle --------------------------------------------------------------------
    @abstractmethod
    def flush(self) -> None:
        """Wait until every write queued by this process is committed."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the environment."""
