"""`cairn models ...`, `cairn catalogs ...`, `cairn schemas ...`: the model registry on
the command line.

argparse only parses flags; each command opens the engine on the data directory and
calls the RegistryStore (`eng.registry`) and the registration pipeline
(`eng.registrar`). A CairnError prints `error: <message>` on stderr and exits with
status 1, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime

import msgspec

from cairn import engine
from cairn.app.address import DEFAULT_HOST, DEFAULT_MODEL_PORT
from cairn.cli import tables
from cairn.engine.endpoints.contract import DEFAULT_MAX_BATCH_ROWS
from cairn.engine.errors import CairnError
from cairn.engine.registry.contract import SEARCH_MODEL_VERSIONS_MAX, SEARCH_REGISTERED_MODELS_MAX
from cairn.engine.registry.entities import Lineage, ModelVersion, Stage, VersionStatus
from cairn.engine.registry.lineage import lineage_nodes

# `register` waits this long for a version to finish unless --timeout says otherwise.
REGISTER_TIMEOUT_S = 300


def _time(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds") if ms else ""


def _json(obj: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj), indent=2).decode() + "\n")


def _user() -> str:
    from cairn.engine.sdk.context import current_user

    return current_user()


def _all_models(reg, filter_string: str | None) -> list:
    out, token = [], None
    while True:
        page = reg.search_registered_models(filter_string, SEARCH_REGISTERED_MODELS_MAX, None, token)
        out.extend(page.items)
        token = page.next_page_token
        if not token:
            return out


def _versions_of(reg, name: str) -> list[ModelVersion]:
    """Every version of `name`, newest first. The filter names the model by its full
    name so a model in another schema with the same short name never mixes in."""
    full = reg.get_registered_model(name).full_name or name
    out, token = [], None
    while True:
        page = reg.search_model_versions(
            f"name = '{full}'", SEARCH_MODEL_VERSIONS_MAX, ["version_number DESC"], token
        )
        out.extend(page.items)
        token = page.next_page_token
        if not token:
            return out


# -- models ----------------------------------------------------------------------------
def cmd_list(eng, args) -> int:
    models = _all_models(eng.registry, args.filter)
    if args.json:
        _json({"registered_models": models})
        return 0
    rows = []
    for m in models:
        latest = max((int(v.version) for v in m.latest_versions), default=None)
        aliases = ", ".join(f"{a.alias}=v{a.version}" for a in m.aliases)
        rows.append([m.name, latest, aliases, _time(m.last_updated_timestamp), m.description])
    print(tables.render(["NAME", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"], rows))
    if not models:
        print("(no registered models)", file=sys.stderr)
    return 0


def cmd_show(eng, args) -> int:
    m = eng.registry.get_registered_model(args.name)
    if args.json:
        _json({"registered_model": m})
        return 0
    sections = [tables.render_pairs([
        ("name", m.name),
        ("full name", m.full_name),
        ("description", m.description),
        ("owner", m.user_id),
        ("created", _time(m.creation_timestamp)),
        ("updated", _time(m.last_updated_timestamp)),
    ])]
    aliases = sorted(m.aliases, key=lambda a: a.alias)
    sections.append(_section("Aliases", ["ALIAS", "VERSION"], [[a.alias, a.version] for a in aliases]))
    order = {s: i for i, s in enumerate(Stage.ALL)}
    latest = sorted(m.latest_versions, key=lambda v: order.get(v.current_stage, 9))
    sections.append(_section(
        "Latest versions",
        ["STAGE", "VERSION", "STATUS", "RUN ID", "CREATED"],
        [[v.current_stage, v.version, v.status, v.run_id, _time(v.creation_timestamp)] for v in latest],
    ))
    tags = sorted(m.tags, key=lambda t: t.key)
    sections.append(_section("Tags", ["KEY", "VALUE"], [[t.key, t.value] for t in tags]))
    print("\n\n".join(sections))
    return 0


def _section(title: str, headers: list[str], rows: list[list]) -> str:
    return f"{title}\n" + tables.render(headers, rows, max_cell=80) if rows else f"{title}: none"


def cmd_versions(eng, args) -> int:
    versions = _versions_of(eng.registry, args.name)
    if args.json:
        _json({"model_versions": versions})
        return 0
    rows = [
        [v.version, v.current_stage, v.status, ", ".join(v.aliases), v.run_id,
         _time(v.creation_timestamp), v.status_message if v.status == VersionStatus.FAILED else v.source]
        for v in versions
    ]
    print(tables.render(["VERSION", "STAGE", "STATUS", "ALIASES", "RUN ID", "CREATED", "SOURCE / REASON"], rows))
    if not versions:
        print(f"({args.name} has no versions)", file=sys.stderr)
    return 0


def cmd_alias(eng, args) -> int:
    reg = eng.registry
    if args.delete:
        reg.delete_registered_model_alias(args.name, args.alias, _user())
        print(f"deleted alias {args.alias} of {args.name}")
        return 0
    if args.version is None:
        raise CairnError("give the VERSION the alias points to, or --delete")
    reg.set_registered_model_alias(args.name, args.alias, args.version, _user())
    print(f"{args.name}@{args.alias} -> version {args.version}")
    return 0


def cmd_transition(eng, args) -> int:
    mv = eng.registry.transition_model_version_stage(
        args.name, args.version, args.stage, args.archive_existing, _user(), args.comment or ""
    )
    print(f"{mv.name} version {mv.version} is now in stage {mv.current_stage}")
    if args.archive_existing and mv.current_stage in (Stage.STAGING, Stage.PRODUCTION):
        print(f"(other {mv.current_stage} versions moved to Archived)")
    return 0


def cmd_history(eng, args) -> int:
    rows = []
    for t in eng.registry.list_transitions(args.name, args.version):
        if t.kind == "stage":
            change = f"{t.from_stage} -> {t.to_stage}"
        elif t.kind.startswith("alias"):
            change = f"@{t.alias} {'set' if t.kind == 'alias_set' else 'deleted'}"
        else:  # a registration status change
            change = f"{t.from_stage} -> {t.to_stage}" if t.from_stage or t.to_stage else t.kind
        rows.append([_time(t.timestamp), t.version, t.kind, change, t.user_id, t.comment])
    print(tables.render(["TIME", "VERSION", "KIND", "CHANGE", "USER", "COMMENT"], rows))
    return 0


def cmd_register(eng, args) -> int:
    from cairn.engine.sdk.registryclient import normalize_source, run_id_of_source

    source = normalize_source(args.source)
    reg = eng.registry
    try:
        reg.create_registered_model(args.name, None, "", _user())
    except CairnError as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = dict(_pair(t) for t in args.tag or ())
    mv = reg.create_model_version(
        args.name, source, run_id=run_id_of_source(source), tags=tags or None,
        description=args.description or "", user_id=_user(),
    )
    print(f"registering {mv.name} version {mv.version} from {source} ...", flush=True)
    mv = eng.registrar.wait(mv.full_name or mv.name, mv.version, args.timeout)
    if mv.status == VersionStatus.FAILED:
        raise CairnError(f"{mv.name} version {mv.version} is {mv.status}: {mv.status_message}")
    print(f"{mv.name} version {mv.version}: {mv.status}")
    if mv.status == VersionStatus.PENDING:
        print("(still registering; it finishes when Cairn next opens this data directory)", file=sys.stderr)
    return 0


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CairnError(f"--tag takes KEY=VALUE, got {text!r}")
    return key, value


def cmd_delete(eng, args) -> int:
    if args.version is not None:
        eng.registry.delete_model_version(args.name, args.version)
        print(f"deleted {args.name} version {args.version}")
    else:
        eng.registry.delete_registered_model(args.name)
        print(f"deleted registered model {args.name} and its versions")
    return 0


# -- lineage ---------------------------------------------------------------------------
def cmd_lineage(eng, args) -> int:
    lin = eng.registry.get_lineage(args.name, args.version)
    if args.json:
        _json({"lineage": lin})
        return 0
    mv = eng.registry.get_model_version(args.name, args.version)
    print("\n".join(lineage_tree(lin, mv)))
    return 0


Tree = tuple[str, list["Tree"]]


def lineage_tree(lin: Lineage, mv: ModelVersion) -> list[str]:
    """The version's ancestry as text lines under a head line naming the version."""
    head = f"{lin.name} version {lin.version}  [{mv.status}, stage {mv.current_stage}"
    head += f", aliases: {', '.join(mv.aliases)}]" if mv.aliases else "]"
    lines = [head]
    _draw(lineage_nodes(lin), "", lines)
    return lines


