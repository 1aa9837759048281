"""Errors the engine raises, carrying MLflow's error codes so HTTP layers map them 1:1."""
from __future__ import annotations

import errno
import os
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
IO_ERROR = "IO_ERROR"

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
    IO_ERROR: 507,  # Insufficient Storage: MLflow's client retries a 500 or 503, and a full disk stays full
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


_FULL = {errno.ENOSPC, errno.EDQUOT}
_LOW_SPACE = 64 << 20  # LMDB reports a page write that found no room as EIO: this little left means full


def storage_error(exc: BaseException, path: str | os.PathLike | None = None) -> CairnError | None:
    """A write that failed because the data directory's disk is full or read-only, as
    IO_ERROR (HTTP 507) saying so and that nothing of it was stored; None for any other
    failure. LMDB's commit says only "Input/output error", so given the directory's
    `path` a statvfs tells the two apart."""
    code = getattr(exc, "errno", None)
    full, read_only = code in _FULL, code == errno.EROFS
    if not (full or read_only) and path is not None and (code == errno.EIO or "Input/output error" in str(exc)):
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        read_only = bool(st.f_flag & os.ST_RDONLY)
        full = st.f_bavail * st.f_frsize < _LOW_SPACE
    if full:
        return CairnError("The data directory's disk is full: nothing of this write was stored. Free some space "
                          "and retry; reads keep working meanwhile", IO_ERROR)
    if read_only:
        return CairnError("The data directory is on a read-only file system: nothing of this write was stored; "
                          "reads keep working", IO_ERROR)
    return None
