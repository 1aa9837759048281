"""What the model registry's routes share on the wire (model_registry.proto's JSON).

The registry's entities (engine/registry/entities.py) already carry the proto's field
names; two things need the wire's own care:
- the entities omit default values, but "None" (the stage) and PENDING_REGISTRATION
  (the status) are defaults there and must still be sent: the mlflow client reads an
  absent `current_stage` as "" and an absent `status` as the enum's unset value, and its
  wait for READY compares status strings;
- request arguments: MLflow's own messages for a missing parameter or a version that is
  not a number, checked here so every route answers the same way before the store runs.
Cairn's extra fields (full_name, storage_location, signature) go out as they are: the
client parses with unknown fields ignored.
"""
from __future__ import annotations

from typing import TypeVar

import msgspec
from litestar import Request

from cairn.app.wire import number
from cairn.engine.errors import invalid
from cairn.engine.registry.entities import Lineage, ModelVersion, RegisteredModel

S = TypeVar("S", bound=msgspec.Struct)


def missing(field: str):
    return invalid(
        f"Missing value for required parameter '{field}'. See the API docs for more "
        "information about request parameters."
    )


def required(value: str | None, field: str) -> str:
    """A required string parameter, as MLflow's `_assert_required`: absent, null and
    empty are all missing."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise missing(field)
    return value


def version_number(value: str | int | None, field: str = "version") -> str:
    """A version as the proto carries it (a string of ASCII digits); anything else is
    INVALID_PARAMETER_VALUE with MLflow's wording, never a 500 from int()."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise missing(field)
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        raise invalid(f"Parameter '{field}' must be an integer, got '{value}'.")
    return text


def message_or_query(request: Request, data: S | None, cls: type[S]) -> S:
    """A DELETE's request message: the JSON body the mlflow client sends, or, when the
    body is empty (curl, a browser tool), the query parameters."""
    if data is not None:
        return data
    return msgspec.convert(dict(request.query_params), cls, strict=False)


def version_out(mv: ModelVersion) -> dict:
    out = msgspec.to_builtins(mv)
    out["current_stage"] = mv.current_stage
    out["status"] = mv.status
    return out


def model_out(rm: RegisteredModel) -> dict:
    out = msgspec.to_builtins(rm)
    if rm.latest_versions:
        out["latest_versions"] = [version_out(v) for v in rm.latest_versions]
    return out


def page_out(key: str, items: list, token: str | None) -> dict:
    out: dict = {key: items}
    if token:
        out["next_page_token"] = token
    return out


def lineage_out(lineage: Lineage) -> dict:
    """Non-finite metric values as protobuf JSON writes them ("NaN", "Infinity"); msgspec
    would write null."""
    out = msgspec.to_builtins(lineage)
    metrics = out.get("metrics")
    if metrics:
        for k, v in metrics.items():
            if isinstance(v, float):
                metrics[k] = number(v)
    return out
