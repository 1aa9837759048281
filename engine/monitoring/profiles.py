"""Profiles: a column's distribution in a few KiB, built once from training inputs (the
baseline a monitor compares against) or from a window of requests.

Per column: count, nulls, kind, and
- numeric: mean, std, min, max, quantiles, a histogram on the baseline's decile edges
  (a window is binned on its baseline's edges, so PSI and Jensen-Shannon compare like
  with like) and the values themselves (up to FULL of them) or SAMPLE evenly spaced
  quantiles: what Kolmogorov-Smirnov and Wasserstein need;
- categorical: the TOP most frequent values with their counts (the rest as OTHER) and
  the distinct count.
A column is numeric when every non-null value is a number (bools count as numbers).
"""
from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from cairn.engine.errors import invalid
from cairn.engine.store.timestamps import now_ms

NUMERIC, CATEGORICAL = "numeric", "categorical"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BINS = 10
FULL = 1000  # the values of a column this small are kept whole (~9 KiB)
SAMPLE = 500  # else this many quantiles (~4.5 KiB)
TOP = 100
OTHER = "__other__"
MAX_COLUMNS = 1000
# A model's training baseline, kept as a file in its model folder (so registration
# copies it with the version), from at most BASELINE_ROWS evenly spaced training rows.
BASELINE_FILE = "cairn_baseline.msgpack"  # msgpack: JSON has no infinity for the open bin ends
BASELINE_ROWS = 50_000


def no_pace() -> None:
    """The pace of a refresh nobody paces (see MonitorStore.refresh)."""


def without_samples(profile: dict) -> dict:
    """A profile as plain data (msgspec.to_builtins) for a client: the values behind
    the statistics (`sample`) stay in the store."""
    for c in profile.get("columns", []):
        c.pop("sample", None)
    return profile


class ColumnProfile(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    kind: str
    count: int  # values, nulls included
    nulls: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: list[float] = []  # at QUANTILES
    bin_edges: list[float] = []  # BINS + 1 edges; the ends are open (-inf, +inf)
    bin_counts: list[int] = []
    sample: list[float] = []
    frequencies: dict[str, int] = {}  # categorical: the TOP values, the rest under OTHER
    distinct: int = 0

    @property
    def null_share(self) -> float:
        return self.nulls / self.count if self.count else 0.0


class Profile(msgspec.Struct, kw_only=True):
    rows: int
    columns: list[ColumnProfile]
    created_ms: int = 0
    source: str = ""  # where it came from: "file data.parquet", "feature table x v3", ...

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


PROFILE_ENCODE = msgspec.msgpack.Encoder().encode
PROFILE_DECODE = msgspec.msgpack.Decoder(Profile).decode


def is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real)  # int, float, bool and numpy's numbers


def _floats(values: Any) -> bool:
    return getattr(values, "dtype", None) is not None and values.dtype.kind == "f"


def numeric_values(values: Sequence[Any]):
    """The non-null values of a numeric column as float64."""
    import numpy as np

    if _floats(values):  # a window's column (logcolumns): NaN is null
        return values[~np.isnan(values)].astype(np.float64, copy=False)
    return np.asarray([float(v) for v in values if not is_null(v)], dtype=np.float64)


def column_kind(values: Sequence[Any]) -> str:
    if _floats(values):
        import numpy as np

        return NUMERIC if not np.isnan(values).all() else CATEGORICAL
    present = [v for v in values if not is_null(v)]
    return NUMERIC if present and all(_is_number(v) for v in present) else CATEGORICAL


