"""/api/2.0/feature-store: feature tables over HTTP, the same operations as the SDK's
FeatureEngineeringClient and `cairn features`, with MLflow's error codes.

  POST   /feature-tables/create      {name, primary_keys, timestamp_keys?, schema {col: type},
                                      description?, tags?} -> {"feature_table": ...}
  GET    /feature-tables/get?name=   -> {"feature_table": ...}
  GET    /feature-tables/describe?name= -> {feature_table, history, models} (the UI's)
  GET    /feature-tables/list        -> {"feature_tables": [...]} (by full name)
  DELETE /feature-tables/delete?name= -> {}
  POST   /feature-tables/set-tag     {name, key, value} -> {}
  POST   /feature-tables/delete-tag  {name, key} -> {}
  POST   /feature-tables/write?name= body: an Arrow IPC stream
                                      (application/vnd.apache.arrow.stream) or JSON
                                      {"records": [...]} -> {"version": N}
  GET    /feature-tables/read?name=&version=&max_rows= -> {"rows": [...], "total_rows": N}
  POST   /feature-tables/publish     {name, ttl_seconds?} -> the publish result
  POST   /feature-specs/create       {name, features: [FeatureLookup as JSON], exclude_columns?}
                                      -> {"feature_spec": ...} (what a FEATURE_SPEC endpoint serves)
  GET    /feature-specs/get?name=    -> {"feature_spec": ...}
  DELETE /feature-specs/delete?name= -> {}
  POST   /online/lookup              {name, keys: [[...]], features?} -> {"results": [...]}

Who may: creating a table needs CREATE_TABLE on its schema, a spec CREATE_FUNCTION (and
SELECT on every table it looks up); reading rows, describing and looking up need SELECT;
writing and publishing MODIFY; tags APPLY_TAG; deleting MANAGE; a spec is read with
EXECUTE. The list holds only the tables the caller may see.

The offline routes need the `features` extra; `online/lookup` reads LMDB only. Every
write is the engine's (one Delta commit after every check), so a refused request leaves
nothing behind.
"""
from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import JSONBody

from cairn.app.registrywire import required
from cairn.engine.datadir import Engine
from cairn.engine.errors import invalid
from cairn.engine.features.lookups import FeatureLookup
from cairn.engine.governance.access import APPLY_TAG, EXECUTE, MANAGE, MODIFY, SELECT, Access
from cairn.engine.governance.privileges import FUNCTION, TABLE
from cairn.engine.sdk.features import FeatureEngineeringClient, TableDescription, offline_store

ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_WRITE_BODY = 256 << 20
READ_MAX_ROWS = 10_000


class CreateTable(msgspec.Struct):
    name: str | None = None
    primary_keys: list[str] | str | None = None
    timestamp_keys: list[str] | str | None = None
    schema: dict[str, str] | None = None
    description: str | None = None
    tags: dict[str, str] | None = None


class TagBody(msgspec.Struct):
    name: str | None = None
    key: str | None = None
    value: str | None = None


class WriteRecords(msgspec.Struct):
    records: list[dict[str, Any]] | None = None


class PublishBody(msgspec.Struct):
    name: str | None = None
    ttl_seconds: float | None = None


class CreateSpec(msgspec.Struct):
    name: str | None = None
    features: list[FeatureLookup] | None = None
    exclude_columns: list[str] | None = None


class LookupBody(msgspec.Struct):
    name: str | None = None
    keys: list[list[Any]] | None = None
    features: list[str] | None = None


