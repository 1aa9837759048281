"""Who is calling, on every route: the authentication gate and the request audit.

`AuthGate(engine, required)` is a Litestar middleware factory (plain ASGI, so the
scoring routes pay a few microseconds, not a framework's handler). It puts the `Caller`
in `scope["user"]` (Litestar's `request.user`):
- auth off (`cairn server` on loopback, the default): everyone is the local admin, as
  today; the server then refuses to listen beyond 127.0.0.1 (cli/main.py);
- auth on (`--auth`): every route but /health, /ping and /version needs a Bearer token
  or basic auth; anything else is 401 UNAUTHENTICATED naming what is missing.

What the caller may do is asked by each route of an `Access` (engine/governance/access.py)
the gate puts in `scope["cairn.access"]` (the `access` dependency). With auth on, a route
that answers with a success without having asked is refused by the gate instead (403,
logged as a bug): a route that forgets its check fails closed.

Audited with auth on (engine/governance/audit.py, queued off the request path): every
mutating request with its outcome, and every refusal (401, 403), scoring calls
included; a scoring call that succeeds is traffic, not a change, and is not audited
(the payload log is where it is recorded). With auth off nothing is audited per request:
there is no principal to name and no one is refused.
"""
from __future__ import annotations

import logging
from typing import Any

from cairn.app.serving.asgi import error_body
from cairn.engine.errors import PERMISSION_DENIED, CairnError
from cairn.engine.governance.access import Access
from cairn.engine.governance.credentials import Caller
from cairn.engine.governance.principals import read_generation

log = logging.getLogger("cairn.auth")
LOCAL_ADMIN = Caller("", admin=True)  # auth off: the single-user appliance of before
OPEN_PATHS = frozenset(("/health", "/ping", "/version"))
# The OpenAPI document and its viewers: for anyone signed in.
SCHEMA_PREFIX = "/schema"
_READS = frozenset(("GET", "HEAD", "OPTIONS"))
ACCESS = "cairn.access"
UNCHECKED = ("This route answered without checking what the caller may do, so the answer is withheld "
             "(a bug in Cairn: please report it)")


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def source_of(scope) -> str:
    """The caller's address as the audit log records it."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


class AuthGate:
    """`metrics_key`: a secret of this process (never stored) that lets GET /metrics in,
    so `cairn up --auth`'s own UI reads its server's figures without a user's token."""

    def __init__(self, engine, required: bool, metrics_key: str | None = None):
        self.required = required
        self._engine = engine
        self._credentials = engine.governance.credentials
        self._audit = engine.governance.audit
        self._metrics_header = f"Bearer {metrics_key}" if metrics_key else None

    def __call__(self, app):
        required, credentials, audit = self.required, self._credentials, self._audit
        metrics_header, engine, lenv = self._metrics_header, self._engine, self._engine.env

        async def gate(scope, receive, send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            path, method = scope["path"], scope["method"]
            if not required:
                # No one to name and no one refused: the request path stays as it was (the
                # command line still audits its governance changes).
                scope["user"] = LOCAL_ADMIN
                scope[ACCESS] = Access(engine, LOCAL_ADMIN)
                await app(scope, receive, send)
                return
            generation = None
            if path in OPEN_PATHS:
                caller = Caller("")
            elif metrics_header and path == "/metrics" and method == "GET" \
                    and _header(scope, b"authorization") == metrics_header:
                caller = Caller("cairn-ui", admin=True)  # this one route only
            else:
                try:
                    generation = read_generation(lenv)  # once: authentication and every check use it
                    caller = credentials.authenticate(_header(scope, b"authorization"), generation)
                except CairnError as exc:
                    audit.record_async("", source_of(scope), f"{method} {path}", outcome="401", detail=exc.message)
                    await _refuse(send, exc)
                    return
            access = Access(engine, caller, generation)
            if path in OPEN_PATHS or path.startswith(SCHEMA_PREFIX):
                access.checked = True
            scope["user"] = caller
            scope[ACCESS] = access
            status: list[int] = []
            withheld: list[bool] = []

            async def watch(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    if message["status"] < 400 and not access.checked:
                        log.error("%s %s answered %s without an access check", method, path, message["status"])
                        withheld.append(True)
                        status.append(403)
                        await _refuse(send, CairnError(UNCHECKED, PERMISSION_DENIED))
                        return
                    status.append(message["status"])
                elif withheld:
                    return
                await send(message)

            await app(scope, receive, watch)
            if method in _READS and not path.endswith("/invocations") and not withheld:
                if not status or status[0] not in (401, 403):
                    return
            code = status[0] if status else 500
            scoring = path.endswith("/invocations")
            if not scoring or code in (401, 403):
                audit.record_async(scope["user"].principal, source_of(scope), f"{method} {path}", outcome=str(code))

        return gate


async def _refuse(send, exc: CairnError) -> None:
    body = error_body(exc.error_code, exc.message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.http_status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="cairn", Basic realm="cairn"'))
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
