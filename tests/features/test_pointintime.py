"""Point-in-time correctness: the DuckDB join against a brute-force oracle (hypothesis:
random tables, ties, gaps, several lookups, renames, lookbacks, defaults), and whole
training sets through Delta against pandas.merge_asof on fixed cases."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cairn.engine.errors import CairnError
from cairn.engine.features import pointintime
from cairn.engine.features.lookups import LookupSpec
from cairn.features import FeatureLookup

DAY_US = 86_400_000_000
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def _ts(days: list[int | None]) -> pa.Array:
    return pa.array([None if d is None else d * DAY_US + 1_704_067_200_000_000 for d in days],
                    pa.timestamp("us", tz="UTC"))


feature_rows = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 20), st.integers(-100, 100), st.one_of(st.none(), st.floats(-5, 5))),
    max_size=25, unique_by=lambda r: (r[0], r[1]))


def _sometimes_none(low: int, high: int):
    """Mostly integers, a null now and then (one_of would make half of them null)."""
    return st.integers(low - 1, high).map(lambda v: None if v < low else v)


def _labels(rows):
    """Label rows aimed at the interesting places: the feature rows' own days (ties),
    the day after (gaps), anywhere, and the odd null key or time."""
    days = [r[1] for r in rows] or [0]
    near = st.sampled_from(days).flatmap(lambda d: st.sampled_from([d, d, d + 1, max(d - 1, 0)]))
    when = st.one_of(near, _sometimes_none(0, 22))
    return st.lists(st.tuples(_sometimes_none(0, 4), when), min_size=1, max_size=20)


def _oracle(rows, key, day, lookback, col):
    """The brute-force answer for one label row: the latest row of the key at or before
    the day (and within the lookback), else None."""
    if key is None or day is None:
        return None
    hits = [r for r in rows if r[0] == key and r[1] <= day and (lookback is None or r[1] >= day - lookback)]
    return max(hits, key=lambda r: r[1])[col] if hits else None


@settings(max_examples=80, deadline=None)
@given(rows=feature_rows, data=st.data(), lookback=st.one_of(st.none(), st.integers(0, 6)),
       default=st.one_of(st.none(), st.integers(-9, -1)),
       profile=st.dictionaries(st.integers(0, 4), st.integers(0, 99)))
@example(rows=[(0, 5, 1, None), (0, 3, 2, 0.5)], data=None, lookback=2, default=-1, profile={0: 7})
def test_the_join_matches_the_oracle(rows, data, lookback, default, profile):
    labels = data.draw(_labels(rows)) if data is not None else [(0, 5), (0, 4), (0, 2), (0, 8), (None, 5), (0, None)]
    table = pa.table({"k": pa.array([r[0] for r in rows], pa.int64()), "ts": _ts([r[1] for r in rows]),
                      "a": pa.array([r[2] for r in rows], pa.int64()),
                      "b": pa.array([r[3] for r in rows], pa.float64())})
    prof = pa.table({"k": pa.array(list(profile), pa.int64()), "age": pa.array(list(profile.values()), pa.int64())})
    label = pa.table({"id": pa.array([lk for lk, _ in labels], pa.int64()), "t": _ts([d for _, d in labels]),
                      "y": pa.array(range(len(labels)), pa.int64())})
    specs = [
        LookupSpec(table_name="ts", table_version=0, primary_keys=["k"], timestamp_key="ts", lookup_key=["id"],
                   timestamp_lookup_key="t", features=[("a", "a"), ("b", "b")],
                   lookback_us=None if lookback is None else lookback * DAY_US,
                   default_values={} if default is None else {"a": default}),
        # the same table again, renamed, without a lookback: lookups never interfere
        LookupSpec(table_name="ts", table_version=0, primary_keys=["k"], timestamp_key="ts", lookup_key=["id"],
                   timestamp_lookup_key="t", features=[("a", "a_any")]),
        LookupSpec(table_name="prof", table_version=0, primary_keys=["k"], timestamp_key=None, lookup_key=["id"],
                   timestamp_lookup_key=None, features=[("age", "age")]),
    ]
    out = pointintime.join(label, specs, [table, table, prof]).to_pydict()
    assert out["y"] == list(range(len(labels)))  # the caller's rows, in order, never multiplied
    for i, (key, day) in enumerate(labels):
        a = _oracle(rows, key, day, lookback, 2)
        assert out["a"][i] == (default if a is None and default is not None else a), (i, key, day)
        if a is not None:  # a matched row's null stays null; no match is null too
            assert out["b"][i] == _oracle(rows, key, day, lookback, 3)
        assert out["a_any"][i] == _oracle(rows, key, day, None, 2)
        assert out["age"][i] == (profile.get(key) if key is not None else None)


def _frames():
    feats = pd.DataFrame({
        "cid": [1, 1, 1, 2, 2, 3],
        "ts": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-09", "2024-01-02", "2024-01-03", "2024-02-01"]),
        "spend": [1.0, 5.0, 9.0, 2.0, 3.0, 30.0],
    })
    labels = pd.DataFrame({
        "cid": [1, 1, 1, 2, 3, 4, 1],
        "t": pd.to_datetime(["2023-12-31", "2024-01-05", "2024-01-07", "2024-01-10", "2024-01-15", "2024-01-05",
                             "2024-01-30"]),
        "y": [0, 1, 0, 1, 0, 1, 1],
    })
    return feats, labels


def _merge_asof(labels, feats, tolerance=None):
    ordered = labels.reset_index().sort_values("t")
    joined = pd.merge_asof(ordered, feats.sort_values("ts"), left_on="t", right_on="ts", by="cid",
                           direction="backward", allow_exact_matches=True, tolerance=tolerance)
    return joined.sort_values("index").set_index("index")["spend"].tolist()


@pytest.mark.parametrize("lookback", [None, dt.timedelta(days=3), dt.timedelta(0)])
def test_training_sets_match_merge_asof(fe, lookback):
    feats, labels = _frames()
    fe.create_table("cust", primary_keys="cid", timestamp_keys="ts", df=feats)
    ts = fe.create_training_set(labels, [FeatureLookup("cust", "cid", timestamp_lookup_key="t",
                                                       lookback_window=lookback)], label="y")
    got = ts.load_df()
    want = _merge_asof(labels.assign(t=labels.t.dt.tz_localize("UTC")), feats.assign(ts=feats.ts.dt.tz_localize("UTC")),
                       tolerance=lookback)
    assert list(got.columns) == ["cid", "t", "y", "spend"]
    assert got.spend.isna().tolist() == pd.isna(pd.Series(want)).tolist()
    assert got.spend.dropna().tolist() == pd.Series(want).dropna().tolist()


def test_a_training_set_reads_the_versions_it_was_created_at(fe):
    feats, labels = _frames()
    fe.create_table("cust", primary_keys="cid", timestamp_keys="ts", df=feats)
    ts = fe.create_training_set(labels, [FeatureLookup("cust", "cid", timestamp_lookup_key="t")], label="y")
    before = ts.load_df()
    fe.write_table("cust", feats.assign(spend=feats.spend * 100))
    pd.testing.assert_frame_equal(ts.load_df(), before)
    spec = ts.feature_spec
    assert spec.lookups[0].table_name == "main.default.cust" and spec.lookups[0].table_version == 1
    assert spec.input_columns == ["cid", "t"] and spec.feature_columns == ["spend"] and spec.label == "y"


def test_lookup_errors_name_what_is_wrong(fe):
    feats, labels = _frames()
    fe.create_table("cust", primary_keys="cid", timestamp_keys="ts", df=feats)
    fe.create_table("prof", primary_keys="cid", df=pd.DataFrame({"cid": [1], "spend": [1.0]}))
    cases = [
        ([FeatureLookup("nope", "cid")], "'nope' does not exist"),
        ([FeatureLookup("cust", "cid", feature_names=["nah"])], "no feature 'nah'"),
        ([FeatureLookup("cust", ["cid", "y"])], "has 2 column(s)"),
        ([FeatureLookup("cust", "missing")], "'missing' (for feature table 'cust') is not a column"),
        ([FeatureLookup("cust", "cid", timestamp_lookup_key="y")], "'y' is int64 in df"),
        ([FeatureLookup("prof", "cid", timestamp_lookup_key="t")], "has no timestamp key"),
        ([FeatureLookup("cust", "cid"), FeatureLookup("prof", "cid")], "'spend' from 'main.default.prof' collides"),
        ([FeatureLookup("cust", "cid", rename_outputs={"y": "z"})], "'y' is not a feature looked up"),
        ([FeatureLookup("cust", "cid", default_values={"other": 1})], "'other' is not a feature looked up"),
    ]
    for lookups, fragment in cases:
        with pytest.raises(CairnError) as info:
            fe.create_training_set(labels, lookups, label="y")
        assert fragment in str(info.value), str(info.value)
    with pytest.raises(CairnError, match="lookback_window needs a timestamp_lookup_key"):
        FeatureLookup("cust", "cid", lookback_window=dt.timedelta(days=1))
    with pytest.raises(CairnError, match="label 'nope'"):
        fe.create_training_set(labels, [], label="nope")
    with pytest.raises(CairnError, match="default_values: 'x' does not fit feature 'spend'"):
        fe.create_training_set(labels, [FeatureLookup("cust", "cid", timestamp_lookup_key="t",
                                                      default_values={"spend": "x"})], label="y").load_df()
