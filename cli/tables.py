"""Plain-text tables for the CLI: aligned columns, no box drawing, nothing to install.

Numbers are right-aligned so magnitudes line up; everything else is left-aligned.
Long cells are cut with an ellipsis so one wide tag or param cannot push the table
off a terminal.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime

import msgspec

from cairn.engine.errors import CairnError

MAX_CELL = 40
GAP = "  "


def fmt_number(value: float) -> str:
    """Four significant digits: enough to compare runs, short enough for a column."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def cut(text: str, width: int = MAX_CELL) -> str:
    # Newlines would break the row layout; show them as spaces.
    text = text.replace("\r", " ").replace("\n", " ")
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


def _is_numeric(cell: object) -> bool:
    return isinstance(cell, (int, float)) and not isinstance(cell, bool)


def render(
    headers: Sequence[str], rows: Iterable[Sequence[object]], max_cell: int = MAX_CELL
) -> str:
    """The table as one string (no trailing newline). Cells may be str, int, float or
    None (shown empty); a column is right-aligned when its cells are all numbers."""
    cells: list[list[str]] = []
    numeric = [True] * len(headers)
    for row in rows:
        out = []
        for i, cell in enumerate(row):
            if cell is None:
                out.append("")
                continue
            if _is_numeric(cell):
                out.append(fmt_number(cell))
            else:
                numeric[i] = False
                out.append(cut(str(cell), max_cell))
        cells.append(out)
    if not cells:
        numeric = [False] * len(headers)
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i])
            for i, v in enumerate(values)
        ]
        return GAP.join(parts).rstrip()

    lines = [line(list(headers)), line(["-" * w for w in widths])]
    lines.extend(line(row) for row in cells)
    return "\n".join(lines)


def render_pairs(pairs: Iterable[tuple[str, object]]) -> str:
    """`key  value` lines with the keys padded to one width (a record, not a table)."""
    items = [
        (k, "" if v is None else (fmt_number(v) if _is_numeric(v) else str(v)))
        for k, v in pairs
    ]
    if not items:
        return ""
    width = max(len(k) for k, _ in items)
    return "\n".join(f"{k.ljust(width)}{GAP}{v}".rstrip() for k, v in items)


def local_time(ms: int | None, timespec: str = "seconds") -> str:
    """Milliseconds since the epoch as local ISO time (empty for none)."""
    return datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec=timespec) if ms else ""


def print_json(obj: object) -> None:
    """`obj` as msgspec encodes it, indented, on stdout (every command's --json)."""
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj), indent=2).decode() + "\n")


def since_ms(text: str | None) -> int | None:
    """--since: milliseconds since the epoch, or an ISO date/time (local time unless it
    says); None stays None."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise CairnError(f"--since takes an ISO date/time (2026-01-31T12:00) or milliseconds, got {text!r}") from None
