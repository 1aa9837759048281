"""Data frames in and out of feature tables: pandas, Arrow (tables, batches) or anything
that speaks the Arrow C stream (Polars), normalised to the types Delta stores, and the
checks a write makes before anything is written (schema, null keys, duplicate keys).

Delta has no unsigned integers, no nanosecond timestamps and one string type, so a frame
is normalised before it meets a table: strings and binaries to their plain Arrow types,
timestamps to microseconds in UTC (a naive timestamp is read as UTC), unsigned integers
to the next signed width. The same normalisation runs on a label frame before a
point-in-time join, so both sides of every comparison have one type.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cairn.engine.errors import invalid

TIMESTAMP = pa.timestamp("us", tz="UTC")
_UNSIGNED = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64()}


def to_arrow(df: Any, what: str = "df") -> pa.Table:
    """A pandas DataFrame, pyarrow Table or RecordBatch, or an Arrow C stream -> Table."""
    if isinstance(df, pa.Table):
        table = df
    elif isinstance(df, pa.RecordBatch):
        table = pa.Table.from_batches([df])
    elif type(df).__module__.startswith("pandas") and hasattr(df, "columns"):
        table = pa.Table.from_pandas(df, preserve_index=False)
    elif hasattr(df, "__arrow_c_stream__"):
        table = pa.table(df)
    else:
        raise invalid(f"{what}: a pandas DataFrame or an Arrow table is required, got {type(df).__name__}")
    dupes = sorted({c for c in table.column_names if table.column_names.count(c) > 1})
    if dupes:
        raise invalid(f"{what}: column {dupes[0]!r} appears more than once")
    return normalize(table)


def delta_type(t: pa.DataType, column: str) -> pa.DataType:
    """The Arrow type a column takes in a Delta table."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_dictionary(t) and \
            pa.types.is_string(t.value_type):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        return TIMESTAMP
    if t in _UNSIGNED:
        return _UNSIGNED[t]
    if t == pa.uint64():
        raise invalid(f"column {column!r}: uint64 has no Delta type; cast it to int64 (or a decimal)")
    return t


def normalize(table: pa.Table) -> pa.Table:
    fields = [pa.field(f.name, delta_type(f.type, f.name)) for f in table.schema]
    target = pa.schema(fields)
    if target.equals(table.schema, check_metadata=False):
        return table.replace_schema_metadata(None)
    # a naive timestamp is UTC: assume_timezone would need tzdata, the cast does the same
    columns = []
    for col, field in zip(table.columns, fields):
        if pa.types.is_timestamp(col.type) and col.type.tz is None:
            col = col.cast(pa.timestamp(col.type.unit, tz="UTC"))
        columns.append(col.cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)


def plain_views(table: pa.Table) -> pa.Table:
    """Arrow's view types (string_view, binary_view, which delta-rs returns) cast to the
    plain types pyarrow's compute kernels take; other columns untouched."""
    views = {i for i, f in enumerate(table.schema)
             if pa.types.is_string_view(f.type) or pa.types.is_binary_view(f.type)}
    for i in sorted(views):
        t = pa.string() if pa.types.is_string_view(table.schema.field(i).type) else pa.binary()
        table = table.set_column(i, table.schema.field(i).name, table.column(i).cast(t))
    return table


def conform(data: pa.Table, schema: pa.Schema, table_name: str) -> pa.Table:
    """`data` with the table's columns in the table's order and types; an error naming
    the first column that is missing, extra, or of a type that does not cast safely."""
    have, want = set(data.column_names), set(schema.names)
    extra = [c for c in data.column_names if c not in want]
    if extra:
        raise invalid(f"Feature table '{table_name}' has no column {extra[0]!r} "
                      f"(its columns: {', '.join(schema.names)})")
    missing = [c for c in schema.names if c not in have]
    if missing:
        raise invalid(f"Missing column {missing[0]!r} for feature table '{table_name}' (a write gives every column)")
    columns = []
    for field in schema:
        col = data.column(field.name)
        if not col.type.equals(field.type):
            if not _casts(col.type, field.type):
                raise invalid(f"Column {field.name!r} of feature table '{table_name}' is {field.type}; "
                              f"the data gives {col.type}")
            try:
                col = col.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise invalid(f"Column {field.name!r} of feature table '{table_name}' is {field.type}; "
                              f"the data's {col.type} values do not fit it: {exc}") from None
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def check_inferable(schema: pa.Schema) -> None:
    for f in schema:
        if pa.types.is_null(f.type):
            raise invalid(f"Column {f.name!r} holds only nulls: its type cannot be inferred; give a schema")


