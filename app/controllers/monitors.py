"""/api/2.0/monitors: endpoint monitors and model baselines over HTTP (the engine's
MonitorStore; `cairn monitors` and the SDK do the same).

  POST   /api/2.0/monitors/create   {endpoint_name, granularities?, settle_s?} -> {monitor}
  GET    /api/2.0/monitors/get?endpoint_name=          -> {monitor}
  GET    /api/2.0/monitors/list                        -> {monitors} (the endpoints the caller sees)
  DELETE /api/2.0/monitors/delete?endpoint_name=       -> {}
  POST   /api/2.0/monitors/refresh  {endpoint_name}    -> {payloads_read, windows_written, seconds}
  GET    /api/2.0/monitors/metrics?endpoint_name=&granularity=&entity=&start_ms=&end_ms=&profiles=
         -> {windows: [...]} oldest first; `profiles=true` adds each window's column profiles
  POST   /api/2.0/monitors/labels {endpoint_name, labels: {request_id: label}} -> {labels, already_read}
         (ground truth; a label per row of a request as a list; by Databricks' or the client's id)
  PUT    /api/2.0/monitors/alerts {endpoint_name, alerts: [{name, metric, op, threshold, column?,
         granularity?, entity?}], webhook_url?} -> {alerts}
  GET    /api/2.0/monitors/alerts?endpoint_name= -> {alerts: [{rule, state, since_ms, value, ...}]}
         (firing ones are also the gauge cairn_monitor_alert_firing on /metrics)
  POST   /api/2.0/monitors/baselines/set {name, version, columns: {col: [values]}} -> {profile}
  GET    /api/2.0/monitors/baselines/get?name=&version= -> {profile}

Who may: a monitor is its endpoint's (CAN_VIEW reads it, CAN_QUERY posts labels, CAN_MANAGE
creates, refreshes and deletes it); a baseline is its model's (EXECUTE reads it, MODIFY sets it).
"""
from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, post, put

from cairn.app.registrywire import required
from cairn.app.wire import number
from cairn.engine.datadir import Engine
from cairn.engine.errors import invalid
from cairn.engine.governance.access import CAN_MANAGE, CAN_QUERY, EXECUTE, MODIFY, Access
from cairn.engine.governance.privileges import SERVING_ENDPOINT
from cairn.engine.monitoring.profiles import profile_columns, without_samples
from cairn.engine.monitoring.records import ALL, MonitorRecord, WindowRecord
from cairn.engine.monitoring.store import DEFAULT_GRANULARITIES, DEFAULT_SETTLE_S

MAX_BASELINE_VALUES = 5_000_000


class CreateMonitor(msgspec.Struct):
    endpoint_name: str | None = None
    granularities: list[str | int] | None = None
    settle_s: float = DEFAULT_SETTLE_S
    problem_type: str = ""


class RefreshMonitor(msgspec.Struct):
    endpoint_name: str | None = None


class SetAlerts(msgspec.Struct):
    endpoint_name: str | None = None
    alerts: list[Any] = []
    webhook_url: str | None = None


class PostLabels(msgspec.Struct):
    endpoint_name: str | None = None
    labels: dict[str, Any] | None = None


class SetBaseline(msgspec.Struct):
    name: str | None = None
    version: str | int | None = None
    columns: dict[str, list[Any]] | None = None


def monitor_out(m: MonitorRecord) -> dict:
    return {"endpoint_name": m.endpoint, "granularities_s": m.granularities, "settle_s": m.settle_s,
            "problem_type": m.problem_type,
            "created_ms": m.created_ms, "created_by": m.created_by, "last_refresh_ms": m.last_refresh_ms,
            "final_until_ms": {k: v for k, v in m.final_until.items()}}


def window_out(w: WindowRecord, profiles: bool) -> dict:
    out = msgspec.to_builtins(w)
    if not profiles:
        out.pop("profile", None)
    elif "profile" in out:
        _columns_out(out["profile"])
    return out


def _columns_out(profile: dict) -> dict:
    """The values behind the statistics stay in the store; the histogram's open ends
    go as protobuf JSON's "-Infinity" / "Infinity" (msgspec would write null)."""
    for c in without_samples(profile)["columns"]:
        if c.get("bin_edges"):
            c["bin_edges"] = [number(x) for x in c["bin_edges"]]
    return profile


