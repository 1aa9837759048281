"""/api/2.0/mlflow/registered-models/*: MLflow's registered-model endpoints
(model_registry.proto), with the paths and methods the 3.x client calls
(RestStore._METHOD_TO_INFO): POST create/rename/set-tag, PATCH update, DELETE
delete/delete-tag, GET get/search, get-latest-versions by POST and GET, and `alias` as
POST (set), DELETE (delete) and GET (get a version by alias).

GET requests carry the message in the query string (repeated fields repeated:
`stages=a&stages=b`); the others carry JSON. Names may be one, two or three levels
(`iris`, `schema.iris`, `catalog.schema.iris`); the store checks them.
"""
from __future__ import annotations

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import JSONBody

from cairn.app.registrywire import (
    message_or_query,
    model_out,
    page_out,
    required,
    version_number,
    version_out,
)
from cairn.app.wire import KeyValue, tags_dict
from cairn.engine.governance.access import APPLY_TAG, MANAGE, MODIFY, Access
from cairn.engine.governance.privileges import REGISTERED_MODEL, Securable
from cairn.engine.registry.contract import RegistryStore


# -- request messages (model_registry.proto); every field optional on the wire so a
# missing one gets MLflow's "Missing value for required parameter" message, not a
# decoder's. Unknown fields (deployment_job_id) are ignored, as protobuf's parser does.
class CreateRegisteredModel(msgspec.Struct):
    name: str | None = None
    tags: list[KeyValue] = []
    description: str | None = None


class RenameRegisteredModel(msgspec.Struct):
    name: str | None = None
    new_name: str | None = None


class UpdateRegisteredModel(msgspec.Struct):
    name: str | None = None
    description: str | None = None


class RegisteredModelName(msgspec.Struct):
    name: str | None = None


class GetLatestVersions(msgspec.Struct):
    name: str | None = None
    stages: list[str] = []


class SetRegisteredModelTag(msgspec.Struct):
    name: str | None = None
    key: str | None = None
    value: str = ""


class DeleteRegisteredModelTag(msgspec.Struct):
    name: str | None = None
    key: str | None = None


class SetRegisteredModelAlias(msgspec.Struct):
    name: str | None = None
    alias: str | None = None
    version: str | int | None = None


class DeleteRegisteredModelAlias(msgspec.Struct):
    name: str | None = None
    alias: str | None = None