def _casts(src: pa.DataType, dst: pa.DataType) -> bool:
    """Casts a write may make for the caller: between integer widths, from integers or
    float32 to float64 (checked value by value), and from an all-null column; nothing
    that changes a value's kind."""
    if pa.types.is_null(src):
        return True
    if pa.types.is_string(src) and (pa.types.is_timestamp(dst) or pa.types.is_date(dst)):
        return True  # ISO text from JSON or CSV; a value that does not parse is refused
    if pa.types.is_integer(src) and (pa.types.is_integer(dst) or pa.types.is_floating(dst)):
        return True
    return pa.types.is_floating(src) and pa.types.is_floating(dst) and dst.bit_width >= src.bit_width


def check_keys(data: pa.Table, keys: Sequence[str], table_name: str) -> None:
    """No null in a key column and no key given twice in one write (the key named)."""
    for key in keys:
        nulls = data.column(key).null_count
        if nulls:
            raise invalid(f"Key column {key!r} of feature table '{table_name}' has {nulls} null value(s)")
    if not keys or data.num_rows < 2:
        return
    counts = data.group_by(list(keys)).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts.column("count_all"), 1))
    if dup.num_rows:
        row = dup.slice(0, 1).to_pylist()[0]
        shown = ", ".join(f"{k}={row[k]!r}" for k in keys)
        raise invalid(f"Duplicate key in one write to feature table '{table_name}': ({shown}) "
                      f"appears {row['count_all']} times")


def schema_from(value: Any) -> pa.Schema:
    """A pyarrow Schema, or a mapping {column: arrow type or type name}."""
    if isinstance(value, pa.Schema):
        schema = value
    elif isinstance(value, dict):
        try:
            schema = pa.schema([(name, _type(t)) for name, t in value.items()])
        except (TypeError, ValueError, KeyError) as exc:
            raise invalid(f"schema: {exc}") from None
    else:
        raise invalid(f"schema: a pyarrow Schema or a {{column: type}} mapping is required, got {type(value).__name__}")
    return pa.schema([pa.field(f.name, delta_type(f.type, f.name)) for f in schema])


_TYPE_NAMES = {"long": pa.int64(), "bigint": pa.int64(), "int": pa.int32(), "integer": pa.int32(),
               "double": pa.float64(), "float": pa.float32(), "string": pa.string(), "boolean": pa.bool_(),
               "timestamp": TIMESTAMP, "date": pa.date32(), "binary": pa.binary()}


def _type(t: Any) -> pa.DataType:
    if isinstance(t, pa.DataType):
        return t
    if isinstance(t, str):
        name = t.strip().lower()
        if name in _TYPE_NAMES:
            return _TYPE_NAMES[name]
        return pa.type_for_alias(name)
    raise TypeError(f"{t!r} is not an Arrow type or type name")


def kind(t: pa.DataType) -> str:
    """A type's family, for checking that a join compares like with like."""
    for name, test in (("integer", pa.types.is_integer), ("floating", pa.types.is_floating),
                       ("string", pa.types.is_string), ("timestamp", pa.types.is_timestamp),
                       ("timestamp", pa.types.is_date), ("boolean", pa.types.is_boolean),
                       ("binary", pa.types.is_binary), ("decimal", pa.types.is_decimal)):
        if test(t):
            return name
    return str(t)


def describe(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in schema]
