"""MLflow's error shape on every route: {"error_code": ..., "message": ...} with MLflow's
HTTP status for the code. Nothing else reaches a client: an unexpected exception is
logged here and answered with INTERNAL_ERROR, never a stack trace."""
from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

from cairn.engine.errors import BAD_REQUEST, INTERNAL_ERROR, INVALID_PARAMETER_VALUE, CairnError, storage_error

log = logging.getLogger("cairn.server")

ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"


def error_response(code: str, message: str, status: int) -> Response:
    return Response({"error_code": code, "message": message}, status_code=status)


def on_cairn_error(_request: Request, exc: CairnError) -> Response:
    return error_response(exc.error_code, exc.message, exc.http_status)


def on_decode_error(_request: Request, exc: msgspec.DecodeError | msgspec.ValidationError) -> Response:
    # msgspec names the offending field: "Expected `int`, got `str` - at `$.start_time`"
    return error_response(INVALID_PARAMETER_VALUE, f"Invalid request body: {exc}", 400)


def on_validation_error(_request: Request, exc: ValidationException) -> Response:
    detail = exc.detail
    extra = exc.extra
    if extra:
        parts = [f"{e.get('key') or ''}: {e.get('message')}" if isinstance(e, dict) else str(e) for e in extra]
        detail = f"{detail}: {'; '.join(parts)}"
    return error_response(INVALID_PARAMETER_VALUE, detail, 400)


def on_http_error(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, NotFoundException):
        return error_response(ENDPOINT_NOT_FOUND, f"No route for {request.method} {request.url.path}", 404)
    code = BAD_REQUEST if exc.status_code < 500 else INTERNAL_ERROR
    return error_response(code, str(exc.detail), exc.status_code)


def on_unexpected(request: Request, exc: Exception) -> Response:
    full = storage_error(exc)  # a file write (an artifact, a blob) that found the disk full or read-only
    if full is not None:
        log.warning("%s %s: %s (%s)", request.method, request.url.path, full.message, exc)
        return error_response(full.error_code, full.message, full.http_status)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(INTERNAL_ERROR, f"Internal error while handling {request.url.path}", 500)


EXCEPTION_HANDLERS = {
    CairnError: on_cairn_error,
    msgspec.DecodeError: on_decode_error,
    msgspec.ValidationError: on_decode_error,
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}
