"""Checking an ONNX conversion against the original scikit-learn model on sample rows,
before a version is READY (DESIGN.md: Models).

Both models see the same numbers: the ONNX model takes float32, so the original is run
on the sample cast to float32 and back to float64. Comparing against the original on the
float64 sample would count float32 rounding of the *inputs* as conversion error (a tree
split between a value and its float32 neighbour flips), which no ONNX model can avoid.

Tolerances (measured with the models tests/engine/test_onnx_packaging.py converts; the
largest differences seen were about 1e-7 for probabilities and 5e-7 relative for
regressor outputs, float32 arithmetic inside the graph):
- classifiers: labels equal, except rows where the original's two highest
  probabilities tie exactly (either label is right there); probabilities within 1e-5
  absolute;
- decision scores (classifiers without predict_proba) and regressors: within
  1e-5 absolute + 1e-5 relative to the original's value.
"""
from __future__ import annotations

import warnings
from typing import Any

import msgspec
import numpy as np

from cairn.engine.models.errors import VerificationError
from cairn.engine.models.sample import TabularSample
from cairn.engine.models.signature import COLUMNS, MATRIX, OnnxSignature

PROBA_ABS_TOL = 1e-5
VALUE_ABS_TOL = 1e-5
VALUE_REL_TOL = 1e-5


class VerifyReport(msgspec.Struct):
    """rows: sample rows checked; max_abs_diff: the largest difference in probabilities
    (classifiers) or predictions (regressors); label_mismatches: rows whose labels
    differ where the original's top two probabilities tie (tolerated)."""

    rows: int
    max_abs_diff: float
    label_mismatches: int = 0


