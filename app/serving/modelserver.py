"""`cairn models serve -m URI`: one model behind MLflow's scoring routes, like `mlflow
models serve`, on uvicorn (uvloop + httptools).

The URI is anything engine.modelloading.load_model takes: `models:/NAME@ALIAS`,
`models:/NAME/N` (or a stage, or latest), `models:/m-ID`, `runs:/RUN/PATH`, an .onnx
file or an MLflow model folder (converted on load). A registry URI is resolved to its
version once, at start: the server keeps serving that version if the alias moves later
(named endpoints follow aliases; this mirrors `mlflow models serve`).
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from engine.modelloading import load_model, resolve_version

from ..address import DEFAULT_HOST, DEFAULT_MODEL_PORT
from .batcher import Batcher
from .invocations import DEFAULT_MAX_BODY_BYTES, create_model_server

DEFAULT_MAX_BATCH_ROWS = 64
DEFAULT_MAX_QUEUE_ROWS = 4096


def load_served_model(uri: str, data_dir: str | os.PathLike | None = None) -> tuple[Any, dict[str, Any]]:
    """(predictor, version info for /version) for `uri`; the registry and artifact store
    are those of `data_dir` (else the SDK's default data directory)."""
    from engine.client import open_engine, set_tracking_dir

    if data_dir is not None:
        set_tracking_dir(data_dir)
    rest = uri[len("models:/"):].strip("/") if uri.startswith("models:/") else ""
    if rest and not (rest.startswith("m-") and "/" not in rest):
        # Resolve once and load that exact version: an alias moving meanwhile cannot
        # make the served model and the reported version disagree.
        mv = resolve_version(open_engine().registry, rest, uri)
        predictor = load_model(f"models:/{mv.full_name or mv.name}/{mv.version}")
        return predictor, {"model_name": mv.name, "model_version": str(mv.version)}
    return load_model(uri), {}


def serve_model(
    uri: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_MODEL_PORT,
    *,
    data_dir: str | os.PathLike | None = None,
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    max_wait_ms: float = 0.0,
    max_queue_rows: int = DEFAULT_MAX_QUEUE_ROWS,
    max_workers: int = 0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Load the model, then serve it until interrupted; `ready(url)` is called once the
    socket accepts connections (with the bound port when `port` is 0)."""
    import uvicorn

    predictor, info = load_served_model(uri, data_dir)
    batcher = Batcher(
        predictor.run, max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms,
        max_queue_rows=max_queue_rows, max_workers=max_workers, name=uri,
    )
    app = create_model_server(
        predictor, model_uri=uri, version_info=info, batcher=batcher, max_body_bytes=max_body_bytes
    )
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", lifespan="on",
        log_level="warning", access_log=False,
    )
    server = uvicorn.Server(config)
    if ready is not None:
        _call_when_started(server, ready, host, port)
    try:
        server.run()
    finally:
        batcher.close(drain=True, timeout=10.0)


def _call_when_started(server, ready: Callable[[str], None], host: str, port: int) -> None:
    original = server.startup

    async def startup(sockets=None):
        await original(sockets=sockets)
        bound = port
        if server.servers and server.servers[0].sockets:
            bound = server.servers[0].sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        ready(f"http://{shown}:{bound}")
        await asyncio.sleep(0)

    server.startup = startup


__all__ = ["DEFAULT_MAX_BATCH_ROWS", "DEFAULT_MAX_QUEUE_ROWS", "load_served_model", "serve_model"]
