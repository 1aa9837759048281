"""Drift between a baseline profile and a window's values, per column, with scipy's
statistics and Evidently's defaults for the verdict:

- numeric: Kolmogorov-Smirnov (two-sample, the baseline's sample against the window's
  values), Wasserstein distance normed by the baseline's std, PSI and Jensen-Shannon
  distance on the baseline's decile bins, total variation and L-infinity distance on
  the same bins;
- categorical: chi-squared (the window's counts against the baseline's shares), PSI,
  Jensen-Shannon, total variation and L-infinity on the category shares.
Verdict (Evidently's data drift preset): with at most 1,000 baseline rows, KS (numeric)
or chi-squared (categorical) at p < 0.05; beyond, normed Wasserstein (numeric) or
Jensen-Shannon (categorical) >= 0.1. A dataset drifts when at least half its columns do.

"Against the previous window" (Databricks' CONSECUTIVE) is the same computation with
the previous window's profile as the baseline.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from cairn.engine.monitoring.profiles import (
    CATEGORICAL,
    NUMERIC,
    OTHER,
    ColumnProfile,
    Profile,
    no_pace,
    numeric_values,
)

P_VALUE = 0.05
DISTANCE = 0.1
SMALL_REFERENCE = 1000
DATASET_SHARE = 0.5
_EPS = 1e-4  # Evidently's floor for empty bins in PSI


class ColumnDrift(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    kind: str
    method: str  # the statistic the verdict rests on
    drifted: bool
    score: float  # that statistic's value (a p-value for KS and chi-squared)
    threshold: float
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    chi2_statistic: float | None = None
    chi2_p_value: float | None = None
    psi: float | None = None
    js_distance: float | None = None
    wasserstein: float | None = None  # normed by the baseline's std
    total_variation: float | None = None
    l_infinity: float | None = None


class DatasetDrift(msgspec.Struct, kw_only=True):
    columns: list[ColumnDrift]
    drifted_columns: int
    share: float
    drifted: bool


def _shares(counts: Sequence[float]):
    import numpy as np

    a = np.asarray(counts, dtype=np.float64)
    total = a.sum()
    return a / total if total else a


def _distances(p, q) -> dict[str, float]:
    """PSI, Jensen-Shannon, total variation and L-infinity between two share vectors."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon

    pe, qe = np.clip(p, _EPS, None), np.clip(q, _EPS, None)
    js = float(jensenshannon(p, q)) if p.sum() and q.sum() else 0.0
    return {"psi": float(np.sum((qe - pe) * np.log(qe / pe))), "js_distance": 0.0 if math.isnan(js) else js,
            "total_variation": float(0.5 * np.abs(p - q).sum()), "l_infinity": float(np.abs(p - q).max())}


def numeric_drift(ref: ColumnProfile, values: Sequence[Any], reference_rows: int) -> ColumnDrift:
    import numpy as np
    from scipy import stats

    x = numeric_values(values)
    sample = np.asarray(ref.sample, dtype=np.float64)
    edges = np.asarray(ref.bin_edges, dtype=np.float64)
    got = np.histogram(x, bins=edges)[0]
    d = _distances(_shares(ref.bin_counts), _shares(got))
    ks = stats.ks_2samp(sample, x) if len(x) and len(sample) else None
    std = ref.std or 0.0
    wd = float(stats.wasserstein_distance(sample, x)) / std if std > 0 and len(x) else 0.0
    if reference_rows <= SMALL_REFERENCE:
        method, score, threshold = "ks", float(ks.pvalue) if ks else 1.0, P_VALUE
        drifted = score < threshold
    else:
        method, score, threshold = "wasserstein", wd, DISTANCE
        drifted = score >= threshold
    return ColumnDrift(name=ref.name, kind=NUMERIC, method=method, drifted=drifted, score=score, threshold=threshold,
                       ks_statistic=float(ks.statistic) if ks else None, ks_p_value=float(ks.pvalue) if ks else None,
                       wasserstein=wd, **d)


def categorical_drift(ref: ColumnProfile, values: Sequence[Any], reference_rows: int) -> ColumnDrift:
    import numpy as np
    from scipy import stats

    from cairn.engine.monitoring.profiles import profile_column

    cur = profile_column(ref.name, values, CATEGORICAL).frequencies
    keys = sorted(set(ref.frequencies) | set(cur))
    # a window's value the baseline never saw is its own category; the baseline's OTHER
    # stays apart (it is many values, not one)
    p = _shares([ref.frequencies.get(k, 0) for k in keys])
    q_counts = np.asarray([cur.get(k, 0) for k in keys], dtype=np.float64)
    q = _shares(q_counts)
    d = _distances(p, q)
    n = q_counts.sum()
    chi = None
    if n and len(keys) > 1:
        expected = np.clip(p, _EPS, None)
        expected = expected / expected.sum() * n
        chi = stats.chisquare(q_counts, expected)
    if reference_rows <= SMALL_REFERENCE:
        method, score, threshold = "chi2", float(chi.pvalue) if chi else 1.0, P_VALUE
        drifted = score < threshold
    else:
        method, score, threshold = "jensen_shannon", d["js_distance"], DISTANCE
        drifted = score >= threshold
    return ColumnDrift(name=ref.name, kind=CATEGORICAL, method=method, drifted=drifted, score=score,
                       threshold=threshold, chi2_statistic=float(chi.statistic) if chi else None,
                       chi2_p_value=float(chi.pvalue) if chi else None, **d)


def dataset_drift(baseline: Profile, columns: Mapping[str, Sequence[Any]],
                  pace: Callable[[], None] = no_pace) -> DatasetDrift:
    """Drift of every baseline column present in `columns` (a window's values). `pace`:
    called before each column (a background refresh rests there)."""
    out = []
    for ref in baseline.columns:
        pace()
        values = columns.get(ref.name)
        if values is None or ref.count == ref.nulls or (ref.kind == NUMERIC and not ref.sample):
            continue  # nothing to compare against
        reference_rows = ref.count - ref.nulls
        out.append(numeric_drift(ref, values, reference_rows) if ref.kind == NUMERIC
                   else categorical_drift(ref, values, reference_rows))
    drifted = sum(c.drifted for c in out)
    share = drifted / len(out) if out else 0.0
    return DatasetDrift(columns=out, drifted_columns=drifted, share=share, drifted=bool(out) and share >= DATASET_SHARE)


__all__ = ["OTHER", "ColumnDrift", "DatasetDrift", "categorical_drift", "dataset_drift", "numeric_drift"]
