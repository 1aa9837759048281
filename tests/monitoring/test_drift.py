"""Drift statistics against scipy's own on the same data, the verdicts Evidently's
defaults give (a shift of one standard deviation is flagged, the same distribution in
about 5% of seeded trials at p < 0.05), and payloads read back in every scoring format."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from cairn.engine.monitoring.drift import dataset_drift
from cairn.engine.monitoring.logcolumns import LogColumns
from cairn.engine.monitoring.profiles import FULL, PROFILE_DECODE, PROFILE_ENCODE, profile_columns


def test_a_shift_of_one_std_is_flagged_by_both_tests():
    rng = np.random.default_rng(7)
    for n_ref in (800, 20_000):  # KS at p < 0.05, then normed Wasserstein >= 0.1
        base = profile_columns({"x": rng.normal(size=n_ref).tolist(),
                                "c": rng.choice(list("abc"), n_ref, p=[.6, .3, .1]).tolist()})
        shifted = dataset_drift(base, {"x": (rng.normal(size=500) + 1).tolist(),
                                       "c": rng.choice(list("abc"), 500, p=[.2, .3, .5]).tolist()})
        x, c = shifted.columns
        assert x.drifted and c.drifted and shifted.drifted
        assert (x.method, c.method) == (("ks", "chi2") if n_ref <= 1000 else ("wasserstein", "jensen_shannon"))
        assert x.psi > 0.2 and x.total_variation > 0.2 and 0 < x.l_infinity <= x.total_variation


def test_the_same_distribution_drifts_in_about_five_percent_of_trials():
    rng = np.random.default_rng(20261207)
    ks_flags = wd_flags = chi_flags = 0
    for _ in range(100):
        small = profile_columns({"x": rng.normal(size=FULL).tolist(),
                                 "c": rng.choice(list("abcd"), FULL).tolist()})
        big = profile_columns({"x": rng.normal(size=10_000).tolist()})
        cur = {"x": rng.normal(size=300).tolist(), "c": rng.choice(list("abcd"), 300).tolist()}
        d = dataset_drift(small, cur)
        ks_flags += d.columns[0].drifted
        chi_flags += d.columns[1].drifted
        # a distance, not a test: its noise shrinks with the window (at 300 rows it is
        # crossed in ~15% of trials, as with Evidently), so a window of 2,000 here
        wd_flags += dataset_drift(big, {"x": rng.normal(size=2000).tolist()}).columns[0].drifted
    assert 1 <= ks_flags <= 12, ks_flags  # nominal 5%
    assert 1 <= chi_flags <= 12, chi_flags
    assert wd_flags <= 5, wd_flags


def test_statistics_match_scipy_on_the_same_data():
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=FULL), rng.normal(0.3, 1.2, size=700)
    d = dataset_drift(profile_columns({"x": ref.tolist()}), {"x": cur.tolist()}).columns[0]
    ks = stats.ks_2samp(ref, cur)
    assert d.ks_statistic == pytest.approx(ks.statistic) and d.ks_p_value == pytest.approx(ks.pvalue)
    assert d.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(ddof=1))


def test_profiles_are_small_and_keep_nulls_and_kinds():
    rng = np.random.default_rng(5)
    values = rng.normal(size=50_000).tolist()
    values[:100] = [None] * 100
    p = profile_columns({"x": values, "city": rng.choice([f"c{i}" for i in range(500)], 50_000).tolist()})
    x, city = p.columns
    assert (x.kind, x.nulls, x.count, len(x.sample)) == ("numeric", 100, 50_000, 500)
    assert city.kind == "categorical" and city.distinct == 500 and len(city.frequencies) == 101  # top 100 + other
    assert len(PROFILE_ENCODE(p)) < 12_000
    assert PROFILE_DECODE(PROFILE_ENCODE(p)) == p


def test_payloads_in_every_format_become_columns():
    pairs = [
        ('{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}', '{"predictions": [0, 1]}'),
        ('{"dataframe_records": [{"a": 5, "b": 6}]}', '{"predictions": [{"prediction": 1, "proba": 0.9}]}'),
        ('{"inputs": [[7, 8]]}', '{"predictions": [[0.2, 0.8]]}'),
        ('{"instances": {"a": [9], "b": [10]}}', '{"predictions": [1]}'),
        ('{"inputs": [[1, 2', ''),  # cut by the log's size cap
        ("a,b\n1,2", ""),  # CSV is not read back
    ]
    log = LogColumns(lambda model: ["a", "b"], None)
    for i, (request, response) in enumerate(pairs):
        log.add(i, "e", "m\0001", 200, 1.0, request, response, f"r{i}", "")
    d = log.finish().view(0, len(pairs))
    assert d.rows == 5 and d.skipped == 2 and d.requests == 6
    assert d.columns["a"].tolist() == [1, 3, 5, 7, 9] and d.columns["b"].tolist() == [2, 4, 6, 8, 10]
    assert np.isnan(d.columns["prediction"][3])  # no `prediction` for the row that gave two outputs
    assert d.columns["prediction"][[0, 1, 2, 4]].tolist() == [0, 1, 1, 1]
    assert d.columns["prediction_proba"][2] == 0.9 and d.columns["prediction_1"][3] == 0.8


def test_log_columns_across_pages_entities_and_kinds():
    """Pages of 10,000 rows: a column that turns to strings later becomes an object
    column, one that appears late is missing (NaN) before; an entity's view is its rows."""
    log = LogColumns(lambda model: [], None)
    for i in range(25_000):
        row = {"x": float(i), "c": i if i < 12_000 else f"s{i}"}
        if i >= 20_000:
            row["late"] = 1.0
        log.add(i, "a" if i % 2 else "b", "m\0001", 200 if i % 100 else 503, 1.0, json.dumps({"inputs": [row]}),
                "", f"r{i}", "")
    log.finish()
    assert log.columns["x"].dtype == np.float64 and log.columns["c"].dtype == object
    assert np.isnan(log.columns["late"][:19_000]).all() and log.columns["late"][-1] == 1.0
    lo, hi = log.span(1_000, 3_000)
    assert (lo, hi) == (1_000, 3_000)
    both, a = log.view(lo, hi), log.view(lo, hi, "a")
    assert both.requests == 2_000 and both.errors == 20 and both.rows == 1_980 and "late" not in both.columns
    assert a.requests == 1_000 and a.errors == 0  # errors are the even i % 100 == 0: entity b
    assert a.columns["x"].tolist() == [float(i) for i in range(1_001, 3_000, 2)]
