"""Offset page tokens, in MLflow's own format (base64 of {"offset": n}), and max_results rules."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Generic, TypeVar

import msgspec

from cairn.engine.errors import invalid

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T]):
    """One page of a listing; `next_page_token` is None on the last page."""

    items: list[T]
    next_page_token: str | None = None


def encode_offset(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token, validate=True))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise invalid(f"Invalid page token {token!r}: could not decode it ({exc})") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise invalid(f"Invalid page token {token!r}: the offset must be a non-negative integer")
    return offset


def check_max_results(max_results: int | None, limit: int, *, default: int) -> int:
    if max_results is None:
        return default
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 0 < max_results <= limit:
        raise invalid(
            f"Invalid value {max_results!r} for parameter 'max_results' supplied. "
            f"It must be a positive integer at most {limit}"
        )
    return max_results


def page_of(items: list, offset: int, limit: int) -> tuple[list, str | None]:
    """Slice one page out of a fully ordered list."""
    end = offset + limit
    return items[offset:end], (encode_offset(end) if end < len(items) else None)
