"""The serving routes of `cairn server`: `POST /serving-endpoints/{name}/invocations`
(Databricks' path) and `GET /metrics` (Prometheus text).

The invocations route is a raw ASGI handler inside the Litestar app: Litestar routes to
it, then no framework work runs per request (DESIGN.md: 2-3x cheaper on the hot path).
The body is read with the same limit and errors as `cairn models serve`.

The serving stack (numpy, ONNX Runtime, the manager's poller) loads on the first call of
either route, not at server start: a tracking-only appliance should start in well
under a second.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading

from litestar import Response, get
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from cairn.app.auth import ACCESS
from cairn.app.serving.asgi import (
    DEFAULT_MAX_BODY_BYTES,
    Disconnected,
    Refused,
    error_body,
    header,
    read_body,
    respond,
)
from cairn.engine.errors import INTERNAL_ERROR, CairnError
from cairn.engine.governance.access import Access
from cairn.engine.governance.limits import RateLimited

log = logging.getLogger("cairn.serving")
# Prometheus' text exposition format (metrics.CONTENT_TYPE, without importing it early).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class LazyManager:
    """The process's EndpointManager, created (and its poller started) on first use."""

    def __init__(self, engine):
        self._engine = engine
        self._manager = None
        self._lock = threading.Lock()

    def get(self):
        manager = self._manager
        if manager is None:
            with self._lock:
                if self._manager is None:
                    from cairn.app.serving.manager import EndpointManager

                    self._manager = EndpointManager(self._engine)
                    self._manager.start()
                manager = self._manager
        return manager

    def close(self) -> None:
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None:
            manager.close()


def endpoint_routes(lazy: LazyManager, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> list:
    # Mounted, and the rest of the path parsed here: Litestar (2.x) cannot route an ASGI
    # handler whose path has parameters (KeyError on the method in its routing trie).
    @asgi("/serving-endpoints", is_mount=True, copy_scope=False)
    async def invocations(scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"].strip("/").split("/")
        if len(parts) != 2 or parts[1] != "invocations" or not parts[0]:
            await respond(
                send, 404, error_body("ENDPOINT_NOT_FOUND", f"No route {scope['raw_path'].decode('latin-1')!r}: "
                                      "use POST /serving-endpoints/NAME/invocations"),
            )
            return
        if scope["method"] != "POST":
            await respond(
                send, 405, error_body("BAD_REQUEST", f"Method {scope['method']} is not allowed: use POST"),
                [(b"allow", b"POST")],
            )
            return
        try:
            # CAN_QUERY on the endpoint and its rate limits (the gate put the caller's Access
            # in the scope); an endpoint the caller may not see is answered as absent.
            scope[ACCESS].query(parts[0])
        except RateLimited as exc:
            retry = str(max(1, math.ceil(exc.retry_after_s))).encode()
            await respond(send, 429, error_body(exc.error_code, exc.message), [(b"retry-after", retry)])
            return
        except CairnError as exc:
            await respond(send, exc.http_status, error_body(exc.error_code, exc.message))
            return
        try:
            body = await read_body(scope, receive, max_body_bytes)
            manager = lazy._manager or await asyncio.to_thread(lazy.get)
            reply = await manager.invoke(
                parts[0], header(scope, b"content-type"), body, dict(scope["headers"])
            )
        except Disconnected:
            return
        except Refused as exc:
            await respond(send, exc.status, error_body(exc.code, exc.message), exc.headers)
            return
        except Exception:  # never a stack trace to the client
            log.exception("serving request failed")
            await respond(send, 500, error_body(INTERNAL_ERROR, "Internal error while scoring"))
            return
        await respond(send, reply.status, reply.body, reply.headers)

    @get("/metrics", sync_to_thread=True, include_in_schema=False)
    def metrics(access: Access) -> Response:
        access.admin("read the server's metrics")
        return Response(lazy.get().metrics.render(), media_type=METRICS_CONTENT_TYPE)

    return [invocations, metrics]
