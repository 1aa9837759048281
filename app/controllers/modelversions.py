"""/api/2.0/mlflow/model-versions/*: MLflow's model-version endpoints
(model_registry.proto), with the paths and methods the 3.x client calls: POST
create/transition-stage/set-tag, PATCH update, DELETE delete/delete-tag, GET
get/search/get-download-uri. Plus Cairn's own reads: GET lineage (where a version came
from) and GET transitions (its audit trail of stage, alias and status changes).

Create answers once the version is registered, when that is quick: the store commits
the version PENDING_REGISTRATION and the registrar (engine/registry/registration.py) copies and
converts it in the background; the handler waits for that, bounded, off the event loop,
and returns whatever status the version has then. A normal scikit-learn registration
thus answers READY, and the mlflow client, which polls a pending version every few
seconds, does not sleep at all.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import JSONBody

from cairn.app.registrywire import (
    lineage_out,
    message_or_query,
    page_out,
    required,
    version_number,
    version_out,
)
from cairn.app.wire import KeyValue, tags_dict
from cairn.engine import Engine
from cairn.engine.errors import CairnError
from cairn.engine.governance.access import APPLY_TAG, MANAGE, MODIFY, Access
from cairn.engine.governance.privileges import REGISTERED_MODEL
from cairn.engine.registry.contract import RegistryStore
from cairn.engine.registry.entities import ModelVersion, VersionStatus
from cairn.engine.registry.registration import Registrar

log = logging.getLogger("cairn.server")

# How long create waits for the registrar before answering PENDING_REGISTRATION (the
# client then polls). Long enough for a scikit-learn conversion and its check on
# sample rows; short of the client's 120 s request timeout.
REGISTRATION_WAIT_S = 30.0
# Waits block a thread each (on the registrar's condition): their own pool, so many
# registrations at once never starve the threads that sync handlers run on.
_WAIT_THREADS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cairn-regwait")
# The logged-model tag MLflow's server sets on a registered logged model
# (mlflow.utils.mlflow_tags.MLFLOW_MODEL_VERSIONS): a JSON list of {name, version}.
MODEL_VERSIONS_TAG = "mlflow.modelVersions"


class CreateModelVersion(msgspec.Struct):
    name: str | None = None
    source: str | None = None
    run_id: str | None = None
    tags: list[KeyValue] = []
    run_link: str | None = None
    description: str | None = None
    model_id: str | None = None


class UpdateModelVersion(msgspec.Struct):
    name: str | None = None
    version: str | int | None = None
    description: str | None = None


class TransitionModelVersionStage(msgspec.Struct):
    name: str | None = None
    version: str | int | None = None
    stage: str | None = None
    archive_existing_versions: bool = False
    comment: str | None = None  # Cairn's: recorded with the transition


class ModelVersionId(msgspec.Struct):
    name: str | None = None
    version: str | int | None = None


class SetModelVersionTag(msgspec.Struct):
    name: str | None = None
    version: str | int | None = None
    key: str | None = None
    value: str = ""


class DeleteModelVersionTag(msgspec.Struct):
    name: str | None = None
    version: str | int | None = None
    key: str | None = None


def tag_logged_model(engine: Engine, mv: ModelVersion) -> None:
    """Add the version to its logged model's `mlflow.modelVersions` tag, as MLflow's
    server does on create (the UI lists a logged model's registered versions from it).
    Best effort, never an error: the version is committed by now, and a failed answer
    would make the client retry the create and so register the model twice."""
    if not mv.model_id:
        return
    entry = {"name": mv.name, "version": mv.version}
    try:
        model = engine.logged_models.get_logged_model(mv.model_id)
        current = {t.key: t.value for t in model.info.tags}.get(MODEL_VERSIONS_TAG)
        listed = json.loads(current) if current else []
        if not isinstance(listed, list):
            listed = []
        if entry not in listed:
            engine.logged_models.set_logged_model_tags(mv.model_id, {MODEL_VERSIONS_TAG: json.dumps([*listed, entry])})
    except (CairnError, ValueError) as exc:  # the logged model is gone, its tag is not JSON
        log.info("not tagging logged model %s with %s v%s: %s", mv.model_id, mv.name, mv.version, exc)
    except Exception:
        log.exception("tagging logged model %s with %s v%s failed", mv.model_id, mv.name, mv.version)


async def wait_registered(registrar: Registrar | None, mv: ModelVersion, timeout: float) -> ModelVersion:
    """The version once the registrar has finished it, or as it is after `timeout`."""
    if registrar is None or mv.status != VersionStatus.PENDING:
        return mv
    deadline = time.monotonic() + timeout
    name = mv.full_name or mv.name

    def wait() -> ModelVersion:
        # The pool may have queued this call: wait only for what is left of the bound.
        return registrar.wait(name, mv.version, max(0.0, deadline - time.monotonic()))

    try:
        return await asyncio.get_running_loop().run_in_executor(_WAIT_THREADS, wait)
    except CairnError:  # deleted meanwhile: answer with what was created
        return mv
    except Exception:  # committed already: an error answer would make the client register twice
        log.exception("waiting for %s version %s failed", name, mv.version)
        return mv


class ModelVersionController(Controller):
    path = "/api/2.0/mlflow/model-versions"
    tags = ("model-versions",)

    @post("/create", status_code=200)
    async def create(
        self,
        registry: RegistryStore,
        registrar: Registrar | None,
        engine: Engine,
        access: Access,
        data: JSONBody[CreateModelVersion],
    ) -> dict:
        name = required(data.name, "name")
        source = required(data.source, "source")
        await anyio.to_thread.run_sync(lambda: (access.model(name, MODIFY),
                                                access.model_source(source, data.run_id, data.model_id)))
        mv = await anyio.to_thread.run_sync(
            lambda: registry.create_model_version(
                name,
                source,
                run_id=data.run_id or None,
                tags=tags_dict(data.tags),
                run_link=data.run_link or None,
                description=data.description or "",
                model_id=data.model_id or None,
            )
        )
        mv = await wait_registered(registrar, mv, REGISTRATION_WAIT_S)
        # After the wait: for a runs:/ source the registrar is what finds the model_id.
        await anyio.to_thread.run_sync(tag_logged_model, engine, mv)
        return {"model_version": version_out(mv)}

    @patch("/update", status_code=200, sync_to_thread=True)
    def update(self, registry: RegistryStore, access: Access, data: JSONBody[UpdateModelVersion]) -> dict:
        access.model(required(data.name, "name"), MODIFY)
        mv = registry.update_model_version(
            required(data.name, "name"), version_number(data.version), data.description or ""
        )
        return {"model_version": version_out(mv)}

    @post("/transition-stage", status_code=200, sync_to_thread=True)
    def transition_stage(self, registry: RegistryStore, access: Access,
                         data: JSONBody[TransitionModelVersionStage]) -> dict:
        access.model(required(data.name, "name"), MODIFY)
        mv = registry.transition_model_version_stage(
            required(data.name, "name"),
            version_number(data.version),
            required(data.stage, "stage"),
            archive_existing_versions=data.archive_existing_versions,
            comment=data.comment or "",
        )
        return {"model_version": version_out(mv)}

    @delete("/delete", status_code=200, sync_to_thread=True)
    def delete_version(self, request: Request, registry: RegistryStore, access: Access,
                       data: ModelVersionId | None = None) -> dict:
        msg = message_or_query(request, data, ModelVersionId)
        access.model(required(msg.name, "name"), MANAGE)
        registry.delete_model_version(required(msg.name, "name"), version_number(msg.version))
        return {}

    @get("/get", sync_to_thread=False)
    def get_version(self, registry: RegistryStore, access: Access, name: str | None = None,
                    version: str | None = None) -> dict:
        access.model(required(name, "name"))
        mv = registry.get_model_version(required(name, "name"), version_number(version))
        return {"model_version": version_out(mv)}

    @get("/get-download-uri", sync_to_thread=False)
    def download_uri(self, registry: RegistryStore, access: Access, name: str | None = None,
                     version: str | None = None) -> dict:
        access.model(required(name, "name"))
        uri = registry.get_model_version_download_uri(required(name, "name"), version_number(version))
        return {"artifact_uri": uri}

    @get("/search", sync_to_thread=True)
    def search(
        self,
        registry: RegistryStore,
        access: Access,
        filter: str | None = None,  # MLflow's parameter name
        max_results: int | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> dict:
        page = registry.search_model_versions(
            filter_string=filter or None,
            max_results=max_results,
            order_by=order_by or None,
            page_token=page_token or None,
        )
        # Only versions of models the caller may see; a page can come back short.
        seen = set(access.visible(REGISTERED_MODEL, {v.name for v in page.items}))
        versions = [v for v in page.items if v.name in seen]
        return page_out("model_versions", [version_out(v) for v in versions], page.next_page_token)

    @post("/set-tag", status_code=200, sync_to_thread=True)
    def set_tag(self, registry: RegistryStore, access: Access, data: JSONBody[SetModelVersionTag]) -> dict:
        access.model(required(data.name, "name"), APPLY_TAG)
        registry.set_model_version_tag(
            required(data.name, "name"), version_number(data.version), required(data.key, "key"), data.value
        )
        return {}

    @delete("/delete-tag", status_code=200, sync_to_thread=True)
    def delete_tag(
        self, request: Request, registry: RegistryStore, access: Access, data: DeleteModelVersionTag | None = None
    ) -> dict:
        msg = message_or_query(request, data, DeleteModelVersionTag)
        access.model(required(msg.name, "name"), APPLY_TAG)
        registry.delete_model_version_tag(
            required(msg.name, "name"), version_number(msg.version), required(msg.key, "key")
        )
        return {}

    # -- Cairn's reads -----------------------------------------------------------------
    @get("/lineage", sync_to_thread=False)
    def lineage(self, registry: RegistryStore, access: Access, name: str | None = None,
                version: str | None = None) -> dict:
        access.model(required(name, "name"))
        return {"lineage": lineage_out(registry.get_lineage(required(name, "name"), version_number(version)))}

    @get("/transitions", sync_to_thread=False)
    def transitions(self, registry: RegistryStore, access: Access, name: str | None = None,
                    version: str | None = None) -> dict:
        """The model's transitions, oldest first (one version's with `version`)."""
        access.model(required(name, "name"))
        number = version_number(version) if version else None
        return {"transitions": registry.list_transitions(required(name, "name"), number)}
