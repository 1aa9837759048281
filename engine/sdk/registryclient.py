"""The model registry from Python: `Client`'s registry methods (MLflow's MlflowClient
names and signatures) and `cairn.register_model`, as mlflow.register_model.

`RegistryClientMixin` is mixed into `engine.sdk.client.Client`; it reaches the registry
through the Client's Engine (`eng.registry`, the RegistryStore, and `eng.registrar`,
the background registration pipeline). Every call that records who did something passes
`currentcurrent_user()`, as the tracking calls do.

Registering is asynchronous in the engine (a version is created PENDING_REGISTRATION and
finished by the registrar's thread); the SDK waits, as MLflow's client does with
`await_creation_for`, because a training script that registers wants to know at once
whether its model became a READY ONNX version or why not.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cairn.engine.errors import RESOURCE_ALREADY_EXISTS, CairnError, invalid
from cairn.engine.registry.contract import SEARCH_MAX_RESULTS_DEFAULT, RegistryStore
from cairn.engine.registry.entities import (
    Catalog,
    Lineage,
    ModelVersion,
    RegisteredModel,
    Schema,
    Stage,
    StageTransition,
    VersionStatus,
)
from cairn.engine.sdk.context import current_user
from cairn.engine.sdk.pagedlist import PagedList

_logger = logging.getLogger("cairn.registry")

# MLflow's defaults: search_model_versions returns up to 10,000 per page, and clients
# wait up to 300 s for a new version to leave PENDING_REGISTRATION.
SEARCH_MODEL_VERSIONS_DEFAULT = 10_000
AWAIT_DEFAULT_S = 300


def _str_tags(tags: Mapping[str, Any] | None) -> dict[str, str] | None:
    return {str(k): str(v) for k, v in tags.items()} if tags else None


def normalize_source(source: str | os.PathLike) -> str:
    """A model source as the registry stores it: URIs (`runs:/`, `models:/`,
    `mlflow-artifacts:/`, `file://`) as given, a local path made absolute (the registrar
    reads absolute paths as local files). A bare relative path that does not exist is
    an error here: from Python it is a mistyped path far more often than an artifact
    path, which `mlflow-artifacts:/` spells."""
    source = os.fspath(source)
    if "://" in source or source.startswith(("runs:/", "models:/", "mlflow-artifacts:")):
        return source
    local = Path(source).expanduser()
    if not local.exists():
        raise CairnError(
            f"Model source {source!r} is neither a model URI (runs:/, models:/) nor an "
            "existing local folder or .onnx file",
            "RESOURCE_DOES_NOT_EXIST",
        )
    return str(local.resolve())


def run_id_of_source(source: str) -> str | None:
    """The run a `runs:/RUN/PATH` source names (the store takes it from there too; the
    SDK passes it so the version's run_id is set before registration finishes)."""
    if source.startswith("runs:/"):
        run_id = source[len("runs:/"):].strip("/").partition("/")[0]
        return run_id or None
    return None


class RegistryClientMixin:
    """Registry methods of `Client`. Needs `self._engine` (an engine.Engine)."""

    _engine: Any

    @property
    def registry(self) -> RegistryStore:
        return self._engine.registry

    # -- catalogs and schemas ----------------------------------------------------------
    def create_catalog(self, name: str, comment: str = "") -> Catalog:
        return self.registry.create_catalog(name, comment, current_user())

    def get_catalog(self, name: str) -> Catalog:
        return self.registry.get_catalog(name)

    def list_catalogs(self) -> list[Catalog]:
        return self.registry.list_catalogs()

    def update_catalog(self, name: str, comment: str) -> Catalog:
        return self.registry.update_catalog(name, comment)

    def delete_catalog(self, name: str) -> None:
        self.registry.delete_catalog(name)

    def create_schema(self, full_name: str, comment: str = "") -> Schema:
        return self.registry.create_schema(full_name, comment, current_user())

    def get_schema(self, full_name: str) -> Schema:
        return self.registry.get_schema(full_name)

    def list_schemas(self, catalog: str = "main") -> list[Schema]:
        return self.registry.list_schemas(catalog)

    def update_schema(self, full_name: str, comment: str) -> Schema:
        return self.registry.update_schema(full_name, comment)

    def delete_schema(self, full_name: str) -> None:
        self.registry.delete_schema(full_name)

    # -- registered models -------------------------------------------------------------
    def create_registered_model(
        self,
        name: str,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
        deployment_job_id: str | None = None,
    ) -> RegisteredModel:
        """`deployment_job_id` is accepted for MLflow's signature and ignored (a
        Databricks feature)."""
        return self.registry.create_registered_model(
            name, _str_tags(tags), description or "", current_user()
        )

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self.registry.get_registered_model(name)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        return self.registry.rename_registered_model(name, new_name)

    def update_registered_model(
        self, name: str, description: str | None = None, deployment_job_id: str | None = None
    ) -> RegisteredModel:
        if description is None:
            return self.registry.get_registered_model(name)
        return self.registry.update_registered_model(name, description)

    def delete_registered_model(self, name: str) -> None:
        self.registry.delete_registered_model(name)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ):
        page = self.registry.search_registered_models(
            filter_string or None, max_results, order_by, page_token
        )
        return PagedList(page.items, page.next_page_token)

    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        return self.registry.get_latest_versions(name, list(stages) if stages else None)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self.registry.set_registered_model_tag(name, key, str(value))

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.registry.delete_registered_model_tag(name, key)

    # -- aliases -----------------------------------------------------------------------
    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        self.registry.set_registered_model_alias(name, alias, str(version), current_user())

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.registry.delete_registered_model_alias(name, alias, current_user())

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self.registry.get_model_version_by_alias(name, alias)

    # -- model versions ----------------------------------------------------------------
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        await_creation_for: int = AWAIT_DEFAULT_S,
        local_model_path: str | None = None,
        model_id: str | None = None,
    ) -> ModelVersion:
        """A new version of an existing registered model from `source` (`runs:/`,
        `models:/`, a local folder or .onnx file). Waits up to `await_creation_for`
        seconds for it to finish: FAILED_REGISTRATION raises a CairnError with the
        reason; still pending after the wait returns the PENDING version (the
        registrar keeps going). `local_model_path` is MLflow's name for a local source
        and wins over `source` when given."""
        src = normalize_source(local_model_path or source)
        # This process does registration work now: also finish what a crash left.
        self._engine.registrar.resume_pending()
        mv = self.registry.create_model_version(
            name,
            src,
            run_id=run_id or run_id_of_source(src),
            tags=_str_tags(tags),
            run_link=run_link,
            description=description or "",
            user_id=current_user(),
            model_id=model_id,
        )
        return self._await_version(mv, await_creation_for)

    def _await_version(self, mv: ModelVersion, timeout: float | None) -> ModelVersion:
        if not timeout or timeout <= 0:
            return mv
        done = self._engine.registrar.wait(mv.full_name or mv.name, mv.version, timeout)
        if done.status == VersionStatus.FAILED:
            raise CairnError(
                f"Registering {done.name} version {done.version} failed: {done.status_message}"
            )
        if done.status == VersionStatus.PENDING:
            _logger.warning(
                "%s version %s is still %s after %ss; it finishes in the background",
                done.name, done.version, done.status, timeout,
            )
        return done

    def wait_for_model_version(self, name: str, version: str | int, timeout: float = AWAIT_DEFAULT_S) -> ModelVersion:
        """Block until the version has left PENDING_REGISTRATION (or `timeout` passed)
        and return it as it is then; never raises for FAILED_REGISTRATION."""
        return self._engine.registrar.wait(name, str(version), timeout)

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> ModelVersion:
        """A new version of `dst_name` (created if missing) derived from
        `models:/NAME/VERSION` or `models:/NAME@ALIAS`, as MlflowClient.copy_model_version."""
        if not src_model_uri.startswith("models:/"):
            raise invalid(f"copy_model_version takes a models:/ URI, got {src_model_uri!r}")
        self._ensure_registered_model(dst_name)
        return self.create_model_version(dst_name, src_model_uri)

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self.registry.create_registered_model(name, None, "", current_user())
        except CairnError as exc:
            if exc.error_code != RESOURCE_ALREADY_EXISTS:
                raise

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return self.registry.get_model_version(name, str(version))

    def update_model_version(self, name: str, version: str | int, description: str | None = None) -> ModelVersion:
        if description is None:
            return self.registry.get_model_version(name, str(version))
        return self.registry.update_model_version(name, str(version), description)

    def delete_model_version(self, name: str, version: str | int) -> None:
        self.registry.delete_model_version(name, str(version))

    def transition_model_version_stage(
        self,
        name: str,
        version: str | int,
        stage: str,
        archive_existing_versions: bool = False,
        comment: str = "",
    ) -> ModelVersion:
        """`comment` is Cairn's: it is kept with the recorded transition."""
        return self.registry.transition_model_version_stage(
            name, str(version), stage, archive_existing_versions, current_user(), comment or ""
        )

    def set_model_version_tag(
        self,
        name: str,
        version: str | int | None = None,
        key: str | None = None,
        value: Any = None,
        stage: str | None = None,
    ) -> None:
        """As MLflow: give `version`, or `stage` to tag that stage's latest version."""
        version = self._version_or_stage(name, version, stage)
        if key is None:
            raise invalid("set_model_version_tag: `key` is required")
        self.registry.set_model_version_tag(name, version, key, str(value))

    def delete_model_version_tag(
        self,
        name: str,
        version: str | int | None = None,
        key: str | None = None,
        stage: str | None = None,
    ) -> None:
        version = self._version_or_stage(name, version, stage)
        if key is None:
            raise invalid("delete_model_version_tag: `key` is required")
        self.registry.delete_model_version_tag(name, version, key)

    def _version_or_stage(self, name: str, version: str | int | None, stage: str | None) -> str:
        if (version is None) == (stage is None):
            raise invalid("Give exactly one of `version` or `stage`")
        if version is not None:
            return str(version)
        latest = self.registry.get_latest_versions(name, [Stage.parse(stage)])
        if not latest:
            raise CairnError(
                f"Registered Model {name} has no version in stage {Stage.parse(stage)}",
                "RESOURCE_DOES_NOT_EXIST",
            )
        return latest[0].version

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        return self.registry.get_model_version_download_uri(name, str(version))

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = SEARCH_MODEL_VERSIONS_DEFAULT,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ):
        page = self.registry.search_model_versions(
            filter_string or None, max_results, order_by, page_token
        )
        return PagedList(page.items, page.next_page_token)

    # -- Cairn's own: audit trail and lineage ------------------------------------------
    def list_transitions(self, name: str, version: str | int | None = None) -> list[StageTransition]:
        """Recorded stage, alias and status changes, oldest first."""
        return self.registry.list_transitions(name, None if version is None else str(version))

    def get_lineage(self, name: str, version: str | int) -> Lineage:
        return self.registry.get_lineage(name, str(version))


__all__ = ["RegistryClientMixin", "normalize_source", "run_id_of_source"]
