"""Placeholder: being written now."""
from __future__ import annotations

from litestar import Controller


class RunController(Controller):
    path = "/api/2.0/mlflow/runs"
