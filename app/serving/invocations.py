"""The scoring routes of one served model as a plain ASGI app: what `cairn models serve`
runs (as `mlflow models serve` does), with MLflow's paths and answers.

- POST /invocations: scoring.parse_request -> Batcher.submit (the model runs in a worker
  thread, off the event loop) -> scoring.format_response.
- GET /ping, /health: 200 once the model is loaded (the app exists only then).
- GET /version: the Cairn version and which model is served.

No framework runs per request: the route is a string comparison and the body is read
straight off the ASGI channel (DESIGN.md: a framework handler costs 2-3x on this path).
Every error is MLflow's JSON (`{"error_code", "message"}`) with its status, never a
stack trace: 400 for bodies the protocol or the signature refuses, 404 unknown path, 405
wrong method, 413 body over the limit, 415 content type, 429 with Retry-After when the
batcher's queue is full, 503 while shutting down, 500 (logged here) for anything else.
"""
from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import msgspec

from cairn.app.serving.asgi import (
    DEFAULT_MAX_BODY_BYTES,
    Disconnected,
    Refused,
    error_body,
    header,
    read_body,
    respond,
)
from cairn.app.serving.batcher import Batcher, BatcherClosed, Overloaded
from cairn.app.serving.scoring import ScoringError, format_response, parse_request
from cairn.app.version import cairn_version
from cairn.engine.errors import BAD_REQUEST, INTERNAL_ERROR, CairnError

log = logging.getLogger("cairn.serving")

# Bodies (and answers) larger than this are parsed (formatted) in a thread: a 16 MiB
# JSON body takes ~100 ms to decode, which would stall every other request on the loop.
INLINE_BYTES = 256 * 1024
INLINE_ROWS = 2048
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"

_GET_ROUTES = ("/ping", "/health", "/version")
_ROUTES = {"/invocations": ("POST",), **{p: ("GET", "HEAD") for p in _GET_ROUTES}}


def create_model_server(
    predictor: Any,
    *,
    model_uri: str,
    version_info: dict[str, Any] | None = None,
    batcher: Batcher | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    fill=None,
):
    """The ASGI app serving `predictor` (anything with `.signature` and `.run(feeds)`:
    an engine.models.predictor.OnnxPredictor or a runtime.ServedModel). `version_info` (e.g.
    {"model_name": "iris", "model_version": "3"}) is added to /version. Without a
    `batcher`, the app makes one with the Batcher's defaults and closes it on shutdown.
    `fill` (FeatureFiller.fill) adds looked-up features to each request's rows."""
    signature = predictor.signature
    owns_batcher = batcher is None
    if batcher is None:
        batcher = Batcher(predictor.run, name=model_uri)
    version_doc = msgspec.json.encode({"version": cairn_version(), "model_uri": model_uri, **(version_info or {})})

    async def invocations(scope, receive) -> bytes:
        body = await read_body(scope, receive, max_body_bytes)
        content_type = header(scope, b"content-type")
        if len(body) > INLINE_BYTES:
            parsed = await asyncio.to_thread(parse_request, content_type, body, signature, fill)
        else:
            parsed = parse_request(content_type, body, signature, fill)
        try:
            outputs = await batcher.submit(parsed.feeds, parsed.rows)
        except Overloaded as exc:
            retry = str(max(1, math.ceil(exc.retry_after_s))).encode()
            raise Refused(429, REQUEST_LIMIT_EXCEEDED, str(exc), [(b"retry-after", retry)]) from None
        except BatcherClosed:
            raise Refused(503, TEMPORARILY_UNAVAILABLE, "The server is shutting down",
                           [(b"retry-after", b"1")]) from None
        if parsed.rows > INLINE_ROWS:
            return await asyncio.to_thread(format_response, outputs, signature)
        return format_response(outputs, signature)

    async def http(scope, receive, send) -> None:
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        method = scope["method"]
        allowed = _ROUTES.get(path)
        try:
            if allowed is None:
                raise Refused(404, ENDPOINT_NOT_FOUND, f"No route for {method} {scope['path']}")
            if method not in allowed:
                raise Refused(405, BAD_REQUEST, f"Method {method} is not allowed on {path}",
                               [(b"allow", ", ".join(allowed).encode())])
            if path == "/invocations":
                body = await invocations(scope, receive)
            elif path == "/version":
                body = version_doc
            else:  # /ping, /health: the app exists only once the model has loaded
                body = b"\n"
        except Refused as exc:
            await respond(send, exc.status, error_body(exc.code, exc.message), exc.headers)
        except ScoringError as exc:
            await respond(send, exc.status, exc.body())
        except CairnError as exc:  # the model refused the input (ONNX Runtime's words)
            await respond(send, exc.http_status, error_body(exc.error_code, exc.message))
        except Disconnected:
            return
        except Exception:
            log.exception("unhandled error on %s %s", method, path)
            await respond(send, 500, error_body(INTERNAL_ERROR, f"Internal error while handling {path}"))
        else:
            await respond(send, 200, body, head=method == "HEAD")

    async def lifespan(receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if owns_batcher:  # queued requests still run; their answers go out first
                    await asyncio.to_thread(batcher.close, True, 10.0)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await http(scope, receive, send)
        elif kind == "lifespan":
            await lifespan(receive, send)

    app.batcher = batcher  # for the caller that closes it, and for tests
    return app


__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_model_server"]
