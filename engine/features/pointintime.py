"""The point-in-time join, in DuckDB: for each label row and each lookup, the feature
table's latest row with the same key and a timestamp at or before the row's (an ASOF
JOIN), nulled when older than the lookback window; a plain LEFT JOIN for a table
without a timestamp key. Never a feature row from the future.

Each lookup is its own ASOF JOIN against the label rows (numbered), and the results are
joined back by row number, so lookups never multiply rows and the output keeps the
caller's row order. Timestamps compare as TIMESTAMPTZ in a UTC session: a naive label
timestamp is read as UTC, as frames.normalize reads a naive feature timestamp.
"""
from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cairn.engine.errors import invalid
from cairn.engine.features.lookups import LookupSpec

ROW = "__cairn_row"


def ident(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def arrow_result(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """A query's result as a pyarrow Table (DuckDB renamed the call in 2.0)."""
    rel = con.sql(sql)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _as_tz(column: str, t: pa.DataType) -> str:
    """A timestamp column as TIMESTAMPTZ: a cast only where it is not one already (a
    cast in the join condition costs the ASOF join a fifth of its time)."""
    if pa.types.is_timestamp(t) and t.tz is not None:
        return column
    return f"CAST({column} AS TIMESTAMPTZ)"


def _lookup_sql(i: int, spec: LookupSpec, label_t: pa.DataType | None, feature_t: pa.DataType | None) -> str:
    f = f"f{i}"
    on = [f"l.{ident(lk)} = f.{ident(pk)}" for lk, pk in zip(spec.lookup_key, spec.primary_keys)]
    picks = [f"f.{ident(src)}" for src, _ in spec.features]
    if spec.timestamp_key and spec.timestamp_lookup_key:
        lt = _as_tz(f"l.{ident(spec.timestamp_lookup_key)}", label_t)
        ft = _as_tz(f"f.{ident(spec.timestamp_key)}", feature_t)
        on.append(f"{lt} >= {ft}")
        join = "ASOF LEFT JOIN"
        if spec.lookback_us is not None:
            fresh = f"epoch_us({ft}) >= epoch_us({lt}) - {int(spec.lookback_us)}"
            picks = [f"CASE WHEN {fresh} THEN {p} END" for p in picks]
        source = f
    else:
        join = "LEFT JOIN"
        source = f
        if spec.timestamp_key:  # a time-series table looked up without a time: its latest row
            partition = ", ".join(ident(k) for k in spec.primary_keys)
            source = (f"(SELECT * FROM {f} QUALIFY row_number() OVER (PARTITION BY {partition} "
                      f"ORDER BY {ident(spec.timestamp_key)} DESC) = 1)")
    columns = ", ".join(f"{p} AS {ident(f'__o{i}_{j}')}" for j, p in enumerate(picks))
    return (f"q{i} AS (SELECT l.{ROW}, {columns} FROM labels l {join} {source} f ON {' AND '.join(on)})")


def join(labels: pa.Table, specs: Sequence[LookupSpec], tables: Sequence[pa.Table]) -> pa.Table:
    """`labels` with every lookup's features appended (output names), row order kept,
    defaults filled where a value is null."""
    if not specs:
        return labels
    numbered = labels.append_column(ROW, pa.array(range(labels.num_rows), pa.int64()))
    con = connect()
    try:
        con.register("labels", numbered)
        for i, table in enumerate(tables):
            con.register(f"f{i}", table)
        ctes = ", ".join(
            _lookup_sql(i, s, labels.schema.field(s.timestamp_lookup_key).type if s.timestamp_lookup_key else None,
                        tables[i].schema.field(s.timestamp_key).type if s.timestamp_key else None)
            for i, s in enumerate(specs))
        outs = ", ".join(f"q{i}.{ident(f'__o{i}_{j}')}" for i, s in enumerate(specs) for j in range(len(s.features)))
        joins = " ".join(f"LEFT JOIN q{i} USING ({ROW})" for i in range(len(specs)))
        sql = f"WITH {ctes} SELECT {outs} FROM labels l {joins} ORDER BY l.{ROW}"
        try:
            features = arrow_result(con, sql)
        except duckdb.Error as exc:
            raise invalid(f"The point-in-time join failed: {exc}") from None
    finally:
        con.close()
    out = labels
    for i, spec in enumerate(specs):
        for j, (src, name) in enumerate(spec.features):
            col = features.column(f"__o{i}_{j}")
            want = tables[i].schema.field(src).type
            if not col.type.equals(want):
                col = col.cast(want)
            if name in spec.default_values and col.null_count:
                col = _fill(col, spec.default_values[name], name)
            out = out.append_column(pa.field(name, col.type), col)
    return out


def _fill(col: pa.ChunkedArray, value, name: str) -> pa.ChunkedArray:
    try:
        return pc.fill_null(col, pa.scalar(value, type=col.type))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise invalid(f"default_values: {value!r} does not fit feature {name!r} ({col.type}): {exc}") from None
