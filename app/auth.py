"""Who is calling, on every route: the authentication gate and the request audit.

`AuthGate(engine, required)` is a Litestar middleware factory (plain ASGI, so the
scoring routes pay a few microseconds, not a framework's handler). It puts the `Caller`
in `scope["user"]` (Litestar's `request.user`):
- auth off (`cairn server` on loopback, the default): everyone is the local admin, as
  today; the server then refuses to listen beyond 127.0.0.1 (cli/main.py);
- auth on (`--auth`): every route but /health, /ping and /version needs a Bearer token
  or basic auth; anything else is 401 UNAUTHENTICATED naming what is missing.

Audited with auth on (engine/governance/audit.py, queued off the request path): every
mutating request with its outcome, and every refusal (401, 403), scoring calls
included; a scoring call that succeeds is traffic, not a change, and is not audited
(the payload log is where it is recorded). With auth off nothing is audited per request:
there is no principal to name and no one is refused.
"""
from __future__ import annotations

from typing import Any

from cairn.app.serving.asgi import error_body
from cairn.engine.errors import CairnError
from cairn.engine.governance.credentials import Caller

LOCAL_ADMIN = Caller("", admin=True)  # auth off: the single-user appliance of before
OPEN_PATHS = frozenset(("/health", "/ping", "/version"))
_READS = frozenset(("GET", "HEAD", "OPTIONS"))


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
        self._credentials = engine.governance.credentials
        self._audit = engine.governance.audit
        self._metrics_header = f"Bearer {metrics_key}" if metrics_key else None

    def __call__(self, app):
        required, credentials, audit = self.required, self._credentials, self._audit
        metrics_header = self._metrics_header

        async def gate(scope, receive, send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            path, method = scope["path"], scope["method"]
            if not required:
                # No one to name and no one refused: the request path stays as it was (the
                # command line still audits its governance changes).
                scope["user"] = LOCAL_ADMIN
                await app(scope, receive, send)
                return
            if path in OPEN_PATHS:
                scope["user"] = Caller("")
            elif metrics_header and path == "/metrics" and method == "GET" \
                    and _header(scope, b"authorization") == metrics_header:
                scope["user"] = Caller("cairn-ui")
            else:
                try:
                    scope["user"] = credentials.authenticate(_header(scope, b"authorization"))
                except CairnError as exc:
                    audit.record_async("", source_of(scope), f"{method} {path}", outcome="401", detail=exc.message)
                    await _refuse(send, exc)
                    return
            if method in _READS and not path.endswith("/invocations"):
                await app(scope, receive, send)
                return
            status: list[int] = []

            async def watch(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            await app(scope, receive, watch)
            code = status[0] if status else 500
            scoring = path.endswith("/invocations")
            if not scoring or code in (401, 403):
                audit.record_async(scope["user"].principal, source_of(scope), f"{method} {path}", outcome=str(code))

        return gate


async def _refuse(send, exc: CairnError) -> None:
    body = error_body(exc.error_code, exc.message)
    await send({"type": "http.response.start", "status": exc.http_status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="cairn", Basic realm="cairn"')]})
    await send({"type": "http.response.body", "body": body})


def caller_of(request) -> Caller:
    """The Caller the gate put on the request (the local admin when auth is off)."""
    user = request.scope.get("user")
    return user if isinstance(user, Caller) else LOCAL_ADMIN
