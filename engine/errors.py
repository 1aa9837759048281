"""Errors the engine raises, carrying MLflow's error codes so HTTP layers map them 1:1."""
from __future__ import annotations

import re

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
INVALID_STATE = "INVALID_STATE"
BAD_REQUEST = "BAD_REQUEST"
INTERNAL_ERROR = "INTERNAL_ERROR"
UNAUTHENTICATED = "UNAUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"

# MLflow's HTTP status for each code (mlflow/protos/databricks.proto + server handlers).
HTTP_STATUS = {
    INVALID_PARAMETER_VALUE: 400,
    RESOURCE_ALREADY_EXISTS: 400,
    BAD_REQUEST: 400,
    INVALID_STATE: 400,
    RESOURCE_DOES_NOT_EXIST: 404,
    UNAUTHENTICATED: 401,
    PERMISSION_DENIED: 403,
    REQUEST_LIMIT_EXCEEDED: 429,
    INTERNAL_ERROR: 500,
}


class CairnError(Exception):
    """A domain error with an MLflow error code and a message meant for the user."""

    def __init__(self, message: str, error_code: str = INVALID_PARAMETER_VALUE):
        super().__init__(message)
        self.message = message
        self.error_code = error_code

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.error_code, 500)

    def __repr__(self) -> str:
        return f"CairnError({self.error_code}: {self.message})"


def not_found(message: str) -> CairnError:
    return CairnError(message, RESOURCE_DOES_NOT_EXIST)


def invalid(message: str) -> CairnError:
    return CairnError(message, INVALID_PARAMETER_VALUE)


def bad_request(message: str) -> CairnError:
    """Data that cannot be read as what it claims to be (MLflow's code for a value its
    scoring server cannot convert)."""
    return CairnError(message, BAD_REQUEST)


def already_exists(message: str) -> CairnError:
    return CairnError(message, RESOURCE_ALREADY_EXISTS)


CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def check_no_control(text: str, what: str) -> str:
    """INVALID_PARAMETER_VALUE naming `what` when a name holds a control character (a
    NUL, a newline, an escape): names end up as keys, log lines and terminal cells. Names
    with a charset of their own (models, endpoints, keys) refuse these already."""
    bad = CONTROL_CHARACTER.search(text)
    if bad:
        raise invalid(f"Invalid {what} {text[:80]!r}: it contains the control character {bad.group()!r}")
    return text
