"""Storage records of monitoring, one sub-database per record kind.

  baselines        full model name \\0 version              -> Profile (profiles.py)
  monitors         utf-8 endpoint name                       -> MonitorRecord
  monitor_windows  u64 monitor + u32 granularity s + i64 window start ms + utf-8 entity
                                                             -> WindowRecord
  monitor_labels   u64 monitor + utf-8 request id                -> msgpack label (or labels, per row)
  monitor_requests u64 monitor + utf-8 request id                -> i64 the request's log time
  monitor_alerts   u64 monitor + utf-8 rule name                 -> AlertState
The request index is written as a refresh reads the log (request ids and client request
ids), so a label posted later finds its window and has it computed again.
The entity is a served entity's name, or ALL for every request of the endpoint.
Counter: `next_monitor_id`. A monitor's id is never reused, so windows a deleted
monitor left (deleted in bounded chunks) never show under a new one.
"""
from __future__ import annotations

import re

import msgspec

from cairn.engine.errors import invalid
from cairn.engine.monitoring.drift import DatasetDrift
from cairn.engine.monitoring.profiles import Profile
from cairn.engine.store.codec import Codec

MONITORING_TABLES: dict[str, bool] = {"baselines": False, "monitors": False, "monitor_windows": False,
                                      "monitor_labels": False, "monitor_requests": False,
                                      "monitor_alerts": False}
NEXT_MONITOR_ID = b"next_monitor_id"
ALL = "*"
OK, FIRING = "ok", "firing"
_UNITS = {"s": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400,
          "w": 604800, "week": 604800}
_GRANULARITY = re.compile(r"\s*(\d+)\s*([a-z]+?)s?\s*")


def granularity_seconds(text: object) -> int:
    """`5 minutes`, `1 hour`, `1d`, `30m`, or seconds -> seconds (a minute to a week)."""
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = text
    else:
        m = _GRANULARITY.fullmatch(str(text).lower()) if isinstance(text, str) else None
        if not m or m.group(2) not in _UNITS:
            raise invalid(f"Invalid granularity {text!r}: use e.g. '5 minutes', '1 hour', '1 day' or seconds")
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if not 60 <= seconds <= 604800:
        raise invalid(f"Granularity {text!r}: between one minute and one week")
    return seconds


class AlertRule(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    metric: str
    op: str
    threshold: float
    column: str = "*"
    granularity_s: int = 0  # 0: the monitor's smallest
    entity: str = ALL


class AlertState(msgspec.Struct, kw_only=True):
    name: str
    state: str = OK
    since_ms: int = 0
    value: float | None = None
    window_start_ms: int = 0
    fired: int = 0  # how many times it went from ok to firing


class MonitorRecord(msgspec.Struct, array_like=True):
    monitor_id: int
    endpoint: str
    granularities: list[int]  # seconds, ascending
    created_ms: int
    created_by: str
    settle_s: float  # a window is final this long after it ends (late payload writes)
    final_until: dict[str, int] = {}  # granularity (str) -> ms: windows ending by then are final
    last_refresh_ms: int = 0
    last_error: str = ""
    problem_type: str = ""  # classification | regression | "" (inferred from the labels)
    recompute_from_ms: int = 0  # labels arrived for requests logged from then on (0: none)
    alerts: list[AlertRule] = []
    webhook_url: str = ""  # told of every alert that fires or resolves (POST, JSON)
    indexed_until_ms: int = 0  # payloads logged before this have their request ids in monitor_requests


class WindowRecord(msgspec.Struct, kw_only=True):
    start_ms: int
    end_ms: int
    granularity_s: int
    entity: str
    requests: int
    errors: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    rows: int
    skipped: int  # logged payloads that did not decode
    final: bool
    model: str = ""  # the model version compared against, "name/version"
    profile: Profile | None = None
    drift: DatasetDrift | None = None  # against the baseline (Databricks' BASELINE)
    consecutive: DatasetDrift | None = None  # against the window before (CONSECUTIVE)
    note: str = ""  # why a drift is missing ("no baseline for iris v3", ...)
    labeled: int = 0  # rows with ground truth
    quality: dict[str, float] = {}  # quality.py's metrics over those rows


MONITOR = Codec(MonitorRecord)
ALERT_STATE = Codec(AlertState)
WINDOW = Codec(WindowRecord)
