"""/api/2.0/mlflow/runs/*: MLflow's run endpoints (service.proto), as the 3.x client calls
them (rest_store.py): everything is a POST with a JSON body except `get`, a GET with the
run id in the query string. Every write is durable before the response is sent, so a
client that reads right after writing sees its data, even after a crash.

MLflow 3's model links live in the logged-model store (engine/loggedmodels/lmdbstore.py): metrics
that name a `model_id` are linked to that model, LogInputs' `models` become the run's
model inputs, and every run this controller returns carries its model inputs and
outputs, which the 3.x client reads to link later metrics to the run's models.
`/runs/outputs` (LogOutputs) is served next to that store (controllers/loggedmodels.py).
"""
from __future__ import annotations

import json

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody

from cairn.app.wire import KeyValue, run_out
from cairn.engine import Engine
from cairn.engine.errors import invalid
from cairn.engine.governance.access import CAN_EDIT, CAN_MANAGE, Access
from cairn.engine.loggedmodels.lmdbstore import LoggedModelStore
from cairn.engine.loggedmodels.records import ModelMetric
from cairn.engine.tracking.contract import TrackingStore
from cairn.engine.tracking.entities import Dataset, InputTag, Metric, Param, Run, RunStatus, RunTag, ViewType
from cairn.engine.tracking.entities import DatasetInput as EngineDatasetInput
from cairn.engine.tracking.validation import check_batch_sizes

# The tag MLflow's stores append each logged model's MLmodel summary to (log-model).
LOGGED_MODELS_TAG = "mlflow.log-model.history"
_LOG_MODEL_FIELDS = ("artifact_path", "flavors", "utc_time_created", "run_id")
# protobuf JSON may carry an enum as its number; MLflow's RunStatus numbering.
_STATUS_BY_NUMBER = dict(enumerate(RunStatus.ALL, start=1))


def required_run_id(run_id: str | None, run_uuid: str | None = None) -> str:
    """MLflow accepts the deprecated `run_uuid` wherever `run_id` is missing."""
    rid = run_id or run_uuid
    if not rid:
        raise invalid(
            "Missing value for required parameter 'run_id'. See the API docs for more "
            "information about request parameters."
        )
    return rid


def run_view(run: Run, models: LoggedModelStore, txn=None) -> dict:
    """A run as service.proto's Run: the engine's info, data and datasets, plus the
    logged models it consumed and produced. Pass `txn` to read many runs in one snapshot."""
    run = run_out(run)
    rid = run.info.run_id
    return {
        "info": run.info,
        "data": run.data,
        "inputs": {
            "dataset_inputs": run.inputs.dataset_inputs,
            "model_inputs": models.run_model_inputs(rid, txn),
        },
        "outputs": {"model_outputs": models.run_outputs(rid, txn)},
    }


def link_model_metrics(models: LoggedModelStore, run_id: str, metrics: list) -> None:
    """Link the points that name a model to it. Called before the run's own write: it
    checks the run, the keys, the values and that each model exists, so a refused link
    leaves nothing behind; what can still fail after it (a param conflict in the same
    batch) leaves the model's links without the run's points. One engine transaction
    over both stores would close that window."""
    linked = [
        ModelMetric(
            key=m.key,
            value=m.value,
            timestamp=m.timestamp,
            step=m.step,
            model_id=m.model_id,
            dataset_name=m.dataset_name or None,
            dataset_digest=m.dataset_digest or None,
        )
        for m in metrics
        if m.model_id
    ]
    if linked:
        models.log_model_metrics(run_id, linked)


def _status(value: str | int | None) -> str | None:
    if value is None or isinstance(value, str):
        return value  # the engine names the valid statuses when it rejects one
    if value in _STATUS_BY_NUMBER:
        return _STATUS_BY_NUMBER[value]
    raise invalid(f"Invalid run status {value!r}: use one of {', '.join(RunStatus.ALL)}")


# -- request messages (service.proto); defaults are protobuf's for omitted fields ------
class CreateRun(msgspec.Struct):
    experiment_id: str
    user_id: str = ""
    run_name: str | None = None
    start_time: int | None = None
    tags: list[KeyValue] = []


class UpdateRun(msgspec.Struct):
    run_id: str | None = None
    run_uuid: str | None = None
    status: str | int | None = None
    end_time: int | None = None
    run_name: str | None = None


class RunId(msgspec.Struct):
    run_id: str


