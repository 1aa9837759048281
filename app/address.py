"""Where the server listens unless told otherwise: this machine only."""
from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
