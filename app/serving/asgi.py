"""ASGI plumbing the scoring routes share (`cairn models serve` and the endpoints of
`cairn server`): reading a bounded body, answering with MLflow's error JSON.

Free of numpy and the model runtime on purpose: `cairn server` imports it at start, and
the serving stack loads only when an endpoint is first called.
"""
from __future__ import annotations

import msgspec

from cairn.engine.errors import BAD_REQUEST

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
JSON = b"application/json"


def error_body(error_code: str, message: str) -> bytes:
    return msgspec.json.encode({"error_code": error_code, "message": message})


class Refused(Exception):
    """An answer other than 200, raised from anywhere in a request's handling."""

    def __init__(self, status: int, code: str, message: str, headers: list | None = None):
        self.status, self.code, self.message, self.headers = status, code, message, headers or []


class Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


async def read_body(scope, receive, limit: int) -> bytes:
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)  # refused before reading a byte of it
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:  # chunked uploads declare no length: count as it comes
                raise too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(limit: int) -> Refused:
    # MLflow has no code for 413 (its REQUEST_LIMIT_EXCEEDED means 429): BAD_REQUEST.
    return Refused(413, BAD_REQUEST, f"The request body is larger than the limit of {limit} bytes")


def header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def respond(send, status: int, body: bytes, headers: list | None = None, head: bool = False) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", JSON), (b"content-length", str(len(body)).encode()), *(headers or ())],
    })
    await send({"type": "http.response.body", "body": b"" if head else body})


