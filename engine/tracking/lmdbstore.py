"""LmdbTrackingStore: the TrackingStore contract (store.py) on one LMDB environment.

Reads use short read-only snapshots in the caller's thread. Writes are operations run by
the single writer (lmdbenv.Writer); each checks everything it needs inside its own
transaction before writing, and runs in a child transaction, so a refused write leaves
no trace and never half-writes a record.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from cairn.engine.errors import already_exists, invalid, not_found
from cairn.engine.query.pagination import Page, check_max_results, decode_offset, page_of
from cairn.engine.store.artifacts import FileInfo
from cairn.engine.store.keys import dataset_hash, desc_i64, param_hash, run_key, u32, u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.names import NameTable
from cairn.engine.store.timestamps import now_ms
from cairn.engine.tracking.contract import MAX_RESULTS_DEFAULT, MAX_RESULTS_HISTORY, TrackingStore
from cairn.engine.tracking.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
)
from cairn.engine.tracking.experiments import ExperimentMethods
from cairn.engine.tracking.historysampling import sample_histories
from cairn.engine.tracking.metrics import MetricBuffer, read_history, write_points
from cairn.engine.tracking.records import DATASET, INPUT, LATEST, RUN, DatasetRecord, InputRecord, RunRecord
from cairn.engine.tracking.runnames import generate_run_name
from cairn.engine.tracking.validation import (
    check_batch_sizes,
    check_experiment_id,
    check_key,
    check_metric,
    check_param_value,
    check_run_id,
    check_tag_value,
)

RUN_NAME_TAG = "mlflow.runName"
_I64 = 1 << 63
PARENT_RUN_TAG = "mlflow.parentRunId"
# How long this process trusts that a run it has checked is still active, on the
# fire-and-forget metric path. A run deleted meanwhile by another process may receive
# points logged within this window, as with any racing writer.
_ACTIVE_TTL_S = 1.0


class LmdbTrackingStore(ExperimentMethods, TrackingStore):
    def __init__(self, lenv: LmdbEnv, artifacts=None):
        self._env = lenv
        self._db = lenv.dbs
        self.names = NameTable(lenv.dbs)
        self._metric_buffer = MetricBuffer(lenv)
        self._active: dict[str, tuple[bytes, int, float]] = {}
        self._artifacts = artifacts
        self._ensure_default_experiment()

    @property
    def env(self) -> LmdbEnv:
        return self._env

    # ================================================================ runs
    def _run_record(self, txn, run_id: str) -> tuple[bytes, RunRecord]:
        run_b = run_key(check_run_id(run_id))
        raw = txn.get(run_b, db=self._db["runs"])
        if raw is None:
            raise not_found(f"Run with id={run_id} not found")
        return run_b, RUN.decode(raw)

    def _active_run_record(self, txn, run_id: str) -> tuple[bytes, RunRecord]:
        run_b, rec = self._run_record(txn, run_id)
        if rec.lifecycle_stage != LifecycleStage.ACTIVE:
            raise invalid(
                f"The run {run_id} must be in the 'active' state. Current state is {rec.lifecycle_stage}."
            )
        return run_b, rec

    def create_run(self, experiment_id, user_id="", start_time=None, tags=None, run_name=None, *, run_id=None) -> Run:
        """`run_id` (32 hex digits) recreates a run that another appliance created, under
        its own id (an imported model bundle): refused if that id is taken here."""
        exp = check_experiment_id(experiment_id)
        tag_map = self._check_tags(tags)
        name_tag = tag_map.get(RUN_NAME_TAG)
        if run_name and name_tag and run_name != name_tag:
            raise invalid(
                f"Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                f"different values (run_name='{run_name}', mlflow.runName='{name_tag}')."
            )
        run_name = check_tag_value(RUN_NAME_TAG, run_name or name_tag or generate_run_name())
        tag_map[RUN_NAME_TAG] = run_name
        if start_time is None:
            start_time = now_ms()
        elif isinstance(start_time, bool) or not isinstance(start_time, int) or start_time < 0:
            raise invalid(f"Invalid value {start_time!r} for parameter 'start_time': a non-negative integer is required")
        run_id = check_run_id(run_id) if run_id is not None else uuid.uuid4().hex
        run_b = run_key(run_id)

        def op(b: Batch) -> None:
            if b.txn.get(run_b, db=self._db["runs"]) is not None:
                raise already_exists(f"Run with id={run_id} already exists")
            exp_rec = self._experiment_record(b.txn, exp)
            if exp_rec.lifecycle_stage != LifecycleStage.ACTIVE:
                raise invalid(
                    f"The experiment {exp} must be in the 'active' state. "
                    f"Current state is {exp_rec.lifecycle_stage}."
                )
            rec = RunRecord(
                experiment_id=exp,
                run_name=run_name,
                user_id=user_id or "",
                status=RunStatus.RUNNING,
                start_time=start_time,
                end_time=None,
                lifecycle_stage=LifecycleStage.ACTIVE,
                artifact_uri=f"{exp_rec.artifact_location.rstrip('/')}/{run_id}/artifacts",
            )
            b.txn.put(run_b, RUN.encode(rec), db=self._db["runs"])
            b.txn.put(u64(exp) + desc_i64(start_time) + run_b, b"", db=self._db["exp_runs"])
            self._put_tags(b, run_b, tag_map)

        self._env.write(op)
        return self.get_run(run_id)

    def _check_tags(self, tags) -> dict[str, str]:
        if tags is None:
            return {}
        items = tags.items() if isinstance(tags, dict) else ((t.key, t.value) for t in tags)
        return {check_key(k, "key"): check_tag_value(k, v) for k, v in items}

    def _put_tags(self, b: Batch, run_b: bytes, tags: dict[str, str]) -> None:
        db = self._db["tags"]
        for k, v in tags.items():
            b.txn.put(run_b + u32(self.names.intern(b, k)), v.encode(), db=db)

    def get_run(self, run_id) -> Run:
        with self._env.read() as txn:
            run_b, rec = self._run_record(txn, run_id)
            return self.assemble_run(txn, run_b, rec)

    def experiment_of_run(self, run_id) -> str:
        with self._env.read() as txn:
            return str(self._run_record(txn, run_id)[1].experiment_id)

    def run_info(self, run_b: bytes, rec: RunRecord) -> RunInfo:
        rid = run_b.hex()
        return RunInfo(
            run_id=rid,
            run_uuid=rid,
            run_name=rec.run_name,
            experiment_id=str(rec.experiment_id),
            user_id=rec.user_id,
            status=rec.status,
            start_time=rec.start_time,
            end_time=rec.end_time,
            artifact_uri=rec.artifact_uri,
            lifecycle_stage=rec.lifecycle_stage,
        )

    def _scan_run(self, txn, table: str, run_b: bytes):
        """(key suffix, raw value) for every row of a run in a run-prefixed table."""
        with txn.cursor(db=self._db[table]) as cur:
            if not cur.set_range(run_b):
                return []
            out = []
            for k, v in cur:
                if not k.startswith(run_b):
                    break
                out.append((k[16:], v))
            return out

    def _named_rows(self, txn, table: str, run_b: bytes) -> list[tuple[str, bytes]]:
        """(key name, raw value) for a run's params, tags or latest metrics. This is the
        inner loop of search results, so the name cache is read directly."""
        by_id = self.names.by_id
        out = []
        with txn.cursor(db=self._db[table]) as cur:
            if cur.set_range(run_b):
                for k, v in cur:
                    if not k.startswith(run_b):
                        break
                    nid = int.from_bytes(k[16:], "big")
                    out.append((by_id.get(nid) or self.names.name(txn, nid), v))
        return out

    def run_params(self, txn, run_b: bytes) -> dict[str, str]:
        return {k: v.decode() for k, v in self._named_rows(txn, "params", run_b)}

    def run_tags(self, txn, run_b: bytes) -> dict[str, str]:
        return {k: v.decode() for k, v in self._named_rows(txn, "tags", run_b)}

    def run_latest_metrics(self, txn, run_b: bytes) -> list[Metric]:
        decode = LATEST.decode
        out = []
        for k, v in self._named_rows(txn, "latest", run_b):
            m = decode(v)
            out.append(Metric(k, m.value, m.timestamp, m.step))
        return out

    def run_inputs(self, txn, run_b: bytes, exp: int) -> list[DatasetInput]:
        out = []
        for h, v in self._scan_run(txn, "run_inputs", run_b):
            ds = DATASET.decode(txn.get(u64(exp) + h, db=self._db["datasets"]))
            tags = [InputTag(k, val) for k, val in INPUT.decode(v).tags]
            out.append(
                DatasetInput(
                    dataset=Dataset(
                        name=ds.name,
                        digest=ds.digest,
                        source_type=ds.source_type,
                        source=ds.source,
                        schema=ds.schema,
                        profile=ds.profile,
                    ),
                    tags=tags,
                )
            )
        return out

    def assemble_run(self, txn, run_b: bytes, rec: RunRecord) -> Run:
        return Run(
            info=self.run_info(run_b, rec),
            data=RunData(
                metrics=self.run_latest_metrics(txn, run_b),
                params=[Param(k, v.decode()) for k, v in self._named_rows(txn, "params", run_b)],
                tags=[RunTag(k, v.decode()) for k, v in self._named_rows(txn, "tags", run_b)],
            ),
            inputs=RunInputs(dataset_inputs=self.run_inputs(txn, run_b, rec.experiment_id)),
        )

    def _update_run(self, run_id, change, *, require_active: bool = True):
        """Run `change(batch, run key, record)`; store the record it returns."""
        check_run_id(run_id)

        def op(b: Batch):
            if require_active:
                run_b, rec = self._active_run_record(b.txn, run_id)
            else:
                run_b, rec = self._run_record(b.txn, run_id)
            rec = change(b, run_b, rec)
            b.txn.put(run_b, RUN.encode(rec), db=self._db["runs"])
            return rec

        return self._env.write(op)

    def update_run_info(self, run_id, status, end_time, run_name) -> RunInfo:
        if status is not None and status not in RunStatus.ALL:
            raise invalid(f"Invalid run status {status!r}: use one of {', '.join(RunStatus.ALL)}")
        if end_time is not None and (isinstance(end_time, bool) or not isinstance(end_time, int) or end_time < 0):
            raise invalid(f"Invalid value {end_time!r} for parameter 'end_time': a non-negative integer is required")
        if run_name is not None:
            run_name = check_tag_value(RUN_NAME_TAG, run_name)

        def change(b: Batch, run_b: bytes, rec: RunRecord) -> RunRecord:
            if status is not None:
                rec.status = status
            if end_time is not None:
                rec.end_time = end_time
            if run_name:
                rec.run_name = run_name
                self._put_tags(b, run_b, {RUN_NAME_TAG: run_name})
            return rec

        rec = self._update_run(run_id, change)
        return self.run_info(run_key(run_id), rec)

    def _set_lifecycle(self, run_id: str, stage: str) -> None:
        def change(b: Batch, run_b: bytes, rec: RunRecord) -> RunRecord:
            rec.lifecycle_stage = stage
            rec.deleted_time = now_ms() if stage == LifecycleStage.DELETED else None
            rec.deleted_with_experiment = False
            return rec

        self._update_run(run_id, change, require_active=False)
        self._active.pop(run_id, None)

    def delete_run(self, run_id) -> None:
        self._set_lifecycle(run_id, LifecycleStage.DELETED)

    def restore_run(self, run_id) -> None:
        self._set_lifecycle(run_id, LifecycleStage.ACTIVE)

    # ================================================================ run data
    def log_param(self, run_id, key, value) -> None:
        self.log_batch(run_id, params=[Param(key, value)])

    def set_tag(self, run_id, key, value) -> None:
        self.log_batch(run_id, tags=[RunTag(key, value)])

    def delete_tag(self, run_id, key) -> None:
        check_key(key, "key")

        def op(b: Batch) -> None:
            run_b, _rec = self._active_run_record(b.txn, run_id)
            nid = self.names.intern(b, key)
            if not b.txn.delete(run_b + u32(nid), db=self._db["tags"]):
                raise not_found(f"No tag with name: {key} in run with id {run_id}")

        self._env.write(op)

    def _metric_target(self, run_id: str) -> tuple[bytes, int]:
        """(run key, experiment id) of an active run, trusted for a second once checked."""
        hit = self._active.get(run_id)
        if hit is not None and hit[2] > time.monotonic():
            return hit[0], hit[1]
        with self._env.read() as txn:
            run_b, rec = self._active_run_record(txn, run_id)
        self._active[run_id] = (run_b, rec.experiment_id, time.monotonic() + _ACTIVE_TTL_S)
        return run_b, rec.experiment_id

    def name_id(self, name: str) -> int:
        """The interned id of a key, interning it (one durable write) the first time."""
        nid = self.names.cached(name)
        if nid is not None:
            return nid
        with self._env.read() as txn:
            nid = self.names.lookup(txn, name)
        if nid is None:
            nid = self._env.write(lambda b: self.names.intern(b, name))
        return nid

    def _checked_metrics(self, metrics: Iterable[Metric]) -> list[tuple[int, int, int, float]]:
        """(key id, timestamp, step, value) per metric: each checked once, each distinct
        key looked up once. Plain float/int points skip the general check (hot loop)."""
        nids: dict[str, int] = {}
        out = []
        append = out.append
        for m in metrics:
            key, value, ts, step = m.key, m.value, m.timestamp, m.step
            nid = nids.get(key)
            if nid is None:
                nid = nids[key] = self.name_id(check_key(key, "key"))
            if type(value) is float and type(ts) is int and type(step) is int and 0 <= ts < _I64 and -_I64 <= step < _I64:
                append((nid, ts, step, value))
            else:
                value, ts, step = check_metric(key, value, ts, step)
                append((nid, ts, step, value))
        return out

    def log_metric(self, run_id, metric, *, wait=False) -> None:
        if wait:
            self.log_batch(run_id, metrics=[metric], wait=True)
            return
        key = check_key(metric.key, "key")
        value, ts, step = check_metric(key, metric.value, metric.timestamp, metric.step)
        run_b, exp = self._metric_target(run_id)
        self._metric_buffer.add((run_b, exp, self.name_id(key), ts, step, value))

    def log_batch(self, run_id, metrics=(), params=(), tags=(), *, wait=True) -> None:
        check_run_id(run_id)
        check_batch_sizes(len(metrics), len(params), len(tags))
        param_map: dict[str, str] = {}
        for p in params:
            key = check_key(p.key, "key")
            value = check_param_value(key, p.value)
            if param_map.setdefault(key, value) != value:
                raise invalid(
                    f"Duplicate parameter keys have been submitted: ['{key}']. Please ensure "
                    "the request contains only one param value per param key."
                )
        tag_map = self._check_tags(tags)
        checked = self._checked_metrics(metrics)
        if not wait and not param_map and not tag_map:
            if checked:
                run_b, exp = self._metric_target(run_id)
                self._metric_buffer.extend([(run_b, exp, *c) for c in checked])
            return

        def op(b: Batch) -> None:
            run_b, rec = self._active_run_record(b.txn, run_id)
            if param_map:
                self._put_params(b, run_b, rec.experiment_id, run_id, param_map)
            if RUN_NAME_TAG in tag_map and tag_map[RUN_NAME_TAG] != rec.run_name:
                rec.run_name = tag_map[RUN_NAME_TAG]
                b.txn.put(run_b, RUN.encode(rec), db=self._db["runs"])
            self._put_tags(b, run_b, tag_map)
            if checked and wait:
                write_points(b, [(run_b, rec.experiment_id, *c) for c in checked])

        self._env.write(op)
        if checked and not wait:
            run_b, exp = self._metric_target(run_id)
            self._metric_buffer.extend([(run_b, exp, *c) for c in checked])

    def _put_params(self, b: Batch, run_b: bytes, exp: int, run_id: str, params: dict[str, str]) -> None:
        db = self._db["params"]
        for key, value in params.items():
            nid = self.names.intern(b, key)
            pkey = run_b + u32(nid)
            old = b.txn.get(pkey, db=db)
            if old is not None:
                old_value = old.decode()
                if old_value != value:
                    raise invalid(
                        f"Changing param values is not allowed. Param with key='{key}' was "
                        f"already logged with value='{old_value}' for run ID='{run_id}'. "
                        f"Attempted logging new param value '{value}'."
                    )
                continue
            b.txn.put(pkey, value.encode(), db=db)
            b.txn.put(u64(exp) + u32(nid) + param_hash(value) + run_b, b"", db=self._db["param_index"])

    def log_inputs(self, run_id, datasets) -> None:
        rows = []
        for di in datasets:
            ds = di.dataset
            if not ds.name or not ds.digest:
                raise invalid("A dataset input needs a non-empty 'name' and 'digest'")
            if len(ds.name) > 500 or len(ds.digest) > 36:
                raise invalid(f"Dataset {ds.name[:60]!r}: name is limited to 500 and digest to 36 characters")
            rows.append(
                (
                    dataset_hash(ds.name, ds.digest),
                    DatasetRecord(ds.name, ds.digest, ds.source_type, ds.source, ds.schema, ds.profile),
                    InputRecord([(t.key, t.value) for t in di.tags]),
                )
            )

        def op(b: Batch) -> None:
            run_b, rec = self._active_run_record(b.txn, run_id)
            for h, ds_rec, in_rec in rows:
                dkey = u64(rec.experiment_id) + h
                if b.txn.get(dkey, db=self._db["datasets"]) is None:
                    b.txn.put(dkey, DATASET.encode(ds_rec), db=self._db["datasets"])
                b.txn.put(run_b + h, INPUT.encode(in_rec), db=self._db["run_inputs"])

        self._env.write(op)

    # ================================================================ metric history
    def get_metric_history(self, run_id, key, max_results=None, page_token=None) -> Page[Metric]:
        check_key(key, "metric_key")
        with self._env.read() as txn:
            run_b, _rec = self._run_record(txn, run_id)
            nid = self.names.lookup(txn, key)
            points = [] if nid is None else read_history(txn, self._db["metrics"], run_b, nid, key)
        if max_results is None and page_token is None:
            return Page(points, None)
        limit = check_max_results(max_results, MAX_RESULTS_HISTORY, default=MAX_RESULTS_HISTORY)
        items, token = page_of(points, decode_offset(page_token), limit)
        return Page(items, token)

    def get_metric_history_bulk_interval(self, run_ids, key, max_results, start_step=None, end_step=None):
        histories = [(rid, self.get_metric_history(rid, key).items) for rid in run_ids]
        return sample_histories(histories, max_results, start_step, end_step)

    # ================================================================ search
    def search_runs(
        self, experiment_ids, filter_string=None, run_view_type=1, max_results=MAX_RESULTS_DEFAULT, order_by=None, page_token=None
    ) -> Page[Run]:
        from cairn.engine.tracking.runsearch import search_runs

        return search_runs(self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token)

    # ================================================================ artifacts
    def _artifact_root(self, run_id: str) -> str:
        """The run's artifact prefix inside the artifact store: '<exp>/<run>/artifacts'."""
        with self._env.read() as txn:
            _run_b, rec = self._run_record(txn, run_id)
        return artifact_prefix(run_id, rec)

    def put_artifact(self, run_id, path, data) -> FileInfo:
        from cairn.engine.store.artifacts import check_artifact_path

        rel = check_artifact_path(path)
        with self._env.read() as txn:
            _run_b, rec = self._active_run_record(txn, run_id)
        root = artifact_prefix(run_id, rec)
        info = self._artifacts.put(f"{root}/{rel}", data)
        return FileInfo(path=rel, is_dir=False, file_size=info.file_size)

    def list_artifacts(self, run_id, path=None) -> list[FileInfo]:
        return self._artifacts.list(self._artifact_root(run_id), path)

    def open_artifact(self, run_id, path):
        from cairn.engine.store.artifacts import check_artifact_path

        return self._artifacts.open(f"{self._artifact_root(run_id)}/{check_artifact_path(path)}")

    # ================================================================ lifecycle
    def flush(self) -> None:
        self._env.flush()

    def close(self) -> None:
        self._env.flush()


def artifact_prefix(run_id: str, rec: RunRecord) -> str:
    """Where a run's artifacts live in the artifact store's key space: the path after
    'mlflow-artifacts:/' (what the artifact proxy sees), or '<exp>/<run>/artifacts' for
    runs of experiments created with a foreign artifact location."""
    scheme = "mlflow-artifacts:"
    if rec.artifact_uri.startswith(scheme):
        return rec.artifact_uri[len(scheme):].strip("/")
    return f"{rec.experiment_id}/{run_id}/artifacts"
