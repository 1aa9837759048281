"""LoggedModelStore: MLflow 3's logged models on the engine's LMDB environment, what
`log_model`, autologging and `runs:/` resolution use. records.py says what each
sub-database holds; search.py answers search_logged_models.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence

from cairn.engine.errors import invalid, not_found
from cairn.engine.loggedmodels.records import (
    MAX_DATASET_DIGEST_LENGTH,
    MAX_DATASET_NAME_LENGTH,
    MAX_MODEL_VALUE_LENGTH,
    MODEL,
    MODEL_METRIC,
    MODEL_OUTPUT,
    LoggedModel,
    LoggedModelData,
    LoggedModelInfo,
    LoggedModelParameter,
    LoggedModelRecord,
    LoggedModelStatus,
    LoggedModelTag,
    ModelInput,
    ModelMetric,
    ModelMetricRecord,
    ModelOutput,
    ModelOutputRecord,
    artifact_prefix,
    check_model_name,
    model_id_of,
    model_key,
)
from cairn.engine.query.pagination import Page
from cairn.engine.store.artifacts import FileInfo
from cairn.engine.store.keys import desc_i64, i64, read_i64, run_id_of, run_key, u32, u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.names import NameTable
from cairn.engine.store.timestamps import now_ms
from cairn.engine.tracking.entities import LifecycleStage
from cairn.engine.tracking.records import EXPERIMENT, RUN, RunRecord
from cairn.engine.tracking.runnames import generate_run_name
from cairn.engine.tracking.validation import check_experiment_id, check_key, check_metric, check_run_id


def _pairs(items: Mapping[str, str] | Iterable | None, what: str) -> dict[str, str]:
    """Tags or params given as a dict or as key/value objects, checked; last one wins."""
    if items is None:
        return {}
    pairs = items.items() if isinstance(items, Mapping) else ((p.key, p.value) for p in items)
    out: dict[str, str] = {}
    for key, value in pairs:
        if not isinstance(key, str) or not key or len(key) > 250:
            raise invalid(f"Invalid {what} key {key!r}: a non-empty string of at most 250 characters")
        value = "" if value is None else str(value)
        if len(value) > MAX_MODEL_VALUE_LENGTH:
            raise invalid(
                f"The {what} value for key '{key}' exceeds the maximum length of "
                f"{MAX_MODEL_VALUE_LENGTH} characters ({len(value)} given)"
            )
        out[key] = value
    return out


def _optional_text(value: object, what: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise invalid(f"Invalid {what} {value!r}: a string of at most {limit} characters")
    return value


class LoggedModelStore:
    """Logged models on the engine's LMDB environment. Docstrings are the spec.

    Conventions, as MLflow's SQL store (mlflow/store/tracking/sqlalchemy_store.py):
    - Model ids are "m-" + 32 lowercase hex digits. An unknown or malformed id is
      RESOURCE_DOES_NOT_EXIST ("Logged model with ID '<id>' not found.").
    - Deletion is soft and final (MLflow has no restore): a deleted model is hidden from
      get (unless allow_deleted) and from search; the writes MLflow still allows on it
      (finalize, tags, params) are allowed here too.
    - Every write returns once committed, checks what it needs inside its own
      transaction, and leaves no trace when it fails.
    """

    def __init__(self, lenv: LmdbEnv, names: NameTable, artifacts=None):
        self._env = lenv
        self._db = lenv.dbs
        self.names = names
        self._artifacts = artifacts
        # Called with the model id when a model is finalized READY: the registrar adds
        # the ONNX conversion of a scikit-learn model logged by the mlflow client.
        self.on_ready: Callable[[str], None] | None = None

    env = property(lambda self: self._env)

    # ------------------------------------------------------------------ records
    def _record(self, txn, model_id: str, *, allow_deleted: bool = True) -> tuple[bytes, LoggedModelRecord]:
        key = model_key(model_id)
        raw = txn.get(key, db=self._db["logged_models"])
        if raw is None:
            raise not_found(f"Logged model with ID '{model_id}' not found.")
        rec = MODEL.decode(raw)
        if not allow_deleted and rec.lifecycle_stage == LifecycleStage.DELETED:
            raise not_found(f"Logged model with ID '{model_id}' not found.")
        return key, rec

    def _active_run(self, txn, run_id: str) -> tuple[bytes, RunRecord]:
        run_b = run_key(check_run_id(run_id))
        raw = txn.get(run_b, db=self._db["runs"])
        if raw is None:
            raise not_found(f"Run with id={run_id} not found")
        rec = RUN.decode(raw)
        if rec.lifecycle_stage != LifecycleStage.ACTIVE:
            raise invalid(
                f"The run {run_id} must be in the 'active' state. Current state is {rec.lifecycle_stage}."
            )
        return run_b, rec

    def _update(self, model_id: str, change) -> LoggedModelRecord:
        """Run `change(batch, key, record)` on a re-read record, stamp and store it."""
        model_key(model_id)

        def op(b: Batch) -> LoggedModelRecord:
            key, rec = self._record(b.txn, model_id)
            change(b, key, rec)
            rec.last_updated_time = now_ms()
            b.txn.put(key, MODEL.encode(rec), db=self._db["logged_models"])
            return rec

        return self._env.write(op)

    # ------------------------------------------------------------------ models
    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Mapping[str, str] | Iterable | None = None,
        params: Mapping[str, str] | Iterable | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        """Create a PENDING model in an active experiment and return it.

        `name` defaults to a generated "adjective-noun-NNN" name; a given name must be
        non-empty, at most 500 characters, without / : . % " '. Names need not be
        unique. The artifact location is "<experiment artifact location>/models/<id>
        /artifacts". `source_run_id` (the run that produced the model) is stored as given
        if it is a well-formed run id; MLflow does not require the run to exist.
        """
        exp = check_experiment_id(experiment_id)
        name = generate_run_name() if name is None or name == "" else check_model_name(name)
        tag_map = _pairs(tags, "tag")
        param_map = _pairs(params, "param")
        model_type = _optional_text(model_type, "model_type", 500)
        source_run_id = _optional_text(source_run_id, "source_run_id", 32)
        if source_run_id is not None:
            check_run_id(source_run_id)
        hex_id = uuid.uuid4().hex
        model_id = f"m-{hex_id}"
        key = bytes.fromhex(hex_id)

        def op(b: Batch) -> LoggedModelRecord:
            raw = b.txn.get(u64(exp), db=self._db["experiments"])
            if raw is None:
                raise not_found(f"No Experiment with id={exp} exists")
            exp_rec = EXPERIMENT.decode(raw)
            if exp_rec.lifecycle_stage != LifecycleStage.ACTIVE:
                raise invalid(
                    f"The experiment {exp} must be in the 'active' state. "
                    f"Current state is {exp_rec.lifecycle_stage}."
                )
            t = now_ms()
            rec = LoggedModelRecord(
                experiment_id=exp,
                name=name,
                artifact_location=f"{exp_rec.artifact_location.rstrip('/')}/models/{model_id}/artifacts",
                creation_time=t,
                last_updated_time=t,
                status=LoggedModelStatus.PENDING,
                lifecycle_stage=LifecycleStage.ACTIVE,
                model_type=model_type,
                source_run_id=source_run_id,
                tags=tag_map,
                params=param_map,
            )
            b.txn.put(key, MODEL.encode(rec), db=self._db["logged_models"])
            b.txn.put(u64(exp) + desc_i64(t) + key, b"", db=self._db["exp_logged_models"])
            return rec

        rec = self._env.write(op)
        return self.entity(key, rec, [])

    def experiment_of(self, model_id: str) -> str:
        """The experiment a logged model (deleted ones too) belongs to."""
        with self._env.read() as txn:
            return str(self._record(txn, model_id)[1].experiment_id)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        """The model with its tags, params and linked metrics. A deleted model is
        RESOURCE_DOES_NOT_EXIST unless `allow_deleted`."""
        with self._env.read() as txn:
            key, rec = self._record(txn, model_id, allow_deleted=allow_deleted)
            return self.entity(key, rec, self.model_metrics(txn, key))

    def finalize_logged_model(self, model_id: str, status: str) -> LoggedModel:
        """Set the status to READY or FAILED (again if already final, as MLflow) and
        return the updated model."""
        if status not in LoggedModelStatus.FINAL:
            raise invalid(f"Invalid logged model status {status!r}: use READY or FAILED")

        def change(b: Batch, key: bytes, rec: LoggedModelRecord) -> None:
            rec.status = status

        self._update(model_id, change)
        if status == LoggedModelStatus.READY and self.on_ready is not None:
            self.on_ready(model_id)
        return self.get_logged_model(model_id, allow_deleted=True)

    def delete_logged_model(self, model_id: str) -> None:
        """Soft-delete: the model leaves get and search; its data and files stay."""

        def change(b: Batch, key: bytes, rec: LoggedModelRecord) -> None:
            rec.lifecycle_stage = LifecycleStage.DELETED

        self._update(model_id, change)

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, str] | Iterable) -> None:
        """Set tags (last write wins, also within one call)."""
        tag_map = _pairs(tags, "tag")

        def change(b: Batch, key: bytes, rec: LoggedModelRecord) -> None:
            rec.tags = {**rec.tags, **tag_map}

        self._update(model_id, change)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """Remove a tag; RESOURCE_DOES_NOT_EXIST if it is not set."""

        def change(b: Batch, mkey: bytes, rec: LoggedModelRecord) -> None:
            if key not in rec.tags:
                raise not_found(f"No tag with key {key!r} found for model with ID {model_id!r}.")
            rec.tags = {k: v for k, v in rec.tags.items() if k != key}

        self._update(model_id, change)

    def log_logged_model_params(self, model_id: str, params: Mapping[str, str] | Iterable) -> None:
        """Add params. Params are write-once, as a run's: the same value again is a
        no-op, a different value is INVALID_PARAMETER_VALUE naming both values."""
        param_map = _pairs(params, "param")

        def change(b: Batch, key: bytes, rec: LoggedModelRecord) -> None:
            for k, v in param_map.items():
                old = rec.params.get(k)
                if old is not None and old != v:
                    raise invalid(
                        f"Changing param values is not allowed. Param with key='{k}' was already "
                        f"logged with value='{old}' for model ID='{model_id}'. Attempted logging "
                        f"new param value '{v}'."
                    )
            rec.params = {**rec.params, **param_map}

        if param_map:
            self._update(model_id, change)
        else:  # nothing to write; an unknown id is still RESOURCE_DOES_NOT_EXIST
            self.get_logged_model(model_id, allow_deleted=True)

    def entity(self, key: bytes, rec: LoggedModelRecord, metrics: list[ModelMetric]) -> LoggedModel:
        return LoggedModel(
            info=LoggedModelInfo(
                model_id=model_id_of(key),
                experiment_id=str(rec.experiment_id),
                name=rec.name,
                creation_timestamp_ms=rec.creation_time,
                last_updated_timestamp_ms=rec.last_updated_time,
                artifact_uri=rec.artifact_location,
                status=rec.status,
                model_type=rec.model_type,
                source_run_id=rec.source_run_id,
                status_message=rec.status_message,
                tags=[LoggedModelTag(k, v) for k, v in rec.tags.items()],
            ),
            data=LoggedModelData(
                params=[LoggedModelParameter(k, v) for k, v in rec.params.items()],
                metrics=metrics,
            ),
        )

    # ------------------------------------------------------------------ metrics
    def log_model_metrics(self, run_id: str, metrics: Sequence[ModelMetric]) -> None:
        """Link metric points to the models named by their `model_id` (points without
        one are skipped). The run must be active and each model must exist.

        This records the model's side only: the caller logs the same points to the run
        (TrackingStore.log_batch / log_metric), as MLflow's store does for both. A point
        is identified by (model, key, timestamp, step, run); logging it again keeps the
        first value, as MLflow's SQL primary key does.
        """
        check_run_id(run_id)
        rows: list[tuple[str, str, int, int, float, str | None, str | None]] = []
        for m in metrics:
            if not m.model_id:
                continue
            key = check_key(m.key, "key")
            value, ts, step = check_metric(key, m.value, m.timestamp, m.step)
            ds_name = _optional_text(m.dataset_name, "dataset_name", MAX_DATASET_NAME_LENGTH)
            ds_digest = _optional_text(m.dataset_digest, "dataset_digest", MAX_DATASET_DIGEST_LENGTH)
            model_key(m.model_id)
            rows.append((m.model_id, key, ts, step, value, ds_name, ds_digest))
        if not rows:
            return
        db = self._db["logged_models"]

        def op(b: Batch) -> None:
            run_b, _run = self._active_run(b.txn, run_id)
            checked: set[str] = set()
            for model_id, key, ts, step, value, ds_name, ds_digest in rows:
                mkey = model_key(model_id)
                if model_id not in checked:
                    if b.txn.get(mkey, db=db) is None:
                        raise not_found(f"Logged model with ID '{model_id}' not found.")
                    checked.add(model_id)
                pkey = mkey + u32(self.names.intern(b, key)) + i64(ts) + i64(step) + run_b
                value_b = MODEL_METRIC.encode(ModelMetricRecord(value, ds_name, ds_digest))
                b.txn.put(pkey, value_b, db=self._db["logged_model_metrics"], overwrite=False)

        self._env.write(op)

    def model_metrics(self, txn, key: bytes, nid: int | None = None) -> list[ModelMetric]:
        """Every point linked to a model (or only those of name id `nid`), by key name
        id, then timestamp, step and run."""
        prefix = key if nid is None else key + u32(nid)
        model_id = model_id_of(key)
        out = []
        with txn.cursor(db=self._db["logged_model_metrics"]) as cur:
            if not cur.set_range(prefix):
                return out
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                rec = MODEL_METRIC.decode(v)
                out.append(
                    ModelMetric(
                        key=self.names.name(txn, int.from_bytes(k[16:20], "big")),
                        value=rec.value,
                        timestamp=read_i64(k, 20),
                        step=read_i64(k, 28),
                        model_id=model_id,
                        run_id=run_id_of(k, 36),
                        dataset_name=rec.dataset_name,
                        dataset_digest=rec.dataset_digest,
                    )
                )
        return out

    # ------------------------------------------------------------------ run links
    def log_outputs(self, run_id: str, models: Sequence[ModelOutput]) -> None:
        """Record models as outputs of an active run (service.proto's LogOutputs).
        Each model must exist; logging the same model again updates its step."""
        items = [(m.model_id, _step(m.step)) for m in models]
        for model_id, _ in items:
            model_key(model_id)

        def op(b: Batch) -> None:
            run_b, _run = self._active_run(b.txn, run_id)
            for model_id, step in items:
                mkey, _rec = self._record(b.txn, model_id)
                b.txn.put(run_b + mkey, MODEL_OUTPUT.encode(ModelOutputRecord(step)), db=self._db["run_model_outputs"])

        self._env.write(op)

    def run_outputs(self, run_id: str, txn=None) -> list[ModelOutput]:
        """The models a run produced, by model id; [] for a run without any."""
        return [
            ModelOutput(model_id_of(k, 16), MODEL_OUTPUT.decode(v).step)
            for k, v in self._run_rows("run_model_outputs", run_id, txn)
        ]

    def log_model_inputs(self, run_id: str, model_ids: Sequence[str]) -> None:
        """Record models as inputs of an active run (the `models` of LogInputs)."""
        for model_id in model_ids:
            model_key(model_id)

        def op(b: Batch) -> None:
            run_b, _run = self._active_run(b.txn, run_id)
            for model_id in model_ids:
                mkey, _rec = self._record(b.txn, model_id)
                b.txn.put(run_b + mkey, b"", db=self._db["run_model_inputs"])

        self._env.write(op)

    def run_model_inputs(self, run_id: str, txn=None) -> list[ModelInput]:
        """The models a run consumed, by model id."""
        return [ModelInput(model_id_of(k, 16)) for k, _v in self._run_rows("run_model_inputs", run_id, txn)]

    def _run_rows(self, table: str, run_id: str, txn) -> list[tuple[bytes, bytes]]:
        if txn is None:
            with self._env.read() as snapshot:
                return self._run_rows(table, run_id, snapshot)
        run_b = run_key(check_run_id(run_id))
        out = []
        with txn.cursor(db=self._db[table]) as cur:
            if cur.set_range(run_b):
                for k, v in cur:
                    if not k.startswith(run_b):
                        break
                    out.append((k, v))
        return out

    # ------------------------------------------------------------------ search
    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        datasets: Sequence[Mapping[str, str | None]] | None = None,
        max_results: int | None = None,
        order_by: Sequence[Mapping] | None = None,
        page_token: str | None = None,
    ) -> Page[LoggedModel]:
        """Non-deleted models of the given experiments matching `filter_string`.

        Filter (MLflow's logged-model grammar: comparisons joined by AND):
        `metrics.<k>` with = != < <= > >= (true if ANY linked point of that key
        matches; with `datasets`, any point on one of those datasets); `params.<k>` and
        `tags.<k>` with = != LIKE ILIKE IN NOT IN; attributes (bare or `attributes.`):
        model_id, name, status ('PENDING', 'READY', 'FAILED'), model_type,
        source_run_id, artifact_location, status_message, experiment_id (string ops),
        creation_timestamp_ms (alias creation_time, creation_timestamp) and
        last_updated_timestamp_ms (alias last_updated_timestamp) with numeric ops.
        `datasets`: [{"dataset_name": ..., "dataset_digest": optional}]; with no metric
        clause it keeps the models having any metric on one of them.

        Order: `order_by` entries {"field_name", "ascending" (default True),
        "dataset_name", "dataset_digest"}: an attribute, or "metrics.<k>" ordered by the
        model's latest point of k (greatest timestamp, then step; on the given dataset).
        Missing values come last in both directions. Ties, and the default order:
        creation time DESC, then model_id ASC. Pages hold `max_results` (default 100)
        models.
        """
        from cairn.engine.loggedmodels.search import search_logged_models

        return search_logged_models(self, experiment_ids, filter_string, datasets, max_results, order_by, page_token)

    # ------------------------------------------------------------------ artifacts
    def artifact_root(self, model_id: str) -> str:
        """The model's artifact prefix in the artifact store (see `artifact_prefix`)."""
        with self._env.read() as txn:
            _key, rec = self._record(txn, model_id, allow_deleted=False)
        return artifact_prefix(model_id, rec)

    def list_artifacts(self, model_id: str, path: str | None = None) -> list[FileInfo]:
        """Immediate children of `path` in the model's artifact tree, paths relative to
        the model's artifact root (ListLoggedModelArtifacts)."""
        return self._artifacts.list(self.artifact_root(model_id), path)


def _step(step: object) -> int:
    if step is None:
        return 0
    if isinstance(step, bool) or not isinstance(step, int) or not -(1 << 63) <= step < (1 << 63):
        raise invalid(f"Invalid model output step {step!r}: a 64-bit integer is required")
    return step
