"""The `cairn` command line: look at experiments and runs, create demo data, start up.

argparse only parses flags; each command opens the engine on the data directory
(`--data`, else $CAIRN_HOME, else ~/.local/share/cairn), reads through the
TrackingStore contract and prints an aligned table or, with `--json`, the entities as
msgspec encodes them (shaped like MLflow's REST responses). A CairnError becomes
`error: <message>` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import msgspec

from cairn import engine
from cairn.app.address import DEFAULT_HOST, DEFAULT_PORT
from cairn.app.version import cairn_version
from cairn.cli import tables
from cairn.cli.bundles import add_commands as add_bundle_commands
from cairn.cli.doctor import add_command as add_doctor_command
from cairn.cli.endpoints import add_commands as add_endpoint_commands
from cairn.cli.features import add_commands as add_feature_commands
from cairn.cli.governance import add_commands as add_governance_commands
from cairn.cli.grants import add_commands as add_grant_commands
from cairn.cli.models import add_commands as add_registry_commands
from cairn.cli.monitors import add_commands as add_monitor_commands
from cairn.cli.ui import add_command as add_ui_command
from cairn.engine.errors import CairnError, not_found
from cairn.engine.store.artifacts import FileInfo
from cairn.engine.tracking.contract import MAX_RESULTS_SEARCH_RUNS, TrackingStore
from cairn.engine.tracking.entities import Experiment, Run, ViewType

DEMO_EXPERIMENT = "cairn-demo"
# How many metric and param columns `runs list` adds after the fixed ones.
LIST_METRICS = 3
LIST_PARAMS = 3
# A run's artifact tree is walked for `runs show`; models keep it small, but a run that
# logged thousands of files should not flood the terminal.
MAX_ARTIFACTS_SHOWN = 200


# -- formatting ------------------------------------------------------------------------
def local_time(ms: int | None) -> str:
    """Milliseconds since the epoch as local ISO time, to the second."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")


def duration(start_ms: int | None, end_ms: int | None) -> str:
    if start_ms is None or end_ms is None:
        return ""
    seconds = max(0, end_ms - start_ms) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def print_json(obj: object) -> None:
    sys.stdout.write(
        msgspec.json.format(msgspec.json.encode(obj), indent=2).decode() + "\n"
    )


# -- lookups ---------------------------------------------------------------------------
def all_experiments(store: TrackingStore, view_type: int) -> list[Experiment]:
    out: list[Experiment] = []
    token = None
    while True:
        page = store.search_experiments(view_type=view_type, page_token=token)
        out.extend(page.items)
        token = page.next_page_token
        if token is None:
            return out


def resolve_experiment(store: TrackingStore, name_or_id: str) -> Experiment:
    """By name first (what people type), then by id."""
    exp = store.get_experiment_by_name(name_or_id)
    if exp is not None:
        return exp
    if name_or_id.isdigit():
        try:
            return store.get_experiment(name_or_id)
        except CairnError:
            pass
    raise not_found(f"No experiment named {name_or_id!r}")


def walk_artifacts(
    store: TrackingStore, run_id: str, limit: int
) -> tuple[list[FileInfo], bool]:
    """Files and directories of the run's artifact tree, depth first, up to `limit`
    entries; the flag says whether some were left out."""
    out: list[FileInfo] = []
    stack: list[str | None] = [None]
    while stack:
        path = stack.pop()
        children = store.list_artifacts(run_id, path)
        for info in children:
            if len(out) >= limit:
                return out, True
            out.append(info)
        # Reverse push: directories pop in sorted order, so a cut keeps the first ones.
        stack.extend(info.path for info in reversed(children) if info.is_dir)
    out.sort(key=lambda f: f.path)
    return out, False


# -- commands --------------------------------------------------------------------------
def cmd_experiments_list(store: TrackingStore, args: argparse.Namespace) -> int:
    view = ViewType.ALL if args.all else ViewType.ACTIVE_ONLY
    exps = all_experiments(store, view)
    if args.json:
        print_json({"experiments": exps})
        return 0
    headers = ["ID", "NAME", "CREATED", "UPDATED"] + (["STAGE"] if args.all else [])
    rows = [
        [
            e.experiment_id,
            e.name,
            local_time(e.creation_time),
            local_time(e.last_update_time),
        ]
        + ([e.lifecycle_stage] if args.all else [])
        for e in exps
    ]
    print(tables.render(headers, rows))
    return 0


