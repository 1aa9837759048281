"""/api/2.1/unity-catalog/{catalogs,schemas}: the registry's namespace, shaped as Unity
Catalog's REST API (the open-source server's paths and bodies), so a three-level model
name `catalog.schema.model` has a catalog and schema to live in.

As in Unity Catalog, create and get answer with the CatalogInfo / SchemaInfo itself
(not wrapped), lists with {"catalogs": [...]} / {"schemas": [...]}, delete with {}.
`main` and `main.default` always exist and cannot be deleted; a catalog or schema is
deleted only when empty. Renaming is not supported (`new_name` is refused, never
silently ignored). `owner` in an update transfers ownership (its owner's, MANAGE's or an
admin's to give); answers name the governance owner.

Creating a catalog is for admins; a schema needs CREATE_SCHEMA on its catalog; reading
one needs some privilege on it (USE_CATALOG, USE_SCHEMA, ...); changing or deleting it,
MANAGE. Lists hold only what the caller may see.
"""
from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import JSONBody

from cairn.app.registrywire import required
from cairn.engine.errors import invalid
from cairn.engine.governance.access import MANAGE, Access
from cairn.engine.governance.privileges import CATALOG, SCHEMA, Securable
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
    owner: str | None = None


def _owned(access: Access, s: Securable, info):
    owner = access.owner_of(s)
    return msgspec.structs.replace(info, owner=owner) if owner else info


def _no_rename(current: str, new_name: str | None) -> None:
    if new_name and new_name != current:
        raise invalid(f"Renaming '{current}' to '{new_name}' is not supported: create the new one and move models")


class CatalogController(Controller):
    path = "/api/2.1/unity-catalog/catalogs"
    tags = ("unity-catalog",)

    @post("/", status_code=200, sync_to_thread=True)
    def create(self, registry: RegistryStore, access: Access, data: JSONBody[CreateCatalog]) -> Catalog:
        access.admin("create a catalog")
        cat = registry.create_catalog(required(data.name, "name"), comment=data.comment or "")
        s = Securable(CATALOG, cat.name)
        access.created(s)
        return _owned(access, s, cat)

    @get("/", sync_to_thread=False)
    def list_catalogs(self, registry: RegistryStore, access: Access) -> dict:
        # Every catalog fits one page: no next_page_token.
        cats = registry.list_catalogs()
        seen = set(access.visible(CATALOG, [c.name for c in cats]))
        return {"catalogs": [_owned(access, Securable(CATALOG, c.name), c) for c in cats if c.name in seen]}

    @get("/{name:str}", sync_to_thread=False)
    def get_catalog(self, registry: RegistryStore, access: Access, name: str) -> Catalog:
        s = access.browse(CATALOG, name)
        return _owned(access, s, registry.get_catalog(name))

    @patch("/{name:str}", status_code=200, sync_to_thread=True)
    def update(self, registry: RegistryStore, access: Access, name: str, data: JSONBody[UpdateNamespace]) -> Catalog:
        s = access.catalog_object(CATALOG, name, MANAGE)
        _no_rename(name, data.new_name)
        cat = registry.update_catalog(name, data.comment or "") if data.comment is not None \
            or not data.owner else registry.get_catalog(name)
        if data.owner:
            access.transfer(s, data.owner)
        return _owned(access, s, cat)

    @delete("/{name:str}", status_code=200, sync_to_thread=True)
    def delete_catalog(self, registry: RegistryStore, access: Access, name: str) -> dict:
        s = access.catalog_object(CATALOG, name, MANAGE)
        registry.delete_catalog(name)
        access.deleted(s)
        return {}


class SchemaController(Controller):
    path = "/api/2.1/unity-catalog/schemas"
    tags = ("unity-catalog",)

    @post("/", status_code=200, sync_to_thread=True)
    def create(self, registry: RegistryStore, access: Access, data: JSONBody[CreateSchema]) -> Schema:
        catalog = required(data.catalog_name, "catalog_name")
        name = required(data.name, "name")
        # A dot in `name` would make a four-part full name: say so in the caller's terms.
        if "." in name:
            raise invalid(f"Invalid schema name '{name}': give the bare name and the catalog in catalog_name")
        s = access.create_schema(f"{catalog}.{name}")
        schema = registry.create_schema(f"{catalog}.{name}", comment=data.comment or "")
        access.created(s)
        return _owned(access, s, schema)

    @get("/", sync_to_thread=False)
    def list_schemas(self, registry: RegistryStore, access: Access, catalog_name: str | None = None) -> dict:
        access.browse(CATALOG, required(catalog_name, "catalog_name"))
        schemas = registry.list_schemas(catalog_name)
        seen = set(access.visible(SCHEMA, [s.full_name for s in schemas]))
        return {"schemas": [_owned(access, Securable(SCHEMA, s.full_name), s) for s in schemas
                            if s.full_name in seen]}

    @get("/{full_name:str}", sync_to_thread=False)
    def get_schema(self, registry: RegistryStore, access: Access, full_name: str) -> Schema:
        s = access.browse(SCHEMA, full_name)
        return _owned(access, s, registry.get_schema(full_name))

    @patch("/{full_name:str}", status_code=200, sync_to_thread=True)
    def update(self, registry: RegistryStore, access: Access, full_name: str,
               data: JSONBody[UpdateNamespace]) -> Schema:
        s = access.catalog_object(SCHEMA, full_name, MANAGE)
        _no_rename(full_name.rpartition(".")[2], data.new_name)
        schema = registry.update_schema(full_name, data.comment or "") if data.comment is not None \
            or not data.owner else registry.get_schema(full_name)
        if data.owner:
            access.transfer(s, data.owner)
        return _owned(access, s, schema)

    @delete("/{full_name:str}", status_code=200, sync_to_thread=True)
    def delete_schema(self, registry: RegistryStore, access: Access, full_name: str) -> dict:
        s = access.catalog_object(SCHEMA, full_name, MANAGE)
        registry.delete_schema(full_name)
        access.deleted(s)
        return {}
