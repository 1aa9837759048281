"""`cairn monitors ...`: endpoint monitors and model baselines on the command line (the
engine's MonitorStore, through the SDK's functions).

  cairn monitors baseline MODEL VERSION (--from-file PATH | --from-table TABLE [--table-version N])
  cairn monitors create ENDPOINT [--granularity G ...] [--settle S]
  cairn monitors list [--json] | show ENDPOINT [--json] | delete ENDPOINT
  cairn monitors labels ENDPOINT FILE      (a CSV or JSON-lines file of request_id, label)
  cairn monitors alerts ENDPOINT [--set FILE.json] [--webhook URL] [--json]
  cairn monitors refresh ENDPOINT
  cairn monitors metrics ENDPOINT [--granularity G] [--entity E] [--since ISO|MS] [--json]
"""
from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from cairn.cli import tables
from cairn.cli.handlers import with_engine
from cairn.engine.errors import CairnError
from cairn.engine.monitoring.profiles import without_samples
from cairn.engine.monitoring.records import ALL
from cairn.engine.monitoring.store import DEFAULT_GRANULARITIES, DEFAULT_SETTLE_S
from cairn.engine.sdk import monitoring


def cmd_baseline(eng, args) -> int:
    if bool(args.from_file) == bool(args.from_table):
        raise CairnError("Give the training data with --from-file PATH or --from-table TABLE (one of them)")
    if args.from_file:
        profile = monitoring.set_baseline(args.model, args.version, args.from_file, engine=eng)
    else:
        profile = monitoring.baseline_from_table(args.model, args.version, args.from_table, args.table_version,
                                                 engine=eng)
    print(f"baseline of {args.model} version {args.version}: {profile.rows:,} rows, {len(profile.columns)} columns "
          f"({profile.source})")
    print(tables.render(["COLUMN", "KIND", "NULLS", "MEAN", "STD", "DISTINCT"], [
        [c.name, c.kind, f"{c.null_share:.1%}", _num(c.mean), _num(c.std), c.distinct] for c in profile.columns]))
    return 0


def _num(x) -> str:
    return "" if x is None else f"{x:.4g}"


def cmd_create(eng, args) -> int:
    m = monitoring.create_monitor(args.endpoint, args.granularity or DEFAULT_GRANULARITIES, args.settle,
                                  problem_type=args.problem_type or "", engine=eng)
    print(f"monitoring {m.endpoint}: windows of {', '.join(f'{g} s' for g in m.granularities)}")
    return 0


def cmd_list(eng, args) -> int:
    found = eng.monitoring.list_monitors()
    if args.json:
        tables.print_json([msgspec.to_builtins(m) for m in found])
        return 0
    print(tables.render(["ENDPOINT", "WINDOWS (S)", "LAST REFRESH"], [
        [m.endpoint, ", ".join(map(str, m.granularities)), tables.local_time(m.last_refresh_ms)] for m in found]))
    return 0


def cmd_show(eng, args) -> int:
    m = eng.monitoring.get_monitor(args.endpoint)
    if args.json:
        tables.print_json(msgspec.to_builtins(m))
        return 0
    print(f"{m.endpoint}: windows of {', '.join(f'{g} s' for g in m.granularities)}, final {m.settle_s:g} s after "
          f"they end; last refresh {tables.local_time(m.last_refresh_ms) or 'never'}")
    return 0


def cmd_refresh(eng, args) -> int:
    r = monitoring.refresh(args.endpoint, engine=eng)
    print(f"{r.endpoint}: {r.payloads_read:,} logged requests read, {r.windows_written} windows written "
          f"in {r.seconds:.2f} s")
    return 0


def cmd_metrics(eng, args) -> int:
    found = monitoring.windows(args.endpoint, args.granularity, args.entity, start_ms=tables.since_ms(args.since),
                               engine=eng)
    if args.json:
        docs = [msgspec.to_builtins(w) for w in found]
        for d in docs:
            without_samples(d.get("profile") or {})
        tables.print_json(docs)
        return 0
    if not found:
        print(f"No windows for '{args.endpoint}'" + (f" since {args.since}" if args.since else "") +
              ": nothing logged in that range yet, or not refreshed (`cairn monitors refresh`); the endpoint "
              "logs payloads only with payload logging on (`auto_capture_config`)", file=sys.stderr)
        return 0
    rows = []
    for w in found:
        if w.drift:
            drift = ("DRIFT: " if w.drift.drifted else "") + ", ".join(c.name for c in w.drift.columns if c.drifted)
        else:
            drift = w.note
        quality = " ".join(f"{k}={v:.3g}" for k, v in w.quality.items())
        rows.append([tables.local_time(w.start_ms), w.requests, w.errors, _num(w.latency_p50_ms),
                     _num(w.latency_p99_ms), w.model, quality, drift, "" if w.final else "open"])
    print(tables.render(["WINDOW", "REQUESTS", "ERRORS", "P50 MS", "P99 MS", "MODEL", "QUALITY", "DRIFTED COLUMNS",
                         ""], rows,
                        max_cell=60))
    return 0


