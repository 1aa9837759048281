"""/api/2.1/unity-catalog/{catalogs,schemas}: the registry's namespace, shaped as Unity
Catalog's REST API (the open-source server's paths and bodies), so a three-level model
name `catalog.schema.model` has a catalog and schema to live in.

As in Unity Catalog, create and get answer with the CatalogInfo / SchemaInfo itself
(not wrapped), lists with {"catalogs": [...]} / {"schemas": [...]}, delete with {}.
`main` and `main.default` always exist and cannot be deleted; a catalog or schema is
deleted only when empty. Renaming is not supported (`new_name` is refused, never
silently ignored).
"""
from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody

from cairn.app.registrywire import required
from cairn.engine.errors import invalid
from cairn.engine.registry.contract import RegistryStore
from cairn.engine.registry.entities import Catalog, Schema


class CreateCatalog(msgspec.Struct):
    name: str | None = None
    comment: str | None = None


class CreateSchema(msgspec.Struct):
    name: str | None = None
    catalog_name: str | None = None
    comment: str | None = None


class UpdateNamespace(msgspec.Struct):
    comment: str | None = None
    new_name: str | None = None


def _no_rename(current: str, new_name: str | None) -> None:
    if new_name and new_name != current:
        raise invalid(f"Renaming '{current}' to '{new_name}' is not supported: create the new one and move models")


class CatalogController(Controller):
    path = "/api/2.1/unity-catalog/catalogs"
    tags = ("unity-catalog",)

    @post("/", status_code=200, sync_to_thread=True)
    def create(self, registry: RegistryStore, data: JSONBody[CreateCatalog]) -> Catalog:
        return registry.create_catalog(required(data.name, "name"), comment=data.comment or "")

    @get("/", sync_to_thread=False)
    def list_catalogs(self, registry: RegistryStore) -> dict:
        # Every catalog fits one page: no next_page_token.
        return {"catalogs": registry.list_catalogs()}

    @get("/{name:str}", sync_to_thread=False)
    def get_catalog(self, registry: RegistryStore, name: str) -> Catalog:
        return registry.get_catalog(name)

    @patch("/{name:str}", status_code=200, sync_to_thread=True)
    def update(self, registry: RegistryStore, name: str, data: JSONBody[UpdateNamespace]) -> Catalog:
        _no_rename(name, data.new_name)
        return registry.update_catalog(name, data.comment or "")

    @delete("/{name:str}", status_code=200, sync_to_thread=True)
    def delete_catalog(self, registry: RegistryStore, name: str) -> dict:
        registry.delete_catalog(name)
        return {}


class SchemaController(Controller):
    path = "/api/2.1/unity-catalog/schemas"
    tags = ("unity-catalog",)

    @post("/", status_code=200, sync_to_thread=True)
    def create(self, registry: RegistryStore, data: JSONBody[CreateSchema]) -> Schema:
        catalog = required(data.catalog_name, "catalog_name")
        name = required(data.name, "name")
        # A dot in `name` would make a four-part full name: say so in the caller's terms.
        if "." in name:
            raise invalid(f"Invalid schema name '{name}': give the bare name and the catalog in catalog_name")
        return registry.create_schema(f"{catalog}.{name}", comment=data.comment or "")

    @get("/", sync_to_thread=False)
    def list_schemas(self, registry: RegistryStore, catalog_name: str | None = None) -> dict:
        return {"schemas": registry.list_schemas(required(catalog_name, "catalog_name"))}

    @get("/{full_name:str}", sync_to_thread=False)
    def get_schema(self, registry: RegistryStore, full_name: str) -> Schema:
        return registry.get_schema(full_name)

    @patch("/{full_name:str}", status_code=200, sync_to_thread=True)
    def update(self, registry: RegistryStore, full_name: str, data: JSONBody[UpdateNamespace]) -> Schema:
        _no_rename(full_name.rpartition(".")[2], data.new_name)
        return registry.update_schema(full_name, data.comment or "")

    @delete("/{full_name:str}", status_code=200, sync_to_thread=True)
    def delete_schema(self, registry: RegistryStore, full_name: str) -> dict:
        registry.delete_schema(full_name)
        return {}
