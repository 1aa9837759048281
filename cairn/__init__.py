"""Cairn's public face for training scripts: `import cairn` reads like `import mlflow`.

Re-exports only; the logic lives in engine.fluent, engine.client,
engine.sklearn_autolog, engine.registryclient and engine.modelloading.
"""
from engine.client import Client
from engine.entities import Dataset, Metric, Param, RunStatus, RunTag, ViewType
from engine.errors import CairnError
from engine.fluent import (
    ActiveRun,
    active_run,
    context_tags,
    delete_tag,
    end_run,
    flush,
    get_experiment,
    get_experiment_by_name,
    get_run,
    get_tracking_dir,
    infer_schema,
    last_active_run,
    log_artifact,
    log_artifacts,
    log_dict,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    make_dataset,
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    set_tracking_dir,
    start_run,
)
from engine.modelloading import load_model
from engine.registryclient import register_model
from engine.sklearn_autolog import autolog

from . import sklearn  # noqa: E402  (cairn.sklearn.autolog(), as mlflow.sklearn.autolog())

__all__ = [
    "ActiveRun",
    "CairnError",
    "Client",
    "Dataset",
    "Metric",
    "Param",
    "RunStatus",
    "RunTag",
    "ViewType",
    "active_run",
    "autolog",
    "context_tags",
    "delete_tag",
    "end_run",
    "flush",
    "get_experiment",
    "get_experiment_by_name",
    "get_run",
    "get_tracking_dir",
    "infer_schema",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "load_model",
    "make_dataset",
    "register_model",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_dir",
    "sklearn",
    "start_run",
]
