"""`cairn.sklearn.autolog()` and `cairn.sklearn.log_model()`, named as mlflow.sklearn's.
Re-exports only."""
from cairn.engine.sdk.autolog import autolog
from cairn.engine.sdk.modellogging import log_model

__all__ = ["autolog", "log_model"]
