"""Where the terminal UI gets its data: the `Backend` protocol and its two implementations.

Screens call only these methods, and get the engine's own entity Structs back, so a
screen never knows whether it reads a local data directory (`LocalBackend`, the engine
in-process) or a running Cairn server (`RemoteBackend`, MLflow's REST API over httpx).
Method names and arguments mirror the engine stores' (engine/tracking/contract.py,
engine/registry/contract.py); the docstrings here say only what differs or what the UI
relies on. Every method blocks: screens call them from thread workers.

Errors: both backends raise `engine.errors.CairnError` with MLflow's error codes, so a
screen shows `exc.message` the same way whichever backend failed (a remote error's
message is the server's; a connection failure is INVALID_STATE naming the URL).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import quote

import msgspec

from cairn.engine.errors import CairnError
from cairn.engine.features.store import FeatureTable
from cairn.engine.governance.records import AuditEntry
from cairn.engine.loggedmodels.records import LoggedModel
from cairn.engine.monitoring.profiles import Profile
from cairn.engine.monitoring.records import AlertRule, AlertState, MonitorRecord, WindowRecord
from cairn.engine.query.pagination import Page
from cairn.engine.registry.entities import (
    Catalog,
    Lineage,
    ModelVersion,
    RegisteredModel,
    Schema,
    StageTransition,
)
from cairn.engine.sdk.features import TableDescription
from cairn.engine.store.artifacts import FileInfo, check_artifact_path
from cairn.engine.tracking.entities import Experiment, Metric, Run, ViewType

# A preview is for reading on screen; a 2 GB log file must not be read whole.
MAX_PREVIEW_BYTES = 64 * 1024


def _head_text(data: bytes, limit: int) -> tuple[str, bool]:
    """The first `limit` of `data` (read as limit + 1 bytes) as UTF-8, bad bytes
    replaced, and whether there was more."""
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


# service.proto's LoggedModelStatus names, as the REST API sends them.
WIRE_MODEL_STATUS = {"LOGGED_MODEL_PENDING": "PENDING", "LOGGED_MODEL_READY": "READY",
                     "LOGGED_MODEL_UPLOAD_FAILED": "FAILED"}  # fmt: skip


@runtime_checkable
class Backend(Protocol):
    """The UI's data source. `describe()` says where the data comes from (shown in the
    title bar)."""

    def describe(self) -> str: ...

    # -- tracking --------------------------------------------------------------------
    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[Experiment]:
        """As TrackingStore.search_experiments."""

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> Page[Run]:
        """Active runs, as TrackingStore.search_runs; a bad filter raises CairnError
        INVALID_PARAMETER_VALUE whose message says where it is wrong."""

    def get_run(self, run_id: str) -> Run: ...

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of one metric (all pages), ordered as the store orders them."""

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """Immediate children of `path`, paths relative to the run's artifact root."""

    def read_artifact_text(self, run_id: str, path: str, limit: int = MAX_PREVIEW_BYTES) -> tuple[str, bool]:
        """The first `limit` bytes of an artifact decoded as UTF-8 (bad bytes
        replaced), and whether the file was longer."""

    def read_logged_model_text(self, model: LoggedModel, path: str,
                               limit: int = MAX_PREVIEW_BYTES) -> tuple[str, bool]:  # fmt: skip
        """As read_artifact_text, for a file of a logged model (its MLmodel, say);
        RESOURCE_DOES_NOT_EXIST when the model has no such file."""

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[LoggedModel]:
        """As LoggedModelStore.search_logged_models (MLflow 3's logged models), without
        dataset filters or ordering: newest first. `info.status` is the short name
        (PENDING, READY, FAILED) from either backend."""

    # -- registry --------------------------------------------------------------------
    def list_catalogs(self) -> list[Catalog]: ...

    def list_schemas(self, catalog: str) -> list[Schema]: ...

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[RegisteredModel]: ...

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[ModelVersion]: ...

    def get_registered_model(self, name: str) -> RegisteredModel: ...

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None: ...

    def delete_registered_model_alias(self, name: str, alias: str) -> None: ...

    def transition_model_version_stage(
        self,
        name: str,
        version: str | int,
        stage: str,
        archive_existing_versions: bool = False,
        comment: str = "",
    ) -> ModelVersion: ...

    def get_lineage(self, name: str, version: str | int) -> Lineage: ...

    def list_transitions(self, name: str, version: str | int | None = None) -> list[StageTransition]: ...

    def list_feature_tables(self) -> list[FeatureTable]:
        """Every feature table with its Delta and online versions, by full name."""

    def describe_feature_table(self, name: str) -> TableDescription:
        """The table, its newest Delta versions and the model versions trained on it."""

    # -- monitoring ------------------------------------------------------------------
    def list_monitors(self) -> list[MonitorRecord]:
        """Every endpoint monitor, by endpoint."""

    def monitor_windows(self, endpoint: str) -> list[WindowRecord]:
        """The monitor's windows of its smallest granularity, all entities, oldest first."""

    def monitor_alerts(self, endpoint: str) -> list[tuple[AlertRule, AlertState]]:
        """The monitor's alert rules with their state."""

    def monitor_window(self, endpoint: str, start_ms: int) -> WindowRecord | None:
        """The window of the smallest granularity, all entities, starting at start_ms,
        with its profile (histograms on its baseline's bin edges); None if there is none."""

    def model_baseline(self, model: str, version: str) -> Profile:
        """The model version's training baseline; RESOURCE_DOES_NOT_EXIST when it has none."""

    # -- governance ------------------------------------------------------------------
    def audit_entries(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` audit entries, oldest first."""

    def verify_audit(self) -> tuple[int, str | None]:
        """(entries checked, the first problem or None)."""


class LocalBackend:
    """The engine of one data directory, in this process. `server_url`: a Cairn server
    running in this process on the same engine (`cairn up`), whose live serving figures
    the Serving screen reads; None when nothing is served here (`cairn ui`)."""

    def __init__(self, eng, server_url: str | None = None, server_token: str | None = None):
        self.eng = eng
        self.server_url = server_url
        self.server_token = server_token  # what that server's /metrics wants (`cairn up --auth`)

    def describe(self) -> str:
        return str(self.eng.path)

    def search_experiments(self, view_type=ViewType.ACTIVE_ONLY, max_results=1000, filter_string=None,
                           order_by=None, page_token=None) -> Page[Experiment]:  # fmt: skip
        return self.eng.tracking.search_experiments(view_type, max_results, filter_string, order_by, page_token)

    def search_runs(self, experiment_ids, filter_string=None, order_by=None, max_results=1000,
                    page_token=None) -> Page[Run]:  # fmt: skip
        return self.eng.tracking.search_runs(
            list(experiment_ids), filter_string or None, ViewType.ACTIVE_ONLY, max_results,
            list(order_by) if order_by else None, page_token,
        )  # fmt: skip

    def get_run(self, run_id: str) -> Run:
        return self.eng.tracking.get_run(run_id)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.eng.tracking.get_metric_history(run_id, key).items

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        return self.eng.tracking.list_artifacts(run_id, path)

    def read_artifact_text(self, run_id: str, path: str, limit: int = MAX_PREVIEW_BYTES) -> tuple[str, bool]:
        with self.eng.tracking.open_artifact(run_id, path) as f:
            return _head_text(f.read(limit + 1), limit)

    def read_logged_model_text(self, model: LoggedModel, path: str,
                               limit: int = MAX_PREVIEW_BYTES) -> tuple[str, bool]:  # fmt: skip
        root = self.eng.logged_models.artifact_root(model.model_id)
        with self.eng.artifacts.open(f"{root}/{check_artifact_path(path)}") as f:
            return _head_text(f.read(limit + 1), limit)

    def search_logged_models(self, experiment_ids, filter_string=None, max_results=None,
                             page_token=None) -> Page[LoggedModel]:  # fmt: skip
        return self.eng.logged_models.search_logged_models(list(experiment_ids), filter_string or None,
                                                           max_results=max_results, page_token=page_token)  # fmt: skip

    def list_catalogs(self) -> list[Catalog]:
        return self.eng.registry.list_catalogs()

    def list_schemas(self, catalog: str) -> list[Schema]:
        return self.eng.registry.list_schemas(catalog)

    def search_registered_models(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        return self.eng.registry.search_registered_models(filter_string, max_results, order_by, page_token)

    def search_model_versions(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        return self.eng.registry.search_model_versions(filter_string, max_results, order_by, page_token)

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self.eng.registry.get_registered_model(name)

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        self.eng.registry.set_registered_model_alias(name, alias, version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.eng.registry.delete_registered_model_alias(name, alias)

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions=False, comment=""):
        return self.eng.registry.transition_model_version_stage(
            name, version, stage, archive_existing_versions=archive_existing_versions, comment=comment
        )

    def get_lineage(self, name: str, version: str | int) -> Lineage:
        return self.eng.registry.get_lineage(name, version)

    def list_transitions(self, name: str, version: str | int | None = None) -> list[StageTransition]:
        return self.eng.registry.list_transitions(name, version)


    # -- feature store (the offline side needs the `features` extra) ------------------
    def _features(self):
        from cairn.engine.sdk.features import FeatureEngineeringClient

        return FeatureEngineeringClient(engine=self.eng)

    def list_feature_tables(self) -> list[FeatureTable]:
        return self._features().list_tables()

    def describe_feature_table(self, name: str) -> TableDescription:
        return self._features().describe_table(name)

    def list_monitors(self) -> list[MonitorRecord]:
        return self.eng.monitoring.list_monitors()

    def monitor_windows(self, endpoint: str) -> list[WindowRecord]:
        return self.eng.monitoring.windows(endpoint)

    def monitor_alerts(self, endpoint: str) -> list[tuple[AlertRule, AlertState]]:
        return self.eng.monitoring.alerts(endpoint)

    def monitor_window(self, endpoint: str, start_ms: int) -> WindowRecord | None:
        return next(iter(self.eng.monitoring.windows(endpoint, start_ms=start_ms, end_ms=start_ms + 1)), None)

    def model_baseline(self, model: str, version: str) -> Profile:
        return self.eng.monitoring.get_baseline(model, version)

    def audit_entries(self, limit: int) -> list[AuditEntry]:
        return self.eng.governance.audit.entries(limit=limit)

    def verify_audit(self) -> tuple[int, str | None]:
        return self.eng.governance.audit.verify()


class RemoteBackend:
    """A running Cairn server, through MLflow's REST API (and Cairn's registry reads)."""

    def __init__(self, url: str, timeout: float = 30.0, token: str | None = None):
        import httpx  # only the remote UI needs it

        self.url = url.rstrip("/")
        self._httpx = httpx
        # A server started with --auth wants a personal access token on every request.
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.client = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def describe(self) -> str:
        return self.url

    def close(self) -> None:
        self.client.close()

    # -- transport -------------------------------------------------------------------
    def _call(self, method: str, path: str, *, params=None, json=None) -> dict:
        try:
            resp = self.client.request(method, path, params=params, json=json)
        except self._httpx.HTTPError as exc:
            raise CairnError(f"Cannot reach {self.url}: {exc}", "INVALID_STATE") from None
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            body = {}
        if resp.status_code >= 400:
            raise CairnError(
                body.get("message") or f"HTTP {resp.status_code} from {path}",
                body.get("error_code") or "INTERNAL_ERROR",
            )
        return body

    def _get(self, route: str, /, **params) -> dict:
        return self._call("GET", route, params={k: v for k, v in params.items() if v is not None})

    @staticmethod
    def _as(obj, cls):
        # strict=False: non-finite metrics arrive as "NaN" / "Infinity" strings.
        return msgspec.convert(obj, cls, strict=False)

    # -- tracking --------------------------------------------------------------------
    def describe_view(self, view_type: int) -> str:
        return {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}[view_type]

    def search_experiments(self, view_type=ViewType.ACTIVE_ONLY, max_results=1000, filter_string=None,
                           order_by=None, page_token=None) -> Page[Experiment]:  # fmt: skip
        body = self._call("POST", "/api/2.0/mlflow/experiments/search", json={
            "view_type": self.describe_view(view_type), "max_results": max_results,
            "filter": filter_string, "order_by": list(order_by or []), "page_token": page_token,
        })  # fmt: skip
        return Page(self._as(body.get("experiments", []), list[Experiment]), body.get("next_page_token"))

    def search_runs(self, experiment_ids, filter_string=None, order_by=None, max_results=1000,
                    page_token=None) -> Page[Run]:  # fmt: skip
        body = self._call("POST", "/api/2.0/mlflow/runs/search", json={
            "experiment_ids": list(experiment_ids), "filter": filter_string or "",
            "run_view_type": "ACTIVE_ONLY", "max_results": max_results,
            "order_by": list(order_by or []), "page_token": page_token,
        })  # fmt: skip
        return Page(self._as(body.get("runs", []), list[Run]), body.get("next_page_token"))

    def get_run(self, run_id: str) -> Run:
        return self._as(self._get("/api/2.0/mlflow/runs/get", run_id=run_id)["run"], Run)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        points: list[Metric] = []
        token = None
        while True:
            body = self._get("/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key=key,
                             max_results=25_000, page_token=token)  # fmt: skip
            points.extend(self._as(body.get("metrics", []), list[Metric]))
            token = body.get("next_page_token")
            if not token:
                return points

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        body = self._get("/api/2.0/mlflow/artifacts/list", run_id=run_id, path=path)
        return self._as(body.get("files", []), list[FileInfo])

    def read_artifact_text(self, run_id: str, path: str, limit: int = MAX_PREVIEW_BYTES) -> tuple[str, bool]:
        return self._read_proxied(self.get_run(run_id).info.artifact_uri, path, limit, f"Run {run_id}")

    def read_logged_model_text(self, model: LoggedModel, path: str,
                               limit: int = MAX_PREVIEW_BYTES) -> tuple[str, bool]:  # fmt: skip
        return self._read_proxied(model.info.artifact_uri, path, limit, f"Logged model {model.model_id}")

    def _read_proxied(self, uri: str, path: str, limit: int, owner: str) -> tuple[str, bool]:
        """The first `limit` bytes of `path` under an `mlflow-artifacts:` URI, through the
        server's artifact proxy, streamed so a large file is never read whole."""
        prefix = "mlflow-artifacts:/"
        if not uri.startswith(prefix):
            raise CairnError(f"{owner}'s artifacts are not served by {self.url} ({uri})", "INVALID_STATE")
        where = "/api/2.0/mlflow-artifacts/artifacts/" + quote(f"{uri[len(prefix):].strip('/')}/{path}")
        data = b""
        try:
            with self.client.stream("GET", where) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    body = resp.json() if resp.content else {}
                    raise CairnError(body.get("message") or f"HTTP {resp.status_code}", body.get("error_code") or "INTERNAL_ERROR")
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) > limit:
                        break  # leaving the block closes the stream: the rest is never read
        except self._httpx.HTTPError as exc:
            raise CairnError(f"Cannot reach {self.url}: {exc}", "INVALID_STATE") from None
        return _head_text(data, limit)

    def search_logged_models(self, experiment_ids, filter_string=None, max_results=None,
                             page_token=None) -> Page[LoggedModel]:  # fmt: skip
        body = self._call("POST", "/api/2.0/mlflow/logged-models/search", json={
            "experiment_ids": list(experiment_ids), "filter": filter_string or None,
            "max_results": max_results, "page_token": page_token,
        })  # fmt: skip
        models = body.get("models", [])
        for m in models:  # the wire's enum name -> the engine's short name
            status = m["info"].get("status", "")
            m["info"]["status"] = WIRE_MODEL_STATUS.get(status, status)
        return Page(self._as(models, list[LoggedModel]), body.get("next_page_token"))

    # -- registry --------------------------------------------------------------------
    def list_catalogs(self) -> list[Catalog]:
        return self._as(self._get("/api/2.1/unity-catalog/catalogs").get("catalogs", []), list[Catalog])

    def list_schemas(self, catalog: str) -> list[Schema]:
        body = self._get("/api/2.1/unity-catalog/schemas", catalog_name=catalog)
        return self._as(body.get("schemas", []), list[Schema])

    def search_registered_models(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        body = self._get("/api/2.0/mlflow/registered-models/search", filter=filter_string,
                         max_results=max_results, order_by=list(order_by or []) or None, page_token=page_token)  # fmt: skip
        return Page(self._as(body.get("registered_models", []), list[RegisteredModel]), body.get("next_page_token"))

    def search_model_versions(self, filter_string=None, max_results=None, order_by=None, page_token=None):
        body = self._get("/api/2.0/mlflow/model-versions/search", filter=filter_string,
                         max_results=max_results, order_by=list(order_by or []) or None, page_token=page_token)  # fmt: skip
        return Page(self._as(body.get("model_versions", []), list[ModelVersion]), body.get("next_page_token"))

    def get_registered_model(self, name: str) -> RegisteredModel:
        body = self._get("/api/2.0/mlflow/registered-models/get", name=name)
        return self._as(body["registered_model"], RegisteredModel)

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        self._call("POST", "/api/2.0/mlflow/registered-models/alias",
                   json={"name": name, "alias": alias, "version": str(version)})  # fmt: skip

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", "/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": alias})

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions=False, comment=""):
        body = self._call("POST", "/api/2.0/mlflow/model-versions/transition-stage", json={
            "name": name, "version": str(version), "stage": stage,
            "archive_existing_versions": archive_existing_versions, "comment": comment,
        })  # fmt: skip
        return self._as(body["model_version"], ModelVersion)

    def get_lineage(self, name: str, version: str | int) -> Lineage:
        body = self._get("/api/2.0/mlflow/model-versions/lineage", name=name, version=str(version))
        return self._as(body["lineage"], Lineage)

    def list_transitions(self, name: str, version: str | int | None = None) -> list[StageTransition]:
        body = self._get("/api/2.0/mlflow/model-versions/transitions", name=name,
                         version=str(version) if version is not None else None)  # fmt: skip
        return self._as(body.get("transitions", []), list[StageTransition])

    # -- feature store ---------------------------------------------------------------
    def list_feature_tables(self) -> list[FeatureTable]:
        body = self._get("/api/2.0/feature-store/feature-tables/list")
        return self._as(body.get("feature_tables", []), list[FeatureTable])

    def describe_feature_table(self, name: str) -> TableDescription:
        return self._as(self._get("/api/2.0/feature-store/feature-tables/describe", name=name), TableDescription)

    def list_monitors(self) -> list[MonitorRecord]:
        return [MonitorRecord(0, m["endpoint_name"], m["granularities_s"], m["created_ms"], m["created_by"],
                              m["settle_s"], last_refresh_ms=m["last_refresh_ms"])
                for m in self._get("/api/2.0/monitors/list").get("monitors", [])]

    def monitor_windows(self, endpoint: str) -> list[WindowRecord]:
        body = self._get("/api/2.0/monitors/metrics", endpoint_name=endpoint)
        return self._as(body.get("windows", []), list[WindowRecord])

    def monitor_alerts(self, endpoint: str) -> list[tuple[AlertRule, AlertState]]:
        body = self._get("/api/2.0/monitors/alerts", endpoint_name=endpoint)
        return [(self._as(a.pop("rule"), AlertRule), self._as(a, AlertState)) for a in body.get("alerts", [])]

    def monitor_window(self, endpoint: str, start_ms: int) -> WindowRecord | None:
        body = self._get("/api/2.0/monitors/metrics", endpoint_name=endpoint, start_ms=start_ms, end_ms=start_ms + 1,
                         profiles="true")
        return next(iter(self._as(body.get("windows", []), list[WindowRecord])), None)

    def model_baseline(self, model: str, version: str) -> Profile:
        return self._as(self._get("/api/2.0/monitors/baselines/get", name=model, version=version)["profile"], Profile)

    def audit_entries(self, limit: int) -> list[AuditEntry]:
        body = self._get("/api/2.0/audit/entries", max_results=limit)
        return [AuditEntry(**e) for e in body.get("entries", [])]  # stored array-like, sent by name

    def verify_audit(self) -> tuple[int, str | None]:
        body = self._get("/api/2.0/audit/verify")
        return body["entries_checked"], body.get("problem")
