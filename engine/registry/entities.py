"""What the model registry returns: Structs shaped like MLflow's model_registry.proto
(RegisteredModel, ModelVersion, aliases, tags), plus Unity Catalog's catalogs and schemas,
stage transitions and lineage, which MLflow's open-source registry lacks.

Names: a registered model's `name` is how Cairn shows it: the bare model name when it
lives in `main.default` (so MLflow clients see the name they registered), else the full
`catalog.schema.model` (registrynames.py). `full_name` is always three-level.
Versions are strings on the wire (as in the proto); `version` here is the same string.
"""
from __future__ import annotations

import msgspec

from cairn.engine.models.signature import OnnxSignature


class Stage:
    """MLflow's stages, in their canonical spelling; input is case-insensitive."""

    NONE, STAGING, PRODUCTION, ARCHIVED = "None", "Staging", "Production", "Archived"
    ALL = (NONE, STAGING, PRODUCTION, ARCHIVED)

    @classmethod
    def parse(cls, text: str) -> str:
        from cairn.engine.errors import invalid

        for s in cls.ALL:
            if isinstance(text, str) and text.lower() == s.lower():
                return s
        raise invalid(f"Invalid Model Version stage: {text}. Value must be one of {', '.join(cls.ALL)}.")


class VersionStatus:
    PENDING = "PENDING_REGISTRATION"
    READY = "READY"
    FAILED = "FAILED_REGISTRATION"


class Catalog(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    comment: str = ""
    owner: str = ""
    created_at: int = 0
    updated_at: int = 0


class Schema(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    catalog_name: str
    full_name: str
    comment: str = ""
    owner: str = ""
    created_at: int = 0
    updated_at: int = 0


class RegisteredModelTag(msgspec.Struct, frozen=True):
    key: str
    value: str


class ModelVersionTag(msgspec.Struct, frozen=True):
    key: str
    value: str


class RegisteredModelAlias(msgspec.Struct, frozen=True):
    alias: str
    version: str


class ModelVersion(msgspec.Struct, kw_only=True, omit_defaults=True):
    """proto ModelVersion. `signature` and `storage_location` are Cairn's: where the
    version's own copy of its files lives (an artifact path the proxy serves)."""

    name: str
    version: str
    creation_timestamp: int
    last_updated_timestamp: int
    user_id: str = ""
    current_stage: str = Stage.NONE
    description: str = ""
    source: str = ""
    run_id: str = ""
    run_link: str = ""
    status: str = VersionStatus.PENDING
    status_message: str = ""
    tags: list[ModelVersionTag] = []
    aliases: list[str] = []
    model_id: str = ""
    storage_location: str = ""
    signature: OnnxSignature | None = None
    full_name: str = ""

    @property
    def tags_dict(self) -> dict[str, str]:
        return {t.key: t.value for t in self.tags}


class RegisteredModel(msgspec.Struct, kw_only=True, omit_defaults=True):
    """proto RegisteredModel: latest_versions holds the latest version per stage."""

    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    user_id: str = ""
    description: str = ""
    latest_versions: list[ModelVersion] = []
    tags: list[RegisteredModelTag] = []
    aliases: list[RegisteredModelAlias] = []
    full_name: str = ""

    @property
    def tags_dict(self) -> dict[str, str]:
        return {t.key: t.value for t in self.tags}


class StageTransition(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One recorded change of a version's stage or of an alias (an audit trail entry).
    kind: "stage" (from_stage -> to_stage), "alias_set" / "alias_deleted" (alias in
    `alias`), "status" (registration status changes: from_stage / to_stage hold the old
    and new status, comment the status message)."""

    name: str
    version: str
    kind: str
    timestamp: int
    user_id: str = ""
    from_stage: str = ""
    to_stage: str = ""
    alias: str = ""
    comment: str = ""


class LineageDataset(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    context: str = ""  # the input's mlflow.data.context tag: train, eval, ...


class Lineage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where a version came from. Run facts are read live from the tracking store;
    a deleted run leaves run_id set and run_deleted true."""

    name: str
    version: str
    source: str = ""
    run_id: str = ""
    run_name: str = ""
    run_deleted: bool = False
    experiment_id: str = ""
    experiment_name: str = ""
    model_id: str = ""  # the MLflow 3 logged model the version was made from
    datasets: list[LineageDataset] = []
    source_name: str = ""  # the run's mlflow.source.name tag (the training script)
    source_type: str = ""
    git_commit: str = ""
    git_repo: str = ""
    derived_from: str = ""  # models:/NAME/VERSION when copied or derived from a version
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    # Where an imported version came from (engine/bundles/transfer.py): the `cairn.origin.*`
    # version tags without their prefix (appliance_id, hostname, name, version, ...).
    origin: dict[str, str] = {}