def _draw(nodes: list[Tree], prefix: str, out: list[str]) -> None:
    for i, (label, kids) in enumerate(nodes):
        last = i == len(nodes) - 1
        out.append(f"{prefix}{'└─ ' if last else '├─ '}{label}")
        _draw(kids, prefix + ("   " if last else "│  "), out)


# -- serving ---------------------------------------------------------------------------
def cmd_serve(args) -> int:
    """Serve one model over MLflow's scoring protocol until interrupted (app/serving)."""
    from cairn.app.serving.modelserver import serve_model  # the web stack loads only to serve

    def ready(url: str) -> None:
        print(f"Cairn is serving {args.model_uri} at {url}", flush=True)
        print(f"  curl {url}/invocations -H 'Content-Type: application/json' -d '{{\"inputs\": [[...]]}}'", flush=True)

    # Unset tuning flags keep serve_model's defaults (the help repeats them: importing the
    # serving stack to read them would slow every other command).
    tuning = {k: getattr(args, k) for k in ("max_batch_rows", "max_wait_ms", "max_queue_rows", "max_body_bytes")}
    serve_model(
        args.model_uri, args.host, args.port, data_dir=args.data, ready=ready,
        **{k: v for k, v in tuning.items() if v is not None},
    )
    return 0


def _add_serve(ms) -> None:
    p = ms.add_parser("serve", help="serve one model over MLflow's scoring protocol (/invocations)")
    p.set_defaults(handler=cmd_serve, needs_store=False)
    p.add_argument("-m", "--model-uri", required=True, metavar="URI",
                   help="models:/NAME@ALIAS, models:/NAME/N, runs:/RUN/PATH, an .onnx file or a model folder")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("-p", "--port", type=int, default=DEFAULT_MODEL_PORT,
                   help=f"port (default {DEFAULT_MODEL_PORT}, as mlflow models serve; 0 picks a free one)")
    p.add_argument("--max-batch-rows", type=int, metavar="N",
                   help=f"rows of queued requests run as one model call (default {DEFAULT_MAX_BATCH_ROWS})")
    p.add_argument("--max-wait-ms", type=float, metavar="MS",
                   help="hold a batch open this long for more rows (default 0: never wait)")
    p.add_argument("--max-queue-rows", type=int, metavar="N",
                   help="queued rows beyond which requests get 429 (default 4096)")
    p.add_argument("--max-body-bytes", type=int, metavar="N",
                   help="larger request bodies get 413 (default 16 MiB)")
    # Accepted so `mlflow models serve` command lines work unchanged: an ONNX model needs
    # no Python environment.
    p.add_argument("--env-manager", help=argparse.SUPPRESS)


