"""scikit-learn -> ONNX with skl2onnx, with the input layout read from the sample.

- Numeric rows (a 2-D array, or a DataFrame of numeric columns when the model does not
  pick columns by name): one input "X", float32 [None, n]; layout "matrix" with the
  column names (the DataFrame's, else feature_names_in_, else x0..xn-1).
- A DataFrame with text columns, or a model with a ColumnTransformer selecting columns
  by name: one [None, 1] input per column, named like it (float32 for numeric columns,
  string for text); layout "columns".
- Every classifier in the model converts with zipmap=False: plain tensors out.
- Output names are stable whatever skl2onnx calls them: classifiers give "label" and
  "probabilities" ("scores" when the model has no predict_proba: they are its decision
  scores then); regressors give "predictions" (shape [N, 1] for a single target, as
  skl2onnx makes it; the predictor flattens it as scikit-learn's predict does).
- target_opset: the newest opsets both skl2onnx (its latest tested) and the installed
  ONNX Runtime support, found once per process by loading a tiny model.
"""
from __future__ import annotations

import contextlib
import functools
import re
import threading
import warnings
from typing import Any

import numpy as np

from cairn.engine.models.errors import ConversionError
from cairn.engine.models.sample import NUMERIC, TabularSample, walk_estimators
from cairn.engine.models.signature import COLUMNS, MATRIX, ColumnSpec, OnnxSignature, signature_from_onnx

LABEL, PROBABILITIES, SCORES, PREDICTIONS = "label", "probabilities", "scores", "predictions"
MATRIX_INPUT = "X"
ML_DOMAIN = "ai.onnx.ml"


def convert_sklearn(model: Any, sample: Any) -> tuple[bytes, OnnxSignature]:
    """The model as ONNX bytes and its signature. `sample`: a few rows as the model
    takes them (DataFrame, 2-D array/list, records, dict of columns, TabularSample).
    ConversionError with the estimator and skl2onnx's reason when it cannot convert."""
    table = sample if isinstance(sample, TabularSample) else sample_for(model, sample)
    return convert_table(model, table)


def sample_for(model: Any, sample: Any) -> TabularSample:
    """The sample as a TabularSample named like the model's features."""
    names = getattr(model, "feature_names_in_", None)
    names = [str(x) for x in names] if names is not None else None
    frame = True if names is not None and not _is_2d_array(sample) else None
    try:
        return TabularSample.of(sample, names=names, frame=frame)
    except ValueError as exc:
        raise ConversionError(f"Cannot read the sample rows: {exc}") from None


def _is_2d_array(data: Any) -> bool:
    return isinstance(data, np.ndarray) or (isinstance(data, list) and data and isinstance(data[0], (list, tuple)))


def input_layout(model: Any, table: TabularSample) -> str:
    if table.all_numeric and not selects_columns_by_name(model):
        return MATRIX
    return COLUMNS


def convert_table(model: Any, table: TabularSample) -> tuple[bytes, OnnxSignature]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if table.n_rows == 0 or not table.columns:
        raise ConversionError("Cannot convert without sample rows: the sample is empty")
    layout = input_layout(model, table)
    names = table.names
    if layout == MATRIX:
        initial_types = [(MATRIX_INPUT, FloatTensorType([None, len(names)]))]
    else:
        initial_types = [
            (name, FloatTensorType([None, 1]) if table.kind(name) == NUMERIC else StringTensorType([None, 1]))
            for name in names
        ]
    onx = _convert(model, initial_types)
    _rename_outputs(onx, model)
    data = onx.SerializeToString()
    sig = signature_from_onnx(data)
    columns = [ColumnSpec(name, table.types[name]) for name in names]
    return data, OnnxSignature(inputs=sig.inputs, outputs=sig.outputs, columns=columns, layout=layout)


def _convert(model: Any, initial_types: list) -> Any:
    import skl2onnx

    options = {id(c): {"zipmap": False} for c in classifiers_in(model)}
    try:
        with warnings.catch_warnings(), _exact_hist_gradient_boosting_thresholds():
            warnings.simplefilter("ignore")
            return skl2onnx.convert_sklearn(
                model, initial_types=initial_types, options=options, target_opset=target_opsets()
            )
    except Exception as exc:
        raise ConversionError(conversion_failure(model, exc)) from None


_patch_lock = threading.RLock()