class LogMetric(msgspec.Struct):
    key: str
    value: float  # lenient decoding turns protobuf's "NaN"/"Infinity" strings into floats
    timestamp: int
    run_id: str | None = None
    run_uuid: str | None = None
    step: int = 0
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class BatchMetric(Metric, frozen=True):
    """An engine Metric decoded straight from the wire (no per-point copy on the hot
    path), with MLflow 3's optional model and dataset link."""

    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class LogParam(msgspec.Struct):
    key: str
    value: str = ""
    run_id: str | None = None
    run_uuid: str | None = None


class DeleteTag(msgspec.Struct):
    run_id: str
    key: str


class LogBatch(msgspec.Struct):
    run_id: str
    metrics: list[BatchMetric] = []
    params: list[KeyValue] = []
    tags: list[KeyValue] = []


class WireDatasetInput(msgspec.Struct):
    dataset: Dataset
    tags: list[KeyValue] = []  # KeyValue: protobuf JSON may omit an empty value


class ModelInput(msgspec.Struct):
    model_id: str


class LogInputs(msgspec.Struct):
    run_id: str
    datasets: list[WireDatasetInput] = []
    models: list[ModelInput] = []  # logged models the run consumed


class LogModel(msgspec.Struct):
    run_id: str
    model_json: str


class SearchRuns(msgspec.Struct):
    experiment_ids: list[str] = []
    filter: str | None = None
    run_view_type: str | int | None = None
    max_results: int | None = None
    order_by: list[str] = []
    page_token: str | None = None


