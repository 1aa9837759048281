"""scikit-learn autologging, as mlflow.sklearn.autolog: `fit` logs params, training
metrics, tags, the training dataset and the fitted model to a run.

How: `autolog()` replaces `fit` on every class that defines one among scikit-learn's
estimators (plus Pipeline and the parameter searches); `autolog(disable=True)` puts the
originals back. A thread-local depth counter makes only the outermost fit log: the
steps of a Pipeline and the many fits inside GridSearchCV are part of their parent's run.
Logging never breaks training: any failure is caught and reported once as a warning.
"""
from __future__ import annotations

import csv
import functools
import inspect
import io
import logging
import math
import threading
import warnings
from numbers import Number
from typing import Any, Callable

from cairn.engine.errors import invalid
from cairn.engine.sdk import fluent
from cairn.engine.sdk.client import Client
from cairn.engine.sdk.modellogging import sample_rows, write_sklearn_model
from cairn.engine.store.timestamps import now_ms
from cairn.engine.tracking.contract import MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH
from cairn.engine.tracking.entities import DatasetInput, InputTag, Metric, Param, RunStatus

_logger = logging.getLogger(__name__)

AUTOLOGGING_TAG = "mlflow.autologging"
TRAINING_PREFIX = "training_"
# Input-tag context of the training dataset. (MLflow's autolog writes "train".)
TRAINING_CONTEXT = "training"
MODEL_DIR = "model"
# Data manipulation rather than learning: no run of their own, as MLflow decides.
_EXCLUDED_MODULES = (
    "sklearn.preprocessing",
    "sklearn.impute",
    "sklearn.feature_extraction",
    "sklearn.feature_selection",
)
_EXCLUDED_CLASSES = ("sklearn.compose._column_transformer.ColumnTransformer",)

_config: dict[str, Any] = {
    "log_models": True,
    "log_datasets": True,
    "silent": False,
    "max_tuning_runs": 5,
}
_originals: dict[type, Callable] = {}  # class that defines fit -> its original fit
_patch_lock = threading.Lock()
_tls = threading.local()
_warned = False


def autolog(
    log_models: bool = True,
    log_datasets: bool = True,
    disable: bool = False,
    silent: bool = False,
    max_tuning_runs: int | None = 5,
) -> None:
    """Turn scikit-learn autologging on (again, with these options) or off.

    Each outermost `fit` logs to the active run, or to a new run it starts and ends.
    Parameter searches also log best_<param> params, the best_cv_score metric,
    cv_results.csv and their `max_tuning_runs` best candidates as child runs (None: all).
    """
    global _warned
    if disable:
        with _patch_lock:
            for owner, original in _originals.items():
                owner.fit = original
            _originals.clear()
        return
    if max_tuning_runs is not None and max_tuning_runs < 0:
        raise invalid(f"max_tuning_runs must be None or >= 0, got {max_tuning_runs}")
    _config.update(
        log_models=log_models,
        log_datasets=log_datasets,
        silent=silent,
        max_tuning_runs=max_tuning_runs,
    )
    _warned = False
    with _patch_lock:
        for owner in _classes_defining_fit():
            if owner not in _originals:
                _originals[owner] = owner.__dict__["fit"]
                owner.fit = _patched_fit(owner.__dict__["fit"])


def _classes_defining_fit() -> list[type]:
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    with warnings.catch_warnings():  # importing every estimator module may warn
        warnings.simplefilter("ignore")
        classes = [cls for _, cls in all_estimators()]
    owners: dict[type, None] = {}
    for cls in [*classes, Pipeline, GridSearchCV, RandomizedSearchCV]:
        owner = next((k for k in cls.__mro__ if "fit" in k.__dict__), None)
        # Only plain functions: a descriptor (e.g. available_if) is not ours to replace.
        if owner is not None and inspect.isfunction(owner.__dict__["fit"]):
            owners[owner] = None
    return list(owners)


def _patched_fit(original: Callable) -> Callable:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self, *args, **kwargs):
        depth = getattr(_tls, "depth", 0)
        if depth or not _logs_own_run(type(self)):
            # Still count the depth: fits inside an excluded estimator's fit are internal.
            _tls.depth = depth + 1
            try:
                return original(self, *args, **kwargs)
            finally:
                _tls.depth = depth
        _tls.depth = 1
        try:
            return _fit_and_log(original, signature, self, args, kwargs)
        finally:
            _tls.depth = 0

    fit.__cairn_original__ = original
    return fit


def _logs_own_run(cls: type) -> bool:
    qualified = f"{cls.__module__}.{cls.__name__}"
    return not cls.__module__.startswith(_EXCLUDED_MODULES) and qualified not in _EXCLUDED_CLASSES


def _warn(message: str) -> None:
    global _warned
    _logger.debug("autolog: %s", message)
    if not _config["silent"] and not _warned:
        _warned = True
        warnings.warn(f"cairn autolog: {message} (further autolog warnings are hidden)",
                      stacklevel=4)


def _safely(step: Callable, *args: Any) -> Any:
    try:
        return step(*args)
    except Exception as e:
        _warn(f"{step.__name__.strip('_')} failed: {type(e).__name__}: {e}")
        return None