def verify(onnx_bytes: bytes, signature: OnnxSignature, model: Any, sample: Any) -> VerifyReport:
    """Run the ONNX model (ONNX Runtime, CPU) and the original on the sample rows and
    compare; VerificationError says how many rows differ, by how much, and the first."""
    from cairn.engine.models.onnxconvert import sample_for
    from cairn.engine.models.predictor import OnnxPredictor

    table = sample if isinstance(sample, TabularSample) else sample_for(model, sample)
    if table.n_rows == 0:
        raise VerificationError("No sample rows to verify the conversion with")
    predictor = OnnxPredictor(onnx_bytes, signature)
    outputs = predictor.run(_feeds(predictor, signature, table))
    names = predictor.output_names
    try:
        model_in = table.model_input(float32=True)
    except ValueError as exc:
        raise VerificationError(f"Cannot feed the sample rows to the original model: {exc}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if _is_classifier(model) and len(names) >= 1:
                return _check_classifier(model, model_in, outputs, names, table.n_rows)
            if hasattr(model, "predict"):
                return _check_values(np.asarray(model.predict(model_in)), outputs[names[0]], names[0], table.n_rows)
            if hasattr(model, "transform"):
                return _check_values(np.asarray(model.transform(model_in)), outputs[names[0]], names[0], table.n_rows)
        except VerificationError:
            raise
        except Exception as exc:
            raise VerificationError(
                f"The original model failed on the sample rows: {type(exc).__name__}: {exc}"
            ) from None
    raise VerificationError(f"Cannot verify {type(model).__name__}: it has neither predict nor transform")


def _feeds(predictor, signature: OnnxSignature, table: TabularSample) -> dict[str, np.ndarray]:
    cols = table.float32_columns()
    if signature.layout in (MATRIX, COLUMNS):
        return predictor.feeds(cols)
    # A raw tensor signature (an ONNX flavor someone else wrote): one 2-D input takes the
    # whole matrix; else inputs named like the columns take one column each.
    specs = signature.inputs
    if len(specs) == 1 and len(specs[0].shape) == 2 and table.all_numeric:
        matrix = np.column_stack([cols[k] for k in table.names])
        return predictor.feeds({specs[0].name: matrix})
    if {s.name for s in specs} <= set(cols):
        return predictor.feeds({s.name: cols[s.name].reshape(-1, 1) for s in specs})
    raise VerificationError(
        "Cannot map the sample's columns (" + ", ".join(table.names[:10]) + ") onto the ONNX inputs ("
        + ", ".join(s.name for s in specs) + ")"
    )


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    try:
        return bool(is_classifier(model))
    except Exception:
        return False


def _check_classifier(model, model_in, outputs: dict, names: list[str], rows: int) -> VerifyReport:
    onnx_labels = np.asarray(outputs[names[0]]).reshape(-1)
    labels = np.asarray(model.predict(model_in)).reshape(-1)
    has_proba = hasattr(model, "predict_proba")
    scores = None
    if len(names) >= 2:
        if has_proba:
            scores = np.asarray(model.predict_proba(model_in), dtype=np.float64)
        elif hasattr(model, "decision_function"):
            scores = np.asarray(model.decision_function(model_in), dtype=np.float64)
    tied = np.zeros(rows, dtype=bool)
    if scores is not None and has_proba and scores.ndim == 2 and scores.shape[1] >= 2:
        top2 = np.sort(scores, axis=1)[:, -2:]
        tied = top2[:, 0] == top2[:, 1]
    differs = ~_labels_equal(onnx_labels, labels)
    bad_labels = differs & ~tied
    worst, bad_scores, row_diff = 0.0, np.zeros(rows, dtype=bool), np.zeros(rows)
    if scores is not None:
        got = np.asarray(outputs[names[1]], dtype=np.float64)
        if scores.ndim == 1 and got.ndim == 2 and got.shape[1] == 2:
            got = got[:, 1]  # binary decision_function: the positive class's score
        if got.shape == scores.shape:
            diff = _abs_diff(got, scores)
            worst = float(diff.max()) if diff.size else 0.0
            limit = PROBA_ABS_TOL if has_proba else VALUE_ABS_TOL + VALUE_REL_TOL * np.abs(scores)
            bad = diff > limit
            bad_scores = bad.reshape(rows, -1).any(axis=1)
            row_diff = diff.reshape(rows, -1).max(axis=1)
    bad_rows = bad_labels | bad_scores
    if bad_rows.any():
        first = int(np.argmax(bad_rows))
        what = "probabilities" if has_proba else "scores"
        if bad_labels[first]:
            detail = f"label {_py(onnx_labels[first])!r} instead of {_py(labels[first])!r}"
        else:
            detail = f"{what} differ by {float(row_diff[first]):.3g}"
        tolerance = f"{PROBA_ABS_TOL:g}" if has_proba else f"{VALUE_ABS_TOL:g} + {VALUE_REL_TOL:g} relative"
        raise VerificationError(
            f"The ONNX model differs from the original on {int(bad_rows.sum())} of {rows} sample rows "
            f"({int(bad_labels.sum())} with another label; worst {what} difference {worst:.3g}, "
            f"tolerance {tolerance}); first bad row {first}: {detail}"
        )
    return VerifyReport(rows=rows, max_abs_diff=worst, label_mismatches=int((differs & tied).sum()))


def _check_values(expected: np.ndarray, got: np.ndarray, name: str, rows: int) -> VerifyReport:
    got = np.asarray(got)
    if expected.dtype.kind in "OUSb" or got.dtype.kind in "OUS":
        equal = _labels_equal(got.reshape(-1), expected.reshape(-1))
        if not equal.all():
            first = int(np.argmin(equal))
            raise VerificationError(
                f"The ONNX model's {name} differs from the original on {int((~equal).sum())} of {rows} "
                f"sample rows; first bad row {first}"
            )
        return VerifyReport(rows=rows, max_abs_diff=0.0)
    expected = expected.astype(np.float64)
    got = got.astype(np.float64)
    if got.size != expected.size:
        raise VerificationError(
            f"The ONNX model's {name} has shape {list(got.shape)}, the original's {list(expected.shape)}"
        )
    got = got.reshape(expected.shape)
    diff = _abs_diff(got, expected)
    bad = diff > VALUE_ABS_TOL + VALUE_REL_TOL * np.abs(expected)
    worst = float(diff.max()) if diff.size else 0.0
    bad_rows = bad.reshape(rows, -1).any(axis=1) if bad.size else np.zeros(rows, dtype=bool)
    if bad_rows.any():
        first = int(np.argmax(bad_rows))
        raise VerificationError(
            f"The ONNX model's {name} differs from the original on {int(bad_rows.sum())} of {rows} sample "
            f"rows (worst absolute difference {worst:.3g}; tolerance {VALUE_ABS_TOL:g} + "
            f"{VALUE_REL_TOL:g} relative); first bad row {first}: {_py(got.reshape(rows, -1)[first][0])!r} "
            f"instead of {_py(expected.reshape(rows, -1)[first][0])!r}"
        )
    return VerifyReport(rows=rows, max_abs_diff=worst)


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| with NaN == NaN (both missing is agreement) and NaN vs number infinite."""
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    both = np.isnan(a) & np.isnan(b)
    diff[both] = 0.0
    diff[np.isnan(diff)] = np.inf
    return diff


def _labels_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        return np.zeros(max(a.size, b.size), dtype=bool)
    if a.dtype.kind in "OUS" or b.dtype.kind in "OUS":
        return np.array([str(_py(x)) == str(_py(y)) for x, y in zip(a, b)], dtype=bool)
    return np.asarray(a == b, dtype=bool)


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


__all__ = ["VerificationError", "VerifyReport", "verify"]
