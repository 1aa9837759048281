"""Logged requests and responses as columns: what a monitor profiles. The payload log
keeps each request's body as sent (MLflow's scoring formats) and the response as
answered; this reads them back into named columns.

Requests: `dataframe_split` {columns, data}, `dataframe_records` [{col: v}], `instances`
and `inputs` as records, as {col: [values]}, or as rows of values (named by `names`, the
baseline's columns in order). Responses: {"predictions": [...]} of scalars (the column
`prediction`, also for rows of one value), of rows (`prediction_0`, ...) or of records (their keys). A payload that
does not decode (truncated by the log's size cap, CSV) is skipped and counted.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec

PREDICTION = "prediction"


def _decode(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        try:
            return json.loads(text)  # NaN and Infinity, as MLflow's client may send them
        except (ValueError, RecursionError):
            return None


def _records(doc: Any, names: Sequence[str]) -> list[dict[str, Any]] | None:
    if not isinstance(doc, dict):
        return None
    if "dataframe_split" in doc:
        split = doc["dataframe_split"]
        if not isinstance(split, dict):
            return None
        cols, data = split.get("columns") or list(names), split.get("data") or []
        return [dict(zip(cols, row)) for row in data if isinstance(row, list)]
    for key in ("dataframe_records", "instances", "inputs"):
        if key in doc:
            return _rows(doc[key], names)
    return None


def _rows(value: Any, names: Sequence[str]) -> list[dict[str, Any]] | None:
    if isinstance(value, dict):  # {col: [values]} (or one row of scalars)
        cols = {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        n = max((len(v) for v in cols.values()), default=0)
        return [{k: (v[i] if i < len(v) else None) for k, v in cols.items()} for i in range(n)]
    if isinstance(value, list):
        out = []
        for row in value:
            if isinstance(row, dict):
                out.append(row)
            elif isinstance(row, list):
                out.append(dict(zip(names or [f"input_{i}" for i in range(len(row))], row)))
            else:
                out.append(dict(zip(names[:1] or ["input_0"], [row])))
        return out
    return None


def _predictions(doc: Any) -> list[dict[str, Any]] | None:
    preds = doc.get("predictions") if isinstance(doc, dict) else doc
    if not isinstance(preds, list):
        return None
    out = []
    for p in preds:
        if isinstance(p, dict):
            out.append({f"{PREDICTION}_{k}" if k != PREDICTION else k: v for k, v in p.items()})
        elif isinstance(p, list) and len(p) == 1:  # one output per row, as a regressor's [[y]]
            out.append({PREDICTION: p[0]})
        elif isinstance(p, list):
            out.append({f"{PREDICTION}_{i}": v for i, v in enumerate(p)})
        else:
            out.append({PREDICTION: p})
    return out


def row_labels(label: Any, n: int) -> list[Any]:
    """A request's label(s) per row: a list of one per row, or one value for one row."""
    if isinstance(label, list):
        return label if len(label) == n else [None] * n
    return [label] if n == 1 else [None] * n


def payload_rows(request: str, response: str, names: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """One logged payload's rows, inputs by name with the predictions beside them (when
    the response has one per row); None when the request does not decode."""
    records = _records(_decode(request), names) if request else None
    if records is None:
        return None
    preds = _predictions(_decode(response)) if response else None
    if preds is not None and len(preds) == len(records):
        return [{**r, **p} for r, p in zip(records, preds)]
    return records
