"""`PagedList`: what the SDK's searches return, as MLflow's PagedList."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class PagedList(list):
    """A list of results plus the token for the next page (None on the last page), as
    MLflow's PagedList."""

    def __init__(self, items: Iterable[Any], token: str | None):
        super().__init__(items)
        self.token = token
