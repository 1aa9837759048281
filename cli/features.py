"""`cairn features ...`: feature tables on the command line, as the SDK's
FeatureEngineeringClient does them (create, list, show, write, read, publish, drop,
lookup). Files are Parquet or CSV (by their suffix); `read` prints a table, CSV or JSON.
The offline commands need the `features` extra; `lookup` reads LMDB only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cairn import engine
from cairn.cli import tables
from cairn.engine.errors import CairnError, invalid
from cairn.engine.sdk.features import FeatureEngineeringClient

READ_DEFAULT_LIMIT = 20


def _frame(path: str):
    """A Parquet or CSV file as an Arrow table."""
    p = Path(path)
    if not p.is_file():
        raise CairnError(f"{path}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(p)
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(p)
    except ImportError:
        raise invalid("Reading files needs the 'features' extra (pip install 'cairn[features]')") from None
    except Exception as exc:  # noqa: BLE001 - the reader's words name what is wrong with the file
        raise CairnError(f"{path}: cannot read it: {exc}") from None
    raise CairnError(f"{path}: a .parquet or .csv file is required")


def _columns(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def _tags(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CairnError(f"--tag {pair!r}: KEY=VALUE is required")
        out[key] = value
    return out


def _schema(text: str) -> dict[str, str]:
    out = {}
    for part in _columns(text):
        name, sep, typ = part.partition(":")
        if not sep:
            raise CairnError(f"--schema {part!r}: COLUMN:TYPE is required (e.g. id:long,spend:double)")
        out[name.strip()] = typ.strip()
    return out


def cmd_create(fe: FeatureEngineeringClient, args) -> int:
    if (args.source is None) == (args.schema is None):
        raise CairnError("give exactly one of --from FILE (the first rows) or --schema COLUMN:TYPE,...")
    df = _frame(args.source) if args.source else None
    t = fe.create_table(args.name, _columns(args.primary_keys), df, timestamp_keys=_columns(args.timestamp_key) or None,
                        schema=_schema(args.schema) if args.schema else None, description=args.description,
                        tags=_tags(args.tag))
    print(f"created feature table {t.name} (Delta version {t.delta_version}) at {t.path}")
    return 0


def cmd_list(fe: FeatureEngineeringClient, args) -> int:
    found = fe.list_tables()
    if args.json:
        tables.print_json({"feature_tables": found})
        return 0
    rows = [[t.name, ",".join(t.primary_keys), ",".join(t.timestamp_keys), len(t.features), t.delta_version,
             t.online_version if t.online_version >= 0 else "", tables.local_time(t.last_updated_timestamp)]
            for t in found]
    print(tables.render(["NAME", "KEYS", "TIMESTAMP", "FEATURES", "VERSION", "ONLINE", "UPDATED"], rows))
    return 0


def cmd_show(fe: FeatureEngineeringClient, args) -> int:
    desc = fe.describe_table(args.name)
    t, history, models = desc.feature_table, desc.history, desc.models
    if args.json:
        tables.print_json(desc)
        return 0
    online = (f"version {t.online_version}, {t.online_rows} keys, published "
              f"{tables.local_time(t.online_published_timestamp)}"
              + (f", ttl {t.online_ttl_seconds:g} s" if t.online_ttl_seconds else "")) if t.online_version >= 0 \
        else "not published (cairn features publish)"
    print(tables.render_pairs([
        ("name", t.name), ("primary keys", ", ".join(t.primary_keys)),
        ("timestamp key", ", ".join(t.timestamp_keys) or "-"), ("description", t.description or "-"),
        ("tags", ", ".join(f"{k}={v}" for k, v in t.tags.items()) or "-"), ("path", t.path),
        ("delta version", t.delta_version), ("online", online),
        ("created", f"{tables.local_time(t.creation_timestamp)} by {t.creator or '?'}"),
    ]))
    print("\nschema")
    print(tables.render(["COLUMN", "TYPE", "ROLE"], [
        [c, typ, "primary key" if c in t.primary_keys else "timestamp key" if c in t.timestamp_keys else "feature"]
        for c, typ in t.schema]))
    print("\nDelta versions (newest first)")
    print(tables.render(["VERSION", "TIME", "OPERATION", "ROWS"], [
        [h["version"], tables.local_time(h["timestamp"]), h["operation"],
         h["metrics"].get("num_added_rows", h["metrics"].get("num_output_rows", ""))] for h in history]))
    print("\nmodel versions trained on it")
    print(tables.render(["MODEL", "VERSION", "TABLE VERSION"], [list(m) for m in models]) if models else "(none)")
    return 0


def cmd_write(fe: FeatureEngineeringClient, args) -> int:
    version = fe.write_table(args.name, _frame(args.file))
    print(f"wrote {args.file} into {args.name}: Delta version {version}")
    return 0


def cmd_read(fe: FeatureEngineeringClient, args) -> int:
    table = fe.read_table(args.name, args.version, as_arrow=True)
    shown = table.slice(0, args.limit) if args.limit else table
    if args.format == "json":
        tables.print_json({"rows": shown.to_pylist(), "total_rows": table.num_rows})
    elif args.format == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(shown, sys.stdout.buffer)
    else:
        print(tables.render(shown.column_names, [list(r.values()) for r in shown.to_pylist()]))
        if shown.num_rows < table.num_rows:
            print(f"({shown.num_rows} of {table.num_rows} rows; --limit 0 for all)", file=sys.stderr)
    return 0


def cmd_publish(fe: FeatureEngineeringClient, args) -> int:
    r = fe.publish_table(args.name, ttl=dt.timedelta(seconds=args.ttl) if args.ttl is not None else None)
    how = "incrementally" if r.incremental else "from the whole table"
    print(f"published {r.name} at Delta version {r.version} {how}: {r.rows_written} rows written, "
          f"{r.rows_deleted} deleted, {r.online_rows} keys online")
    return 0


def cmd_drop(fe: FeatureEngineeringClient, args) -> int:
    fe.drop_table(args.name)
    print(f"dropped feature table {args.name} (its Delta folder and online rows)")
    return 0


def cmd_lookup(fe: FeatureEngineeringClient, args) -> int:
    keys = [tuple(_value(v) for v in key.split(",")) for key in args.keys]
    found = fe.lookup_online(args.name, keys, _columns(args.features) or None)
    tables.print_json({"results": [{"key": list(k), "features": f} for k, f in zip(keys, found)]})
    return 0


def _value(text: str):
    """A key on the command line: an integer when it reads as one (the lookup coerces
    it back to a string for a string key)."""
    try:
        return int(text)
    except ValueError:
        return text


def _runner(command: Callable[[FeatureEngineeringClient, argparse.Namespace], int]):
    def run(args: argparse.Namespace) -> int:
        eng = engine.open(args.data)
        rc = command(FeatureEngineeringClient(engine=eng), args)
        # delta-rs' native runtime threads can abort the interpreter's shutdown
        # ("terminate called without an active exception", seen in CI after a correct
        # answer): commit what is queued, flush the output, and leave without the
        # interpreter's teardown.
        eng.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)

    return run


def add_commands(sub) -> None:
    """Register `features` on the top-level subparsers."""
    top = sub.add_parser("features", help="feature tables: create, list, show, write, read, publish, drop, lookup")
    fs = top.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, handler, help: str) -> argparse.ArgumentParser:
        p = fs.add_parser(name, help=help)
        p.set_defaults(handler=_runner(handler), needs_store=False)
        return p

    p = add("create", cmd_create, "create a feature table (a Delta table) from a file or a schema")
    p.add_argument("name", metavar="NAME", help="catalog.schema.table, or a bare name in main.default")
    p.add_argument("--primary-keys", required=True, metavar="COLS", help="comma-separated key columns")
    p.add_argument("--timestamp-key", metavar="COL", help="the time column of a time-series table")
    p.add_argument("--from", dest="source", metavar="FILE", help="a .parquet or .csv file: the first rows")
    p.add_argument("--schema", metavar="COL:TYPE,...", help="columns and types instead of a file (long, double, ...)")
    p.add_argument("--description", metavar="TEXT")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p = add("list", cmd_list, "feature tables, their keys, versions and online state")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = add("show", cmd_show, "one table: schema, Delta versions, online copy, models trained on it")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p = add("write", cmd_write, "upsert a .parquet or .csv file into a table (one Delta commit)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("file", metavar="FILE")
    p = add("read", cmd_read, "print a table's rows (at a Delta version)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", type=int, metavar="N", help="Delta time travel: the table at version N")
    p.add_argument("--limit", type=int, default=READ_DEFAULT_LIMIT, metavar="N",
                   help=f"at most N rows (default {READ_DEFAULT_LIMIT}; 0: all)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p = add("publish", cmd_publish, "copy the latest row per key into the online store (incremental)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--ttl", type=float, metavar="SECONDS", help="rows older than this are served as missing (0: never)")
    p = add("drop", cmd_drop, "delete a table: its record, Delta folder and online rows")
    p.add_argument("name", metavar="NAME")
    p = add("lookup", cmd_lookup, "online features of keys (KEY is comma-separated for composite keys)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("keys", nargs="+", metavar="KEY")
    p.add_argument("--features", metavar="COLS", help="only these features")