def cmd_labels(eng, args) -> int:
    table = monitoring.read_file(args.file)
    missing = {"request_id", "label"} - set(table.column_names)
    if missing:
        raise CairnError(f"{args.file}: needs the columns request_id and label (missing {', '.join(sorted(missing))})")
    labels = dict(zip(map(str, table.column("request_id").to_pylist()), table.column("label").to_pylist()))
    read = monitoring.log_labels(args.endpoint, labels, engine=eng)
    print(f"{len(labels):,} labels for {args.endpoint}; {read:,} for requests already read (their windows are "
          "computed again on the next refresh)")
    return 0


def cmd_alerts(eng, args) -> int:
    if args.set:
        try:
            rules = msgspec.json.decode(Path(args.set).read_bytes())
        except (OSError, msgspec.DecodeError) as exc:
            raise CairnError(f"--set {args.set}: {exc}") from None
        eng.monitoring.set_alerts(args.endpoint, rules.get("alerts", rules) if isinstance(rules, dict) else rules,
                                  args.webhook)
    elif args.webhook is not None:
        eng.monitoring.set_alerts(args.endpoint, eng.monitoring.get_monitor(args.endpoint).alerts, args.webhook)
    found = eng.monitoring.alerts(args.endpoint)
    if args.json:
        tables.print_json([{"rule": msgspec.to_builtins(r), **msgspec.to_builtins(s)} for r, s in found])
        return 0
    print(tables.render(["ALERT", "WHEN", "STATE", "SINCE", "VALUE", "FIRED"], [
        [r.name, f"{r.metric}{'' if r.column == '*' else '[' + r.column + ']'} {r.op} {r.threshold:g}",
         s.state.upper() if s.state == "firing" else s.state, tables.local_time(s.since_ms), _num(s.value), s.fired]
        for r, s in found]))
    return 0


def cmd_delete(eng, args) -> int:
    monitoring.delete_monitor(args.endpoint, engine=eng)
    print(f"deleted the monitor of {args.endpoint} and its windows")
    return 0



def add_commands(sub) -> None:
    top = sub.add_parser("monitors", help="endpoint monitors (drift, latency, errors) and model baselines")
    acts = top.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = acts.add_parser("baseline", help="profile a model version's training data (what drift is measured from)")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--from-file", metavar="PATH", help="a .parquet, .csv or .jsonl file of training inputs")
    p.add_argument("--from-table", metavar="TABLE", help="a feature table")
    p.add_argument("--table-version", type=int, metavar="N", help="the table's Delta version (default: latest)")
    p.set_defaults(handler=with_engine(cmd_baseline), needs_store=False)
    p = acts.add_parser("create", help="monitor an endpoint's payload log")
    p.add_argument("endpoint", metavar="ENDPOINT")
    p.add_argument("--granularity", action="append", metavar="G",
                   help=f"a window size, repeatable (default: {', '.join(DEFAULT_GRANULARITIES)})")
    p.add_argument("--settle", type=float, default=DEFAULT_SETTLE_S, metavar="S",
                   help=f"seconds after a window ends before it is final (default {DEFAULT_SETTLE_S:g})")
    p.add_argument("--problem-type", choices=("classification", "regression"),
                   help="for the quality metrics of labels (default: inferred from them)")
    p.set_defaults(handler=with_engine(cmd_create), needs_store=False)
    p = acts.add_parser("alerts", help="a monitor's alerts and their state (--set replaces the rules)")
    p.add_argument("endpoint", metavar="ENDPOINT")
    p.add_argument("--set", metavar="FILE", help="a JSON list of rules {name, metric, op, threshold, column?}")
    p.add_argument("--webhook", metavar="URL", help="POST each change of state here (\"\" removes it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=with_engine(cmd_alerts), needs_store=False)
    p = acts.add_parser("labels", help="ground truth for logged requests, by request id")
    p.add_argument("endpoint", metavar="ENDPOINT")
    p.add_argument("file", metavar="FILE", help="a CSV or JSON-lines file with request_id and label")
    p.set_defaults(handler=with_engine(cmd_labels), needs_store=False)
    p = acts.add_parser("list", help="monitors")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=with_engine(cmd_list), needs_store=False)
    for name, handler, text in (("show", cmd_show, "one monitor"), ("refresh", cmd_refresh, "compute new windows"),
                                ("delete", cmd_delete, "delete a monitor and its windows")):
        p = acts.add_parser(name, help=text)
        p.add_argument("endpoint", metavar="ENDPOINT")
        if name == "show":
            p.add_argument("--json", action="store_true")
        p.set_defaults(handler=with_engine(handler), needs_store=False)
    p = acts.add_parser("metrics", help="a monitor's windows: requests, errors, latency, drift")
    p.add_argument("endpoint", metavar="ENDPOINT")
    p.add_argument("--granularity", metavar="G", help="window size (default: the monitor's smallest)")
    p.add_argument("--entity", default=ALL, metavar="NAME", help="one served entity (default: all together)")
    p.add_argument("--since", metavar="ISO|MS")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=with_engine(cmd_metrics), needs_store=False)