def _search(
    store: TrackingStore, exp_ids: list[str], args: argparse.Namespace
) -> tuple[list[Run], bool]:
    """Up to --max runs across pages; the flag says whether more matched."""
    view = ViewType.ALL if args.all else ViewType.ACTIVE_ONLY
    runs: list[Run] = []
    token = None
    while len(runs) < args.max:
        page = store.search_runs(
            exp_ids,
            filter_string=args.filter,
            run_view_type=view,
            max_results=min(args.max - len(runs), MAX_RESULTS_SEARCH_RUNS),
            order_by=args.order_by,
            page_token=token,
        )
        runs.extend(page.items)
        token = page.next_page_token
        if token is None:
            return runs, False
    return runs, True


# `metrics.rmse`, `params."max depth"`, `metric.`acc``: the keys a filter or order-by names.
_NAMED_KEY = re.compile(r"""\b(metrics?|params?)\.(`[^`]+`|"[^"]+"|[\w.\-/:]+)""")


def _is_child(run: Run) -> bool:
    return any(t.key == "mlflow.parentRunId" for t in run.data.tags)


def _column_keys(runs: list[Run], kind: str, limit: int, mentioned: str) -> list[str]:
    """The metric or param keys worth a column: those the filter or order-by names
    first, then the keys most top-level runs share, alphabetically among equals."""
    wanted: list[str] = []
    for entity, key in _NAMED_KEY.findall(mentioned):
        key = key.strip('`"')
        if entity.rstrip("s") == kind.rstrip("s") and key not in wanted:
            wanted.append(key)
    present: set[str] = set()
    counts: Counter[str] = Counter()
    # Child runs (a search's candidates) would outvote the runs people compare.
    any_top_level = any(not _is_child(r) for r in runs)
    for run in runs:
        keys = {
            item.key
            for item in (run.data.metrics if kind == "metrics" else run.data.params)
        }
        present |= keys
        if not (any_top_level and _is_child(run)):
            counts.update(keys)
    for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if key not in wanted:
            wanted.append(key)
    return [k for k in wanted if k in present][:limit]


def _runs_table(runs: list[Run], exps: list[Experiment], mentioned: str) -> str:
    exp_names = {e.experiment_id: e.name for e in exps}
    show_exp = len(exps) > 1
    fixed = (
        ["RUN ID", "NAME"]
        + (["EXPERIMENT"] if show_exp else [])
        + ["STATUS", "START", "DURATION"]
    )
    all_metric_keys = _column_keys(runs, "metrics", LIST_METRICS, mentioned)
    all_param_keys = _column_keys(runs, "params", LIST_PARAMS, mentioned)

    def render(n_metrics: int, n_params: int) -> str:
        metric_keys, param_keys = all_metric_keys[:n_metrics], all_param_keys[:n_params]
        # Metric headers are the bare key; params carry a marker since both can share a key.
        headers = fixed + metric_keys + [f"param:{k}" for k in param_keys]
        rows = []
        for run in runs:
            info = run.info
            metrics = run.data.metrics_dict
            params = run.data.params_dict
            rows.append(
                [info.run_id, info.run_name]
                + (
                    [exp_names.get(info.experiment_id, info.experiment_id)]
                    if show_exp
                    else []
                )
                + [
                    info.status,
                    local_time(info.start_time),
                    duration(info.start_time, info.end_time),
                ]
                + [metrics.get(k) for k in metric_keys]
                + [params.get(k) for k in param_keys]
            )
        return tables.render(headers, rows)

    n_metrics, n_params = len(all_metric_keys), len(all_param_keys)
    text = render(n_metrics, n_params)
    if not sys.stdout.isatty():
        return text  # a pipe or file gets every column
    # On a terminal, drop param columns, then metric columns, until the table fits.
    width = shutil.get_terminal_size().columns
    while (
        n_metrics + n_params > 0
        and max(len(line) for line in text.splitlines()) > width
    ):
        if n_params > 0:
            n_params -= 1
        else:
            n_metrics -= 1
        text = render(n_metrics, n_params)
    return text


