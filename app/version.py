"""Cairn's own version, as installed (`cairn --version`, /version, doctor, the OpenAPI doc)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def cairn_version() -> str:
    try:
        return version("cairn")
    except PackageNotFoundError:
        return "0.0.0"  # a source checkout that was never installed
