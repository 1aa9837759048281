"""Sample rows for a tabular model: what conversion reads the input layout from, and what
verification feeds to both the original model and its ONNX conversion.

A `TabularSample` holds named 1-D columns, each numeric (float64, NaN for missing) or
text (object array of str), from whatever the caller has: a pandas DataFrame, a 2-D
array or list, records, a dict of columns; or synthesized from an MLflow signature or a
fitted estimator when a model came without an input example.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from cairn.engine.models.signature import column_type

NUMERIC, TEXT = "numeric", "text"
_NUMERIC_COLUMN_TYPES = ("double", "float", "long", "integer", "boolean")
SYNTHETIC_ROWS = 20


class TabularSample:
    """Columns (name -> 1-D array), each NUMERIC or TEXT, with their MLflow column types.
    `frame`: the model takes a DataFrame (it was fit on one, or the sample was one)."""

    def __init__(self, columns: dict[str, np.ndarray], types: dict[str, str], frame: bool):
        self.columns = columns
        self.types = types
        self.frame = frame
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"sample columns differ in length: {sorted(lengths)}")
        self.n_rows = lengths.pop() if lengths else 0

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def kind(self, name: str) -> str:
        return NUMERIC if self.types[name] in _NUMERIC_COLUMN_TYPES else TEXT

    @property
    def all_numeric(self) -> bool:
        return all(self.kind(c) == NUMERIC for c in self.columns)

    def head(self, n: int) -> TabularSample:
        return TabularSample({k: v[:n] for k, v in self.columns.items()}, self.types, self.frame)

    # -- as inputs ---------------------------------------------------------------------

    def float32_columns(self) -> dict[str, np.ndarray]:
        """Numeric columns as float32 (what the ONNX model sees), text as object."""
        return {
            k: v.astype(np.float32) if self.kind(k) == NUMERIC else v for k, v in self.columns.items()
        }

    def model_input(self, float32: bool = True) -> Any:
        """The rows as the original model takes them: a DataFrame when it was fit on one
        (pandas needed then), else a 2-D float64 array. With float32, numeric values are
        cast to float32 and back: the original then sees exactly what the ONNX model sees."""
        cols = {}
        for k, v in self.columns.items():
            if self.kind(k) == NUMERIC:
                v = v.astype(np.float32).astype(np.float64) if float32 else v
            cols[k] = v
        if self.frame:
            try:
                import pandas as pd
            except ImportError:
                if not self.all_numeric:
                    raise ValueError("this model takes a DataFrame with text columns: pandas is needed") from None
            else:
                return pd.DataFrame(cols, columns=list(cols))
        if not self.all_numeric:
            return np.column_stack([cols[k].astype(object) for k in cols])
        return np.column_stack([cols[k] for k in cols]) if cols else np.zeros((0, 0))

    def records(self) -> list[dict[str, Any]]:
        out = []
        for i in range(self.n_rows):
            out.append({k: _py(v[i]) for k, v in self.columns.items()})
        return out

    # -- from data ---------------------------------------------------------------------

    @classmethod
    def of(
        cls,
        data: Any,
        *,
        names: list[str] | None = None,
        types: dict[str, str] | None = None,
        frame: bool | None = None,
    ) -> TabularSample:
        """From a DataFrame, a 2-D array/list, records or a dict of columns. `names` names
        positional columns; `types` (MLflow column types) override inferred ones."""
        types = dict(types or {})
        if type(data).__module__.startswith("pandas") and hasattr(data, "columns"):
            cols = {str(c): data[c].to_numpy() for c in data.columns}
            inferred = {str(c): column_type(dt) for c, dt in data.dtypes.items()}
            frame = True if frame is None else frame
        elif isinstance(data, dict):
            cols = {str(k): _column_array(v) for k, v in data.items()}
            inferred = {}
        elif isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
            keys: dict[str, None] = {}
            for r in data:
                keys.update(dict.fromkeys(map(str, r)))
            cols = {k: _column_array([r.get(k) for r in data]) for k in keys}
            inferred = {}
        else:
            arr = np.asarray(data)
            if arr.ndim == 1:
                arr = arr.reshape(-1, 1)
            if arr.ndim != 2:
                raise ValueError(f"sample rows must be 2-D, got shape {list(arr.shape)}")
            n = arr.shape[1]
            if not names or len(names) != n:
                names = [f"x{i}" for i in range(n)]
            cols = {names[i]: arr[:, i] for i in range(n)}
            inferred = {names[i]: column_type(arr.dtype) for i in range(n)} if arr.dtype.kind != "O" else {}
        if names and set(names) <= set(cols) and list(cols) != list(names):
            cols = {k: cols[k] for k in names}  # the model's column order
        out_cols: dict[str, np.ndarray] = {}
        out_types: dict[str, str] = {}
        for k, v in cols.items():
            t = types.get(k) or inferred.get(k) or _infer_column_type(v)
            if t in _NUMERIC_COLUMN_TYPES:
                try:
                    v = _numeric(v)
                except (TypeError, ValueError):
                    raise ValueError(f"sample column {k!r} is declared {t} but holds non-numbers") from None
            else:
                v = np.array([None if _missing(x) else str(x) for x in v], dtype=object)
            out_cols[k] = v
            out_types[k] = t
        return cls(out_cols, out_types, bool(frame))


def _column_array(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=object if isinstance(values, list) else None)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"a sample column must be 1-D, got shape {list(arr.shape)}")
    return arr


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and x != x)


def _infer_column_type(v: np.ndarray) -> str:
    if v.dtype.kind != "O":
        return column_type(v.dtype)
    present = [x for x in v if not _missing(x)]
    if present and all(isinstance(x, bool) for x in present):
        return "boolean"
    if present and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in present):
        return "long"
    if all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in present):
        return "double"
    return "string"


def _numeric(v: np.ndarray) -> np.ndarray:
    if v.dtype.kind == "O":
        v = np.array([np.nan if x is None else x for x in v])
    return v.astype(np.float64)


def _py(x: Any) -> Any:
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and x != x:
        return None
    return x


# -- synthesized rows ----------------------------------------------------------------


def synthesize(
    *,
    mlflow_inputs: list[dict[str, Any]] | None = None,
    model: Any = None,
    n_rows: int = SYNTHETIC_ROWS,
    seed: int = 0,
) -> TabularSample | None:
    """Rows for a model that came without an input example: from its MLflow input
    schema (column-based, or one 2-D tensor), else from the estimator's
    feature_names_in_ / n_features_in_. Numeric columns get standard-normal floats,
    text columns the categories an encoder in the model knows (else a few short
    strings). None when neither says what the model takes."""
    rng = np.random.default_rng(seed)
    categories = known_categories(model) if model is not None else {}
    names: list[str] = []
    types: dict[str, str] = {}
    frame = False
    if mlflow_inputs and all("name" in c and c.get("type") != "tensor" for c in mlflow_inputs):
        for c in mlflow_inputs:
            names.append(str(c["name"]))
            types[str(c["name"])] = str(c.get("type", "double"))
        frame = True
    elif mlflow_inputs and len(mlflow_inputs) == 1 and mlflow_inputs[0].get("type") == "tensor":
        shape = mlflow_inputs[0].get("tensor-spec", {}).get("shape", [])
        if len(shape) != 2 or int(shape[1]) < 1:
            return None
        names = _feature_names(model, int(shape[1]))
        types = dict.fromkeys(names, "double")
    elif model is not None and getattr(model, "n_features_in_", None):
        names = _feature_names(model, int(model.n_features_in_))
        # A column an encoder knows text categories for is a text column.
        types = {
            k: "string" if any(isinstance(c, str) for c in categories.get(k, [])) else "double"
            for k in names
        }
        frame = hasattr(model, "feature_names_in_")
    else:
        return None
    cols: dict[str, np.ndarray] = {}
    for k in names:
        if types[k] in _NUMERIC_COLUMN_TYPES:
            if types[k] == "boolean":
                cols[k] = rng.integers(0, 2, n_rows).astype(np.float64)
            elif types[k] in ("long", "integer"):
                cols[k] = rng.integers(0, 10, n_rows).astype(np.float64)
            else:
                cols[k] = rng.standard_normal(n_rows)
        else:
            choices = [str(c) for c in categories.get(k, [])] or ["a", "b", "c"]
            cols[k] = np.array([choices[i] for i in rng.integers(0, len(choices), n_rows)], dtype=object)
    return TabularSample(cols, types, frame)


def _feature_names(model: Any, n: int) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is not None and len(names) == n:
        return [str(x) for x in names]
    return [f"x{i}" for i in range(n)]


def known_categories(model: Any) -> dict[str, list]:
    """Column name -> the categories an encoder in the model was fit on (OneHotEncoder,
    OrdinalEncoder inside a ColumnTransformer, or fit on a DataFrame directly)."""
    found: dict[str, list] = {}
    for est in walk_estimators(model):
        cats = getattr(est, "categories_", None)
        names = getattr(est, "feature_names_in_", None)
        if cats is not None and names is not None and len(cats) == len(names):
            for name, c in zip(names, cats):
                values = [x for x in list(c) if not _missing(x)]
                if values:
                    found.setdefault(str(name), values)
    return found


def walk_estimators(model: Any):
    """The model and every fitted estimator inside it: pipeline steps, column
    transformers' fitted transformers, union parts, meta-estimators' fitted parts."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        est = stack.pop()
        if est is None or isinstance(est, str) or id(est) in seen:
            continue
        seen.add(id(est))
        yield est
        for _, step in getattr(est, "steps", None) or []:
            stack.append(step)
        for item in getattr(est, "transformers_", None) or []:
            stack.append(item[1])
        for item in getattr(est, "transformer_list", None) or []:
            stack.append(item[1])
        for attr in ("estimators_", "named_estimators_"):
            parts = getattr(est, attr, None)
            if isinstance(parts, dict):
                stack.extend(parts.values())
            elif isinstance(parts, (list, tuple)):
                stack.extend(p for p in parts if hasattr(p, "fit"))
        for attr in ("best_estimator_", "estimator_", "final_estimator_", "regressor_", "classifier_"):
            part = getattr(est, attr, None)
            if part is not None and hasattr(part, "fit"):
                stack.append(part)


def mlflow_input_columns(signature: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The parsed `inputs` list of an MLmodel signature section, or None."""
    if not signature or not signature.get("inputs"):
        return None
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError):
        return None
    return inputs if isinstance(inputs, list) else None


__all__ = ["TabularSample", "known_categories", "mlflow_input_columns", "synthesize", "walk_estimators"]
