"""`cairn endpoints ...`: serving endpoints and their payload logs on the command line.

argparse only parses flags; each command opens the engine on the data directory and
calls the endpoint store (`eng.endpoints`), as `cairn models` calls the registry. The
store checks every config, so a bad one is the same `error: <field>: ...` line here as
over REST. A running `cairn server` picks up a created, updated or deleted endpoint
within its poll interval (LMDB is shared between processes).

A config comes either from flags (one served entity: `--model` with `--version` or
`--alias`, batching, payload logging) or from `--config FILE.json` in Databricks' shape
(`served_entities`, `traffic_config.routes`, `auto_capture_config`, Cairn's `shadow`),
which may also be a whole create request (`{"name": ..., "config": {...}}`).
"""
from __future__ import annotations

import argparse
import sys
from collections import deque
from datetime import datetime
from pathlib import Path

import msgspec

from cairn.cli import tables
from cairn.cli.handlers import with_engine
from cairn.engine.endpoints.contract import DEFAULT_MAX_BATCH_ROWS, READ_PAYLOADS_MAX, Endpoint, PayloadRecord
from cairn.engine.errors import CairnError

LOGS_DEFAULT_LIMIT = 100


def _time(ms: int | None, timespec: str = "seconds") -> str:
    return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec=timespec) if ms else ""


def _json(obj: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj), indent=2).decode() + "\n")


def endpoint_doc(ep: Endpoint) -> dict:
    """The endpoint as the REST API answers it (config_version inside config)."""
    config = msgspec.to_builtins(ep.config)
    config["config_version"] = ep.config_version
    return {
        "name": ep.name, "id": ep.id, "creator": ep.creator,
        "creation_timestamp": ep.creation_timestamp, "last_updated_timestamp": ep.last_updated_timestamp,
        "config": config,
    }


