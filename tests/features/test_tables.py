"""Feature tables as Delta Lake tables: the operations, their errors, and the proof
that what is on disk is plain Delta another reader understands."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cairn.engine.errors import CairnError


def _customers(n: int = 3, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": list(range(offset, offset + n)),
        "ts": pd.to_datetime([f"2024-01-{d + 1:02d}" for d in range(n)]),
        "spend": [float(i) * 1.5 for i in range(n)],
        "visits": list(range(n)),
        "segment": [f"s{i % 2}" for i in range(n)],
    })


def _raises(fn, *fragments) -> str:
    with pytest.raises(CairnError) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return info.value.error_code


def test_create_get_list_and_the_delta_folder(fe, eng):
    t = fe.create_table("cust", primary_keys="customer_id", timestamp_keys="ts", df=_customers(),
                        description="spend per customer", tags={"team": "growth"})
    assert t.name == "cust" and t.primary_keys == ["customer_id"] and t.timestamp_keys == ["ts"]
    assert t.features == ["spend", "visits", "segment"]
    assert dict(t.schema)["ts"] == "timestamp[us, tz=UTC]" and dict(t.schema)["segment"] == "string"
    assert t.delta_version == 1  # the create, then the first rows
    assert Path(t.path).is_relative_to(eng.path / "features" / "main" / "default")
    assert (Path(t.path) / "_delta_log").is_dir()
    eng.registry.create_catalog("ml")
    eng.registry.create_schema("ml.feats")
    fe.create_table("ml.feats.profile", primary_keys=["customer_id"],
                    schema={"customer_id": "long", "age": "int", "country": "string"})
    assert [x.name for x in fe.list_tables()] == ["cust", "ml.feats.profile"]
    assert fe.get_table("main.default.cust").description == "spend per customer"
    assert fe.get_table("ml.feats.profile").delta_version == 0
    fe.set_feature_table_tag("cust", "owner", "ana")
    assert fe.get_table("cust").tags == {"team": "growth", "owner": "ana"}
    fe.delete_feature_table_tag("cust", "team")
    assert fe.get_table("cust").tags == {"owner": "ana"}


def test_write_merges_on_the_keys_in_one_commit_and_time_travels(fe):
    fe.create_table("cust", primary_keys="customer_id", df=_customers(3).drop(columns="ts"))
    first = fe.read_table("cust")
    changed = _customers(3, offset=2).drop(columns="ts")  # id 2 updated, 3 and 4 new
    version = fe.write_table("cust", changed)
    assert version == 2
    now = fe.read_table("cust").sort_values("customer_id").reset_index(drop=True)
    assert list(now.customer_id) == [0, 1, 2, 3, 4]
    assert now.set_index("customer_id").loc[2, "spend"] == 0.0  # the new value for id 2
    back = fe.read_table("cust", as_of_version=1).sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, first.sort_values("customer_id").reset_index(drop=True))
    assert fe.write_table("cust", changed.iloc[:0]) == 2  # no rows: no commit
    ops = [h["operation"] for h in fe._offline.history("cust")]
    assert ops[0] == "MERGE" and len(ops) == 3


def test_time_series_tables_merge_on_key_and_timestamp(fe):
    fe.create_table("cust", primary_keys="customer_id", timestamp_keys="ts", df=_customers(2))
    later = _customers(2)
    later["ts"] = later["ts"] + pd.Timedelta(days=10)
    fe.write_table("cust", later)
    assert len(fe.read_table("cust")) == 4  # new timestamps are new rows
    fe.write_table("cust", later.assign(spend=99.0))
    table = fe.read_table("cust")
    assert len(table) == 4 and sorted(table.spend)[-2:] == [99.0, 99.0]


def test_bad_writes_name_what_is_wrong_and_write_nothing(fe):
    fe.create_table("cust", primary_keys="customer_id", timestamp_keys="ts", df=_customers())
    good = _customers()
    cases = [
        (good.assign(spend=["a", "b", "c"]), ["'spend'", "double", "string"]),
        (good.drop(columns="visits"), ["Missing column 'visits'"]),
        (good.assign(extra=1), ["no column 'extra'"]),
        (good.assign(customer_id=[1, None, 3]), ["'customer_id'", "null"]),
        (pd.concat([good, good.iloc[:1]]), ["Duplicate key", "customer_id=0"]),
        (good.assign(visits=[0.5, 1.0, 2.0]), ["'visits'", "int64", "double"]),
        ("not a frame", ["pandas DataFrame or an Arrow table"]),
    ]
    for df, fragments in cases:
        assert _raises(lambda: fe.write_table("cust", df), *fragments) == "INVALID_PARAMETER_VALUE"
    assert fe.get_table("cust").delta_version == 1
    assert _raises(lambda: fe.write_table("nope", good), "'nope' does not exist") == "RESOURCE_DOES_NOT_EXIST"
    assert _raises(lambda: fe.write_table("cust", good, mode="overwrite"), "merge")
    # a safe widening cast is made for the caller: int32 visits into the int64 column
    fe.write_table("cust", pa.Table.from_pandas(good, preserve_index=False).set_column(
        3, "visits", pa.array([7, 8, 9], pa.int32())))
    assert sorted(fe.read_table("cust").visits) == [7, 8, 9]


def test_create_errors(fe):
    df = _customers()
    assert _raises(lambda: fe.create_table("cust", "customer_id"), "exactly one of df")
    assert _raises(lambda: fe.create_table("cust", "nope", df=df), "'nope' is not in the table's columns")
    assert _raises(lambda: fe.create_table("cust", "customer_id", timestamp_keys="segment", df=df),
                   "'segment' must be a timestamp")
    assert _raises(lambda: fe.create_table("x.y.cust", "customer_id", df=df), "Catalog with name=x") == \
        "RESOURCE_DOES_NOT_EXIST"
    assert _raises(lambda: fe.create_table("bad name", "customer_id", df=df), "feature table name", "a space")
    assert _raises(lambda: fe.create_table("k", "customer_id", df=df[["customer_id"]]), "at least one feature")
    assert _raises(lambda: fe.create_table("d", "customer_id", df=pd.concat([df, df])), "Duplicate key")
    assert fe.list_tables() == []  # nothing half-made
    fe.create_table("cust", "customer_id", df=df)
    assert _raises(lambda: fe.create_table("cust", "customer_id", df=df), "already exists") == \
        "RESOURCE_ALREADY_EXISTS"
    assert _raises(lambda: fe.read_table("cust", as_of_version=7), "as_of_version=7")


def test_drop_removes_the_record_the_online_rows_and_the_folder(fe, eng):
    t = fe.create_table("cust", primary_keys="customer_id", df=_customers().drop(columns="ts"))
    fe.publish_table("cust")
    assert fe.lookup_online("cust", [(1,)])[0] is not None
    fe.drop_table("cust")
    assert not Path(t.path).exists() and fe.list_tables() == []
    with eng.env.read() as txn:
        assert txn.stat(eng.env.dbs["online_features"])["entries"] == 0
    again = fe.create_table("cust", primary_keys="customer_id", df=_customers(1).drop(columns="ts"))
    assert again.table_id != t.table_id and again.path != t.path
    assert len(fe.read_table("cust")) == 1


def _live_files(path: str) -> list[str]:
    """A second reader of the Delta protocol, written from its spec: replay the JSON
    commits of _delta_log (add and remove actions) to find the live Parquet files."""
    live: dict[str, None] = {}
    for commit in sorted(Path(path, "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = None
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    return list(live)


def test_other_readers_read_the_table_as_it_is(fe):
    t = fe.create_table("cust", primary_keys="customer_id", timestamp_keys="ts", df=_customers(3))
    fe.write_table("cust", _customers(3, offset=1).assign(spend=7.0))
    ours = fe.read_table("cust", as_arrow=True).to_pylist()
    files = [Path(t.path) / p for p in _live_files(t.path)]
    theirs = [row for f in files for row in pq.read_table(f).to_pylist()]

    def key(row):
        return row["customer_id"], row["ts"]

    assert len(theirs) == len(ours) == 6  # (id, ts) pairs: three new, none shared
    assert sorted(theirs, key=key) == sorted(ours, key=key)
    paths = [str(f) for f in files]
    count, spend = duckdb.sql(f"SELECT count(*), sum(spend) FROM read_parquet({paths!r})").fetchall()[0]
    assert count == 6 and spend == sum(r["spend"] for r in ours)


def test_a_schema_with_feature_tables_cannot_be_deleted(fe, eng):
    eng.registry.create_catalog("ml")
    eng.registry.create_schema("ml.feats")
    fe.create_table("ml.feats.t", primary_keys="customer_id", df=_customers().drop(columns="ts"))
    assert _raises(lambda: eng.registry.delete_schema("ml.feats"), "drop its feature tables first") == "INVALID_STATE"
    fe.drop_table("ml.feats.t")
    eng.registry.delete_schema("ml.feats")
