"""/api/2.0/mlflow/logged-models/*: MLflow 3's logged-model endpoints (service.proto), and
/api/2.0/mlflow/runs/outputs (LogOutputs), which records the models a run produced.

Paths and methods are those the 3.x client calls (RestStore._METHOD_TO_INFO):
POST create, GET/PATCH(finalize)/DELETE /{model_id}, POST /search, PATCH /{model_id}/tags,
DELETE /{model_id}/tags/{tag_key}, POST /{model_id}/params and
GET /{model_id}/artifacts/directories.
"""
from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody

from cairn.app.wire import KeyValue, number, tags_dict
from cairn.engine import Engine
from cairn.engine.errors import invalid
from cairn.engine.governance.access import CAN_EDIT, CAN_MANAGE, Access
from cairn.engine.loggedmodels.lmdbstore import LoggedModelStore
from cairn.engine.loggedmodels.records import LoggedModel, LoggedModelStatus, ModelOutput

# service.proto's LoggedModelStatus enum: protobuf JSON writes the names, and a client
# may also send the numbers.
_STATUS_OUT = {
    LoggedModelStatus.PENDING: "LOGGED_MODEL_PENDING",
    LoggedModelStatus.READY: "LOGGED_MODEL_READY",
    LoggedModelStatus.FAILED: "LOGGED_MODEL_UPLOAD_FAILED",
}
_STATUS_IN = {
    "LOGGED_MODEL_READY": LoggedModelStatus.READY,
    "LOGGED_MODEL_UPLOAD_FAILED": LoggedModelStatus.FAILED,
    "READY": LoggedModelStatus.READY,
    "FAILED": LoggedModelStatus.FAILED,
    "2": LoggedModelStatus.READY,
    "3": LoggedModelStatus.FAILED,
}


class CreateLoggedModel(msgspec.Struct):
    experiment_id: str
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[KeyValue] = []
    tags: list[KeyValue] = []


class FinalizeLoggedModel(msgspec.Struct):
    status: str | int
    model_id: str | None = None


class SetLoggedModelTags(msgspec.Struct):
    tags: list[KeyValue] = []
    model_id: str | None = None


class LogLoggedModelParams(msgspec.Struct):
    params: list[KeyValue] = []
    model_id: str | None = None


class DatasetFilter(msgspec.Struct):
    dataset_name: str = ""
    dataset_digest: str | None = None


class OrderBy(msgspec.Struct):
    field_name: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class SearchLoggedModels(msgspec.Struct):
    experiment_ids: list[str] = []
    filter: str | None = None
    datasets: list[DatasetFilter] = []
    max_results: int | None = None
    order_by: list[OrderBy] = []
    page_token: str | None = None


class WireModelOutput(msgspec.Struct):
    model_id: str
    step: int = 0


class LogOutputs(msgspec.Struct):
    run_id: str
    models: list[WireModelOutput] = []



def model_out(model: LoggedModel) -> dict:
    """A LoggedModel as service.proto's JSON: the status as its enum name, non-finite
    metric values as strings."""
    out = msgspec.to_builtins(model)
    out["info"]["status"] = _STATUS_OUT[model.info.status]
    for m in out["data"].get("metrics", ()):
        m["value"] = number(m["value"])
    return out


def _status_in(status: str | int) -> str:
    found = _STATUS_IN.get(str(status).upper())
    if found is None:
        raise invalid(
            f"Invalid value {status!r} for parameter 'status': use LOGGED_MODEL_READY or "
            "LOGGED_MODEL_UPLOAD_FAILED"
        )
    return found


def _same_id(path_id: str, body_id: str | None) -> None:
    if body_id and body_id != path_id:
        raise invalid(f"The model_id in the body ({body_id!r}) differs from the one in the path ({path_id!r})")