# -- configs from flags or a file -------------------------------------------------------
def _read_config(path: str, name: str) -> dict:
    try:
        doc = msgspec.json.decode(Path(path).read_bytes())
    except OSError as exc:
        raise CairnError(f"--config {path}: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise CairnError(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CairnError(f"--config {path}: a JSON object is required")
    if "config" in doc:  # a whole create request, as `databricks serving-endpoints create --json`
        if doc.get("name") not in (None, name):
            raise CairnError(f"--config {path} names endpoint {doc['name']!r}, not {name!r}")
        doc = doc["config"]
        if not isinstance(doc, dict):
            raise CairnError(f"--config {path}: config must be a JSON object")
    return {k: v for k, v in doc.items() if k not in ("name", "config_version")}


# flag -> field of a served entity
_ENTITY_FLAGS = {
    "model": "entity_name", "version": "entity_version", "alias": "entity_alias",
    "workload_type": "workload_type", "max_batch_rows": "max_batch_rows", "max_wait_ms": "max_wait_ms",
}


def _flags_given(args) -> bool:
    flags = (*_ENTITY_FLAGS, "feature_spec", "payload_logging", "sampling")
    return any(getattr(args, k) is not None for k in flags)


def _capture(args) -> dict | None:
    """auto_capture_config from --payload-logging/--sampling; None when neither is given."""
    if args.sampling is not None and not args.payload_logging:
        raise CairnError("--sampling needs --payload-logging")
    if args.payload_logging is None:
        return None
    capture: dict = {"enabled": args.payload_logging}
    if args.sampling is not None:
        capture["sampling_fraction"] = args.sampling
    return capture


def _config_from_flags(args, current: Endpoint | None) -> dict:
    """One served entity from the flags; on update, the endpoint's own entity with the
    flags given replacing its fields."""
    if args.version is not None and args.alias is not None:
        raise CairnError("give --version or --alias, not both")
    if args.feature_spec is not None:  # feature serving: keys in, feature values out
        if any(getattr(args, k) is not None for k in ("model", "version", "alias")):
            raise CairnError("give --feature-spec or --model, not both")
        served: dict = {"served_entities": [{"entity_name": args.feature_spec, "entity_type": "FEATURE_SPEC"}]}
        capture = _capture(args)
        if capture is not None:
            served["auto_capture_config"] = capture
        return served
    if current is None:
        if args.model is None:
            raise CairnError("give --model (with --version or --alias) or --config FILE")
        if args.version is None and args.alias is None:
            raise CairnError("give --version N or --alias NAME for --model")
        spec: dict = {}
    else:
        entities = current.config.served_entities
        if len(entities) != 1:
            raise CairnError(f"endpoint {current.name!r} serves {len(entities)} entities: update it with --config FILE")
        spec = msgspec.to_builtins(entities[0])
        if any(getattr(args, k) is not None for k in ("model", "version", "alias")):
            spec.pop("name", None)  # the default name says model and version: let it follow
            if args.version is not None or args.alias is not None:
                spec.pop("entity_version", None)
                spec.pop("entity_alias", None)
    for flag, field in _ENTITY_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            spec[field] = value
    config: dict = {"served_entities": [spec]}
    capture = _capture(args)
    if capture is not None:
        config["auto_capture_config"] = capture
    return config


def _config(args, current: Endpoint | None) -> dict:
    if args.config is not None:
        if _flags_given(args):
            raise CairnError("give --config FILE or the entity flags, not both")
        return _read_config(args.config, args.name)
    if current is not None and not _flags_given(args):
        raise CairnError("nothing to update: give --config FILE or flags (--version, --alias, ...)")
    return _config_from_flags(args, current)


# -- commands -----------------------------------------------------------------------------
def _serves(ep: Endpoint) -> str:
    """`iris-1: iris v1 70%, iris-2: iris@champion 30%` (and the shadow)."""
    cfg = ep.config
    share = {r.served_entity_name: r.traffic_percentage for r in cfg.traffic_config.routes}
    parts = []
    for e in cfg.served_entities:
        target = f"{e.entity_name}@{e.entity_alias}" if e.entity_alias else f"{e.entity_name} v{e.entity_version}"
        if cfg.shadow and cfg.shadow.served_entity_name == e.name:
            parts.append(f"{e.name}: {target} shadow {cfg.shadow.fraction:g}")
        else:
            parts.append(f"{e.name}: {target} {share.get(e.name, 0)}%")
    return ", ".join(parts)


def _logging(ep: Endpoint) -> str:
    capture = ep.config.auto_capture_config
    if capture is None or not capture.enabled:
        return "off"
    return f"on ({capture.sampling_fraction:g})"


def _report(verb: str, ep: Endpoint) -> None:
    print(f"{verb} endpoint {ep.name} (config version {ep.config_version}): {_serves(ep)}")
    print(f"  POST /serving-endpoints/{ep.name}/invocations on `cairn server`")


def cmd_create(eng, args) -> int:
    from cairn.engine.sdk.context import current_user

    ep = eng.endpoints.create_endpoint(args.name, _config(args, None), creator=current_user())
    _report("created", ep)
    return 0


def cmd_update(eng, args) -> int:
    store = eng.endpoints
    current = store.get_endpoint(args.name)
    ep = store.update_config(args.name, _config(args, current))
    _report("updated", ep)
    return 0


def cmd_list(eng, args) -> int:
    eps = eng.endpoints.list_endpoints()
    if args.json:
        _json({"endpoints": [endpoint_doc(ep) for ep in eps]})
        return 0
    rows = [[ep.name, _serves(ep), ep.config_version, _logging(ep), _time(ep.last_updated_timestamp)]
            for ep in eps]
    print(tables.render(["NAME", "SERVES", "CONFIG", "PAYLOAD LOG", "UPDATED"], rows, max_cell=80))
    if not eps:
        print("(no serving endpoints)", file=sys.stderr)
    return 0


def cmd_show(eng, args) -> int:
    store = eng.endpoints
    ep = store.get_endpoint(args.name)
    if args.json:
        _json({"endpoint": endpoint_doc(ep), "payloads_logged": store.payload_count(ep.name)})
        return 0
    cfg = ep.config
    capture = cfg.auto_capture_config
    pairs = [
        ("name", ep.name),
        ("id", ep.id),
        ("creator", ep.creator),
        ("created", _time(ep.creation_timestamp)),
        ("updated", _time(ep.last_updated_timestamp)),
        ("config version", ep.config_version),
        ("invocations", f"POST /serving-endpoints/{ep.name}/invocations"),
        ("payload log", _logging(ep) + (f", up to {capture.max_payload_bytes} bytes per body" if capture and
                                        capture.enabled else "")),
        ("payloads logged", store.payload_count(ep.name)),
    ]
    share = {r.served_entity_name: r.traffic_percentage for r in cfg.traffic_config.routes}
    rows = []
    for e in cfg.served_entities:
        shadow = cfg.shadow is not None and cfg.shadow.served_entity_name == e.name
        rows.append([
            e.name, e.entity_name, f"@{e.entity_alias}" if e.entity_alias else e.entity_version,
            f"shadow {cfg.shadow.fraction:g}" if shadow else f"{share.get(e.name, 0)}%",
            e.workload_type, e.max_batch_rows, e.max_wait_ms, e.max_queue_rows, e.max_workers or "cores",
            "yes" if e.scale_to_zero_enabled else "no",
        ])
    entities = tables.render(
        ["ENTITY", "MODEL", "VERSION", "TRAFFIC", "WORKLOAD", "BATCH ROWS", "WAIT MS", "QUEUE ROWS", "WORKERS",
         "SCALE TO 0"], rows)
    print(tables.render_pairs(pairs) + "\n\nServed entities\n" + entities)
    return 0


def cmd_delete(eng, args) -> int:
    eng.endpoints.delete_endpoint(args.name)
    print(f"deleted endpoint {args.name} and its payload log")
    return 0


def _records(store, name: str, since: int | None, limit: int) -> list[PayloadRecord]:
    """With --since: the first `limit` records from then on. Without: the last `limit`
    (the log is read oldest first, so the whole range is paged through, keeping the tail)."""
    if since is not None:
        out: list[PayloadRecord] = []
        token = None
        while len(out) < limit:
            page = store.read_payloads(name, start_ms=since, max_results=min(limit - len(out), READ_PAYLOADS_MAX),
                                       page_token=token)
            out.extend(page.items)
            token = page.next_page_token
            if not token:
                break
        return out
    tail: deque[PayloadRecord] = deque(maxlen=limit)
    token = None
    while True:
        page = store.read_payloads(name, max_results=READ_PAYLOADS_MAX, page_token=token)
        tail.extend(page.items)
        token = page.next_page_token
        if not token:
            return list(tail)


def cmd_logs(eng, args) -> int:
    if args.limit < 1:
        raise CairnError(f"--limit must be at least 1, got {args.limit}")
    since = tables.since_ms(args.since)
    store = eng.endpoints
    store.get_endpoint(args.name)  # an unknown endpoint is an error, not an empty log
    records = _records(store, args.name, since, args.limit)
    if args.json:
        _json({"payloads": records})
        return 0
    rows = [
        [_time(r.timestamp_ms, "milliseconds"), r.status_code, round(r.latency_ms, 2), r.served_entity_name,
         f"{r.model_name}/{r.model_version}" if r.model_name else "", "yes" if r.shadow else "",
         r.request_id, r.client_request_id, r.response if r.status_code >= 400 else ""]
        for r in records
    ]
    print(tables.render(
        ["TIME", "STATUS", "LATENCY MS", "ENTITY", "VERSION", "SHADOW", "REQUEST ID", "CLIENT ID", "ERROR"], rows,
        max_cell=80))
    if not records:
        print(f"(no logged requests for {args.name}"
              + (" since then)" if since is not None else "; is payload logging on? `cairn endpoints show`)"),
              file=sys.stderr)
    return 0


# -- parser -------------------------------------------------------------------------------
def _add(sub, name: str, handler, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.set_defaults(handler=with_engine(handler), needs_store=False)
    return p


def _config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="a Databricks-shaped config (JSON): served_entities, "
                   "traffic_config, shadow, auto_capture_config")
    p.add_argument("--model", metavar="MODEL", help="the registered model to serve")
    p.add_argument("--feature-spec", metavar="SPEC", help="serve a feature spec instead (keys in, features out)")
    p.add_argument("--version", metavar="N", help="serve this version")
    p.add_argument("--alias", metavar="ALIAS", help="follow this alias as it moves (e.g. champion)")
    p.add_argument("--workload-type", type=str.upper, choices=["CPU", "GPU"],
                   help="GPU runs on CUDA where it loads (cairn doctor says whether), else CPU")
    p.add_argument("--max-batch-rows", type=int, metavar="N", help=f"rows run as one model call (default {DEFAULT_MAX_BATCH_ROWS})")
    p.add_argument("--max-wait-ms", type=float, metavar="MS", help="hold a batch open for more rows (default 0)")
    p.add_argument("--payload-logging", action=argparse.BooleanOptionalAction, default=None,
                   help="log requests and responses (read them with `cairn endpoints logs`)")
    p.add_argument("--sampling", type=float, metavar="F", help="with --payload-logging: the fraction logged (0-1)")


def add_commands(sub) -> None:
    """Register `endpoints` on the top-level subparsers."""
    eps = sub.add_parser("endpoints", help="serving endpoints: create, list, show, update, delete, logs")
    es = eps.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(es, "create", cmd_create, "create an endpoint serving a registered model")
    p.add_argument("name", metavar="NAME")
    _config_flags(p)
    p = _add(es, "list", cmd_list, "endpoints and what they serve")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = _add(es, "show", cmd_show, "one endpoint: served entities, traffic, batching, payload log")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p = _add(es, "update", cmd_update, "replace an endpoint's config (flags change its one entity)")
    p.add_argument("name", metavar="NAME")
    _config_flags(p)
    p = _add(es, "delete", cmd_delete, "delete an endpoint and its payload log")
    p.add_argument("name", metavar="NAME")
    p = _add(es, "logs", cmd_logs, "an endpoint's payload log (the last records, or those since a time)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--since", metavar="ISO|MS", help="records from this time on (ISO local time or epoch ms)")
    p.add_argument("--limit", type=int, default=LOGS_DEFAULT_LIMIT, metavar="N",
                   help=f"at most N records (default {LOGS_DEFAULT_LIMIT})")
    p.add_argument("--json", action="store_true", help="print JSON (with request and response bodies)")
