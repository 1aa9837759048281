"""The online store: publishing from Delta into LMDB (first, incremental, no-op,
backfills, deletes), lookups (batched, TTL, misses, key types), and an engine without
the offline extra still serving them."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from deltalake import DeltaTable

from cairn.engine.errors import CairnError


def _cust(ids, days, spend):
    return pd.DataFrame({"cid": ids, "ts": pd.to_datetime([f"2024-01-{d:02d}" for d in days]), "spend": spend,
                         "tier": [f"t{i}" for i in ids]})


def _txnid(eng) -> int:
    return eng.env.env.info()["last_txnid"]


def test_publish_then_incremental_then_nothing(fe, eng):
    fe.create_table("cust", primary_keys="cid", timestamp_keys="ts", df=_cust([1, 1, 2], [1, 5, 3], [1.0, 5.0, 2.0]))
    first = fe.publish_table("cust")
    assert (first.previous_version, first.version, first.rows_written, first.online_rows) == (-1, 1, 2, 2)
    assert not first.incremental
    assert fe.lookup_online("cust", [(1,), (2,), (3,)]) == [{"spend": 5.0, "tier": "t1"},
                                                            {"spend": 2.0, "tier": "t2"}, None]
    before = _txnid(eng)
    again = fe.publish_table("cust")
    assert again.rows_written == 0 and _txnid(eng) == before  # no change: not one write
    # one new key, one newer row, one backfilled older row (which must not win)
    fe.write_table("cust", _cust([3, 2, 1], [2, 9, 2], [3.0, 9.0, 0.5]))
    inc = fe.publish_table("cust")
    assert inc.incremental and inc.previous_version == 1 and inc.version == 2
    assert inc.rows_written == 3 and inc.online_rows == 3
    assert fe.lookup_online("cust", [(1,), (2,), (3,)], ["spend"]) == [{"spend": 5.0}, {"spend": 9.0},
                                                                       {"spend": 3.0}]
    table = fe.get_table("cust")
    assert (table.online_version, table.online_rows) == (2, 3)


def test_deletes_reach_the_online_store_for_tables_without_a_timestamp(fe):
    t = fe.create_table("prof", primary_keys="cid", df=pd.DataFrame({"cid": [1, 2, 3], "age": [30, 40, 50]}))
    fe.publish_table("prof")
    DeltaTable(t.path).delete("cid = 2")  # another writer (Spark, say) deletes a row
    fe.write_table("prof", pd.DataFrame({"cid": [3], "age": [51]}))
    result = fe.publish_table("prof")
    assert result.rows_deleted == 1 and result.online_rows == 2
    assert fe.lookup_online("prof", [(1,), (2,), (3,)]) == [{"age": 30}, None, {"age": 51}]


def test_ttl_makes_old_rows_misses_and_lookups_are_counted(fe, eng):
    fe.create_table("cust", primary_keys="cid", timestamp_keys="ts", df=_cust([1, 2], [1, 2], [1.0, 2.0]))
    fe.publish_table("cust", ttl=dt.timedelta(days=1))  # the rows are from 2024: stale
    assert fe.lookup_online("cust", [(1,), (2,)]) == [None, None]
    recent = pd.Timestamp.now(tz="UTC").floor("s")
    fe.write_table("cust", pd.DataFrame({"cid": [1], "ts": [recent], "spend": [7.0], "tier": ["t1"]}))
    fe.publish_table("cust")  # keeps the ttl it was given
    assert fe.lookup_online("cust", [(1,), (2,), (9,)]) == [{"spend": 7.0, "tier": "t1"}, None, None]
    assert eng.features.lookup_counts["cust"] == [5, 1, 3]  # lookups, misses, stale
    fe.publish_table("cust", ttl=0)  # 0: never stale
    assert fe.lookup_online("cust", [(2,)]) == [{"spend": 2.0, "tier": "t2"}]


def test_lookup_keys_are_coerced_and_errors_name_the_problem(fe):
    fe.create_table("ids", primary_keys=["a", "b"], df=pd.DataFrame({"a": [1, 2], "b": ["x", "7"], "v": [0.5, 1.5]}))
    fe.publish_table("ids")
    # JSON gives 1.0 for an integer and 7 for a string as easily as the right thing
    assert fe.lookup_online("ids", [(1.0, "x"), (2, 7), (1, "y")]) == [{"v": 0.5}, {"v": 1.5}, None]
    with pytest.raises(CairnError, match=r"has 2 value\(s\) \(a, b\)"):
        fe.lookup_online("ids", [(1,)])
    with pytest.raises(CairnError, match="no published feature 'w'"):
        fe.lookup_online("ids", [(1, "x")], ["w"])
    with pytest.raises(CairnError, match="'nope' does not exist"):
        fe.lookup_online("nope", [(1,)])
    with pytest.raises(CairnError, match="ttl"):
        fe.publish_table("ids", ttl=-1)


def test_an_engine_without_the_offline_extra_still_serves_lookups(fe, eng, tmp_path):
    fe.create_table("prof", primary_keys="cid", df=pd.DataFrame({"cid": [1, 2], "age": [30, 40]}))
    fe.publish_table("prof")
    eng.close()  # the child opens the directory itself
    script = textwrap.dedent(f"""
        import sys
        for name in ("deltalake", "duckdb", "pyarrow", "pandas"):
            sys.modules[name] = None  # as if not installed: importing it fails
        from cairn import engine
        from cairn.engine.errors import CairnError
        from cairn.features import FeatureEngineeringClient
        e = engine.open({str(eng.path)!r})
        print(e.features.lookup("prof", [(2,), (5,)]))
        try:
            FeatureEngineeringClient({str(eng.path)!r}).read_table("prof")
        except CairnError as exc:
            print("offline:", exc)
        e.close()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "[{'age': 40}, None]"
    assert "pip install 'cairn[features]'" in lines[1]


def test_rows_deleted_from_a_time_series_table_leave_the_online_store(fe):
    t = fe.create_table("cust", primary_keys="cid", timestamp_keys="ts",
                        df=_cust([1, 1, 2], [1, 5, 3], [1.0, 5.0, 2.0]))
    fe.publish_table("cust")
    table = DeltaTable(t.path)
    table.delete("cid = 2")  # a customer's data erased
    DeltaTable(t.path).delete("cid = 1 AND spend = 5.0")  # key 1's latest row removed: the older one serves
    result = fe.publish_table("cust")
    assert not result.incremental and result.online_rows == 1
    assert fe.lookup_online("cust", [(1,), (2,)]) == [{"spend": 1.0, "tier": "t1"}, None]
