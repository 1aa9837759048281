"""The model-version half of LmdbRegistryStore: create (with source resolution),
read, describe, stage transitions, delete, tags, the transition log and the two calls
of the registration pipeline (pending_versions, finish_registration).

A mixin rather than a separate object so the store keeps one flat method set (the
RegistryStore contract) while each file stays readable; it relies on registry.py's
lookups (`_model`, `_version`, `versions_of`), writers (`_write_model`,
`_write_version`, `_put_*`, `_index_run`, `_transition`) and `version_entity`.

Sources: `runs:/RUN/PATH` gives the run id; `models:/m-<id>` (an MLflow 3 logged model)
gives the model id and the logged model's source run; `models:/NAME/N`,
`models:/NAME/latest`, `models:/NAME/<stage>` and `models:/NAME@ALIAS` are resolved
when the version is created, in the same transaction, to `derived_from`
("models:/<full name>/<N>"), and the new version inherits that version's run and
logged model unless given its own. Other sources are stored as given.
"""
from __future__ import annotations

import logging
import re

import msgspec

from cairn.engine.errors import INVALID_STATE, CairnError, invalid, not_found
from cairn.engine.models.signature import OnnxSignature
from cairn.engine.registry.contract import MAX_DESCRIPTION_LENGTH
from cairn.engine.registry.entities import ModelVersion, Stage, StageTransition, VersionStatus
from cairn.engine.registry.names import (
    MAX_TEXT_LENGTH,
    FullName,
    check_alias_name,
    check_text,
    parse_model_name,
    tag_map,
    version_number,
)
from cairn.engine.registry.records import (
    REGISTERED_MODEL,
    TRANSITION,
    ModelVersionRecord,
    TransitionKind,
    version_key,
)
from cairn.engine.store.keys import read_u32, read_u64, u64
from cairn.engine.store.lmdbenv import Batch
from cairn.engine.store.timestamps import now_ms
from cairn.engine.tracking.validation import check_key

log = logging.getLogger("cairn.registry")

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
_SIGNATURE_ENCODE = msgspec.msgpack.Encoder().encode


def _encode_signature(signature: object) -> bytes:
    if signature is None:
        return b""
    try:
        return _SIGNATURE_ENCODE(msgspec.convert(signature, OnnxSignature, from_attributes=True))
    except msgspec.ValidationError as exc:
        raise invalid(f"Invalid model signature: {exc}") from None


def _parse_models_uri(source: str) -> tuple[str, str] | str | None:
    """`models:/m-<id>` -> the logged model id; `models:/NAME/SEL` or `models:/NAME@ALIAS`
    -> (name, selector, with "@" kept for aliases); anything else -> None."""
    if not source.startswith("models:/"):
        return None
    rest = source[len("models:/"):].strip("/")
    head = rest.split("/", 1)[0]
    if _LOGGED_MODEL_ID.fullmatch(head):
        return head
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if name and alias and "/" not in rest:
            return name, "@" + alias
    else:
        name, _, selector = rest.partition("/")
        if name and selector and "/" not in selector:
            return name, selector
    raise invalid(
        f"Invalid model URI '{source}': use models:/NAME/VERSION, models:/NAME@ALIAS or models:/m-<id>"
    )


def _run_id_of_source(source: str) -> str | None:
    if not source.startswith("runs:/"):
        return None
    run_id = source[len("runs:/"):].strip("/").split("/", 1)[0]
    if not _RUN_ID.fullmatch(run_id):
        raise invalid(f"Invalid source '{source}': expected runs:/<run_id>/<path> with a 32-hex-digit run ID")
    return run_id