# -- one logged fit ------------------------------------------------------------------


def _fit_and_log(original: Callable, signature, est, args: tuple, kwargs: dict):
    try:
        X, y, sample_weight = _fit_inputs(signature, est, args, kwargs)
        started = fluent.active_run() is None
        if started:
            fluent.start_run(tags={AUTOLOGGING_TAG: "sklearn"})
    except Exception as e:
        _warn(f"could not start logging this fit: {type(e).__name__}: {e}")
        return original(est, *args, **kwargs)
    # Each step on its own: a refused param must not cost the tags or the dataset.
    _safely(_log_params_and_tags, est)
    logs_dataset = _config["log_datasets"] and X is not None
    dataset_input = _safely(_log_dataset, X, y) if logs_dataset else None
    try:
        result = original(est, *args, **kwargs)
    except BaseException:
        if started:
            _safely(fluent.end_run, RunStatus.FAILED)
        raise
    _safely(_log_posttraining, est, X, y, sample_weight, dataset_input)
    if started:
        _safely(fluent.end_run)
    return result


def _fit_inputs(signature, est, args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    """X, y and sample_weight as fit received them, by name or position."""
    bound = signature.bind_partial(est, *args, **kwargs).arguments
    names = list(signature.parameters)[1:]
    X = bound.get(names[0]) if names else None
    y = bound.get("y", bound.get("Y"))
    sample_weight = bound.get("sample_weight")
    for name, p in signature.parameters.items():
        if p.kind is inspect.Parameter.VAR_KEYWORD and sample_weight is None:
            sample_weight = (bound.get(name) or {}).get("sample_weight")
    return X, y, sample_weight


def _is_search(est: Any) -> bool:
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    return isinstance(est, (GridSearchCV, RandomizedSearchCV))


def _estimator_tags(est: Any) -> dict[str, str]:
    cls = type(est)
    return {"estimator_name": cls.__name__, "estimator_class": f"{cls.__module__}.{cls.__name__}"}


def _params_of(est: Any) -> dict[str, str]:
    """get_params as strings, truncated to the store's limit. Parameter searches log
    only their own params: their seed estimator's are untuned starting points."""
    params = est.get_params(deep=not _is_search(est))
    return {k: str(v)[:MAX_PARAM_VALUE_LENGTH] for k, v in params.items()}


def _log_params_and_tags(est: Any) -> None:
    # Tags first: they are last-write-wins, while params may be refused as write-once.
    tags = {**fluent.context_tags(), **_estimator_tags(est)}
    fluent.set_tags({k: v[:MAX_TAG_VALUE_LENGTH] for k, v in tags.items()})
    fluent.log_params(_params_of(est))


def _log_dataset(X: Any, y: Any) -> DatasetInput:
    """Log the training data as a run input; returned for the child runs to reuse."""
    dataset = fluent.make_dataset(X, targets=y)
    fluent.log_input(dataset, context=TRAINING_CONTEXT)
    return DatasetInput(dataset=dataset, tags=[InputTag(fluent.DATASET_CONTEXT_TAG, TRAINING_CONTEXT)])


def _log_posttraining(est: Any, X: Any, y: Any, sample_weight: Any, dataset_input) -> None:
    run = fluent.active_run()
    client = Client()
    y_pred = _safely(_model_output, est, X)
    metrics: dict[str, float] = {}
    if y is not None:
        metrics.update(_training_metrics(est, X, y, sample_weight, y_pred))
    params: dict[str, str] = {}
    if _is_search(est):
        if hasattr(est, "best_score_"):
            metrics["best_cv_score"] = est.best_score_
        for k, v in getattr(est, "best_params_", {}).items():
            params[f"best_{k}"] = str(v)[:MAX_PARAM_VALUE_LENGTH]
    ts = now_ms()
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
    )
    if _config["log_models"] and X is not None:
        _safely(_log_model, est, X)
    if _is_search(est) and hasattr(est, "cv_results_"):
        _safely(_log_cv_results, client, run.info.run_id, est.cv_results_)
        if _config["max_tuning_runs"] != 0:
            _safely(_log_child_runs, client, run, est, dataset_input)


def _model_output(est: Any, X: Any) -> Any:
    """Predictions on X for the training metrics (None for a transformer). The model's
    signature is the packager's business (modellogging)."""
    if X is None or not hasattr(est, "predict"):
        return None
    return est.predict(X)


# -- training metrics, with MLflow's names -------------------------------------------