class MonitorController(Controller):
    path = "/api/2.0/monitors"
    tags = ("monitors",)

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, engine: Engine, access: Access, data: CreateMonitor) -> dict:
        name = required(data.endpoint_name, "endpoint_name")
        access.endpoint(name, CAN_MANAGE)
        m = engine.monitoring.create_monitor(name, data.granularities or DEFAULT_GRANULARITIES, data.settle_s,
                                             created_by=access.caller.principal, problem_type=data.problem_type)
        return {"monitor": monitor_out(m)}

    @get("/get", sync_to_thread=False)
    def get_monitor(self, engine: Engine, access: Access, endpoint_name: str | None = None) -> dict:
        access.endpoint(required(endpoint_name, "endpoint_name"))
        return {"monitor": monitor_out(engine.monitoring.get_monitor(endpoint_name))}

    @get("/list", sync_to_thread=False)
    def list_monitors(self, engine: Engine, access: Access) -> dict:
        monitors = engine.monitoring.list_monitors()
        seen = set(access.visible(SERVING_ENDPOINT, [m.endpoint for m in monitors]))
        return {"monitors": [monitor_out(m) for m in monitors if m.endpoint in seen]}

    @delete("/delete", status_code=200, sync_to_thread=True)
    def delete_monitor(self, engine: Engine, access: Access, endpoint_name: str | None = None) -> dict:
        access.endpoint(required(endpoint_name, "endpoint_name"), CAN_MANAGE)
        engine.monitoring.delete_monitor(endpoint_name)
        return {}

    # A refresh reads the log and computes statistics: in a thread, off the event loop.
    @post("/refresh", status_code=200, sync_to_thread=True)
    def refresh(self, engine: Engine, access: Access, data: RefreshMonitor) -> dict:
        name = required(data.endpoint_name, "endpoint_name")
        access.endpoint(name, CAN_MANAGE)
        return msgspec.to_builtins(engine.monitoring.refresh(name))

    @post("/labels", status_code=200, sync_to_thread=True)
    def labels(self, engine: Engine, access: Access, data: PostLabels) -> dict:
        name = required(data.endpoint_name, "endpoint_name")
        access.endpoint(name, CAN_QUERY)
        read = engine.monitoring.log_labels(name, data.labels or {})
        return {"labels": len(data.labels or {}), "already_read": read}

    @put("/alerts", status_code=200, sync_to_thread=True)
    def set_alerts(self, engine: Engine, access: Access, data: SetAlerts) -> dict:
        name = required(data.endpoint_name, "endpoint_name")
        access.endpoint(name, CAN_MANAGE)
        engine.monitoring.set_alerts(name, data.alerts, data.webhook_url)
        return self._alerts(engine, name)

    @get("/alerts", sync_to_thread=False)
    def get_alerts(self, engine: Engine, access: Access, endpoint_name: str | None = None) -> dict:
        access.endpoint(required(endpoint_name, "endpoint_name"))
        return self._alerts(engine, endpoint_name)

    @staticmethod
    def _alerts(engine: Engine, endpoint: str) -> dict:
        return {"alerts": [{"rule": msgspec.to_builtins(rule), **msgspec.to_builtins(state)}
                           for rule, state in engine.monitoring.alerts(endpoint)]}

    @get("/metrics", sync_to_thread=True)
    def metrics(self, engine: Engine, access: Access, endpoint_name: str | None = None,
                granularity: str | None = None, entity: str = ALL, start_ms: int | None = None,
                end_ms: int | None = None, profiles: bool = False) -> dict:
        access.endpoint(required(endpoint_name, "endpoint_name"))
        windows = engine.monitoring.windows(endpoint_name, granularity, entity, start_ms, end_ms)
        return {"windows": [window_out(w, profiles) for w in windows]}

    @post("/baselines/set", status_code=200, sync_to_thread=True)
    def set_baseline(self, engine: Engine, access: Access, data: SetBaseline) -> dict:
        name = required(data.name, "name")
        access.model(name, MODIFY)
        if not data.columns:
            raise invalid("columns: {column: [values]} of the training inputs (and predictions) is required")
        if sum(len(v) for v in data.columns.values()) > MAX_BASELINE_VALUES:
            raise invalid(f"columns: at most {MAX_BASELINE_VALUES:,} values in all; profile a sample of them")
        version = str(required(None if data.version is None else str(data.version), "version"))
        profile = profile_columns(data.columns, source="REST")
        engine.monitoring.set_baseline(name, version, profile)
        return {"profile": _profile_out(profile)}

    @get("/baselines/get", sync_to_thread=False)
    def get_baseline(self, engine: Engine, access: Access, name: str | None = None,
                     version: str | None = None) -> dict:
        access.model(required(name, "name"), EXECUTE)
        return {"profile": _profile_out(engine.monitoring.get_baseline(name, required(version, "version")))}


def _profile_out(profile) -> dict:
    return _columns_out(msgspec.to_builtins(profile))