def cmd_runs_list(store: TrackingStore, args: argparse.Namespace) -> int:
    if args.max < 1:
        raise CairnError(f"--max must be at least 1, got {args.max}")
    if args.experiment is not None:
        exps = [resolve_experiment(store, args.experiment)]
    else:
        exps = all_experiments(
            store, ViewType.ALL if args.all else ViewType.ACTIVE_ONLY
        )
    if not exps:
        runs, more = [], False
    else:
        runs, more = _search(store, [e.experiment_id for e in exps], args)
    if args.json:
        print_json({"runs": runs})
        return 0

    mentioned = " ".join([*(args.order_by or []), args.filter or ""])
    print(_runs_table(runs, exps, mentioned))
    if more:
        print(
            f"(showing the first {len(runs)} runs; more match: raise --max)",
            file=sys.stderr,
        )
    elif not runs:
        print("(no runs match)", file=sys.stderr)
    return 0


def _section(
    title: str, headers: list[str], rows: list[list], max_cell: int = tables.MAX_CELL
) -> str:
    if not rows:
        return f"{title}: none"
    return f"{title}\n" + tables.render(headers, rows, max_cell=max_cell)


def cmd_runs_show(store: TrackingStore, args: argparse.Namespace) -> int:
    run = store.get_run(args.run_id)
    artifacts, truncated = walk_artifacts(store, run.info.run_id, MAX_ARTIFACTS_SHOWN)
    if args.json:
        print_json({"run": run, "artifacts": artifacts})
        return 0
    info = run.info
    try:
        exp_name = store.get_experiment(info.experiment_id).name
    except CairnError:
        exp_name = "?"
    sections = [
        tables.render_pairs(
            [
                ("run id", info.run_id),
                ("name", info.run_name),
                ("experiment", f"{exp_name} ({info.experiment_id})"),
                ("status", info.status),
                ("start", local_time(info.start_time)),
                ("end", local_time(info.end_time)),
                ("duration", duration(info.start_time, info.end_time)),
                ("user", info.user_id),
                ("artifact uri", info.artifact_uri),
                ("lifecycle", info.lifecycle_stage),
            ]
        )
    ]
    params = sorted(run.data.params, key=lambda p: p.key)
    sections.append(
        _section("Params", ["KEY", "VALUE"], [[p.key, p.value] for p in params], 80)
    )
    metrics = sorted(run.data.metrics, key=lambda m: m.key)
    sections.append(
        _section(
            "Metrics (latest values)",
            ["KEY", "VALUE", "STEP", "TIME"],
            [[m.key, float(m.value), m.step, local_time(m.timestamp)] for m in metrics],
        )
    )
    tags = sorted(run.data.tags, key=lambda t: t.key)
    sections.append(
        _section("Tags", ["KEY", "VALUE"], [[t.key, t.value] for t in tags], 80)
    )
    ds_rows = []
    for di in run.inputs.dataset_inputs:
        context = next((t.value for t in di.tags if t.key == "mlflow.data.context"), "")
        ds = di.dataset
        ds_rows.append([ds.name, ds.digest, context, ds.source_type])
    sections.append(
        _section("Datasets", ["NAME", "DIGEST", "CONTEXT", "SOURCE TYPE"], ds_rows)
    )
    art_rows = [
        [a.path + ("/" if a.is_dir else ""), size(a.file_size)] for a in artifacts
    ]
    title = f"Artifacts (first {MAX_ARTIFACTS_SHOWN})" if truncated else "Artifacts"
    sections.append(_section(title, ["PATH", "SIZE"], art_rows, 100))
    print("\n\n".join(sections))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cairn.cli.demo import run_demo  # scikit-learn loads only for the commands that train

    exp_id = run_demo(args.data)
    print(f"demo runs are in experiment {DEMO_EXPERIMENT!r} (id {exp_id})")
    return 0