# -- catalogs and schemas --------------------------------------------------------------
def cmd_catalogs_list(eng, args) -> int:
    cats = eng.registry.list_catalogs()
    if args.json:
        _json({"catalogs": cats})
        return 0
    print(tables.render(["NAME", "OWNER", "CREATED", "COMMENT"],
                        [[c.name, c.owner, _time(c.created_at), c.comment] for c in cats]))
    return 0


def cmd_catalogs_create(eng, args) -> int:
    c = eng.registry.create_catalog(args.name, args.comment or "", _user())
    print(f"created catalog {c.name}")
    return 0


def cmd_schemas_list(eng, args) -> int:
    schemas = eng.registry.list_schemas(args.catalog)
    if args.json:
        _json({"schemas": schemas})
        return 0
    print(tables.render(["NAME", "OWNER", "CREATED", "COMMENT"],
                        [[s.full_name, s.owner, _time(s.created_at), s.comment] for s in schemas]))
    return 0


def cmd_schemas_create(eng, args) -> int:
    s = eng.registry.create_schema(args.full_name, args.comment or "", _user())
    print(f"created schema {s.full_name}")
    return 0


# -- parser ----------------------------------------------------------------------------
def _runner(command: Callable[[object, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Open the engine and run the command; errors are reported by cli.main."""

    def run(args: argparse.Namespace) -> int:
        return command(engine.open(args.data), args)

    return run


def _add(sub, name: str, handler, help: str, **kw) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, **kw)
    p.set_defaults(handler=_runner(handler), needs_store=False)
    return p


def add_commands(sub) -> None:
    """Register `models`, `catalogs` and `schemas` on the top-level subparsers."""
    models = sub.add_parser("models", help="the model registry: list, show, register, promote")
    ms = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(ms, "list", cmd_list, "registered models")
    p.add_argument("--filter", metavar="EXPR", help="e.g. \"name LIKE 'iris%%'\" or \"tags.team = 'x'\"")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = _add(ms, "show", cmd_show, "one model: aliases, latest version per stage, tags")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p = _add(ms, "versions", cmd_versions, "a model's versions, newest first")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = _add(ms, "register", cmd_register, "register a run's model, a model folder or an .onnx file")
    p.add_argument("source", metavar="SOURCE", help="runs:/RUN/PATH, models:/NAME/N, a folder or a .onnx file")
    p.add_argument("name", metavar="NAME", help="registered model (created if missing)")
    p.add_argument("--tag", metavar="KEY=VALUE", action="append", help="a version tag (repeatable)")
    p.add_argument("--description", metavar="TEXT")
    p.add_argument("--timeout", metavar="S", type=float, default=REGISTER_TIMEOUT_S,
                   help=f"seconds to wait for READY (default {REGISTER_TIMEOUT_S})")
    p = _add(ms, "alias", cmd_alias, "point an alias at a version (or --delete it)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("alias", metavar="ALIAS")
    p.add_argument("version", metavar="VERSION", nargs="?")
    p.add_argument("--delete", action="store_true", help="remove the alias")
    p = _add(ms, "transition", cmd_transition, "move a version to a stage")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("stage", metavar="STAGE", help="None, Staging, Production or Archived")
    p.add_argument("--archive-existing", action="store_true",
                   help="move the stage's other versions to Archived")
    p.add_argument("--comment", metavar="TEXT", help="kept with the recorded transition")
    p = _add(ms, "history", cmd_history, "recorded stage, alias and status changes")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", nargs="?")
    p = _add(ms, "lineage", cmd_lineage, "where a version came from: run, datasets, code, model")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    p = _add(ms, "delete", cmd_delete, "delete a model (with its versions) or one version")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", metavar="N", help="delete only this version")
    _add_serve(ms)

    cats = sub.add_parser("catalogs", help="registry catalogs")
    cs = cats.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(cs, "list", cmd_catalogs_list, "catalogs")
    p.add_argument("--json", action="store_true")
    p = _add(cs, "create", cmd_catalogs_create, "create a catalog")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--comment", metavar="TEXT")

    schemas = sub.add_parser("schemas", help="registry schemas (catalog.schema)")
    ss = schemas.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(ss, "list", cmd_schemas_list, "a catalog's schemas")
    p.add_argument("catalog", metavar="CATALOG", nargs="?", default="main")
    p.add_argument("--json", action="store_true")
    p = _add(ss, "create", cmd_schemas_create, "create a schema")
    p.add_argument("full_name", metavar="CATALOG.SCHEMA")
    p.add_argument("--comment", metavar="TEXT")
