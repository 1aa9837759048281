"""Alerts on a monitor: thresholds on any window metric, evaluated on the newest window
after each refresh, with firing and resolved state kept in LMDB (and told to a webhook
when it changes).

A rule: {name, metric, op (> >= < <=), threshold, column?, granularity?, entity?}.
Metrics: a column's drift statistic (psi, js_distance, wasserstein, total_variation,
l_infinity, ks_p_value, chi2_p_value; `column` names it, or "*" for any column: the
worst), the dataset's drift_share, quality (accuracy, precision, recall, f1, roc_auc,
mae, rmse, r2), and traffic (requests, error_rate, latency_p50_ms, latency_p99_ms).
A rule whose metric the newest window lacks (no labels yet, no baseline) keeps its state.
"""
from __future__ import annotations

import operator
from collections.abc import Callable

import msgspec

from cairn.engine.errors import invalid
from cairn.engine.monitoring.records import FIRING, OK, AlertRule, AlertState, WindowRecord, granularity_seconds

DRIFT_METRICS = ("psi", "js_distance", "wasserstein", "total_variation", "l_infinity", "ks_p_value", "chi2_p_value")
QUALITY_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "r2")
TRAFFIC_METRICS = ("requests", "error_rate", "latency_p50_ms", "latency_p99_ms", "drift_share")
METRICS = (*DRIFT_METRICS, *QUALITY_METRICS, *TRAFFIC_METRICS)
OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                  "<=": operator.le}
MAX_RULES = 50


def check_rules(rules: object, granularities: list[int], columns: set[str] | None = None) -> list[AlertRule]:
    """The rules, checked. `columns`: what the served versions' baselines name (None when
    none has a baseline yet, so no column can be checked)."""
    if not isinstance(rules, list) or len(rules) > MAX_RULES:
        raise invalid(f"alerts: a list of at most {MAX_RULES} rules {{name, metric, op, threshold, column?}}")
    out, names = [], set()
    for i, rule in enumerate(rules):
        if isinstance(rule, dict) and "granularity" in rule:
            rule = {**{k: v for k, v in rule.items() if k != "granularity"},
                    "granularity_s": granularity_seconds(rule["granularity"])}
        try:
            r = rule if isinstance(rule, AlertRule) else msgspec.convert(rule, AlertRule)
        except msgspec.ValidationError as exc:
            raise invalid(f"alerts[{i}]: {exc}") from None
        if not r.name or len(r.name) > 100 or r.name in names:
            raise invalid(f"alerts[{i}].name: 1-100 characters, unique, got {r.name!r}")
        if r.metric not in METRICS:
            raise invalid(f"alerts[{i}].metric: one of {', '.join(METRICS)}, got {r.metric!r}")
        if r.op not in OPS:
            raise invalid(f"alerts[{i}].op: one of {', '.join(OPS)}, got {r.op!r}")
        if r.column != "*" and r.metric not in DRIFT_METRICS:
            raise invalid(f"alerts[{i}].column: only drift metrics are per column; {r.metric} is the window's")
        if r.column != "*" and columns is not None and r.column not in columns:
            raise invalid(f"alerts[{i}].column: the endpoint's models have no column {r.column!r} "
                          f"(their baselines have {', '.join(sorted(columns)[:20])})")
        if r.granularity_s and r.granularity_s not in granularities:
            raise invalid(f"alerts[{i}]: the monitor has no {r.granularity_s} s windows (it has {granularities})")
        names.add(r.name)
        out.append(r)
    return out


def metric_value(rule: AlertRule, w: WindowRecord) -> float | None:
    """The rule's metric in window `w` (for "*" columns the one nearest to firing)."""
    if rule.metric == "requests":
        return float(w.requests)
    if rule.metric == "error_rate":
        return w.errors / w.requests if w.requests else None
    if rule.metric in ("latency_p50_ms", "latency_p99_ms"):
        return getattr(w, rule.metric)
    if rule.metric == "drift_share":
        return w.drift.share if w.drift else None
    if rule.metric in QUALITY_METRICS:
        return w.quality.get(rule.metric)
    if w.drift is None:
        return None
    values = [getattr(c, rule.metric) for c in w.drift.columns
              if (rule.column == "*" or c.name == rule.column) and getattr(c, rule.metric) is not None]
    if not values:
        return None
    return max(values) if rule.op in (">", ">=") else min(values)


def evaluate(rule: AlertRule, w: WindowRecord | None, state: AlertState, now: int) -> AlertState:
    """The rule's state after looking at the newest window `w`."""
    value = metric_value(rule, w) if w is not None else None
    if value is None:
        return state
    firing = OPS[rule.op](value, rule.threshold)
    new = msgspec.structs.replace(state, value=value, window_start_ms=w.start_ms)
    if firing and state.state != FIRING:
        return msgspec.structs.replace(new, state=FIRING, since_ms=now, fired=state.fired + 1)
    if not firing and state.state == FIRING:
        return msgspec.structs.replace(new, state=OK, since_ms=now)
    return new
