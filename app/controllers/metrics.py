"""Placeholder: being written now."""
from __future__ import annotations

from litestar import Controller


class MetricController(Controller):
    path = "/api/2.0/mlflow/metrics"
