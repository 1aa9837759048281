"""/api/2.0/mlflow/experiments/*: MLflow's experiment endpoints (service.proto)."""
from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from litestar.params import JSONBody

from cairn.app.wire import KeyValue, tags_dict
from cairn.engine.errors import not_found
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
    def create(self, store: TrackingStore, data: JSONBody[CreateExperiment]) -> dict:
        exp_id = store.create_experiment(data.name, data.artifact_location or None, tags_dict(data.tags))
        return {"experiment_id": exp_id}

    @get("/get", sync_to_thread=False)
    def get_experiment(self, store: TrackingStore, experiment_id: str) -> dict:
        return {"experiment": store.get_experiment(experiment_id)}

    @get("/get-by-name", sync_to_thread=False)
    def get_by_name(self, store: TrackingStore, experiment_name: str) -> dict:
        exp = store.get_experiment_by_name(experiment_name)
        if exp is None:
            raise not_found(f"Could not find experiment with name '{experiment_name}'")
        return {"experiment": exp}

    def _search(self, store: TrackingStore, req: SearchExperiments) -> dict:
        page = store.search_experiments(
            view_type=req.view_type,
            max_results=req.max_results,
            filter_string=req.filter,
            order_by=req.order_by or None,
            page_token=req.page_token,
        )
        out: dict = {"experiments": page.items}
        if page.next_page_token:
            out["next_page_token"] = page.next_page_token
        return out

    @post("/search", status_code=200, sync_to_thread=False)
    def search(self, store: TrackingStore, data: JSONBody[SearchExperiments]) -> dict:
        return self._search(store, data)

    @get("/search", sync_to_thread=False)
    def search_get(
        self,
        store: TrackingStore,
        max_results: int | None = None,
        page_token: str | None = None,
        filter: str | None = None,  # noqa: A002 - MLflow's parameter name
        order_by: list[str] | None = None,
        view_type: str | None = None,
    ) -> dict:
        req = SearchExperiments(max_results, page_token, filter, order_by or [], view_type)
        return self._search(store, req)

    @post("/update", status_code=200, sync_to_thread=True)
    def update(self, store: TrackingStore, data: JSONBody[UpdateExperiment]) -> dict:
        store.rename_experiment(data.experiment_id, data.new_name)
        return {}

    @post("/delete", status_code=200, sync_to_thread=True)
    def delete(self, store: TrackingStore, data: JSONBody[ExperimentId]) -> dict:
        store.delete_experiment(data.experiment_id)
        return {}

    @post("/restore", status_code=200, sync_to_thread=True)
    def restore(self, store: TrackingStore, data: JSONBody[ExperimentId]) -> dict:
        store.restore_experiment(data.experiment_id)
        return {}

    @post("/set-experiment-tag", status_code=200, sync_to_thread=True)
    def set_tag(self, store: TrackingStore, data: JSONBody[SetExperimentTag]) -> dict:
        store.set_experiment_tag(data.experiment_id, data.key, data.value)
        return {}

    @post("/delete-experiment-tag", status_code=200, sync_to_thread=True)
    def delete_tag(self, store: TrackingStore, data: JSONBody[DeleteExperimentTag]) -> dict:
        store.delete_experiment_tag(data.experiment_id, data.key)
        return {}