class LoggedModelController(Controller):
    path = "/api/2.0/mlflow/logged-models"
    tags = ("logged-models",)

    @staticmethod
    def _store(engine: Engine) -> LoggedModelStore:
        return engine.logged_models

    @post("/", status_code=200, sync_to_thread=True)
    def create(self, engine: Engine, access: Access, data: JSONBody[CreateLoggedModel]) -> dict:
        access.experiment(data.experiment_id, CAN_EDIT)
        if data.source_run_id:
            access.run(data.source_run_id)
        model = self._store(engine).create_logged_model(
            data.experiment_id,
            name=data.name or None,
            source_run_id=data.source_run_id or None,
            tags=tags_dict(data.tags),
            params=tags_dict(data.params),
            model_type=data.model_type or None,
        )
        return {"model": model_out(model)}

    @post("/search", status_code=200, sync_to_thread=True)
    def search(self, engine: Engine, access: Access, data: JSONBody[SearchLoggedModels]) -> dict:
        readable = access.readable_experiments(data.experiment_ids)
        if data.experiment_ids and not readable:
            return {"models": []}  # as over experiments that do not exist
        page = self._store(engine).search_logged_models(
            readable,
            filter_string=data.filter or None,
            datasets=[{"dataset_name": d.dataset_name, "dataset_digest": d.dataset_digest} for d in data.datasets],
            max_results=data.max_results or None,
            order_by=[msgspec.structs.asdict(o) for o in data.order_by],
            page_token=data.page_token or None,
        )
        out: dict = {"models": [model_out(m) for m in page.items]}
        if page.next_page_token:
            out["next_page_token"] = page.next_page_token
        return out

    @get("/{model_id:str}", sync_to_thread=False)
    def get_model(self, engine: Engine, access: Access, model_id: str, allow_deleted: str | None = None) -> dict:
        access.logged_model(model_id)
        deleted_too = (allow_deleted or "").lower() == "true"
        return {"model": model_out(self._store(engine).get_logged_model(model_id, allow_deleted=deleted_too))}

    @patch("/{model_id:str}", status_code=200, sync_to_thread=True)
    def finalize(self, engine: Engine, access: Access, model_id: str, data: JSONBody[FinalizeLoggedModel]) -> dict:
        access.logged_model(model_id, CAN_EDIT)
        _same_id(model_id, data.model_id)
        model = self._store(engine).finalize_logged_model(model_id, _status_in(data.status))
        return {"model": model_out(model)}

    @delete("/{model_id:str}", status_code=200, sync_to_thread=True)
    def delete_model(self, engine: Engine, access: Access, model_id: str) -> dict:
        access.logged_model(model_id, CAN_MANAGE)
        self._store(engine).delete_logged_model(model_id)
        return {}

    @patch("/{model_id:str}/tags", status_code=200, sync_to_thread=True)
    def set_tags(self, engine: Engine, access: Access, model_id: str, data: JSONBody[SetLoggedModelTags]) -> dict:
        access.logged_model(model_id, CAN_EDIT)
        _same_id(model_id, data.model_id)
        self._store(engine).set_logged_model_tags(model_id, tags_dict(data.tags))
        return {}

    @delete("/{model_id:str}/tags/{tag_key:str}", status_code=200, sync_to_thread=True)
    def delete_tag(self, engine: Engine, access: Access, model_id: str, tag_key: str) -> dict:
        access.logged_model(model_id, CAN_EDIT)
        self._store(engine).delete_logged_model_tag(model_id, tag_key)
        return {}

    @post("/{model_id:str}/params", status_code=200, sync_to_thread=True)
    def log_params(self, engine: Engine, access: Access, model_id: str, data: JSONBody[LogLoggedModelParams]) -> dict:
        access.logged_model(model_id, CAN_EDIT)
        _same_id(model_id, data.model_id)
        self._store(engine).log_logged_model_params(model_id, tags_dict(data.params))
        return {}

    @get("/{model_id:str}/artifacts/directories", sync_to_thread=False)
    def list_artifacts(
        self, engine: Engine, access: Access, model_id: str, artifact_directory_path: str | None = None,
        page_token: str | None = None
    ) -> dict:
        access.logged_model(model_id)
        store = self._store(engine)
        files = store.list_artifacts(model_id, artifact_directory_path or None)
        model = store.get_logged_model(model_id)
        return {"root_uri": model.info.artifact_uri, "files": files}


class RunOutputsController(Controller):
    """LogOutputs: the models a run produced (MLflow 3's log_model calls it)."""

    path = "/api/2.0/mlflow/runs"
    tags = ("runs",)

    @post("/outputs", status_code=200, sync_to_thread=True)
    def log_outputs(self, engine: Engine, access: Access, data: JSONBody[LogOutputs]) -> dict:
        access.run(data.run_id, CAN_EDIT)
        for m in data.models:
            access.logged_model(m.model_id)
        engine.logged_models.log_outputs(data.run_id, [ModelOutput(m.model_id, m.step) for m in data.models])
        return {}
