"""Checking and normalizing serving-endpoint configs (the rules are endpointstore.py's).

Every message starts with the path of the field at fault ("served_entities[1].name: ...")
so an HTTP client, the CLI and the SDK all point at the same place. Structs built in
Python are not type-checked by msgspec, so types are checked here, not only by the
HTTP decoder. The result is a new, normalized EndpointConfig; the input is not changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import msgspec

from cairn.engine.endpoints.contract import (
    ENTITY_TYPES,
    FEATURE_SPEC,
    MAX_ENDPOINT_NAME_LENGTH,
    MAX_SERVED_ENTITIES,
    AutoCaptureConfig,
    EndpointConfig,
    Route,
    ServedEntity,
    ShadowConfig,
    TrafficConfig,
)
from cairn.engine.errors import CairnError, invalid
from cairn.engine.registry.names import check_alias_name, parse_model_name

MAX_SERVED_NAME_LENGTH = 255
MAX_BATCH_ROWS = 65_536
MAX_WAIT_MS = 1_000.0
MAX_QUEUE_ROWS = 10_000_000
MAX_WORKERS = 1_024
MAX_PAYLOAD_BYTES = 16 << 20

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_BAD_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_WORKLOADS = {"CPU": "CPU", "GPU": "GPU"}
# Databricks' GPU sizes: one box has the GPUs it has, so they all mean "GPU".
_WORKLOADS.update(dict.fromkeys(("GPU_SMALL", "GPU_MEDIUM", "GPU_LARGE", "MULTIGPU_MEDIUM"), "GPU"))


def _describe(c: str) -> str:
    return "a space" if c == " " else f"'{c}'" if c.isprintable() else f"the character {c!r}"


def check_endpoint_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise invalid("name: an endpoint name is required")
    if len(name) > MAX_ENDPOINT_NAME_LENGTH:
        raise invalid(
            f"name: '{name[:70]}' has {len(name)} characters; endpoint names have at most {MAX_ENDPOINT_NAME_LENGTH}"
        )
    bad = _BAD_CHAR.search(name)
    if bad:
        raise invalid(
            f"name: '{name}' contains {_describe(bad.group())}; endpoint names may contain "
            "only letters, digits, '_' and '-'"
        )
    return name


def _int(value: object, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise invalid(f"{path}: must be an integer from {lo} to {hi}, got {value!r}")
    return value


def _number(value: object, path: str, lo: float, hi: float, *, open_low: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and (lo < value <= hi if open_low else lo <= value <= hi):
        return float(value)
    span = f"above {lo:g} and at most {hi:g}" if open_low else f"from {lo:g} to {hi:g}"
    raise invalid(f"{path}: must be a number {span}, got {value!r}")


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"{path}: must be true or false, got {value!r}")
    return value


def _reword(exc: CairnError, path: str) -> CairnError:
    """A registry-name error, prefixed with the field it came from."""
    return invalid(f"{path}: {exc.message}")


def _version(value: object, path: str) -> str:
    text = str(value).strip() if not isinstance(value, bool) and isinstance(value, (int, str)) else ""
    if text.isascii() and text.isdigit() and 0 < int(text) < 1 << 32:
        return str(int(text))
    raise invalid(f"{path}: must be a positive integer, got {value!r}")


def _served_entity(se: object, i: int) -> ServedEntity:
    at = f"served_entities[{i}]"
    if not isinstance(se, ServedEntity):
        raise invalid(f"{at}: must be an object with entity_name and entity_version or entity_alias")
    kind = se.entity_type.upper() if isinstance(se.entity_type, str) else ""
    if kind not in ENTITY_TYPES:
        raise invalid(f"{at}.entity_type: {se.entity_type!r} is not one of {', '.join(ENTITY_TYPES)}")
    try:
        full = parse_model_name(se.entity_name)
    except CairnError as exc:
        raise _reword(exc, f"{at}.entity_name") from None
    if kind == FEATURE_SPEC:
        if se.entity_version not in ("", None) or se.entity_alias not in ("", None):
            raise invalid(f"{at}: a FEATURE_SPEC has no entity_version or entity_alias")
        name = se.name if se.name not in ("", None) else full.model
        _served_name(name, f"{at}.name", given=se.name not in ("", None))
        return ServedEntity(name=name, entity_name=se.entity_name, entity_type=FEATURE_SPEC,
                            max_queue_rows=_int(se.max_queue_rows, f"{at}.max_queue_rows", 1, MAX_QUEUE_ROWS))
    has_version = se.entity_version not in ("", None)
    has_alias = se.entity_alias not in ("", None)
    if has_version and has_alias:
        raise invalid(f"{at}: give entity_version or entity_alias, not both")
    if not has_version and not has_alias:
        raise invalid(f"{at}: give entity_version or entity_alias (the version or alias to serve)")
    version, alias = "", ""
    if has_version:
        version = _version(se.entity_version, f"{at}.entity_version")
    else:
        try:
            alias = check_alias_name(se.entity_alias)
        except CairnError as exc:
            raise _reword(exc, f"{at}.entity_alias") from None
    name = se.name if se.name not in ("", None) else f"{full.model}-{version or alias}"
    _served_name(name, f"{at}.name", given=se.name not in ("", None))
    workload = _WORKLOADS.get(se.workload_type.upper() if isinstance(se.workload_type, str) else "")
    if workload is None:
        raise invalid(f"{at}.workload_type: {se.workload_type!r} is not one of CPU, GPU")
    return ServedEntity(
        name=name,
        entity_name=se.entity_name,
        entity_version=version,
        entity_alias=alias,
        workload_type=workload,
        scale_to_zero_enabled=_bool(se.scale_to_zero_enabled, f"{at}.scale_to_zero_enabled"),
        max_batch_rows=_int(se.max_batch_rows, f"{at}.max_batch_rows", 1, MAX_BATCH_ROWS),
        max_wait_ms=_number(se.max_wait_ms, f"{at}.max_wait_ms", 0.0, MAX_WAIT_MS),
        max_queue_rows=_int(se.max_queue_rows, f"{at}.max_queue_rows", 1, MAX_QUEUE_ROWS),
        max_workers=_int(se.max_workers, f"{at}.max_workers", 0, MAX_WORKERS),
    )


def _served_name(name: object, path: str, *, given: bool) -> None:
    if not isinstance(name, str):
        raise invalid(f"{path}: must be a string, got {name!r}")
    how = "" if given else " (the default name; give a shorter one)"
    if len(name) > MAX_SERVED_NAME_LENGTH:
        raise invalid(f"{path}: '{name[:40]}...' has {len(name)} characters, at most {MAX_SERVED_NAME_LENGTH}{how}")
    if not _NAME.fullmatch(name):
        bad = _BAD_CHAR.search(name)
        raise invalid(
            f"{path}: '{name}' contains {_describe(bad.group()) if bad else 'nothing'}; served entity "
            "names may contain only letters, digits, '_' and '-'"
        )


def _shadow(shadow: object, names: list[str]) -> ShadowConfig | None:
    if shadow is None:
        return None
    if not isinstance(shadow, ShadowConfig):
        raise invalid("shadow: must be an object with served_entity_name and fraction")
    if shadow.served_entity_name not in names:
        raise invalid(f"shadow.served_entity_name: {shadow.served_entity_name!r} is not a served entity")
    if len(names) == 1:
        raise invalid("shadow: the shadow cannot be the only served entity (nothing would answer)")
    fraction = _number(shadow.fraction, "shadow.fraction", 0.0, 1.0, open_low=True)
    return ShadowConfig(served_entity_name=shadow.served_entity_name, fraction=fraction)


def _traffic(traffic: object, names: list[str], shadow: str | None) -> TrafficConfig:
    serving = [n for n in names if n != shadow]
    if traffic is None:
        if len(serving) == 1:
            return TrafficConfig(routes=[Route(served_entity_name=serving[0], traffic_percentage=100)])
        raise invalid(
            f"traffic_config: required with more than one served entity; give routes for "
            f"{', '.join(serving)} with percentages summing to 100"
        )
    if not isinstance(traffic, TrafficConfig) or not isinstance(traffic.routes, list):
        raise invalid("traffic_config: must be an object with a list of routes")
    routes: list[Route] = []
    seen: set[str] = set()
    for j, r in enumerate(traffic.routes):
        at = f"traffic_config.routes[{j}]"
        if not isinstance(r, Route):
            raise invalid(f"{at}: must be an object with served_entity_name and traffic_percentage")
        if r.served_entity_name not in names:
            raise invalid(f"{at}.served_entity_name: {r.served_entity_name!r} is not a served entity")
        if r.served_entity_name == shadow:
            raise invalid(
                f"{at}.served_entity_name: {shadow!r} is the shadow; it gets a copy of traffic, never a route"
            )
        if r.served_entity_name in seen:
            raise invalid(f"{at}.served_entity_name: {r.served_entity_name!r} has a route already")
        seen.add(r.served_entity_name)
        pct = _int(r.traffic_percentage, f"{at}.traffic_percentage", 0, 100)
        routes.append(Route(served_entity_name=r.served_entity_name, traffic_percentage=pct))
    missing = [n for n in serving if n not in seen]
    if missing:
        raise invalid(
            f"traffic_config.routes: no route for {', '.join(repr(n) for n in missing)}; every served "
            "entity except the shadow needs one"
        )
    total = sum(r.traffic_percentage for r in routes)
    if total != 100:
        raise invalid(f"traffic_config.routes: percentages sum to {total}, must be 100")
    return TrafficConfig(routes=routes)


def _auto_capture(ac: object) -> AutoCaptureConfig | None:
    if ac is None:
        return None
    if not isinstance(ac, AutoCaptureConfig):
        raise invalid("auto_capture_config: must be an object")
    return AutoCaptureConfig(
        enabled=_bool(ac.enabled, "auto_capture_config.enabled"),
        sampling_fraction=_number(ac.sampling_fraction, "auto_capture_config.sampling_fraction", 0.0, 1.0),
        max_payload_bytes=_int(ac.max_payload_bytes, "auto_capture_config.max_payload_bytes", 0, MAX_PAYLOAD_BYTES),
    )


def as_config(config: object) -> EndpointConfig:
    """An EndpointConfig from a Struct or a mapping of the JSON shape."""
    if isinstance(config, EndpointConfig):
        return config
    if isinstance(config, Mapping):
        try:
            return msgspec.convert(config, EndpointConfig)
        except msgspec.ValidationError as exc:
            # msgspec says "Expected `int`, got `str` - at `$.served_entities[0].max_batch_rows`":
            # the path goes first, as in this module's own messages.
            text, _, at = str(exc).partition(" - at `$")
            path = at.rstrip("`").lstrip(".") or "config"
            raise invalid(f"{path}: {text}") from None
    if config is None:
        raise invalid("config: an endpoint config with served_entities is required")
    raise invalid(f"config: must be an EndpointConfig or a mapping, got {type(config).__name__}")


def check_config(config: object) -> EndpointConfig:
    """The normalized config; auto_capture_config stays None when omitted (the store
    fills it: disabled on create, the current one on update)."""
    config = as_config(config)
    entities = config.served_entities
    if not isinstance(entities, list) or not entities:
        raise invalid("served_entities: at least one served entity is required")
    if len(entities) > MAX_SERVED_ENTITIES:
        raise invalid(f"served_entities: at most {MAX_SERVED_ENTITIES} are allowed, got {len(entities)}")
    served: list[ServedEntity] = []
    where: dict[str, int] = {}
    for i, se in enumerate(entities):
        checked = _served_entity(se, i)
        if checked.name in where:
            raise invalid(
                f"served_entities[{i}].name: {checked.name!r} is already the name of "
                f"served_entities[{where[checked.name]}]; give each a unique name"
            )
        where[checked.name] = i
        served.append(checked)
    names = [se.name for se in served]
    shadow = _shadow(config.shadow, names)
    traffic = _traffic(config.traffic_config, names, shadow.served_entity_name if shadow else None)
    return EndpointConfig(
        served_entities=served,
        traffic_config=traffic,
        shadow=shadow,
        auto_capture_config=_auto_capture(config.auto_capture_config),
    )
