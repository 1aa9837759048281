"""Placeholder: being written now."""
from __future__ import annotations

from litestar import Controller


class ArtifactController(Controller):
    path = "/api/2.0"