class VersionMethods:
    def create_model_version(
        self, name, source, run_id=None, tags=None, run_link=None, description="", user_id="", model_id=None
    ) -> ModelVersion:
        full = parse_model_name(name)
        if not isinstance(source, str) or not source.strip():
            raise invalid("Missing value for required parameter 'source'.")
        source = check_text(source, "source", MAX_TEXT_LENGTH)
        run_id = check_text(run_id, "run_id") or None
        model_id = check_text(model_id, "model_id") or None
        run_link = check_text(run_link, "run_link")
        description = check_text(description, "description", MAX_DESCRIPTION_LENGTH)
        tags = tag_map(tags)
        ref = _parse_models_uri(source)
        if isinstance(ref, str):  # an MLflow 3 logged model
            model_id = model_id or ref
        if model_id:
            # Read before the write (never wait for a write while holding a read).
            logged = self._logged_models.get_logged_model(model_id, allow_deleted=True)
            run_id = run_id or logged.info.source_run_id or None
        run_id = run_id or _run_id_of_source(source)

        def op(b: Batch):
            mid, rec = self._model(b.txn, full, name)
            n = rec.next_version
            rec.next_version += 1
            vrun, vmodel, derived = run_id, model_id, ""
            if isinstance(ref, tuple):
                base_full, base_n, base = self._resolve_version_ref(b.txn, ref, (mid, full, rec))
                derived = f"models:/{base_full.full}/{base_n}"
                vrun, vmodel = vrun or base.run_id, vmodel or base.model_id
            t = now_ms()
            vrec = ModelVersionRecord(
                creation_time=t, last_updated_time=t, user_id=user_id or "", description=description,
                source=source, run_id=vrun or "", run_link=run_link, tags=tags, model_id=vmodel or "",
                derived_from=derived,
            )
            self._put_version(b, mid, n, vrec)
            self._index_run(b, vrec.run_id, mid, n)
            rec.last_updated_time = t
            self._put_model(b, mid, rec)
            return self.version_entity(full, n, vrec, rec)

        mv = self._env.write(op)
        if self.on_pending is not None:
            try:
                self.on_pending(mv.full_name, mv.version)
            except Exception:  # the version is committed; a restart finishes it
                log.exception("notifying the registration pipeline of %s version %s failed", mv.full_name, mv.version)
        return mv

    def _resolve_version_ref(self, txn, ref: tuple[str, str], current):
        """(full name, number, record) of the version `models:/NAME/SEL` or
        `models:/NAME@ALIAS` names, SEL being a number, `latest` or a stage."""
        name, selector = ref
        full = parse_model_name(name)
        mid, cur_full, rec = current
        if full != cur_full:
            mid, rec = self._model(txn, full, name)
        versions = self.versions_of(txn, mid)  # the version being created is not written yet
        if selector.startswith("@"):
            alias = check_alias_name(selector[1:])
            if alias.lower() != "latest":
                n = rec.aliases.get(alias)
                if n is None:  # as get_model_version_by_alias
                    raise invalid(f"Registered model alias {alias} not found.")
                return full, n, self._version(txn, mid, name, n)
            selector = "latest"
        if selector.isascii() and selector.isdigit():
            n = int(selector)
            return full, n, self._version(txn, mid, name, n)
        if selector.lower() != "latest":
            stage = Stage.parse(selector)
            versions = [(n, v) for n, v in versions if v.current_stage == stage]
        if not versions:
            raise not_found(f"No version of model {name} matches '{selector}'.")
        return (full, *versions[-1])

    def get_model_version(self, name, version) -> ModelVersion:
        full = parse_model_name(name)
        n = version_number(version)
        with self._env.read() as txn:
            mid, rec = self._model(txn, full, name)
            return self.version_entity(full, n, self._version(txn, mid, name, n), rec)

    def update_model_version(self, name, version, description) -> ModelVersion:
        description = check_text(description, "description", MAX_DESCRIPTION_LENGTH)

        def change(b, mid, full, rec, n, vrec):
            vrec.description = description
            vrec.last_updated_time = now_ms()
            return self.version_entity(full, n, vrec, rec)

        return self._write_version(name, version, change)

    def transition_model_version_stage(
        self, name, version, stage, archive_existing_versions=False, user_id="", comment=""
    ) -> ModelVersion:
        target = Stage.parse(stage)
        if archive_existing_versions and target not in (Stage.STAGING, Stage.PRODUCTION):
            raise invalid(
                "Model version transition cannot archive existing model versions because "
                f"'{stage}' is not an Active stage. Valid stages are ['Staging', 'Production']"
            )
        comment = check_text(comment, "comment", MAX_DESCRIPTION_LENGTH)
        user_id = user_id or ""

        def change(b, mid, full, rec, n, vrec):
            t = now_ms()
            if archive_existing_versions:
                for other_n, other in self.versions_of(b.txn, mid):
                    if other_n != n and other.current_stage == target:
                        other.current_stage, other.last_updated_time = Stage.ARCHIVED, t
                        self._put_version(b, mid, other_n, other)
                        self._transition(b, mid, rec, other_n, TransitionKind.STAGE, user_id=user_id,
                                         from_stage=target, to_stage=Stage.ARCHIVED, comment=comment)
            self._transition(b, mid, rec, n, TransitionKind.STAGE, user_id=user_id,
                             from_stage=vrec.current_stage, to_stage=target, comment=comment)
            vrec.current_stage, vrec.last_updated_time = target, t
            rec.last_updated_time = t
            return self.version_entity(full, n, vrec, rec)

        return self._write_version(name, version, change)

    def delete_model_version(self, name, version) -> None:
        n = version_number(version)

        def change(b, mid, full, rec):
            vrec = self._version(b.txn, mid, name, n)
            self._index_run(b, vrec.run_id, mid, n, delete=True)
            b.txn.delete(version_key(mid, n), db=self._db["model_versions"])
            self._delete_prefix(b.txn, "model_transitions", version_key(mid, n))
            rec.aliases = {a: v for a, v in rec.aliases.items() if v != n}
            rec.last_updated_time = now_ms()

        self._write_model(name, change)

    def get_model_version_download_uri(self, name, version) -> str:
        mv = self.get_model_version(name, version)
        if mv.status == VersionStatus.READY and mv.storage_location:
            loc = mv.storage_location
            return loc if ":" in loc.split("/", 1)[0] else "mlflow-artifacts:/" + loc.lstrip("/")
        return mv.source

    def search_model_versions(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        from cairn.engine.registry.search import search_model_versions

        return search_model_versions(self, filter_string, max_results, order_by, page_token)

    def set_model_version_tag(self, name, version, key, value) -> None:
        tags = tag_map({key: value})

        def change(b, mid, full, rec, n, vrec):
            vrec.tags = {**vrec.tags, **tags}

        self._write_version(name, version, change)

    def delete_model_version_tag(self, name, version, key) -> None:
        """Deleting a tag that is not there is a no-op (as MLflow)."""
        check_key(key, "key")

        def change(b, mid, full, rec, n, vrec):
            vrec.tags = {k: v for k, v in vrec.tags.items() if k != key}

        self._write_version(name, version, change)

    def list_transitions(self, name, version=None) -> list[StageTransition]:
        full = parse_model_name(name)
        n = None if version is None else version_number(version)
        out = []
        with self._env.read() as txn:
            mid, _rec = self._model(txn, full, name)
            prefix = u64(mid)
            if n is not None:
                self._version(txn, mid, name, n)
                prefix = version_key(mid, n)
            with txn.cursor(db=self._db["model_transitions"]) as cur:
                if cur.set_range(prefix):
                    for k, v in cur:
                        if not k.startswith(prefix):
                            break
                        out.append((read_u64(k, 12), read_u32(k, 8), TRANSITION.decode(v)))
        out.sort(key=lambda x: x[0])  # keys group by version; seq is the model's order
        return [
            StageTransition(
                name=full.display, version=str(vn), kind=t.kind, timestamp=t.timestamp, user_id=t.user_id,
                from_stage=t.from_stage, to_stage=t.to_stage, alias=t.alias, comment=t.comment,
            )
            for _seq, vn, t in out
        ]

    # ================================================================ registration
    def pending_versions(self) -> list[tuple[str, str]]:
        out = []
        with self._env.read() as txn, txn.cursor(db=self._db["registered_models"]) as cur:
            for k, v in cur:
                rec = REGISTERED_MODEL.decode(v)
                full = FullName(rec.catalog, rec.schema, rec.name).full
                for n, vrec in self.versions_of(txn, read_u64(k)):
                    if vrec.status == VersionStatus.PENDING:
                        out.append((vrec.creation_time, read_u64(k), n, full))
        out.sort()
        return [(full, str(n)) for _t, _mid, n, full in out]

    def finish_registration(
        self, name, version, *, status, status_message="", storage_location="", signature=None,
        run_id=None, model_id=None,
    ) -> ModelVersion:
        """run_id and model_id fill the version's own only where it has none: what the
        caller of create_model_version said wins over what the source revealed."""
        if status not in (VersionStatus.READY, VersionStatus.FAILED):
            raise invalid(f"Invalid registration status {status!r}: use {VersionStatus.READY} or {VersionStatus.FAILED}")
        status_message = check_text(status_message, "status_message", MAX_DESCRIPTION_LENGTH)
        storage_location = check_text(storage_location, "storage_location")
        run_id = check_text(run_id, "run_id")
        model_id = check_text(model_id, "model_id")
        sig = _encode_signature(signature)

        def change(b, mid, full, rec, n, vrec):
            if vrec.status != VersionStatus.PENDING:
                raise CairnError(
                    f"Model Version (name={name}, version={n}) is not pending registration "
                    f"(its status is {vrec.status})", INVALID_STATE,
                )
            self._transition(b, mid, rec, n, TransitionKind.STATUS, from_stage=vrec.status, to_stage=status,
                             comment=status_message)
            vrec.status, vrec.status_message = status, status_message
            vrec.storage_location = storage_location or vrec.storage_location
            vrec.signature = sig or vrec.signature
            if run_id and not vrec.run_id:
                vrec.run_id = run_id
                self._index_run(b, run_id, mid, n)
            vrec.model_id = vrec.model_id or model_id
            vrec.last_updated_time = now_ms()
            return self.version_entity(full, n, vrec, rec)

        return self._write_version(name, version, change)

