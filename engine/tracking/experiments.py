"""The experiment half of LmdbTrackingStore: create, read, rename, tag, delete/restore.

A mixin rather than a separate object so the store keeps one flat method set (the
TrackingStore contract) while each file stays readable; it relies on the store's `_env`,
`_db`, `_active` and `_experiment_runs`.
"""
from __future__ import annotations

from cairn.engine import errors
from cairn.engine.errors import invalid, not_found
from cairn.engine.query.pagination import Page
from cairn.engine.store.keys import read_u64, u64
from cairn.engine.store.lmdbenv import Batch
from cairn.engine.store.timestamps import now_ms
from cairn.engine.tracking.contract import DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME, MAX_RESULTS_DEFAULT
from cairn.engine.tracking.entities import Experiment, ExperimentTag, LifecycleStage
from cairn.engine.tracking.records import EXPERIMENT, RUN, ExperimentRecord
from cairn.engine.tracking.validation import (
    check_experiment_id,
    check_experiment_name,
    check_key,
    check_tag_value,
)

MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20_000
_NEXT_EXPERIMENT_ID = b"next_experiment_id"


class ExperimentMethods:
    def _ensure_default_experiment(self) -> None:
        with self._env.read() as txn:
            if txn.get(u64(0), db=self._db["experiments"]) is not None:
                return

        def op(b: Batch) -> None:
            if b.txn.get(u64(0), db=self._db["experiments"]) is None:
                self._put_new_experiment(b, 0, DEFAULT_EXPERIMENT_NAME, None, {})

        self._env.write(op)

    def _put_new_experiment(
        self, b: Batch, exp: int, name: str, location: str | None, tags: dict[str, str]
    ) -> None:
        t = now_ms()
        rec = ExperimentRecord(
            name=name,
            artifact_location=location or f"mlflow-artifacts:/{exp}",
            lifecycle_stage=LifecycleStage.ACTIVE,
            creation_time=t,
            last_update_time=t,
            tags=tags,
        )
        b.txn.put(u64(exp), EXPERIMENT.encode(rec), db=self._db["experiments"])
        b.txn.put(name.encode(), u64(exp), db=self._db["experiment_names"])

    def create_experiment(self, name, artifact_location=None, tags=None) -> str:
        name = check_experiment_name(name)
        tag_map = self._check_experiment_tags(tags)

        def op(b: Batch) -> str:
            if b.txn.get(name.encode(), db=self._db["experiment_names"]) is not None:
                raise errors.already_exists(f"Experiment(name={name}) already exists.")
            exp = b.next_id(_NEXT_EXPERIMENT_ID)
            self._put_new_experiment(b, exp, name, artifact_location, tag_map)
            return str(exp)

        return self._env.write(op)

    @staticmethod
    def _check_experiment_tags(tags) -> dict[str, str]:
        items = tags.items() if isinstance(tags, dict) else ((t.key, t.value) for t in tags or ())
        out = {}
        for k, v in items:
            check_key(k, "key")
            out[k] = check_tag_value(k, v, MAX_EXPERIMENT_TAG_VALUE_LENGTH)
        return out

    def _experiment_record(self, txn, exp: int) -> ExperimentRecord:
        raw = txn.get(u64(exp), db=self._db["experiments"])
        if raw is None:
            raise not_found(f"No Experiment with id={exp} exists")
        return EXPERIMENT.decode(raw)

    @staticmethod
    def _experiment_entity(exp: int, rec: ExperimentRecord) -> Experiment:
        return Experiment(
            experiment_id=str(exp),
            name=rec.name,
            artifact_location=rec.artifact_location,
            lifecycle_stage=rec.lifecycle_stage,
            creation_time=rec.creation_time,
            last_update_time=rec.last_update_time,
            tags=[ExperimentTag(k, v) for k, v in rec.tags.items()],
        )

    def get_experiment(self, experiment_id) -> Experiment:
        exp = check_experiment_id(experiment_id)
        with self._env.read() as txn:
            return self._experiment_entity(exp, self._experiment_record(txn, exp))

    def get_experiment_by_name(self, name) -> Experiment | None:
        if not isinstance(name, str) or not name:
            raise invalid("Invalid experiment name: must be a non-empty string")
        with self._env.read() as txn:
            raw = txn.get(name.encode(), db=self._db["experiment_names"])
            if raw is None:
                return None
            exp = read_u64(raw)
            return self._experiment_entity(exp, self._experiment_record(txn, exp))

    def all_experiments(self) -> list[Experiment]:
        """Every experiment, deleted ones included, by id (experiments are few)."""
        with self._env.read() as txn:
            with txn.cursor(db=self._db["experiments"]) as cur:
                return [self._experiment_entity(read_u64(k), EXPERIMENT.decode(v)) for k, v in cur]

    def search_experiments(
        self, view_type=1, max_results=MAX_RESULTS_DEFAULT, filter_string=None, order_by=None, page_token=None
    ) -> Page[Experiment]:
        from cairn.engine.tracking.experimentsearch import search_experiments

        return search_experiments(
            self.all_experiments(), view_type, max_results, filter_string, order_by, page_token
        )

    def _update_experiment(self, experiment_id, change, *, require: str | None = LifecycleStage.ACTIVE):
        """Run `change(batch, exp, record)` on a re-read record and store the result."""
        exp = check_experiment_id(experiment_id)

        def op(b: Batch) -> None:
            rec = self._experiment_record(b.txn, exp)
            if require is not None and rec.lifecycle_stage != require:
                raise invalid(
                    f"The experiment {exp} must be in the '{require}' state. "
                    f"Current state is {rec.lifecycle_stage}."
                )
            change(b, exp, rec)
            rec.last_update_time = now_ms()
            b.txn.put(u64(exp), EXPERIMENT.encode(rec), db=self._db["experiments"])

        self._env.write(op)

    def rename_experiment(self, experiment_id, new_name) -> None:
        new_name = check_experiment_name(new_name)
        names = self._db["experiment_names"]

        def change(b: Batch, exp: int, rec: ExperimentRecord) -> None:
            if rec.name == new_name:
                return
            if b.txn.get(new_name.encode(), db=names) is not None:
                raise errors.already_exists(f"Experiment(name={new_name}) already exists.")
            b.txn.delete(rec.name.encode(), db=names)
            b.txn.put(new_name.encode(), u64(exp), db=names)
            rec.name = new_name

        self._update_experiment(experiment_id, change)

    def delete_experiment(self, experiment_id) -> None:
        if check_experiment_id(experiment_id) == int(DEFAULT_EXPERIMENT_ID):
            raise invalid("Cannot delete the default experiment '0'. This is an internally reserved experiment.")

        def change(b: Batch, exp: int, rec: ExperimentRecord) -> None:
            t = now_ms()
            rec.lifecycle_stage = LifecycleStage.DELETED
            rec.deleted_time = t
            # As MLflow: deleting an experiment deletes its runs; they remember when, so
            # restoring the experiment restores exactly those.
            for run_b, run in self._experiment_runs(b.txn, exp):
                if run.lifecycle_stage == LifecycleStage.ACTIVE:
                    run.lifecycle_stage = LifecycleStage.DELETED
                    run.deleted_time = t
                    run.deleted_with_experiment = True
                    b.txn.put(run_b, RUN.encode(run), db=self._db["runs"])

        self._update_experiment(experiment_id, change)
        self._active.clear()

    def restore_experiment(self, experiment_id) -> None:
        def change(b: Batch, exp: int, rec: ExperimentRecord) -> None:
            for run_b, run in self._experiment_runs(b.txn, exp):
                if run.lifecycle_stage == LifecycleStage.DELETED and run.deleted_with_experiment:
                    run.lifecycle_stage = LifecycleStage.ACTIVE
                    run.deleted_time = None
                    run.deleted_with_experiment = False
                    b.txn.put(run_b, RUN.encode(run), db=self._db["runs"])
            rec.lifecycle_stage = LifecycleStage.ACTIVE
            rec.deleted_time = None

        self._update_experiment(experiment_id, change, require=LifecycleStage.DELETED)

    def set_experiment_tag(self, experiment_id, key, value) -> None:
        check_key(key, "key")
        value = check_tag_value(key, value, MAX_EXPERIMENT_TAG_VALUE_LENGTH)

        def change(b: Batch, exp: int, rec: ExperimentRecord) -> None:
            rec.tags = {**rec.tags, key: value}

        self._update_experiment(experiment_id, change)

    def delete_experiment_tag(self, experiment_id, key) -> None:
        def change(b: Batch, exp: int, rec: ExperimentRecord) -> None:
            if key not in rec.tags:
                raise not_found(f"No tag with name: {key} in experiment with id {exp}")
            rec.tags = {k: v for k, v in rec.tags.items() if k != key}

        self._update_experiment(experiment_id, change)

    def _experiment_runs(self, txn, exp: int):
        """(run key, RunRecord) for every run of an experiment, newest first."""
        prefix = u64(exp)
        runs = self._db["runs"]
        with txn.cursor(db=self._db["exp_runs"]) as cur:
            if not cur.set_range(prefix):
                return []
            keys = []
            for k in cur.iternext(values=False):
                if not k.startswith(prefix):
                    break
                keys.append(k[16:32])
        return [(rk, RUN.decode(txn.get(rk, db=runs))) for rk in keys]
