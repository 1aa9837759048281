"""What crosses the wire that the engine's entities don't already say.

Engine entities (engine/tracking/entities.py) carry MLflow's field names and are returned as they
are. Two things need the wire's own shape:
- non-finite metric values: protobuf JSON writes them as "NaN", "Infinity", "-Infinity",
  and the mlflow client parses those; msgspec would write null, which reads back as 0.0;
- request messages: one msgspec Struct per MLflow request, decoded leniently
  (Litestar's strict=False), so "12" and "NaN" are accepted where protobuf JSON allows.
"""
from __future__ import annotations

import math

import msgspec

from cairn.engine.tracking.entities import Metric, Run


class KeyValue(msgspec.Struct):
    key: str
    value: str = ""


class WireMetric(msgspec.Struct):
    key: str
    value: float | str
    timestamp: int
    step: int = 0


def number(x: float) -> float | str:
    """A double as protobuf JSON writes it: non-finite values as strings."""
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def metrics_out(metrics: list[Metric]) -> list:
    """Metrics as MLflow's JSON writes them (non-finite values as strings)."""
    if all(math.isfinite(m.value) for m in metrics):
        return metrics
    return [
        m if math.isfinite(m.value) else WireMetric(m.key, number(m.value), m.timestamp, m.step)
        for m in metrics
    ]


def run_out(run: Run) -> Run:
    metrics = run.data.metrics
    out = metrics_out(metrics)
    if out is metrics:
        return run
    return msgspec.structs.replace(run, data=msgspec.structs.replace(run.data, metrics=out))


def tags_dict(tags: list[KeyValue] | None) -> dict[str, str]:
    return {t.key: t.value for t in tags or ()}