class RunController(Controller):
    path = "/api/2.0/mlflow/runs"
    tags = ("runs",)

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, store: TrackingStore, engine: Engine, access: Access, data: JSONBody[CreateRun]) -> dict:
        access.experiment(data.experiment_id, CAN_EDIT)
        run = store.create_run(
            data.experiment_id,
            # With auth on, a run is its signed-in creator's, whatever the client says.
            user_id=access.caller.principal or data.user_id,
            start_time=data.start_time,
            tags=[RunTag(t.key, t.value) for t in data.tags],
            run_name=data.run_name or None,
        )
        return {"run": run_view(run, engine.logged_models)}

    @get("/get", sync_to_thread=False)
    def get_run(
        self, store: TrackingStore, engine: Engine, access: Access, run_id: str | None = None,
        run_uuid: str | None = None
    ) -> dict:
        rid = required_run_id(run_id, run_uuid)
        access.run(rid)
        return {"run": run_view(store.get_run(rid), engine.logged_models)}

    @post("/update", status_code=200, sync_to_thread=True)
    def update(self, store: TrackingStore, access: Access, data: JSONBody[UpdateRun]) -> dict:
        access.run(required_run_id(data.run_id, data.run_uuid), CAN_EDIT)
        info = store.update_run_info(
            required_run_id(data.run_id, data.run_uuid), _status(data.status), data.end_time, data.run_name
        )
        return {"run_info": info}

    @post("/delete", status_code=200, sync_to_thread=True)
    def delete(self, store: TrackingStore, access: Access, data: JSONBody[RunId]) -> dict:
        access.run(data.run_id, CAN_MANAGE)  # MLflow's: deleting is MANAGE's
        store.delete_run(data.run_id)
        return {}

    @post("/restore", status_code=200, sync_to_thread=True)
    def restore(self, store: TrackingStore, access: Access, data: JSONBody[RunId]) -> dict:
        access.run(data.run_id, CAN_MANAGE)
        store.restore_run(data.run_id)
        return {}

    @post("/log-metric", status_code=200, sync_to_thread=True)
    def log_metric(self, store: TrackingStore, engine: Engine, access: Access, data: JSONBody[LogMetric]) -> dict:
        access.run(required_run_id(data.run_id, data.run_uuid), CAN_EDIT)
        run_id = required_run_id(data.run_id, data.run_uuid)
        link_model_metrics(engine.logged_models, run_id, [data])
        store.log_metric(run_id, Metric(data.key, data.value, data.timestamp, data.step), wait=True)
        return {}

    @post("/log-parameter", status_code=200, sync_to_thread=True)
    def log_param(self, store: TrackingStore, access: Access, data: JSONBody[LogParam]) -> dict:
        access.run(required_run_id(data.run_id, data.run_uuid), CAN_EDIT)
        store.log_param(required_run_id(data.run_id, data.run_uuid), data.key, data.value)
        return {}

    @post("/set-tag", status_code=200, sync_to_thread=True)
    def set_tag(self, store: TrackingStore, access: Access, data: JSONBody[LogParam]) -> dict:
        access.run(required_run_id(data.run_id, data.run_uuid), CAN_EDIT)
        # SetTag has LogParam's fields exactly (run_id, run_uuid, key, value).
        store.set_tag(required_run_id(data.run_id, data.run_uuid), data.key, data.value)
        return {}

    @post("/delete-tag", status_code=200, sync_to_thread=True)
    def delete_tag(self, store: TrackingStore, access: Access, data: JSONBody[DeleteTag]) -> dict:
        access.run(data.run_id, CAN_EDIT)
        store.delete_tag(data.run_id, data.key)
        return {}

    @post("/log-batch", status_code=200, sync_to_thread=True)
    def log_batch(self, store: TrackingStore, engine: Engine, access: Access, data: JSONBody[LogBatch]) -> dict:
        access.run(data.run_id, CAN_EDIT)
        # Over-limit batches are refused before anything, model links included, is written.
        check_batch_sizes(len(data.metrics), len(data.params), len(data.tags))
        link_model_metrics(engine.logged_models, data.run_id, data.metrics)
        store.log_batch(
            data.run_id,
            metrics=data.metrics,
            params=[Param(p.key, p.value) for p in data.params],
            tags=[RunTag(t.key, t.value) for t in data.tags],
            wait=True,
        )
        return {}

    @post("/log-inputs", status_code=200, sync_to_thread=True)
    def log_inputs(self, store: TrackingStore, engine: Engine, access: Access, data: JSONBody[LogInputs]) -> dict:
        access.run(data.run_id, CAN_EDIT)
        datasets = [
            EngineDatasetInput(dataset=d.dataset, tags=[InputTag(t.key, t.value) for t in d.tags])
            for d in data.datasets
        ]
        # Called even with no datasets: an unknown or deleted run is still an error.
        store.log_inputs(data.run_id, datasets)
        for m in data.models:
            access.logged_model(m.model_id)
        if data.models:
            engine.logged_models.log_model_inputs(data.run_id, [m.model_id for m in data.models])
        return {}

    @post("/log-model", status_code=200, sync_to_thread=True)
    def log_model(self, store: TrackingStore, access: Access, data: JSONBody[LogModel]) -> dict:
        """MLflow 2's record of a logged model: its MLmodel summary appended to a JSON
        list in the run's `mlflow.log-model.history` tag, as MLflow's own stores do."""
        access.run(data.run_id, CAN_EDIT)
        try:
            model = json.loads(data.model_json)
        except ValueError:
            raise invalid(f"Malformed model info. \n {data.model_json} \n is not a valid JSON.") from None
        if not isinstance(model, dict):
            raise invalid(f"Malformed model info. \n {data.model_json} \n is not a JSON object.")
        missing = sorted(set(_LOG_MODEL_FIELDS) - set(model))
        if missing:
            raise invalid(f"Model json is missing mandatory fields: {missing}")
        # Read-modify-write outside one transaction: two log-model calls racing on the
        # same run can lose an entry, a window MLflow's SQL store has as well.
        previous = store.get_run(data.run_id).data.tags_dict.get(LOGGED_MODELS_TAG)
        history = []
        if previous:
            try:
                history = json.loads(previous)
            except ValueError:
                history = []
        store.set_tag(data.run_id, LOGGED_MODELS_TAG, json.dumps([*history, model]))
        return {}

    # Searching many runs is real work: it runs in a thread so the event loop keeps serving.
    @post("/search", status_code=200, sync_to_thread=True)
    def search(self, store: TrackingStore, engine: Engine, access: Access, data: JSONBody[SearchRuns]) -> dict:
        page = store.search_runs(
            access.readable_experiments(data.experiment_ids),
            filter_string=data.filter or None,
            run_view_type=ViewType.parse(data.run_view_type),
            max_results=data.max_results,
            order_by=data.order_by or None,
            page_token=data.page_token or None,
        )
        models = engine.logged_models
        with models.env.read() as txn:  # one snapshot for the whole page's model links
            out: dict = {"runs": [run_view(r, models, txn) for r in page.items]}
        if page.next_page_token:
            out["next_page_token"] = page.next_page_token
        return out
