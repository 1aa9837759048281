"""`cairn.sklearn.autolog()`, named as `mlflow.sklearn.autolog()`. Re-export only."""
from engine.sklearn_autolog import autolog

__all__ = ["autolog"]
