"""The catalog and schema half of LmdbRegistryStore (Unity Catalog's namespace).

A mixin rather than a separate object so the store keeps one flat method set (the
RegistryStore contract) while each file stays readable; it relies on the store's `_env`
and `_db`. `main` and `main.default` are created on first open and cannot be deleted.
"""
from __future__ import annotations

from cairn.engine.errors import INVALID_STATE, CairnError, already_exists, invalid, not_found
from cairn.engine.registry.entities import Catalog, Schema
from cairn.engine.registry.names import (
    DEFAULT_CATALOG,
    DEFAULT_SCHEMA,
    check_catalog_name,
    parse_schema_name,
    schema_prefix,
)
from cairn.engine.registry.records import CATALOG, SCHEMA, CatalogRecord, SchemaRecord
from cairn.engine.store.lmdbenv import Batch
from cairn.engine.store.timestamps import now_ms

MAX_COMMENT_LENGTH = 65_535


def check_comment(comment: object) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_LENGTH:
        raise invalid(f"Invalid comment: a string of at most {MAX_COMMENT_LENGTH} characters is required")
    return comment


def _has_prefix(txn, db, prefix: bytes) -> bool:
    with txn.cursor(db=db) as cur:
        return cur.set_range(prefix) and cur.key().startswith(prefix)


def catalog_record(txn, dbs, catalog: str) -> CatalogRecord:
    """Inside a transaction: the catalog, or RESOURCE_DOES_NOT_EXIST naming it."""
    raw = txn.get(catalog.encode(), db=dbs["catalogs"])
    if raw is None:
        raise not_found(f"Catalog with name={catalog} not found")
    return CATALOG.decode(raw)


def schema_record(txn, dbs, catalog: str, schema: str) -> SchemaRecord:
    """Inside a transaction: the schema, or RESOURCE_DOES_NOT_EXIST naming the catalog
    or the schema that is missing (what every securable's create checks first)."""
    catalog_record(txn, dbs, catalog)
    raw = txn.get(schema_prefix(catalog, schema), db=dbs["schemas"])
    if raw is None:
        raise not_found(f"Schema with name={catalog}.{schema} not found")
    return SCHEMA.decode(raw)


