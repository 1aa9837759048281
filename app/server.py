"""The appliance's HTTP face: `create_app(engine)` builds the Litestar app, `serve()` runs
it on uvicorn (uvloop + httptools). Nothing here knows storage; controllers call the
engine's stores, which are injected as dependencies."""
from __future__ import annotations

import logging

from litestar import Litestar, Request, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from cairn.app.address import DEFAULT_HOST, DEFAULT_PORT
from cairn.app.auth import ACCESS, AuthGate
from cairn.app.controllers.artifacts import ArtifactController
from cairn.app.controllers.audit import AuditController
from cairn.app.controllers.catalogs import CatalogController, SchemaController
from cairn.app.controllers.endpoints import EndpointController
from cairn.app.controllers.experiments import ExperimentController
from cairn.app.controllers.features import FeatureTableController
from cairn.app.controllers.loggedmodels import LoggedModelController, RunOutputsController
from cairn.app.controllers.metrics import MetricController
from cairn.app.controllers.modelversions import ModelVersionController
from cairn.app.controllers.monitors import MonitorController
from cairn.app.controllers.permissions import (
    MlflowExperimentPermissionController,
    MlflowModelPermissionController,
    MlflowUserController,
    UnityPermissionsController,
)
from cairn.app.controllers.registeredmodels import RegisteredModelController
from cairn.app.controllers.runs import RunController
from cairn.app.controllers.tokens import TokenController
from cairn.app.httperrors import EXCEPTION_HANDLERS
from cairn.app.monitorloop import DEFAULT_INTERVAL_S, MonitorRefresher
from cairn.app.serverrun import run_server
from cairn.app.serving.endpointroutes import LazyManager, endpoint_routes
from cairn.app.version import cairn_version
from cairn.engine import Engine
from cairn.engine.endpoints.contract import EndpointStore
from cairn.engine.governance.access import Access
from cairn.engine.registry.contract import RegistryStore
from cairn.engine.registry.registration import Registrar
from cairn.engine.store.artifacts import ArtifactStore
from cairn.engine.tracking.contract import TrackingStore

# JSON requests are small; artifact uploads stream and set their own limit.
MAX_JSON_BODY = 16 * 1024 * 1024


@get("/health", sync_to_thread=False, media_type="text/plain", include_in_schema=False)
def health() -> str:
    return "OK"


@get("/version", sync_to_thread=False, media_type="text/plain", include_in_schema=False)
def version_route() -> str:
    return cairn_version()


@get("/api/3.0/mlflow/server-info", sync_to_thread=False, include_in_schema=False)
def server_info(access: Access) -> dict:
    """What MLflow 3 clients ask before artifact transfers: the proxy takes plain
    streamed PUT/GET only, so multipart and presigned transfers are off. A 200 here is
    cached by the client; a 404 would be asked again on every download."""
    access.signed_in()
    return {
        "store_type": None,
        "workspaces_enabled": False,
        "trace_archival_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "presigned_upload_run_id_supported": False,
        "presigned_upload_model_id_supported": False,
        "features_enabled": {"gateway": False},
    }


def create_app(engine: Engine, *, auth: bool = False, metrics_key: str | None = None,
               monitor_interval_s: float = DEFAULT_INTERVAL_S) -> Litestar:
    """The Litestar app over one opened Engine (the one factory for the HTTP face).
    `auth`: every route but the health checks needs a token or basic auth (app/auth.py).
    `monitor_interval_s`: how often monitors refresh in the background (0: never)."""
    tracking = engine.tracking

    def provide_store() -> TrackingStore:
        return tracking

    def provide_artifacts() -> ArtifactStore:
        return engine.artifacts

    def provide_engine() -> Engine:
        return engine

    def provide_registry() -> RegistryStore:
        return engine.registry

    def provide_registrar() -> Registrar | None:
        return engine.registrar

    def provide_endpoints() -> EndpointStore:
        return engine.endpoints

    def provide_access(request: Request) -> Access:
        return request.scope[ACCESS]  # the gate's (app/auth.py)

    # The server is the long-lived owner of the data directory: it finishes versions a
    # crash left pending.
    engine.registrar.resume_pending()
    # Serving endpoints are built on their first request and kept in step with the
    # store by the manager's poller (started on first use, stopped with the app).
    serving = LazyManager(engine)
    refresher = MonitorRefresher(engine, monitor_interval_s)

    return Litestar(
        route_handlers=[
            health,
            version_route,
            server_info,
            ExperimentController,
            RunController,
            MetricController,
            ArtifactController,
            LoggedModelController,
            RunOutputsController,
            RegisteredModelController,
            ModelVersionController,
            CatalogController,
            SchemaController,
            EndpointController,
            FeatureTableController,
            MonitorController,
            TokenController,
            UnityPermissionsController,
            MlflowExperimentPermissionController,
            MlflowModelPermissionController,
            MlflowUserController,
            AuditController,
            *endpoint_routes(serving),
        ],
        on_startup=[refresher.start],
        on_shutdown=[refresher.stop, serving.close],
        middleware=[AuthGate(engine, auth, metrics_key)],
        dependencies={
            "store": Provide(provide_store, sync_to_thread=False),
            "artifacts": Provide(provide_artifacts, sync_to_thread=False),
            "engine": Provide(provide_engine, sync_to_thread=False),
            "registry": Provide(provide_registry, sync_to_thread=False),
            "registrar": Provide(provide_registrar, sync_to_thread=False),
            "endpoints": Provide(provide_endpoints, sync_to_thread=False),
            "access": Provide(provide_access, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_JSON_BODY,
        openapi_config=OpenAPIConfig(title="Cairn", version=cairn_version(), path="/schema"),
        debug=False,
        logging_config=None,
    )


def make_server(engine: Engine, host: str, port: int, *, auth: bool = False, metrics_key: str | None = None,
                monitor_interval_s: float = DEFAULT_INTERVAL_S, **options):
    """The uvicorn Server of create_app(engine) (uvloop + httptools); `options` are
    further uvicorn.Config settings (`cairn up` with the UI turns its logging off)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(engine, auth=auth, metrics_key=metrics_key, monitor_interval_s=monitor_interval_s),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        **options,
    )
    return uvicorn.Server(config)


def serve(engine: Engine, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, ready=None,
          auth: bool = False, tls: tuple[str, str] | None = None,
          monitor_interval_s: float = DEFAULT_INTERVAL_S) -> None:
    """Run the server until interrupted (SIGTERM: a clean stop, exit 0). `ready(url)` is
    called once it accepts connections. `tls`: (certificate file, key file), both PEM,
    for sites with no proxy in front to terminate HTTPS."""
    options = {"ssl_certfile": tls[0], "ssl_keyfile": tls[1]} if tls else {}
    run_server(make_server(engine, host, port, auth=auth, monitor_interval_s=monitor_interval_s, **options),
               host, port, ready)


logging.getLogger("litestar").setLevel(logging.WARNING)
