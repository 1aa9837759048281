"""LmdbRegistryStore: the RegistryStore contract (registrystore.py) on the engine's LMDB.

Storage layout: registryrecords.py. Reads use short snapshots in the caller's thread;
every write is one operation of the single writer (one transaction, run as a child
transaction), checks what it needs inside that transaction and leaves no trace when it
fails. Changes that span tables (a transition that archives other versions, deleting a
model with its versions, transitions and run index, a rename) are one operation.

The store is pure: it records the `user_id` callers pass ("" allowed) and never reads
the environment. The registration pipeline (registration.py) sets `on_pending`; it is
called with (full_name, version) once each new PENDING_REGISTRATION version is durable.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

from cairn.engine.errors import already_exists, invalid, not_found
from cairn.engine.models.signature import OnnxSignature
from cairn.engine.registry.catalogs import CatalogMethods
from cairn.engine.registry.contract import MAX_DESCRIPTION_LENGTH, RegistryStore
from cairn.engine.registry.entities import (
    Lineage,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
    Stage,
)
from cairn.engine.registry.names import (
    FullName,
    check_alias_name,
    check_settable_alias,
    check_text,
    parse_model_name,
    tag_map,
    version_number,
)
from cairn.engine.registry.records import (
    MODEL_VERSION,
    NEXT_MODEL_ID,
    REGISTERED_MODEL,
    TRANSITION,
    ModelVersionRecord,
    RegisteredModelRecord,
    TransitionKind,
    TransitionRecord,
    transition_key,
    version_key,
)
from cairn.engine.registry.versions import VersionMethods
from cairn.engine.store.keys import read_u32, read_u64, run_key, u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms
from cairn.engine.tracking.validation import check_key

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_SIGNATURE_DECODE = msgspec.msgpack.Decoder(OnnxSignature).decode


class LmdbRegistryStore(CatalogMethods, VersionMethods, RegistryStore):
    def __init__(self, lenv: LmdbEnv, tracking, logged_models):
        self._env = lenv
        self._db = lenv.dbs
        self._tracking = tracking
        self._logged_models = logged_models
        self.on_pending: Callable[[str, str], None] | None = None
        self._locations: dict[str, bytes] = {}  # storage location -> u64 model key
        self._ensure_default_namespace()

    env = property(lambda self: self._env)

    # ================================================================ lookups
    def _model(self, txn, full: FullName, name: str) -> tuple[int, RegisteredModelRecord]:
        raw = txn.get(full.key(), db=self._db["model_names"])
        if raw is None:
            raise not_found(f"Registered Model with name={name} not found")
        mid = read_u64(raw)
        return mid, REGISTERED_MODEL.decode(txn.get(u64(mid), db=self._db["registered_models"]))

    def _version(self, txn, mid: int, name: str, n: int) -> ModelVersionRecord:
        raw = txn.get(version_key(mid, n), db=self._db["model_versions"]) if 0 < n < 1 << 32 else None
        if raw is None:
            raise not_found(f"Model Version (name={name}, version={n}) not found")
        return MODEL_VERSION.decode(raw)

    def versions_of(self, txn, mid: int) -> list[tuple[int, ModelVersionRecord]]:
        """Every version of a model, by number."""
        prefix = u64(mid)
        out = []
        with txn.cursor(db=self._db["model_versions"]) as cur:
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    out.append((read_u32(k, 8), MODEL_VERSION.decode(v)))
        return out

    def _delete_prefix(self, txn, table: str, prefix: bytes) -> None:
        """Delete every key of `table` that starts with `prefix`."""
        with txn.cursor(db=self._db[table]) as cur:
            if not cur.set_range(prefix):
                return
            while cur.key().startswith(prefix):
                if not cur.delete():
                    break

    def _put_model(self, b: Batch, mid: int, rec: RegisteredModelRecord) -> None:
        b.txn.put(u64(mid), REGISTERED_MODEL.encode(rec), db=self._db["registered_models"])

    def _put_version(self, b: Batch, mid: int, n: int, vrec: ModelVersionRecord) -> None:
        b.txn.put(version_key(mid, n), MODEL_VERSION.encode(vrec), db=self._db["model_versions"])

    def _index_run(self, b: Batch, run_id: str, mid: int, n: int, *, delete: bool = False) -> None:
        if not _RUN_ID.fullmatch(run_id or ""):
            return  # a foreign or missing run id has nothing to index
        key = run_key(run_id) + version_key(mid, n)
        if delete:
            b.txn.delete(key, db=self._db["run_model_versions"])
        else:
            b.txn.put(key, b"", db=self._db["run_model_versions"])

    def _transition(self, b: Batch, mid: int, rec: RegisteredModelRecord, n: int, kind: str, **fields) -> None:
        """Record one audit entry; the caller stores `rec` (its counter moved)."""
        seq = rec.next_transition
        rec.next_transition += 1
        entry = TransitionRecord(kind=kind, timestamp=now_ms(), **fields)
        b.txn.put(transition_key(mid, n, seq), TRANSITION.encode(entry), db=self._db["model_transitions"])

    def _write_model(self, name: str, change: Callable):
        """Run `change(batch, model id, full name, record)` in one write and store the
        model record afterwards; returns what `change` returns."""
        full = parse_model_name(name)

        def op(b: Batch):
            mid, rec = self._model(b.txn, full, name)
            result = change(b, mid, full, rec)
            self._put_model(b, mid, rec)
            return result

        return self._env.write(op)

    def _write_version(self, name: str, version: str | int, change: Callable):
        """Like _write_model for one version: `change(batch, id, full, record, n,
        version record)`; both records are stored afterwards."""
        n = version_number(version)

        def model_change(b: Batch, mid: int, full: FullName, rec: RegisteredModelRecord):
            vrec = self._version(b.txn, mid, name, n)
            result = change(b, mid, full, rec, n, vrec)
            self._put_version(b, mid, n, vrec)
            return result

        return self._write_model(name, model_change)

    # ================================================================ entities
    @staticmethod
    def version_entity(full: FullName, n: int, vrec: ModelVersionRecord, rec: RegisteredModelRecord) -> ModelVersion:
        return ModelVersion(
            name=full.display,
            version=str(n),
            creation_timestamp=vrec.creation_time,
            last_updated_timestamp=vrec.last_updated_time,
            user_id=vrec.user_id,
            current_stage=vrec.current_stage,
            description=vrec.description,
            source=vrec.source,
            run_id=vrec.run_id,
            run_link=vrec.run_link,
            status=vrec.status,
            status_message=vrec.status_message,
            tags=[ModelVersionTag(k, v) for k, v in vrec.tags.items()],
            aliases=[a for a, v in rec.aliases.items() if v == n],
            model_id=vrec.model_id,
            storage_location=vrec.storage_location,
            signature=_SIGNATURE_DECODE(vrec.signature) if vrec.signature else None,
            full_name=full.full,
        )

    def latest_versions(self, full, rec, versions) -> list[ModelVersion]:
        """The highest version per stage, in stage order None, Staging, Production, Archived."""
        latest: dict[str, tuple[int, ModelVersionRecord]] = {}
        for n, vrec in versions:  # ascending: the last one seen per stage wins
            latest[vrec.current_stage] = (n, vrec)
        return [self.version_entity(full, *latest[s], rec) for s in Stage.ALL if s in latest]

    def model_entity(self, txn, mid: int, rec: RegisteredModelRecord) -> RegisteredModel:
        full = FullName(rec.catalog, rec.schema, rec.name)
        return RegisteredModel(
            name=full.display,
            creation_timestamp=rec.creation_time,
            last_updated_timestamp=rec.last_updated_time,
            user_id=rec.user_id,
            description=rec.description,
            latest_versions=self.latest_versions(full, rec, self.versions_of(txn, mid)),
            tags=[RegisteredModelTag(k, v) for k, v in rec.tags.items()],
            aliases=[RegisteredModelAlias(a, str(v)) for a, v in rec.aliases.items()],
            full_name=full.full,
        )

    def _model_entity_after(self, full: FullName) -> RegisteredModel:
        with self._env.read() as txn:
            mid, rec = self._model(txn, full, full.full)
            return self.model_entity(txn, mid, rec)

    # ================================================================ registered models
    def create_registered_model(self, name, tags=None, description="", user_id="") -> RegisteredModel:
        full = parse_model_name(name)
        tags = tag_map(tags)
        description = check_text(description, "description", MAX_DESCRIPTION_LENGTH)

        def op(b: Batch) -> None:
            self._schema_record(b.txn, full.catalog, full.schema)
            if b.txn.get(full.key(), db=self._db["model_names"]) is not None:
                raise already_exists(f"Registered Model (name={name}) already exists.")
            mid = b.next_id(NEXT_MODEL_ID)
            t = now_ms()
            rec = RegisteredModelRecord(
                catalog=full.catalog, schema=full.schema, name=full.model, creation_time=t,
                last_updated_time=t, user_id=user_id or "", description=description, tags=tags,
            )
            self._put_model(b, mid, rec)
            b.txn.put(full.key(), u64(mid), db=self._db["model_names"])

        self._env.write(op)
        return self._model_entity_after(full)

    def get_registered_model(self, name) -> RegisteredModel:
        full = parse_model_name(name)
        with self._env.read() as txn:
            mid, rec = self._model(txn, full, name)
            return self.model_entity(txn, mid, rec)

    def update_registered_model(self, name, description) -> RegisteredModel:
        description = check_text(description, "description", MAX_DESCRIPTION_LENGTH)

        def change(b, mid, full, rec):
            rec.description = description
            rec.last_updated_time = now_ms()

        self._write_model(name, change)
        return self.get_registered_model(name)

    def rename_registered_model(self, name, new_name) -> RegisteredModel:
        if new_name is None or (isinstance(new_name, str) and not new_name.strip()):
            raise invalid("Missing value for required parameter 'new_name'.")
        new = parse_model_name(new_name)

        def change(b, mid, full, rec):
            if new == full:
                return
            self._schema_record(b.txn, new.catalog, new.schema)
            if b.txn.get(new.key(), db=self._db["model_names"]) is not None:
                raise already_exists(f"Registered Model (name={new_name}) already exists.")
            b.txn.delete(full.key(), db=self._db["model_names"])
            b.txn.put(new.key(), u64(mid), db=self._db["model_names"])
            rec.catalog, rec.schema, rec.name = new
            t = rec.last_updated_time = now_ms()
            for n, vrec in self.versions_of(b.txn, mid):  # as MLflow: versions are touched too
                vrec.last_updated_time = t
                self._put_version(b, mid, n, vrec)

        self._write_model(name, change)
        return self._model_entity_after(new)

    def delete_registered_model(self, name) -> None:
        full = parse_model_name(name)

        def op(b: Batch) -> None:
            mid, _rec = self._model(b.txn, full, name)
            for n, vrec in self.versions_of(b.txn, mid):
                self._index_run(b, vrec.run_id, mid, n, delete=True)
            self._delete_prefix(b.txn, "model_versions", u64(mid))
            self._delete_prefix(b.txn, "model_transitions", u64(mid))
            b.txn.delete(u64(mid), db=self._db["registered_models"])
            b.txn.delete(full.key(), db=self._db["model_names"])

        self._env.write(op)

    def search_registered_models(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        from cairn.engine.registry.search import search_registered_models

        return search_registered_models(self, filter_string, max_results, order_by, page_token)

    def get_latest_versions(self, name, stages=None) -> list[ModelVersion]:
        if isinstance(stages, str):
            stages = [stages]
        wanted = {Stage.parse(s) for s in stages} if stages else set(Stage.ALL)
        full = parse_model_name(name)
        with self._env.read() as txn:
            mid, rec = self._model(txn, full, name)
            latest = self.latest_versions(full, rec, self.versions_of(txn, mid))
        return [mv for mv in latest if mv.current_stage in wanted]

    def set_registered_model_tag(self, name, key, value) -> None:
        tags = tag_map({key: value})

        def change(b, mid, full, rec):
            rec.tags = {**rec.tags, **tags}

        self._write_model(name, change)

    def delete_registered_model_tag(self, name, key) -> None:
        check_key(key, "key")

        def change(b, mid, full, rec):
            rec.tags = {k: v for k, v in rec.tags.items() if k != key}

        self._write_model(name, change)

    # ================================================================ aliases
    def set_registered_model_alias(self, name, alias, version, user_id="") -> None:
        alias = check_settable_alias(alias)
        n = version_number(version)

        def change(b, mid, full, rec):
            self._version(b.txn, mid, name, n)
            rec.aliases = {**rec.aliases, alias: n}
            self._transition(b, mid, rec, n, TransitionKind.ALIAS_SET, user_id=user_id or "", alias=alias)

        self._write_model(name, change)

    def delete_registered_model_alias(self, name, alias, user_id="") -> None:
        alias = check_alias_name(alias)

        def change(b, mid, full, rec):
            n = rec.aliases.get(alias)
            if n is None:
                return  # as MLflow's store: deleting an alias that is not set does nothing
            rec.aliases = {a: v for a, v in rec.aliases.items() if a != alias}
            self._transition(b, mid, rec, n, TransitionKind.ALIAS_DELETED, user_id=user_id or "", alias=alias)

        self._write_model(name, change)

    def get_model_version_by_alias(self, name, alias) -> ModelVersion:
        """`latest` (any case) names the highest version, as MLflow's store."""
        alias = check_alias_name(alias)
        full = parse_model_name(name)
        with self._env.read() as txn:
            mid, rec = self._model(txn, full, name)
            if alias.lower() == "latest":
                versions = self.versions_of(txn, mid)
                if not versions:
                    raise not_found(f"Latest version not found for model {name}.")
                return self.version_entity(full, *versions[-1], rec)
            n = rec.aliases.get(alias)
            if n is None:  # MLflow's code here: INVALID_PARAMETER_VALUE, not RESOURCE_DOES_NOT_EXIST
                raise invalid(f"Registered model alias {alias} not found.")
            return self.version_entity(full, n, self._version(txn, mid, name, n), rec)

    # ================================================================ lineage
    def versions_of_run(self, run_id: str) -> list[tuple[str, str]]:
        """(full_name, version) of every version registered from a run."""
        if not _RUN_ID.fullmatch(run_id or ""):
            return []
        prefix = run_key(run_id)
        out = []
        with self._env.read() as txn, txn.cursor(db=self._db["run_model_versions"]) as cur:
            if cur.set_range(prefix):
                for k in cur.iternext(values=False):
                    if not k.startswith(prefix):
                        break
                    raw = txn.get(k[16:24], db=self._db["registered_models"])
                    if raw is not None:
                        rec = REGISTERED_MODEL.decode(raw)
                        out.append((FullName(rec.catalog, rec.schema, rec.name).full, str(read_u32(k, 24))))
        return out

    def model_at_location(self, location: str) -> str | None:
        """The full name of the model whose version is stored at `location`
        (`registry/<id>`), or None. A location never changes model (a rename keeps the
        model's id), so the index is built once and rebuilt only on a miss."""
        with self._env.read() as txn:
            mid = self._locations.get(location)
            if mid is None:
                with txn.cursor(db=self._db["model_versions"]) as cur:
                    self._locations = {MODEL_VERSION.decode(v).storage_location: k[:8] for k, v in cur}
                mid = self._locations.get(location)
            raw = txn.get(mid, db=self._db["registered_models"]) if mid is not None else None
        if raw is None:
            return None
        rec = REGISTERED_MODEL.decode(raw)
        return FullName(rec.catalog, rec.schema, rec.name).full

    def get_lineage(self, name, version) -> Lineage:
        from cairn.engine.registry.lineage import lineage

        return lineage(self, name, version)
