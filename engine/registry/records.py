"""The model registry's storage records and table list (records.py's rules apply:
array_like msgspec Structs, one Codec each, new fields at the end with defaults).

Keys (fixed width, big-endian; see keys.py). `model` is a u64 id from the meta counter
`next_registered_model_id`, so a rename rewrites one `model_names` key and nothing else;
names are joined by NUL (registrynames.FullName.key) so that byte order is name order:
  catalogs             utf-8 catalog                          -> CatalogRecord
  schemas              catalog + \\0 + schema                  -> SchemaRecord
  registered_models    u64 model                              -> RegisteredModelRecord
  model_names          catalog \\0 schema \\0 model              -> u64 model
  model_versions       u64 model + u32 version                -> ModelVersionRecord
  model_transitions    u64 model + u32 version + u64 seq      -> TransitionRecord
  run_model_versions   run(16) + u64 model + u32 version      -> b""
Tags and aliases live inside their model or version record: a model has a handful, they
are always read with it, and they change rarely. `seq` comes from the model's own
`next_transition` counter: transitions of a model list oldest first by seq.
"""
from __future__ import annotations

import msgspec

from cairn.engine.store.codec import Codec
from cairn.engine.store.keys import u32, u64

# sub-database name -> dupsort; the engine merges this into its table list.
REGISTRY_TABLES: dict[str, bool] = {
    "catalogs": False,
    "schemas": False,
    "registered_models": False,
    "model_names": False,
    "model_versions": False,
    "model_transitions": False,
    "run_model_versions": False,
}

NEXT_MODEL_ID = b"next_registered_model_id"


class TransitionKind:
    """What a TransitionRecord records (registryentities.StageTransition.kind)."""

    STAGE, ALIAS_SET, ALIAS_DELETED, STATUS = "stage", "alias_set", "alias_deleted", "status"


class CatalogRecord(msgspec.Struct, array_like=True):
    comment: str
    owner: str
    created_at: int
    updated_at: int


class SchemaRecord(msgspec.Struct, array_like=True):
    comment: str
    owner: str
    created_at: int
    updated_at: int


class RegisteredModelRecord(msgspec.Struct, array_like=True):
    catalog: str
    schema: str
    name: str
    creation_time: int
    last_updated_time: int
    user_id: str = ""
    description: str = ""
    tags: dict[str, str] = {}
    aliases: dict[str, int] = {}  # alias -> version
    next_version: int = 1  # never decremented: version numbers are never reused
    next_transition: int = 1


class ModelVersionRecord(msgspec.Struct, array_like=True):
    creation_time: int
    last_updated_time: int
    user_id: str = ""
    current_stage: str = "None"
    description: str = ""
    source: str = ""
    run_id: str = ""
    run_link: str = ""
    status: str = "PENDING_REGISTRATION"
    status_message: str = ""
    tags: dict[str, str] = {}
    model_id: str = ""
    storage_location: str = ""
    # The OnnxSignature as MessagePack, decoded when read: a change to that Struct
    # (owned by modelpackage) can then never make a version record unreadable.
    signature: bytes = b""
    derived_from: str = ""


class TransitionRecord(msgspec.Struct, array_like=True):
    kind: str
    timestamp: int
    user_id: str = ""
    from_stage: str = ""
    to_stage: str = ""
    alias: str = ""
    comment: str = ""


CATALOG = Codec(CatalogRecord)
SCHEMA = Codec(SchemaRecord)
REGISTERED_MODEL = Codec(RegisteredModelRecord)
MODEL_VERSION = Codec(ModelVersionRecord)
TRANSITION = Codec(TransitionRecord)


def version_key(model: int, version: int) -> bytes:
    return u64(model) + u32(version)


def transition_key(model: int, version: int, seq: int) -> bytes:
    return u64(model) + u32(version) + u64(seq)