def ensure_demo_data(data_dir: str | None) -> tuple[str, bool]:
    """The data directory, after running the demo there if the cairn-demo experiment
    is missing; the flag says whether it ran. A deleted cairn-demo counts as present:
    someone removed it on purpose."""
    eng = engine.open(data_dir)
    path = str(eng.path)
    missing = eng.tracking.get_experiment_by_name(DEMO_EXPERIMENT) is None
    if missing:
        from cairn.cli.demo import run_demo

        print(f"No demo data yet: training a few models into {path}")
        run_demo(path)
    return path, missing


def cmd_server(args: argparse.Namespace) -> int:
    """Serve MLflow's REST API on one opened data directory until interrupted."""
    from cairn.app.server import serve  # the web stack loads only for the commands that serve

    eng = engine.open(args.data)
    check_listen(eng, args.host, args.auth)
    tls = check_tls(args.tls_cert, args.tls_key)

    def ready(url: str) -> None:
        print(f"Cairn is serving {eng.path} at {url}" + (" (auth on)" if args.auth else ""), flush=True)
        print(f"  MLFLOW_TRACKING_URI={url} python train.py", flush=True)

    serve(eng, args.host, args.port, ready=ready, auth=args.auth, tls=tls, monitor_interval_s=args.monitor_interval)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Start the appliance: demo data on first start, then the server; on a terminal,
    the terminal UI too, in the same process."""
    path, _ = ensure_demo_data(args.data)
    cmd = _program() + (f" --data {shlex.quote(path)}" if args.data else "")
    print(f"Cairn data directory: {path}")
    print("Look at it from another terminal with:")
    print(f"  {cmd} experiments list")
    print(f"  {cmd} runs list --experiment {DEMO_EXPERIMENT}")
    print(
        f"  {cmd} runs list --filter 'metrics.test_r2 > 0' --order-by 'metrics.test_r2 DESC'"
    )
    print(f"  {cmd} runs show RUN_ID")
    if args.no_server:
        return 0
    if not args.no_ui and sys.stdin.isatty() and sys.stdout.isatty():
        from cairn.cli.up import run_up  # the server and the UI in one process (cli/up.py)

        eng = engine.open(args.data)
        check_listen(eng, args.host, args.auth)
        if args.tls_cert or args.tls_key:
            raise CairnError("TLS is for `cairn server --tls-cert ... --tls-key ...` (or `cairn up --no-ui`); "
                             "look at it with `cairn ui --remote https://HOST:PORT --token ...`")
        return run_up(eng, args.host, args.port, auth=args.auth)
    return cmd_server(args)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_listen(eng, host: str, auth: bool) -> None:
    """Refuse what would open the appliance to a network without a lock on it, and an
    auth that no one could get through."""
    if not auth and not is_loopback(host):
        raise CairnError(
            f"Refusing to listen on {host} without --auth: anyone who reaches the port could read, change or "
            "delete every experiment, model and endpoint. Create an admin (`cairn users create NAME --admin "
            "--password-stdin`) and add --auth, or keep the default 127.0.0.1.")
    if auth and not eng.governance.principals.any_admin():
        raise CairnError("--auth with no admin user: no one could log in. Create one first on this machine: "
                         "`cairn users create NAME --admin --password-stdin`")


def check_tls(cert: str | None, key: str | None) -> tuple[str, str] | None:
    """Both files or neither, each readable PEM: said before the server starts, not as
    a traceback from the TLS library."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise CairnError("--tls-cert and --tls-key go together: give the certificate and its private key")
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CairnError(f"Cannot use the TLS certificate {cert} with key {key}: {exc}") from None
    return cert, key


