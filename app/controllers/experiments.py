"""/api/2.0/mlflow/experiments/*: MLflow's experiment endpoints (service.proto)."""
from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody

from cairn.app.wire import KeyValue, tags_dict
from cairn.engine.errors import not_found
from cairn.engine.governance.access import CAN_EDIT, CAN_MANAGE, Access
from cairn.engine.governance.privileges import EXPERIMENT, Securable
from cairn.engine.tracking.contract import TrackingStore


class CreateExperiment(msgspec.Struct):
    name: str
    artifact_location: str | None = None
    tags: list[KeyValue] = []


class SearchExperiments(msgspec.Struct):
    max_results: int | None = None
    page_token: str | None = None
    filter: str | None = None
    order_by: list[str] = []
    view_type: str | int | None = None


class ExperimentId(msgspec.Struct):
    experiment_id: str


class UpdateExperiment(msgspec.Struct):
    experiment_id: str
    new_name: str


class SetExperimentTag(msgspec.Struct):
    experiment_id: str
    key: str
    value: str = ""


class DeleteExperimentTag(msgspec.Struct):
    experiment_id: str
    key: str


class ExperimentController(Controller):
    path = "/api/2.0/mlflow/experiments"
    tags = ["experiments"]

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, store: TrackingStore, access: Access, data: JSONBody[CreateExperiment]) -> dict:
        access.signed_in()  # anyone signed in may; the creator owns it (MLflow's MANAGE)
        exp_id = store.create_experiment(data.name, data.artifact_location or None, tags_dict(data.tags))
        access.created(Securable(EXPERIMENT, exp_id))
        return {"experiment_id": exp_id}

    @get("/get", sync_to_thread=False)
    def get_experiment(self, store: TrackingStore, access: Access, experiment_id: str) -> dict:
        return {"experiment": store.get_experiment(access.experiment(experiment_id))}

    @get("/get-by-name", sync_to_thread=False)
    def get_by_name(self, store: TrackingStore, access: Access, experiment_name: str) -> dict:
        exp = store.get_experiment_by_name(experiment_name)
        if exp is None or not access.experiment_visible(exp.experiment_id):
            raise not_found(f"Could not find experiment with name '{experiment_name}'")
        access.experiment(exp.experiment_id)
        return {"experiment": exp}

    def _search(self, store: TrackingStore, access: Access, req: SearchExperiments) -> dict:
        page = store.search_experiments(
            view_type=req.view_type,
            max_results=req.max_results,
            filter_string=req.filter,
            order_by=req.order_by or None,
            page_token=req.page_token,
        )
        # Pages hold only what the caller may read, so a page can come back short.
        keep = set(access.readable_experiments(e.experiment_id for e in page.items))
        out: dict = {"experiments": [e for e in page.items if e.experiment_id in keep]}
        if page.next_page_token:
            out["next_page_token"] = page.next_page_token
        return out

    @post("/search", status_code=200, sync_to_thread=False)
    def search(self, store: TrackingStore, access: Access, data: JSONBody[SearchExperiments]) -> dict:
        return self._search(store, access, data)

    @get("/search", sync_to_thread=False)
    def search_get(
        self,
        store: TrackingStore,
        access: Access,
        max_results: int | None = None,
        page_token: str | None = None,
        filter: str | None = None,  # noqa: A002 - MLflow's parameter name
        order_by: list[str] | None = None,
        view_type: str | None = None,
    ) -> dict:
        req = SearchExperiments(max_results, page_token, filter, order_by or [], view_type)
        return self._search(store, access, req)

    @post("/update", status_code=200, sync_to_thread=True)
    def update(self, store: TrackingStore, access: Access, data: JSONBody[UpdateExperiment]) -> dict:
        access.experiment(data.experiment_id, CAN_EDIT)
        store.rename_experiment(data.experiment_id, data.new_name)
        return {}

    @post("/delete", status_code=200, sync_to_thread=True)
    def delete(self, store: TrackingStore, access: Access, data: JSONBody[ExperimentId]) -> dict:
        access.experiment(data.experiment_id, CAN_MANAGE)
        store.delete_experiment(data.experiment_id)
        return {}

    @post("/restore", status_code=200, sync_to_thread=True)
    def restore(self, store: TrackingStore, access: Access, data: JSONBody[ExperimentId]) -> dict:
        access.experiment(data.experiment_id, CAN_MANAGE)
        store.restore_experiment(data.experiment_id)
        return {}

    @post("/set-experiment-tag", status_code=200, sync_to_thread=True)
    def set_tag(self, store: TrackingStore, access: Access, data: JSONBody[SetExperimentTag]) -> dict:
        access.experiment(data.experiment_id, CAN_EDIT)
        store.set_experiment_tag(data.experiment_id, data.key, data.value)
        return {}

    @post("/delete-experiment-tag", status_code=200, sync_to_thread=True)
    def delete_tag(self, store: TrackingStore, access: Access, data: JSONBody[DeleteExperimentTag]) -> dict:
        access.experiment(data.experiment_id, CAN_EDIT)
        store.delete_experiment_tag(data.experiment_id, data.key)
        return {}
