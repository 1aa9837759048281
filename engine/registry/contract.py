"""The model registry's interface. These docstrings are the spec; `LmdbRegistryStore`
(registry.py) implements it, the HTTP controllers, the SDK and the CLI call it.

Naming (registrynames.py): every `name` argument is a model name in any accepted form:
`iris` (= `main.default.iris`), `schema.iris` (= `main.schema.iris`) or
`catalog.schema.iris`. Each part is 1-255 characters of ASCII letters, digits, `_` and
`-`, and the full three-part name at most 500 (it is an LMDB key); anything else (empty,
four parts, a space, a `/`) is INVALID_PARAMETER_VALUE naming the name and what is
wrong. Names are case-sensitive. Returned entities carry `name` in display form (bare
inside `main.default`) and `full_name` (three parts). A schema argument is
`catalog.schema`, or `schema` for `main.schema`.

Catalogs and schemas: `main` and `main.default` always exist (created on first open).
Other catalogs and schemas are created explicitly; a model name in a catalog or schema
that does not exist is RESOURCE_DOES_NOT_EXIST naming it. A catalog or schema is deleted
only when empty (INVALID_STATE otherwise); `main` and `main.default` cannot be deleted
(INVALID_PARAMETER_VALUE).

Versions are numbered 1, 2, 3... per registered model and never reused: deleting
version 3 and creating another gives 4. A version is created PENDING_REGISTRATION; the
registration pipeline (registration.py) copies its files, makes and verifies the ONNX
model, and finishes it READY or FAILED_REGISTRATION with a reason in status_message.

Stages: None -> Staging -> Production -> Archived, any transition allowed (as MLflow);
`archive_existing_versions=True` moves the other versions in the target stage (only
Staging or Production) to Archived. Every stage transition and alias change is recorded
(kind, from, to, user, time, comment) and listed by `list_transitions`.

Aliases: 1-255 characters of letters, digits, `_` and `-`, not `latest` and not of the
form `v<digits>` (reserved, as MLflow). An alias points to one version of its model;
setting it again moves it. Deleting a version deletes its aliases. Reading the alias
`latest` (any case) gives the model's highest version, as MLflow's store does.

Errors: RESOURCE_DOES_NOT_EXIST (404) for a missing model, version, alias, catalog or
schema; RESOURCE_ALREADY_EXISTS for a duplicate model, catalog or schema name;
INVALID_PARAMETER_VALUE for bad arguments. Messages name the thing, as MLflow's do
("Registered Model with name=iris not found", "Model Version (name=iris, version=4) not
found").

Deletion is hard, as in MLflow's registry: a deleted model or version is gone (its
transitions too), only the version counter survives inside its model.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from cairn.engine.query.pagination import Page
from cairn.engine.registry.entities import (
    Catalog,
    Lineage,
    ModelVersion,
    RegisteredModel,
    Schema,
    StageTransition,
)

SEARCH_MAX_RESULTS_DEFAULT = 100
SEARCH_REGISTERED_MODELS_MAX = 1_000
SEARCH_MODEL_VERSIONS_MAX = 200_000
MAX_DESCRIPTION_LENGTH = 65_535
MAX_TAG_VALUE_LENGTH = 100_000


class RegistryStore(ABC):
    # -- catalogs and schemas (Unity Catalog's namespace) ------------------------------
    @abstractmethod
    def create_catalog(self, name: str, comment: str = "", user_id: str = "") -> Catalog:
        """Create a catalog (one name part). RESOURCE_ALREADY_EXISTS if it exists."""

    @abstractmethod
    def get_catalog(self, name: str) -> Catalog: ...

    @abstractmethod
    def list_catalogs(self) -> list[Catalog]:
        """All catalogs, ordered by name."""

    @abstractmethod
    def update_catalog(self, name: str, comment: str) -> Catalog: ...

    @abstractmethod
    def delete_catalog(self, name: str) -> None:
        """Only an empty catalog (no schemas); never `main`."""

    @abstractmethod
    def create_schema(self, full_name: str, comment: str = "", user_id: str = "") -> Schema:
        """`catalog.schema`; the catalog must exist."""

    @abstractmethod
    def get_schema(self, full_name: str) -> Schema: ...

    @abstractmethod
    def list_schemas(self, catalog: str) -> list[Schema]:
        """The catalog's schemas, ordered by name. RESOURCE_DOES_NOT_EXIST for an
        unknown catalog."""

    @abstractmethod
    def update_schema(self, full_name: str, comment: str) -> Schema: ...

    @abstractmethod
    def delete_schema(self, full_name: str) -> None:
        """Only an empty schema (no registered models); never `main.default`."""

    # -- registered models -----------------------------------------------------------
    @abstractmethod
    def create_registered_model(
        self,
        name: str,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        user_id: str = "",
    ) -> RegisteredModel:
        """RESOURCE_ALREADY_EXISTS ("Registered Model (name=iris) already exists.")
        when the name is taken."""

    @abstractmethod
    def get_registered_model(self, name: str) -> RegisteredModel:
        """With tags, aliases and latest_versions (the highest version per stage)."""

    @abstractmethod
    def update_registered_model(self, name: str, description: str) -> RegisteredModel: ...

    @abstractmethod
    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Versions, aliases, tags and transitions follow the model. The new name may be
        in another schema (which must exist); RESOURCE_ALREADY_EXISTS if taken."""

    @abstractmethod
    def delete_registered_model(self, name: str) -> None:
        """Deletes the model with its versions, aliases, tags and transitions."""

    @abstractmethod
    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[RegisteredModel]:
        """MLflow's grammar for registered models: `name` with =, !=, LIKE, ILIKE;
        `tags.<key>` (also `tag.`) with =, !=, LIKE, ILIKE; clauses joined by AND.
        `name` also takes IN / NOT IN (as MLflow's SQL store) and matches the display name
        or the full name (= and IN compare canonical names: 'iris', 'default.iris' and
        'main.default.iris' are one model). A filter on
        `tags.mlflow.prompt.is_prompt != 'true'` also matches models without the tag (as
        MLflow's SQL store, which its client sends to hide prompts).
        order_by: `name`, `timestamp`/`last_updated_timestamp`, `creation_timestamp`,
        each ASC (default) or DESC; default order name ASC; ties by name ASC.
        max_results default 100, at most 1,000. Offset page tokens (pagination.py)."""

    @abstractmethod
    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        """The highest version in each requested stage (all stages when empty), in stage
        order None, Staging, Production, Archived. Unknown stage names are
        INVALID_PARAMETER_VALUE."""

    @abstractmethod
    def set_registered_model_tag(self, name: str, key: str, value: str) -> None: ...

    @abstractmethod
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Deleting a tag that is not there is a no-op (as MLflow)."""

    # -- aliases ---------------------------------------------------------------------
    @abstractmethod
    def set_registered_model_alias(self, name: str, alias: str, version: str | int, user_id: str = "") -> None:
        """Point `alias` at `version` (which must exist), moving it if set; recorded as
        a transition of kind alias_set on that version."""

    @abstractmethod
    def delete_registered_model_alias(self, name: str, alias: str, user_id: str = "") -> None:
        """Remove the alias; nothing happens if it is not set (as MLflow's store)."""

    @abstractmethod
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version the alias points at; `latest` names the highest version. An alias
        that is not set is INVALID_PARAMETER_VALUE ("Registered model alias x not
        found."), MLflow's code, which clients branch on."""

    # -- model versions --------------------------------------------------------------
    @abstractmethod
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_link: str | None = None,
        description: str = "",
        user_id: str = "",
        model_id: str | None = None,
    ) -> ModelVersion:
        """A new PENDING_REGISTRATION version of an existing registered model
        (RESOURCE_DOES_NOT_EXIST otherwise) with the next number. `source` is where the
        files come from: `runs:/RUN/PATH`, `models:/m-<id>` (an MLflow 3 logged model),
        `models:/NAME/VERSION` or `models:/NAME@ALIAS` (derived from another version),
        an `mlflow-artifacts:/...` or bare artifact path the proxy serves, or
        `file:///...` for a local model directory or ONNX file (SDK and CLI only). When
        run_id is omitted it is taken from a `runs:/` source or the logged model.
        A `models:/NAME/VERSION`, `/latest`, `/<stage>` or `@ALIAS` source is resolved
        now, in the same transaction (RESOURCE_DOES_NOT_EXIST if it names nothing), and
        recorded as lineage's derived_from = "models:/<full name>/<N>"; the new version
        inherits that version's run_id and model_id unless given its own.
        The registration pipeline is notified after the version is committed."""

    @abstractmethod
    def get_model_version(self, name: str, version: str | int) -> ModelVersion: ...

    @abstractmethod
    def update_model_version(self, name: str, version: str | int, description: str) -> ModelVersion: ...

    @abstractmethod
    def transition_model_version_stage(
        self,
        name: str,
        version: str | int,
        stage: str,
        archive_existing_versions: bool = False,
        user_id: str = "",
        comment: str = "",
    ) -> ModelVersion:
        """Move the version to `stage` (case-insensitive), recording the transition;
        with archive_existing_versions (only for Staging / Production) the model's other
        versions in that stage move to Archived, each recorded. One write transaction."""

    @abstractmethod
    def delete_model_version(self, name: str, version: str | int) -> None:
        """Removes the version, its tags, aliases and transitions; its number is never
        given again."""

    @abstractmethod
    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        """Where MLflow clients download the version's files: `mlflow-artifacts:/` +
        storage location once READY, else the source."""

    @abstractmethod
    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        """MLflow's grammar for versions: `name` (=, !=, LIKE, ILIKE, IN, NOT IN; as for
        models), `version_number` (=, !=, <, <=, >, >=, unquoted integers), `run_id`
        (=, !=, LIKE, ILIKE, IN, NOT IN; a version without a run matches none of them),
        `source_path` (=, !=, LIKE, ILIKE), `tags.<key>` (=, !=, LIKE, ILIKE), plus
        Cairn's `current_stage` (case-insensitive) and `status` (=, !=, IN, NOT IN). order_by: `name`, `version_number`, `creation_timestamp`,
        `last_updated_timestamp` ASC/DESC; default: name ASC, version_number DESC.
        max_results default 10,000 (MLflow's), at most 200,000."""

    @abstractmethod
    def set_model_version_tag(self, name: str, version: str | int, key: str, value: str) -> None: ...

    @abstractmethod
    def delete_model_version_tag(self, name: str, version: str | int, key: str) -> None:
        """Deleting a tag that is not there is a no-op (as MLflow)."""

    @abstractmethod
    def list_transitions(self, name: str, version: str | int | None = None) -> list[StageTransition]:
        """The model's recorded transitions (of one version when given), oldest first."""

    # -- registration (used by the registration pipeline only) -------------------------
    @abstractmethod
    def pending_versions(self) -> list[tuple[str, str]]:
        """(full_name, version) of every PENDING_REGISTRATION version, oldest first: what
        a restart must finish."""

    @abstractmethod
    def finish_registration(
        self,
        name: str,
        version: str | int,
        *,
        status: str,
        status_message: str = "",
        storage_location: str = "",
        signature=None,
        run_id: str | None = None,
        model_id: str | None = None,
    ) -> ModelVersion:
        """Set the outcome of registering a PENDING version (READY or
        FAILED_REGISTRATION), its storage location and signature; recorded as a
        transition of kind status (from_stage/to_stage hold the old and new status,
        comment the message). INVALID_STATE if the version is not pending. run_id and
        model_id fill the version's own only where it has none (what the caller of
        create_model_version said wins); an empty storage_location keeps the old one."""

    # -- lineage ---------------------------------------------------------------------
    @abstractmethod
    def get_lineage(self, name: str, version: str | int) -> Lineage:
        """The version's run, experiment, the run's dataset inputs, source script, git
        commit, params and latest metrics, the logged model and the version it was
        derived from."""