@contextlib.contextmanager
def _exact_hist_gradient_boosting_thresholds():
    """Float32 split thresholds for HistGradientBoosting that decide exactly as the
    float64 ones do for every float32 input.

    skl2onnx rounds each float64 threshold t to the *nearest* float32; when that rounds
    up, a float32 input equal to the rounded value goes left in ONNX and right in
    scikit-learn. HistGradientBoosting's thresholds are quantiles of the training
    data, so they often lie within a float32 step of a training value: on the model's
    own training rows, measured, 39 of 300 rows got probabilities off by up to 0.31.
    skl2onnx already has the fix (`adjust_threshold_for_sklearn`: the largest float32
    <= t) and applies it to RandomForest and GradientBoosting, not to
    HistGradientBoosting; this turns it on there for the duration of a conversion
    (under a lock; restored after). Without that hook (another skl2onnx) nothing
    changes and verification reports any difference.
    """
    try:
        from skl2onnx.operator_converters import random_forest
    except ImportError:
        yield
        return
    original = getattr(random_forest, "add_tree_to_attribute_pairs_hist_gradient_boosting", None)
    if original is None or not callable(original):
        yield
        return

    def adjusted(*args, **kwargs):
        if len(args) >= 8:
            args = (*args[:7], True, *args[8:])
        else:
            kwargs["adjust_threshold_for_sklearn"] = True
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = np.float32
        return original(*args, **kwargs)

    with _patch_lock:
        random_forest.add_tree_to_attribute_pairs_hist_gradient_boosting = adjusted
        try:
            yield
        finally:
            random_forest.add_tree_to_attribute_pairs_hist_gradient_boosting = original


def conversion_failure(model: Any, exc: Exception) -> str:
    """A one-line reason: which estimator, which part of it skl2onnx has no converter
    for, and skl2onnx's own first sentence (the rest of its text is advice on writing
    a converter)."""
    name = type(model).__name__
    text = " ".join(str(exc).split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    first = first[:300] + ("..." if len(first) > 300 else "")
    m = re.search(r"type '?<class '([\w.]+)'>'?", text) or re.search(r"for type '([\w.]+)'", text)
    if m:
        qualified = m.group(1)
        culprit = qualified.rsplit(".", 1)[-1]
        where = name if culprit == name else f"{name}: its step {culprit}"
        return (
            f"skl2onnx cannot convert {where} ({qualified}): skl2onnx has no converter for it "
            f"({type(exc).__name__}: {first})"
        )
    return f"skl2onnx cannot convert {name}: {type(exc).__name__}: {first}"


def classifiers_in(model: Any) -> list[Any]:
    from sklearn.base import is_classifier

    return [est for est in walk_estimators(model) if _safe(is_classifier, est)]


def selects_columns_by_name(model: Any) -> bool:
    """True when a ColumnTransformer inside picks columns by name (or by a callable
    such as make_column_selector, which resolves to names on a DataFrame)."""
    for est in walk_estimators(model):
        specs = getattr(est, "transformers_", None) or getattr(est, "transformers", None)
        if not specs or not hasattr(est, "remainder"):
            continue
        for item in specs:
            cols = item[2] if len(item) > 2 else None
            if isinstance(cols, str) or callable(cols):
                return True
            if isinstance(cols, (list, tuple, np.ndarray)) and any(isinstance(c, str) for c in cols):
                return True
    return False


def _safe(fn, *args) -> Any:
    try:
        return fn(*args)
    except Exception:
        return False


def _rename_outputs(onx: Any, model: Any) -> None:
    from sklearn.base import is_classifier, is_regressor

    outputs = [o.name for o in onx.graph.output]
    wanted: list[str] = []
    if _safe(is_classifier, model) and len(outputs) == 2:
        has_proba = _safe(hasattr, model, "predict_proba")
        wanted = [LABEL, PROBABILITIES if has_proba else SCORES]
    elif _safe(is_regressor, model) and len(outputs) == 1:
        wanted = [PREDICTIONS]
    if not wanted:
        return
    rename = {old: new for old, new in zip(outputs, wanted) if old != new}
    if not rename:
        return
    graph = onx.graph
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name in rename:
                node.output[i] = rename[name]
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for value in list(graph.output) + list(graph.value_info):
        if value.name in rename:
            value.name = rename[value.name]


# -- opsets --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def target_opsets() -> dict[str, int]:
    """{"": main opset, "ai.onnx.ml": ml opset}: the newest skl2onnx has tested, capped
    by what the installed ONNX Runtime loads (probed once with an Identity model)."""
    import onnx.helper
    from skl2onnx import get_latest_tested_opset_version

    main = min(get_latest_tested_opset_version(), onnx.defs.onnx_opset_version())
    ml = max((row[3] for row in onnx.helper.VERSION_TABLE if row[2] <= main), default=1)
    while main > 9 and not _ort_loads(main, 1):
        main -= 1
    while ml > 1 and not _ort_loads(main, ml):
        ml -= 1
    return {"": main, ML_DOMAIN: ml}


def _ort_loads(main: int, ml: int) -> bool:
    import onnx.helper
    import onnxruntime as ort
    from onnx import TensorProto
    from skl2onnx.common._topology import OPSET_TO_IR_VERSION

    x = onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])
    y = onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", main), onnx.helper.make_opsetid(ML_DOMAIN, ml)]
    )
    model.ir_version = OPSET_TO_IR_VERSION.get(main, max(OPSET_TO_IR_VERSION.values()))
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return True
    except Exception:
        return False


__all__ = [
    "LABEL",
    "PREDICTIONS",
    "PROBABILITIES",
    "SCORES",
    "classifiers_in",
    "convert_sklearn",
    "convert_table",
    "input_layout",
    "sample_for",
    "selects_columns_by_name",
    "target_opsets",
]