def _training_metrics(est: Any, X: Any, y: Any, sample_weight: Any, y_pred: Any) -> dict[str, float]:
    from sklearn import metrics as skm
    from sklearn.base import is_classifier, is_regressor

    sw = sample_weight
    candidates: list[tuple[str, Callable[[], float]]] = []
    if y_pred is not None and is_classifier(est):
        # MLflow's defaults: weighted averages (no pos_label), roc_auc one-vs-one.
        for name, fn in (
            ("precision_score", skm.precision_score),
            ("recall_score", skm.recall_score),
            ("f1_score", skm.f1_score),
        ):
            candidates.append((name, functools.partial(
                fn, y, y_pred, average="weighted", sample_weight=sw)))
        candidates.append(("accuracy_score", functools.partial(
            skm.accuracy_score, y, y_pred, normalize=True, sample_weight=sw)))
        if _has(est, "predict_proba"):
            proba = _safely(est.predict_proba, X)
            if proba is not None:
                score = proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba
                candidates.append(("log_loss", functools.partial(
                    skm.log_loss, y, proba, sample_weight=sw)))
                candidates.append(("roc_auc", functools.partial(
                    skm.roc_auc_score, y, score, average="weighted", sample_weight=sw,
                    multi_class="ovo")))
    elif y_pred is not None and is_regressor(est):
        for name, fn in (
            ("mean_squared_error", skm.mean_squared_error),
            ("mean_absolute_error", skm.mean_absolute_error),
            ("r2_score", skm.r2_score),
        ):
            candidates.append((name, functools.partial(
                fn, y, y_pred, sample_weight=sw, multioutput="uniform_average")))
    if _has(est, "score"):
        takes_weight = "sample_weight" in inspect.signature(est.score).parameters
        args = (X, y, sw) if takes_weight else (X, y)
        candidates.append(("score", functools.partial(est.score, *args)))

    out: dict[str, float] = {}
    for name, compute in candidates:
        try:
            out[TRAINING_PREFIX + name] = float(compute())
        except Exception as e:
            _warn(f"metric {TRAINING_PREFIX + name} not logged: {type(e).__name__}: {e}")
    mse = out.get(TRAINING_PREFIX + "mean_squared_error")
    if mse is not None:
        out[TRAINING_PREFIX + "root_mean_squared_error"] = math.sqrt(mse)
    return out


def _has(est: Any, name: str) -> bool:
    """hasattr that survives estimators whose availability check itself raises."""
    try:
        return hasattr(est, name)
    except Exception:
        return False


# -- model ---------------------------------------------------------------------------


def _log_model(estimator: Any, X: Any) -> None:
    """Store the fitted estimator under `model/` as a complete MLflow model directory:
    model.pkl, MLmodel (sklearn, python_function and onnx flavors, signature), model.onnx
    converted and verified on the first rows of X, input example, and the profile of X
    with the model's predictions (the monitoring baseline). When the conversion fails the
    model is still logged as sklearn, and the run tag cairn.onnx.error says why.

    This is the one place autologged models are written (modellogging does the work).
    """
    run_id = fluent.active_run().info.run_id
    write_sklearn_model(Client(), run_id, estimator, sample_rows(X), MODEL_DIR, training_data=X)


# -- parameter searches --------------------------------------------------------------


def _log_cv_results(client: Client, run_id: str, results: dict[str, Any]) -> None:
    """cv_results_ as cv_results.csv (columns in cv_results_ order, masked cells empty,
    as pandas' to_csv writes them), without needing pandas."""
    import numpy as np

    columns = list(results)
    masks = {c: np.ma.getmaskarray(results[c]) for c in columns if np.ma.isMaskedArray(results[c])}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for i in range(len(results["params"])):
        writer.writerow(
            ["" if c in masks and masks[c][i] else results[c][i] for c in columns]
        )
    client.log_text(run_id, buf.getvalue(), "cv_results.csv")


def _log_child_runs(client: Client, parent, est: Any, dataset_input) -> None:
    """One finished child run per best candidate (by rank_test_*), carrying the seed
    estimator's params updated with the candidate's, and its mean/std/rank metrics."""
    results = est.cv_results_
    n = len(results["params"])
    rank_key = "rank_test_score" if "rank_test_score" in results else next(
        (k for k in results if k.startswith("rank_test_")), None
    )
    order = sorted(range(n), key=lambda i: results[rank_key][i]) if rank_key else list(range(n))
    limit = _config["max_tuning_runs"]
    chosen = order if limit is None else order[:limit]

    seed = est.estimator
    base_params = _params_of(seed)
    tags = {
        **fluent.context_tags(),
        AUTOLOGGING_TAG: "sklearn",
        fluent.PARENT_RUN_ID_TAG: parent.info.run_id,
        **_estimator_tags(seed),
    }
    end_time = now_ms()
    for i in chosen:
        child = client.create_run(
            parent.info.experiment_id, start_time=parent.info.start_time, tags=tags
        )
        child_id = child.info.run_id
        params = {**base_params, **{k: str(v) for k, v in results["params"][i].items()}}
        metrics = [
            Metric(k, float(v[i]), end_time, 0)
            for k, v in results.items()
            if not k.startswith(("param", "split")) and isinstance(v[i], Number)
        ]
        client.log_batch(
            child_id,
            metrics=metrics,
            params=[Param(k, v[:MAX_PARAM_VALUE_LENGTH]) for k, v in params.items()],
        )
        if dataset_input is not None:
            client.log_inputs(child_id, [dataset_input])
        client.set_terminated(child_id, RunStatus.FINISHED, end_time)


__all__ = ["autolog"]
