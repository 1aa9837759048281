"""A stretch of an endpoint's payload log as columns, decoded once per refresh.

A refresh computes windows of several granularities, each for every served entity and
for all of them: each logged payload falls in several windows. Decoding it once (its
JSON into named values) and keeping the values as numpy arrays (8 bytes a number, not a
Python float's 32) makes a refresh cost one decode a payload, and its memory a few
arrays over the longest window still open. Payloads arrive in time order (the log's
keys), so a window is a slice of payloads, and a served entity a mask on it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from cairn.engine.monitoring.payloads import payload_rows, row_labels


def column_array(values: list[Any]) -> np.ndarray:
    """float64 when every value is a number (bools too) or None (as NaN), else an
    object array of the values themselves."""
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged lists inside
        arr = None
    if arr is not None and arr.ndim == 1 and arr.dtype.kind in "biuf":
        return arr.astype(np.float64, copy=False)
    if arr is not None and arr.ndim == 1 and arr.dtype.kind == "O" and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, str)) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # element by element: lists stay lists, not a second axis
        out[i] = v
    return out


class LogView(NamedTuple):
    """What one window (one entity, or all) holds: per payload and per decoded row."""

    requests: int
    errors: int
    latency_ms: np.ndarray
    models: list[str]  # model keys of the answered payloads, busiest first
    columns: dict[str, np.ndarray]  # per decoded row
    rows: int
    skipped: int  # answered payloads whose request did not decode
    labels: list[Any] | None  # per decoded row (None: none posted); None when the monitor has no labels


PER_PAYLOAD = {"ts": np.int64, "entity": object, "model": object, "status": np.int32, "latency": np.float64,
               "_undecoded": bool, "_row_counts": np.int64}
PAGE_ROWS = 2_000  # decoded rows turned into arrays at a time (a few ms)


class LogColumns:
    """Payloads in time order: `add` each one, `finish`, then `view` windows."""

    def __init__(self, names_for: Callable[[str], Sequence[str]], label_for: Callable[[str, str], Any] | None):
        self._names_for = names_for  # a model key -> its baseline's columns (names rows of bare values)
        self._label_for = label_for  # (request id, client request id) -> the posted label, or None
        # per payload: lists while adding, turned into arrays a page at a time (short
        # steps, so a paced refresh never holds the GIL long) and joined by `finish`
        self.ts: list[int] | np.ndarray = []
        self.entity: list[str] | np.ndarray = []
        self.model: list[str] | np.ndarray = []
        self.status: list[int] | np.ndarray = []
        self.latency: list[float] | np.ndarray = []
        self._undecoded: list[bool] | np.ndarray = []
        self._row_counts: list[int] = []
        self._done: dict[str, list[np.ndarray]] = {name: [] for name in PER_PAYLOAD}
        self._page: dict[str, list[Any]] = {}
        self._page_rows = 0
        self._chunks: dict[str, list[np.ndarray]] = {}
        self._chunk_rows = 0
        self._labels: list[Any] | None = [] if label_for else None
        self.columns: dict[str, np.ndarray] = {}
        self.offsets = np.zeros(1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, ts: int, entity: str, model: str, status: int, latency_ms: float, request: str, response: str,
            request_id: str, client_request_id: str) -> None:
        self.ts.append(ts)
        self.entity.append(entity)
        self.model.append(model)
        self.status.append(status)
        self.latency.append(latency_ms)
        records = payload_rows(request, response, self._names_for(model)) if status < 400 else []
        self._undecoded.append(records is None)
        records = records or []
        self._row_counts.append(len(records))
        if self._labels is not None and records:
            self._labels.extend(row_labels(self._label_for(request_id, client_request_id), len(records)))
        page, n = self._page, self._page_rows
        for record in records:
            for key in record.keys() - page.keys():
                page[key] = [None] * n  # a column first seen here: earlier rows lack it
            for key, values in page.items():
                values.append(record.get(key))
            n += 1
        self._page_rows = n
        if n >= PAGE_ROWS:
            self._flush_page()

    def _flush_page(self) -> None:
        for name, dtype in PER_PAYLOAD.items():
            pending = getattr(self, name)
            if pending:
                self._done[name].append(np.asarray(pending, dtype=dtype))
                setattr(self, name, [])
        for key, values in self._page.items():
            chunks = self._chunks.setdefault(key, [])
            if not chunks and self._chunk_rows:
                chunks.append(np.full(self._chunk_rows, np.nan))  # a column first seen in this page
            chunks.append(column_array(values))
        for key, chunks in self._chunks.items():
            if key not in self._page and self._page_rows:
                chunks.append(np.full(self._page_rows, np.nan))  # a column this page lacked
        self._chunk_rows += self._page_rows
        self._page, self._page_rows = {}, 0

    def finish(self) -> LogColumns:
        self._flush_page()
        # pages of different kinds (numbers in one, a string in another) make an object column
        self.columns = {k: (np.concatenate(v) if len(v) > 1 else v[0]) for k, v in self._chunks.items()}
        self._chunks = {}
        for name, dtype in PER_PAYLOAD.items():
            done = self._done[name]
            setattr(self, name, np.concatenate(done) if done else np.zeros(0, dtype=dtype))
        self._done = {}
        self.offsets = np.concatenate([[0], np.cumsum(self._row_counts, dtype=np.int64)])
        self._row_counts = []
        return self

    def span(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        """The payloads logged in [start_ms, end_ms)."""
        lo, hi = np.searchsorted(self.ts, [start_ms, end_ms])
        return int(lo), int(hi)

    def entities(self, lo: int, hi: int) -> list[str]:
        return sorted(set(self.entity[lo:hi].tolist()))

    def view(self, lo: int, hi: int, entity: str | None = None, keep: Sequence[str] = ()) -> LogView:
        """Payloads lo..hi, of one served entity (None: all of them). Columns without a
        value in the window are left out, but for those in `keep` (the baseline's)."""
        rows = slice(int(self.offsets[lo]), int(self.offsets[hi]))
        if entity is None:
            mask = None
            pick = slice(lo, hi)
        else:
            mask = self.entity[lo:hi] == entity
            pick = np.flatnonzero(mask) + lo
        status = self.status[pick]
        ok = status < 400
        models = [m for m, _ in Counter(self.model[pick][ok].tolist()).most_common() if m]
        if mask is None:
            columns = {k: v[rows] for k, v in self.columns.items()}
            labels = self._labels[rows] if self._labels is not None else None
        else:
            row_mask = np.repeat(mask, np.diff(self.offsets[lo:hi + 1]))
            columns = {k: v[rows][row_mask] for k, v in self.columns.items()}
            labels = ([y for y, keep in zip(self._labels[rows], row_mask) if keep]
                      if self._labels is not None else None)
        n_rows = int(self.offsets[hi] - self.offsets[lo]) if mask is None else int(row_mask.sum())
        present = {k: v for k, v in columns.items() if k in keep or not _all_missing(v)}
        return LogView(requests=int(len(status)), errors=int((~ok).sum()), latency_ms=self.latency[pick],
                       models=models, columns=present, rows=n_rows, skipped=int(self._undecoded[pick].sum()),
                       labels=labels)


def _all_missing(values: np.ndarray) -> bool:
    if values.dtype.kind == "f":
        return bool(np.isnan(values).all())
    return all(v is None for v in values)