class CatalogMethods:
    # -- lookups inside a transaction ---------------------------------------------------
    def _catalog_record(self, txn, catalog: str) -> CatalogRecord:
        return catalog_record(txn, self._db, catalog)

    def _schema_record(self, txn, catalog: str, schema: str) -> SchemaRecord:
        return schema_record(txn, self._db, catalog, schema)

    def _ensure_default_namespace(self) -> None:
        cat_key, schema_key = DEFAULT_CATALOG.encode(), schema_prefix(DEFAULT_CATALOG, DEFAULT_SCHEMA)
        with self._env.read() as txn:
            if txn.get(cat_key, db=self._db["catalogs"]) and txn.get(schema_key, db=self._db["schemas"]):
                return

        def op(b: Batch) -> None:
            t = now_ms()
            if b.txn.get(cat_key, db=self._db["catalogs"]) is None:
                rec = CatalogRecord("The default catalog", "", t, t)
                b.txn.put(cat_key, CATALOG.encode(rec), db=self._db["catalogs"])
            if b.txn.get(schema_key, db=self._db["schemas"]) is None:
                rec = SchemaRecord("The default schema", "", t, t)
                b.txn.put(schema_key, SCHEMA.encode(rec), db=self._db["schemas"])

        self._env.write(op)

    @staticmethod
    def _catalog_entity(name: str, rec: CatalogRecord) -> Catalog:
        return Catalog(name=name, comment=rec.comment, owner=rec.owner, created_at=rec.created_at,
                       updated_at=rec.updated_at)

    @staticmethod
    def _schema_entity(catalog: str, schema: str, rec: SchemaRecord) -> Schema:
        return Schema(name=schema, catalog_name=catalog, full_name=f"{catalog}.{schema}", comment=rec.comment,
                      owner=rec.owner, created_at=rec.created_at, updated_at=rec.updated_at)

    # -- catalogs -------------------------------------------------------------------------
    def create_catalog(self, name, comment="", user_id="") -> Catalog:
        name = check_catalog_name(name)
        comment = check_comment(comment)
        key = name.encode()

        def op(b: Batch) -> CatalogRecord:
            if b.txn.get(key, db=self._db["catalogs"]) is not None:
                raise already_exists(f"Catalog (name={name}) already exists.")
            t = now_ms()
            rec = CatalogRecord(comment, user_id or "", t, t)
            b.txn.put(key, CATALOG.encode(rec), db=self._db["catalogs"])
            return rec

        return self._catalog_entity(name, self._env.write(op))

    def get_catalog(self, name) -> Catalog:
        name = check_catalog_name(name)
        with self._env.read() as txn:
            return self._catalog_entity(name, self._catalog_record(txn, name))

    def list_catalogs(self) -> list[Catalog]:
        with self._env.read() as txn, txn.cursor(db=self._db["catalogs"]) as cur:
            return [self._catalog_entity(k.decode(), CATALOG.decode(v)) for k, v in cur]

    def update_catalog(self, name, comment) -> Catalog:
        name = check_catalog_name(name)
        comment = check_comment(comment)

        def op(b: Batch) -> CatalogRecord:
            rec = self._catalog_record(b.txn, name)
            rec.comment = comment
            rec.updated_at = now_ms()
            b.txn.put(name.encode(), CATALOG.encode(rec), db=self._db["catalogs"])
            return rec

        return self._catalog_entity(name, self._env.write(op))

    def delete_catalog(self, name) -> None:
        name = check_catalog_name(name)
        if name == DEFAULT_CATALOG:
            raise invalid(f"The catalog '{DEFAULT_CATALOG}' cannot be deleted.")

        def op(b: Batch) -> None:
            self._catalog_record(b.txn, name)
            if _has_prefix(b.txn, self._db["schemas"], name.encode() + b"\0"):
                raise CairnError(
                    f"Catalog '{name}' is not empty: delete its schemas first.", INVALID_STATE
                )
            b.txn.delete(name.encode(), db=self._db["catalogs"])

        self._env.write(op)

    # -- schemas --------------------------------------------------------------------------
    def create_schema(self, full_name, comment="", user_id="") -> Schema:
        catalog, schema = parse_schema_name(full_name)
        comment = check_comment(comment)
        key = schema_prefix(catalog, schema)

        def op(b: Batch) -> SchemaRecord:
            self._catalog_record(b.txn, catalog)
            if b.txn.get(key, db=self._db["schemas"]) is not None:
                raise already_exists(f"Schema (name={catalog}.{schema}) already exists.")
            t = now_ms()
            rec = SchemaRecord(comment, user_id or "", t, t)
            b.txn.put(key, SCHEMA.encode(rec), db=self._db["schemas"])
            return rec

        return self._schema_entity(catalog, schema, self._env.write(op))

    def get_schema(self, full_name) -> Schema:
        catalog, schema = parse_schema_name(full_name)
        with self._env.read() as txn:
            return self._schema_entity(catalog, schema, self._schema_record(txn, catalog, schema))

    def list_schemas(self, catalog) -> list[Schema]:
        catalog = check_catalog_name(catalog)
        prefix = catalog.encode() + b"\0"
        out = []
        with self._env.read() as txn:
            self._catalog_record(txn, catalog)
            with txn.cursor(db=self._db["schemas"]) as cur:
                if cur.set_range(prefix):
                    for k, v in cur:
                        if not k.startswith(prefix):
                            break
                        out.append(self._schema_entity(catalog, k[len(prefix):].decode(), SCHEMA.decode(v)))
        return out

    def update_schema(self, full_name, comment) -> Schema:
        catalog, schema = parse_schema_name(full_name)
        comment = check_comment(comment)

        def op(b: Batch) -> SchemaRecord:
            rec = self._schema_record(b.txn, catalog, schema)
            rec.comment = comment
            rec.updated_at = now_ms()
            b.txn.put(schema_prefix(catalog, schema), SCHEMA.encode(rec), db=self._db["schemas"])
            return rec

        return self._schema_entity(catalog, schema, self._env.write(op))

    def delete_schema(self, full_name) -> None:
        catalog, schema = parse_schema_name(full_name)
        if (catalog, schema) == (DEFAULT_CATALOG, DEFAULT_SCHEMA):
            raise invalid(f"The schema '{DEFAULT_CATALOG}.{DEFAULT_SCHEMA}' cannot be deleted.")
        key = schema_prefix(catalog, schema)

        def op(b: Batch) -> None:
            self._schema_record(b.txn, catalog, schema)
            if _has_prefix(b.txn, self._db["model_names"], key + b"\0"):
                raise CairnError(
                    f"Schema '{catalog}.{schema}' is not empty: delete or move its registered models first.",
                    INVALID_STATE,
                )
            # Feature tables share the namespace (engine/features keys them the same way);
            # read by sub-database name, so the registry needs nothing of that room.
            tables = self._db.get("feature_tables")
            if tables is not None and _has_prefix(b.txn, tables, key + b"\0"):
                raise CairnError(
                    f"Schema '{catalog}.{schema}' is not empty: drop its feature tables first.", INVALID_STATE)
            b.txn.delete(key, db=self._db["schemas"])

        self._env.write(op)