def _frame(request_type: str, body: bytes):
    import pyarrow as pa
    import pyarrow.ipc as ipc

    if request_type.split(";")[0].strip().lower() == ARROW_STREAM:
        try:
            return ipc.open_stream(pa.BufferReader(body)).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise invalid(f"The body is not an Arrow IPC stream: {exc}") from None
    try:
        doc = msgspec.json.decode(body, type=WriteRecords)
    except msgspec.DecodeError as exc:
        raise invalid(f"The body must be JSON {{\"records\": [...]}} or an Arrow IPC stream: {exc}") from None
    if not doc.records:
        raise invalid("records: at least one row object is required")
    try:
        return pa.Table.from_pylist(doc.records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise invalid(f"records: {exc}") from None


class FeatureTableController(Controller):
    path = "/api/2.0/feature-store"
    tags = ("feature-store",)

    @post("/feature-tables/create", status_code=200, sync_to_thread=True)
    def create(self, engine: Engine, access: Access, data: JSONBody[CreateTable]) -> dict:
        s = access.create_in_schema(TABLE, required(data.name, "name"))
        if data.schema is None:
            raise invalid("schema: a {column: type} object is required (write rows with feature-tables/write)")
        table = offline_store(engine.features).create_table(
            data.name, data.primary_keys, data.timestamp_keys, schema=data.schema,
            description=data.description, tags=data.tags, creator=access.caller.principal)
        access.created(s)
        return {"feature_table": table}

    @get("/feature-tables/get", sync_to_thread=True)
    def get_table(self, engine: Engine, access: Access, name: str | None = None) -> dict:
        access.catalog_object(TABLE, required(name, "name"), SELECT)
        return {"feature_table": offline_store(engine.features).get_table(required(name, "name"))}

    @get("/feature-tables/describe", sync_to_thread=True)
    def describe(self, engine: Engine, access: Access, name: str | None = None) -> TableDescription:
        """The table, its newest Delta versions, and the model versions trained on it."""
        access.catalog_object(TABLE, required(name, "name"), SELECT)
        return FeatureEngineeringClient(engine=engine).describe_table(required(name, "name"))

    @get("/feature-tables/list", sync_to_thread=True)
    def list_tables(self, engine: Engine, access: Access) -> dict:
        tables = offline_store(engine.features).list_tables()
        seen = set(access.visible(TABLE, [t.name for t in tables]))
        return {"feature_tables": [t for t in tables if t.name in seen]}

    @delete("/feature-tables/delete", status_code=200, sync_to_thread=True)
    def drop(self, engine: Engine, access: Access, name: str | None = None) -> dict:
        s = access.catalog_object(TABLE, required(name, "name"), MANAGE)
        engine.features.drop_table(name)
        access.deleted(s)
        return {}

    @post("/feature-tables/set-tag", status_code=200, sync_to_thread=True)
    def set_tag(self, engine: Engine, access: Access, data: JSONBody[TagBody]) -> dict:
        access.catalog_object(TABLE, required(data.name, "name"), APPLY_TAG)
        engine.features.set_tag(required(data.name, "name"), required(data.key, "key"), data.value or "")
        return {}

    @post("/feature-tables/delete-tag", status_code=200, sync_to_thread=True)
    def delete_tag(self, engine: Engine, access: Access, data: JSONBody[TagBody]) -> dict:
        access.catalog_object(TABLE, required(data.name, "name"), APPLY_TAG)
        engine.features.delete_tag(required(data.name, "name"), required(data.key, "key"))
        return {}

    @post("/feature-tables/write", status_code=200, sync_to_thread=True, request_max_body_size=MAX_WRITE_BODY)
    def write(self, engine: Engine, access: Access, request: Request, body: bytes, name: str | None = None) -> dict:
        access.catalog_object(TABLE, required(name, "name"), MODIFY)
        offline = offline_store(engine.features)
        frame = _frame(request.headers.get("content-type", ""), body)
        return {"version": offline.write_table(required(name, "name"), frame)}

    @get("/feature-tables/read", sync_to_thread=True)
    def read(self, engine: Engine, access: Access, name: str | None = None, version: int | None = None,
             max_rows: int = 1000) -> dict:
        access.catalog_object(TABLE, required(name, "name"), SELECT)
        if not 0 < max_rows <= READ_MAX_ROWS:
            raise invalid(f"max_rows: between 1 and {READ_MAX_ROWS}, got {max_rows}")
        table = offline_store(engine.features).read_table(required(name, "name"), version)
        return {"rows": table.slice(0, max_rows).to_pylist(), "total_rows": table.num_rows}

    @post("/feature-tables/publish", status_code=200, sync_to_thread=True)
    def publish(self, engine: Engine, access: Access, data: JSONBody[PublishBody]) -> dict:
        access.catalog_object(TABLE, required(data.name, "name"), MODIFY)
        return msgspec.to_builtins(offline_store(engine.features).publish_table(required(data.name, "name"),
                                                                                data.ttl_seconds))

    @post("/feature-specs/create", status_code=200, sync_to_thread=True)
    def create_spec(self, engine: Engine, access: Access, data: JSONBody[CreateSpec]) -> dict:
        s = access.create_in_schema(FUNCTION, required(data.name, "name"))
        if not data.features:
            raise invalid("features: a list of lookups ({table_name, lookup_key, ...}) is required")
        for lookup in data.features:
            access.catalog_object(TABLE, lookup.table_name, SELECT)
        spec = FeatureEngineeringClient(engine=engine).create_feature_spec(data.name, data.features,
                                                                           data.exclude_columns)
        access.created(s)
        return {"feature_spec": spec}

    @get("/feature-specs/get", sync_to_thread=True)
    def get_spec(self, engine: Engine, access: Access, name: str | None = None) -> dict:
        access.catalog_object(FUNCTION, required(name, "name"), EXECUTE)
        return {"feature_spec": FeatureEngineeringClient(engine=engine).get_feature_spec(required(name, "name"))}

    @delete("/feature-specs/delete", status_code=200, sync_to_thread=True)
    def delete_spec(self, engine: Engine, access: Access, name: str | None = None) -> dict:
        s = access.catalog_object(FUNCTION, required(name, "name"), MANAGE)
        engine.features.delete_feature_spec(name)
        access.deleted(s)
        return {}

    @post("/online/lookup", status_code=200, sync_to_thread=True)
    def lookup(self, engine: Engine, access: Access, data: JSONBody[LookupBody]) -> dict:
        access.catalog_object(TABLE, required(data.name, "name"), SELECT)
        if not data.keys:
            raise invalid("keys: a list of key value lists is required")
        found = engine.features.lookup(required(data.name, "name"), data.keys, data.features)
        return {"results": found}
