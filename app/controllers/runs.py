"""/api/2.0/mlflow/runs/*: MLflow's run endpoints (service.proto), as the 3.x client calls
them (rest_store.py): everything is a POST with a JSON body except `get`, a GET with the
run id in the query string. Every write is durable before the response is sent, so a
client that reads right after writing sees its data, even after a crash.

`/runs/outputs` (LogOutputs: logged models produced by a run) is not here: it belongs
with the logged-model store, which owns the model-to-run links.
"""
from __future__ import annotations

import json

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody

from engine.entities import Dataset, InputTag, Metric, Param, RunStatus, RunTag, ViewType
from engine.entities import DatasetInput as EngineDatasetInput
from engine.errors import invalid
from engine.store import TrackingStore

from ..wire import KeyValue, run_out

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
    # model_id, dataset_name and dataset_digest are accepted and not stored: the engine's
    # metric points carry no model or dataset link.


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
    # Engine Metric decodes straight from the wire: no per-point copy on the hot path.
    metrics: list[Metric] = []
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
    # Logged-model inputs (sent when metrics name a model_id) are accepted so the client
    # carries on; the engine has no run-to-model-input table to keep them in yet.
    models: list[ModelInput] = []


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
    tags = ["runs"]

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, store: TrackingStore, data: JSONBody[CreateRun]) -> dict:
        run = store.create_run(
            data.experiment_id,
            user_id=data.user_id,
            start_time=data.start_time,
            tags=[RunTag(t.key, t.value) for t in data.tags],
            run_name=data.run_name or None,
        )
        return {"run": run_out(run)}

    @get("/get", sync_to_thread=False)
    def get_run(self, store: TrackingStore, run_id: str | None = None, run_uuid: str | None = None) -> dict:
        return {"run": run_out(store.get_run(required_run_id(run_id, run_uuid)))}

    @post("/update", status_code=200, sync_to_thread=True)
    def update(self, store: TrackingStore, data: JSONBody[UpdateRun]) -> dict:
        info = store.update_run_info(
            required_run_id(data.run_id, data.run_uuid), _status(data.status), data.end_time, data.run_name
        )
        return {"run_info": info}

    @post("/delete", status_code=200, sync_to_thread=True)
    def delete(self, store: TrackingStore, data: JSONBody[RunId]) -> dict:
        store.delete_run(data.run_id)
        return {}

    @post("/restore", status_code=200, sync_to_thread=True)
    def restore(self, store: TrackingStore, data: JSONBody[RunId]) -> dict:
        store.restore_run(data.run_id)
        return {}

    @post("/log-metric", status_code=200, sync_to_thread=True)
    def log_metric(self, store: TrackingStore, data: JSONBody[LogMetric]) -> dict:
        metric = Metric(data.key, data.value, data.timestamp, data.step)
        store.log_metric(required_run_id(data.run_id, data.run_uuid), metric, wait=True)
        return {}

    @post("/log-parameter", status_code=200, sync_to_thread=True)
    def log_param(self, store: TrackingStore, data: JSONBody[LogParam]) -> dict:
        store.log_param(required_run_id(data.run_id, data.run_uuid), data.key, data.value)
        return {}

    @post("/set-tag", status_code=200, sync_to_thread=True)
    def set_tag(self, store: TrackingStore, data: JSONBody[LogParam]) -> dict:
        # SetTag has LogParam's fields exactly (run_id, run_uuid, key, value).
        store.set_tag(required_run_id(data.run_id, data.run_uuid), data.key, data.value)
        return {}

    @post("/delete-tag", status_code=200, sync_to_thread=True)
    def delete_tag(self, store: TrackingStore, data: JSONBody[DeleteTag]) -> dict:
        store.delete_tag(data.run_id, data.key)
        return {}

    @post("/log-batch", status_code=200, sync_to_thread=True)
    def log_batch(self, store: TrackingStore, data: JSONBody[LogBatch]) -> dict:
        store.log_batch(
            data.run_id,
            metrics=data.metrics,
            params=[Param(p.key, p.value) for p in data.params],
            tags=[RunTag(t.key, t.value) for t in data.tags],
            wait=True,
        )
        return {}

    @post("/log-inputs", status_code=200, sync_to_thread=True)
    def log_inputs(self, store: TrackingStore, data: JSONBody[LogInputs]) -> dict:
        datasets = [
            EngineDatasetInput(dataset=d.dataset, tags=[InputTag(t.key, t.value) for t in d.tags])
            for d in data.datasets
        ]
        if datasets:
            store.log_inputs(data.run_id, datasets)
        else:
            store.get_run(data.run_id)  # still answer 404 for an unknown run
        return {}

    @post("/log-model", status_code=200, sync_to_thread=True)
    def log_model(self, store: TrackingStore, data: JSONBody[LogModel]) -> dict:
        """MLflow 2's record of a logged model: its MLmodel summary appended to a JSON
        list in the run's `mlflow.log-model.history` tag, as MLflow's own stores do."""
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
    def search(self, store: TrackingStore, data: JSONBody[SearchRuns]) -> dict:
        page = store.search_runs(
            data.experiment_ids,
            filter_string=data.filter or None,
            run_view_type=ViewType.parse(data.run_view_type),
            max_results=data.max_results,
            order_by=data.order_by or None,
            page_token=data.page_token or None,
        )
        out: dict = {"runs": [run_out(r) for r in page.items]}
        if page.next_page_token:
            out["next_page_token"] = page.next_page_token
        return out