class RegisteredModelController(Controller):
    path = "/api/2.0/mlflow/registered-models"
    tags = ("registered-models",)

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, registry: RegistryStore, access: Access, data: JSONBody[CreateRegisteredModel]) -> dict:
        s = access.create_in_schema(REGISTERED_MODEL, required(data.name, "name"))
        rm = registry.create_registered_model(
            required(data.name, "name"), tags=tags_dict(data.tags), description=data.description or ""
        )
        access.created(s)
        return {"registered_model": model_out(rm)}

    @post("/rename", status_code=200, sync_to_thread=True)
    def rename(self, registry: RegistryStore, access: Access, data: JSONBody[RenameRegisteredModel]) -> dict:
        old = Securable(REGISTERED_MODEL, access.model(required(data.name, "name"), MANAGE))
        new = access.create_in_schema(REGISTERED_MODEL, required(data.new_name, "new_name"))
        rm = registry.rename_registered_model(data.name, data.new_name)
        access.moved(old, new)
        return {"registered_model": model_out(rm)}

    @patch("/update", status_code=200, sync_to_thread=True)
    def update(self, registry: RegistryStore, access: Access, data: JSONBody[UpdateRegisteredModel]) -> dict:
        access.model(required(data.name, "name"), MODIFY)
        # An absent description clears it, as in MLflow (proto3 has no "unset" string).
        rm = registry.update_registered_model(required(data.name, "name"), data.description or "")
        return {"registered_model": model_out(rm)}

    @delete("/delete", status_code=200, sync_to_thread=True)
    def delete_model(
        self, request: Request, registry: RegistryStore, access: Access, data: RegisteredModelName | None = None
    ) -> dict:
        msg = message_or_query(request, data, RegisteredModelName)
        full = access.model(required(msg.name, "name"), MANAGE)
        registry.delete_registered_model(msg.name)
        access.deleted(Securable(REGISTERED_MODEL, full))
        return {}

    @get("/get", sync_to_thread=False)
    def get_model(self, registry: RegistryStore, access: Access, name: str | None = None) -> dict:
        access.model(required(name, "name"))
        return {"registered_model": model_out(registry.get_registered_model(name))}

    # A search reads and sorts every model: in a thread, so the event loop keeps serving.
    @get("/search", sync_to_thread=True)
    def search(
        self,
        registry: RegistryStore,
        access: Access,
        filter: str | None = None,  # MLflow's parameter name
        max_results: int | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> dict:
        page = registry.search_registered_models(
            filter_string=filter or None,
            max_results=max_results,
            order_by=order_by or None,
            page_token=page_token or None,
        )
        # Only what the caller may see; a page can come back short.
        seen = set(access.visible(REGISTERED_MODEL, [m.name for m in page.items]))
        models = [m for m in page.items if m.name in seen]
        return page_out("registered_models", [model_out(m) for m in models], page.next_page_token)

    # The client tries POST first and falls back to GET on ENDPOINT_NOT_FOUND: both served.
    @post("/get-latest-versions", status_code=200, sync_to_thread=False)
    def latest_versions(self, registry: RegistryStore, access: Access, data: JSONBody[GetLatestVersions]) -> dict:
        return self._latest(registry, access, data.name, data.stages)

    @get("/get-latest-versions", sync_to_thread=False)
    def latest_versions_get(
        self, registry: RegistryStore, access: Access, name: str | None = None, stages: list[str] | None = None
    ) -> dict:
        return self._latest(registry, access, name, stages or [])

    @staticmethod
    def _latest(registry: RegistryStore, access: Access, name: str | None, stages: list[str]) -> dict:
        access.model(required(name, "name"))
        versions = registry.get_latest_versions(required(name, "name"), stages or None)
        return {"model_versions": [version_out(v) for v in versions]}

    @post("/set-tag", status_code=200, sync_to_thread=True)
    def set_tag(self, registry: RegistryStore, access: Access, data: JSONBody[SetRegisteredModelTag]) -> dict:
        access.model(required(data.name, "name"), APPLY_TAG)
        registry.set_registered_model_tag(required(data.name, "name"), required(data.key, "key"), data.value)
        return {}

    @delete("/delete-tag", status_code=200, sync_to_thread=True)
    def delete_tag(
        self, request: Request, registry: RegistryStore, access: Access, data: DeleteRegisteredModelTag | None = None
    ) -> dict:
        msg = message_or_query(request, data, DeleteRegisteredModelTag)
        access.model(required(msg.name, "name"), APPLY_TAG)
        registry.delete_registered_model_tag(required(msg.name, "name"), required(msg.key, "key"))
        return {}

    # -- aliases ---------------------------------------------------------------------
    @post("/alias", status_code=200, sync_to_thread=True)
    def set_alias(self, registry: RegistryStore, access: Access, data: JSONBody[SetRegisteredModelAlias]) -> dict:
        access.model(required(data.name, "name"), MODIFY)
        registry.set_registered_model_alias(
            required(data.name, "name"), required(data.alias, "alias"), version_number(data.version)
        )
        return {}

    @delete("/alias", status_code=200, sync_to_thread=True)
    def delete_alias(
        self, request: Request, registry: RegistryStore, access: Access, data: DeleteRegisteredModelAlias | None = None
    ) -> dict:
        msg = message_or_query(request, data, DeleteRegisteredModelAlias)
        access.model(required(msg.name, "name"), MODIFY)
        registry.delete_registered_model_alias(required(msg.name, "name"), required(msg.alias, "alias"))
        return {}

    @get("/alias", sync_to_thread=False)
    def get_by_alias(self, registry: RegistryStore, access: Access, name: str | None = None,
                     alias: str | None = None) -> dict:
        access.model(required(name, "name"))
        mv = registry.get_model_version_by_alias(required(name, "name"), required(alias, "alias"))
        return {"model_version": version_out(mv)}