def category(value: Any) -> str:
    """A category's name: 3 and 3.0 are one category "3" (numbers read from a log
    arrive as floats), anything else its text."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def profile_column(name: str, values: Sequence[Any], kind: str | None = None,
                   edges: Sequence[float] | None = None) -> ColumnProfile:
    """One column's profile. `edges`: bin on these (a window on its baseline's)."""
    import numpy as np

    kind = kind or column_kind(values)
    count = len(values)
    if kind == NUMERIC:
        x = numeric_values(values)
        nulls = count - len(x)
        if not len(x):
            return ColumnProfile(name=name, kind=kind, count=count, nulls=nulls)
        q = np.quantile(x, QUANTILES).tolist()
        if edges is None:
            inner = np.unique(np.quantile(x, np.linspace(0, 1, BINS + 1)[1:-1]))
            edges = [-math.inf, *inner.tolist(), math.inf]
        counts = np.histogram(x, bins=np.asarray(edges, dtype=np.float64))[0].tolist()
        # Every value up to FULL (Kolmogorov-Smirnov then sees the reference itself, as
        # Evidently does at that size); beyond, SAMPLE evenly spaced quantiles, which
        # carry the distribution to Wasserstein without a random sample's noise.
        sample = x if len(x) <= FULL else np.quantile(x, (np.arange(SAMPLE) + 0.5) / SAMPLE)
        return ColumnProfile(name=name, kind=kind, count=count, nulls=nulls, mean=float(x.mean()),
                             std=float(x.std(ddof=1)) if len(x) > 1 else 0.0, min=float(x.min()),
                             max=float(x.max()), quantiles=q, bin_edges=list(edges), bin_counts=counts,
                             sample=[float(v) for v in sample], distinct=int(len(np.unique(x))))
    present = [category(v) for v in values if not is_null(v)]
    freq = Counter(present)
    top = dict(freq.most_common(TOP))
    rest = sum(freq.values()) - sum(top.values())
    if rest:
        top[OTHER] = rest
    return ColumnProfile(name=name, kind=kind, count=count, nulls=count - len(present), frequencies=top,
                         distinct=len(freq))


def profile_columns(columns: Mapping[str, Sequence[Any]], source: str = "",
                    baseline: Profile | None = None, pace: Callable[[], None] = no_pace) -> Profile:
    """A profile of named columns of equal length (a window is profiled with its
    baseline's kinds and bin edges). `pace`: called before each column (a background
    refresh rests there)."""
    if not columns:
        raise invalid("A profile needs at least one column")
    if len(columns) > MAX_COLUMNS:
        raise invalid(f"A profile holds at most {MAX_COLUMNS} columns, got {len(columns)}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise invalid(f"Columns of different lengths: {sorted(lengths)}")
    out = []
    for name, values in columns.items():
        pace()
        ref = baseline.column(name) if baseline is not None else None
        out.append(profile_column(str(name), values, ref.kind if ref else None,
                                  ref.bin_edges if ref and ref.bin_edges else None))
    return Profile(rows=lengths.pop(), columns=out, created_ms=now_ms(), source=source)


def frame_columns(frame: Any) -> dict[str, list[Any]]:
    """Named columns of a pandas DataFrame, a pyarrow Table, a mapping of columns, or a
    2-D array or list of rows (named input_0, input_1, ... as the payload log names
    unnamed row values)."""
    if hasattr(frame, "to_pydict"):  # pyarrow
        return frame.to_pydict()
    if hasattr(frame, "to_dict") and hasattr(frame, "columns"):  # pandas
        return {str(c): frame[c].tolist() for c in frame.columns}
    if isinstance(frame, Mapping):
        return {str(k): list(v) for k, v in frame.items()}
    if hasattr(frame, "toarray"):  # scipy sparse
        frame = frame.toarray()
    import numpy as np

    try:
        rows = np.asarray(frame)
    except (TypeError, ValueError):
        rows = None
    if rows is None or rows.ndim not in (1, 2):
        raise invalid(f"Cannot profile a {type(frame).__name__}: give a DataFrame, an Arrow table, columns or rows")
    rows = rows.reshape(len(rows), -1)
    return {f"input_{i}": rows[:, i].tolist() for i in range(rows.shape[1])}


def profile_frame(frame: Any, source: str = "") -> Profile:
    """A profile of a DataFrame, an Arrow table, a mapping of columns or rows."""
    return profile_columns(frame_columns(frame), source)


def prediction_columns(predictions: Any) -> dict[str, list[Any]]:
    """A model's outputs named as the payload log reads served responses: one value a
    row is `prediction`, several are `prediction_0`, `prediction_1`, ..."""
    import numpy as np

    out = np.asarray(predictions)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        return {"prediction": out.reshape(-1).tolist()}
    out = out.reshape(len(out), -1)
    return {f"prediction_{i}": out[:, i].tolist() for i in range(out.shape[1])}


def training_profile(model: Any, X: Any, source: str = "") -> Profile:
    """The baseline of a model trained on X: its inputs and (when it predicts) its
    predictions on them, from at most BASELINE_ROWS evenly spaced rows."""
    import numpy as np

    n = X.shape[0] if hasattr(X, "shape") else len(X)
    if n > BASELINE_ROWS:  # evenly spaced rows: reproducible, and a sorted file stays representative
        idx = np.linspace(0, n - 1, BASELINE_ROWS).round().astype(np.int64)
        if hasattr(X, "iloc"):
            X = X.iloc[idx]
        elif hasattr(X, "take") and hasattr(X, "column_names"):  # pyarrow
            X = X.take(idx)
        elif isinstance(X, Mapping):
            X = {k: [v[i] for i in idx] for k, v in X.items()}
        else:
            X = X[idx] if hasattr(X, "shape") else [X[i] for i in idx]
    columns = frame_columns(X)
    if hasattr(model, "predict"):
        columns.update(prediction_columns(model.predict(X)))
    return profile_columns(columns, source or f"training data of {type(model).__name__} ({n:,} rows)")
