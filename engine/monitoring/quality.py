"""Model quality from ground truth: labels posted after the fact (by request id) joined
to the predictions logged for those requests, with scikit-learn's metrics.

Classifiers: accuracy, precision, recall, F1 (binary for two classes, macro-averaged
beyond), ROC AUC when a probability per class was logged (`prediction_0..k`).
Regressors: MAE, RMSE, R2. The problem type is the monitor's, or inferred: labels that
are strings, bools or integers of at most MAX_CLASSES values make a classifier.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cairn.engine.monitoring.payloads import PREDICTION
from cairn.engine.monitoring.profiles import category, is_null

CLASSIFICATION, REGRESSION = "classification", "regression"
PROBLEM_TYPES = ("", CLASSIFICATION, REGRESSION)
MAX_CLASSES = 20


def infer_problem(labels: Sequence[Any]) -> str:
    discrete = all(isinstance(v, (str, bool)) or (isinstance(v, (int, float)) and float(v).is_integer())
                   for v in labels)
    return CLASSIFICATION if discrete and len(set(labels)) <= MAX_CLASSES else REGRESSION


def quality(columns: dict[str, list[Any]], labels: Sequence[Any], problem: str = "") -> tuple[dict[str, float], int]:
    """(metrics, labeled rows) for the rows that have both a label and a prediction."""
    import numpy as np
    from sklearn import metrics

    preds = columns.get(PREDICTION, [None] * len(labels))
    pairs = [(y, p, i) for i, (y, p) in enumerate(zip(labels, preds)) if not is_null(y) and not is_null(p)]
    if not pairs:
        return {}, 0
    y_true = [y for y, _, _ in pairs]
    y_pred = [p for _, p, _ in pairs]
    problem = problem or infer_problem(y_true)
    if problem == REGRESSION:
        t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
        out = {"mae": float(metrics.mean_absolute_error(t, p)),
               "rmse": float(np.sqrt(metrics.mean_squared_error(t, p)))}
        if len(t) > 1:
            out["r2"] = float(metrics.r2_score(t, p))
        return out, len(pairs)
    y_true, y_pred = [category(v) for v in y_true], [category(v) for v in y_pred]
    classes = sorted(set(y_true) | set(y_pred))
    binary = len(classes) == 2
    kw = {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}
    out = {"accuracy": float(metrics.accuracy_score(y_true, y_pred)),
           "precision": float(metrics.precision_score(y_true, y_pred, zero_division=0, **kw)),
           "recall": float(metrics.recall_score(y_true, y_pred, zero_division=0, **kw)),
           "f1": float(metrics.f1_score(y_true, y_pred, zero_division=0, **kw))}
    probs = [columns.get(f"{PREDICTION}_{k}") for k in range(len(classes))]
    if binary and probs[1] is not None and len(set(y_true)) == 2:
        scores = [probs[1][i] for _, _, i in pairs]
        if all(isinstance(s, (int, float)) for s in scores):
            out["roc_auc"] = float(metrics.roc_auc_score([y == classes[1] for y in y_true], scores))
    return out, len(pairs)
