"""`cairn.sklearn.autolog()` and `cairn.sklearn.log_model()`, named as mlflow.sklearn's.
Re-exports only."""
from engine.modellogging import log_model
from engine.sklearn_autolog import autolog

__all__ = ["autolog", "log_model"]
