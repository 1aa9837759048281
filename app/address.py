"""Where the server listens unless told otherwise: this machine only."""
from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
# `cairn models serve`: mlflow models serve's port, so scripts written for it keep working.
DEFAULT_MODEL_PORT = 5001