def _program() -> str:
    """How to type this command again: `cairn` when that is what PATH finds, else the
    path it was started by (`make run` starts .venv/bin/cairn without activating)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) != "cairn":
        return "cairn"
    on_path = shutil.which("cairn")
    if on_path and os.path.exists(argv0) and os.path.samefile(on_path, argv0):
        return "cairn"
    return argv0


# -- parser ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cairn", description="Cairn: an offline ML lifecycle appliance."
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="data directory (default: $CAIRN_HOME, else ~/.local/share/cairn)",
    )
    parser.add_argument("--version", action="version", version=f"cairn {cairn_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    exps = sub.add_parser("experiments", help="list experiments")
    exps_sub = exps.add_subparsers(dest="action", metavar="ACTION", required=True)
    el = exps_sub.add_parser("list", help="list experiments, newest first")
    el.add_argument("--all", action="store_true", help="include deleted experiments")
    el.add_argument("--json", action="store_true", help="print JSON instead of a table")
    el.set_defaults(handler=cmd_experiments_list, needs_store=True)

    runs = sub.add_parser("runs", help="list and show runs")
    runs_sub = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    rl = runs_sub.add_parser(
        "list", help="search runs (MLflow's filter and order-by grammar)"
    )
    rl.add_argument(
        "--experiment", metavar="NAME", help="experiment name or id (default: all)"
    )
    rl.add_argument(
        "--filter",
        metavar="EXPR",
        help="e.g. \"metrics.rmse < 0.5 and params.alpha = '1.0'\"",
    )
    rl.add_argument(
        "--order-by",
        metavar="KEY",
        nargs="+",
        action="extend",
        default=None,
        help="e.g. 'metrics.rmse ASC' 'start_time DESC'",
    )
    rl.add_argument(
        "--max",
        metavar="N",
        type=int,
        default=100,
        help="show at most N runs (default 100)",
    )
    rl.add_argument("--all", action="store_true", help="include deleted runs")
    rl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rl.set_defaults(handler=cmd_runs_list, needs_store=True)
    rs = runs_sub.add_parser(
        "show", help="one run: info, params, metrics, tags, datasets, artifacts"
    )
    rs.add_argument("run_id", metavar="RUN_ID")
    rs.add_argument("--json", action="store_true", help="print JSON instead of text")
    rs.set_defaults(handler=cmd_runs_show, needs_store=True)

    demo = sub.add_parser(
        "demo", help="train a few scikit-learn models into the 'cairn-demo' experiment"
    )
    demo.set_defaults(handler=cmd_demo, needs_store=False)
    up = sub.add_parser("up", help="start Cairn: demo data on first start, then the server (and the UI on a terminal)")
    _server_flags(up)
    up.add_argument("--no-server", action="store_true", help="prepare the data, do not serve")
    up.add_argument("--no-ui", action="store_true", help="serve only, even on a terminal (the UI runs when stdin and stdout are one)")
    up.set_defaults(handler=cmd_up, needs_store=False)
    server = sub.add_parser("server", help="serve MLflow's REST API (tracking, artifacts)")
    _server_flags(server)
    server.set_defaults(handler=cmd_server, needs_store=False)
    add_registry_commands(sub)  # models, catalogs, schemas (cli/models.py)
    add_endpoint_commands(sub)  # endpoints (cli/endpoints.py)
    add_feature_commands(sub)  # features (cli/features.py)
    add_monitor_commands(sub)  # monitors (cli/monitors.py)
    add_governance_commands(sub)  # users, groups, service-principals, tokens, audit (cli/governance.py)
    add_grant_commands(sub)  # grants (cli/grants.py)
    add_bundle_commands(sub)  # keys, bundle (cli/bundles.py)
    add_doctor_command(sub)  # doctor (cli/doctor.py)
    add_ui_command(sub)  # ui (cli/ui.py; textual loads only when it runs)
    return parser


def _server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only; "
                   "any other needs --auth)")
    p.add_argument("--auth", action="store_true",
                   help="require a token or basic auth on every route (create the first admin with "
                        "`cairn users create NAME --admin --password-stdin`)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--monitor-interval", type=float, default=60.0, metavar="S",
                   help="refresh endpoint monitors every S seconds in the background (0: only when asked)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (with --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not args.needs_store:
            return args.handler(args)
        # Not closed here: engine.open hands every caller in a process the same Engine
        # (LMDB allows one environment per file per process), so closing it would break
        # an SDK client that shares it. Queued writes are committed at interpreter exit.
        return args.handler(engine.open(args.data).tracking, args)
    except CairnError as exc:
        # One line, whatever the message holds (converter errors span several);
        # status 1, as argparse keeps 2 for a command line it cannot parse.
        print(f"error: {' '.join(exc.message.split())}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `cairn runs list | head`: the reader left; not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # The data directory cannot be used (a file in the way, no permission, disk
        # full): the system's words are the useful part, a traceback is not.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
