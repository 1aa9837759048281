"""MonitorStore: baselines per model version, one monitor per serving endpoint, and the
windows a refresh computes from the endpoint's payload log.

A refresh reads only what is new: every granularity's windows up to `final_until` are
final (they ended more than `settle_s` ago, so no late payload write can still land in
them) and are never computed again; the log is read from the earliest granularity's
`final_until` on, and windows still open are computed again next time. Each window
holds, per served entity and for all of them together (ALL): request, error and
latency figures, the profile of inputs and predictions, drift against the model
version's baseline and against the window before. One transaction writes a refresh's
windows and the monitor's new `final_until`.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import msgspec

from cairn.engine.errors import CairnError, already_exists, invalid, not_found
from cairn.engine.monitoring.alerts import check_rules, evaluate
from cairn.engine.monitoring.drift import dataset_drift
from cairn.engine.monitoring.logcolumns import LogColumns, LogView
from cairn.engine.monitoring.profiles import (
    BASELINE_FILE,
    PROFILE_DECODE,
    PROFILE_ENCODE,
    Profile,
    no_pace,
    profile_columns,
)
from cairn.engine.monitoring.quality import PROBLEM_TYPES, quality
from cairn.engine.monitoring.records import (
    ALERT_STATE,
    ALL,
    FIRING,
    MONITOR,
    NEXT_MONITOR_ID,
    WINDOW,
    AlertRule,
    AlertState,
    MonitorRecord,
    WindowRecord,
    granularity_seconds,
)
from cairn.engine.registry.names import parse_model_name, version_number
from cairn.engine.store.keys import i64, read_i64, u32, u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms

DEFAULT_GRANULARITIES = ("5 minutes", "1 hour", "1 day")
DEFAULT_SETTLE_S = 60.0
MAX_GRANULARITIES = 6
PAGE = 1_000  # payloads read a transaction (~3 ms of decoding: a paced refresh rests between)
MAX_LABELS = 100_000
END = 1 << 62  # later than any timestamp
WEBHOOK_TIMEOUT_S = 2.0


def import_statistics() -> None:
    """Import what a refresh computes with (numpy, scipy, scikit-learn's metrics). An
    import holds the GIL for up to a second: a server imports them as it starts, not
    in the middle of its traffic at the first refresh."""
    import scipy.spatial.distance  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.metrics  # noqa: F401


def _baseline_key(model: str, version: str) -> bytes:
    return f"{parse_model_name(model).full}\0{version_number(version)}".encode()


def _window_key(monitor_id: int, granularity: int, start_ms: int, entity: str) -> bytes:
    return u64(monitor_id) + u32(granularity) + i64(start_ms) + entity.encode()


class RefreshResult(msgspec.Struct, kw_only=True):
    endpoint: str
    payloads_read: int
    windows_written: int
    seconds: float
    alerts_changed: list[AlertState] = []  # fired or resolved by this refresh


class MonitorStore:
    def __init__(self, lenv: LmdbEnv, endpoints, registry, artifacts):
        self._env = lenv
        self._db = lenv.dbs
        self._endpoints = endpoints
        self._registry = registry
        self._artifacts = artifacts

    # -- baselines -------------------------------------------------------------------
    def set_baseline(self, model: str, version: str | int, profile: Profile) -> None:
        """The profile a model version was trained on (its version must exist); it
        takes the place of the one logged with the model, if any."""
        mv = self._registry.get_model_version(model, version_number(version))
        key = _baseline_key(model, mv.version)
        self._env.write(lambda b: b.txn.put(key, PROFILE_ENCODE(profile), db=b.dbs["baselines"]))

    def get_baseline(self, model: str, version: str | int) -> Profile:
        """The version's baseline: the one set, else the one logged in its model folder
        (`cairn_baseline.msgpack`, written by log_model with training data and by
        autologging)."""
        self._registry.get_model_version(model, version_number(version))  # RESOURCE_DOES_NOT_EXIST naming it
        profile = self._baseline(_baseline_key(model, version).decode())
        if profile is None:
            raise not_found(f"Model {model} version {version} has no baseline profile: make one with "
                            f"`cairn monitors baseline {model} {version} --from-file TRAINING_DATA` (or "
                            "--from-table), or log the model with training_data= (autologging does)")
        return profile

    def _baseline(self, model_key: str) -> Profile | None:
        """The baseline of "full name\0version": set, else logged with the model."""
        with self._env.read() as txn:
            raw = txn.get(model_key.encode(), db=self._db["baselines"])
        if raw is not None:
            return PROFILE_DECODE(raw)
        name, _, version = model_key.partition("\0")
        try:
            location = self._registry.get_model_version(name, version).storage_location
            with self._artifacts.open(f"{location}/{BASELINE_FILE}") as f:
                return PROFILE_DECODE(f.read())
        except CairnError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        except msgspec.DecodeError:
            return None  # not a profile this Cairn reads: the version has no usable baseline

    # -- monitors --------------------------------------------------------------------
    def create_monitor(self, endpoint: str, granularities=DEFAULT_GRANULARITIES, settle_s: float = DEFAULT_SETTLE_S,
                       created_by: str = "", problem_type: str = "") -> MonitorRecord:
        """`problem_type`: classification or regression, for the quality metrics labels
        give ("" infers it from the labels)."""
        self._endpoints.get_endpoint(endpoint)  # RESOURCE_DOES_NOT_EXIST naming it
        if problem_type not in PROBLEM_TYPES:
            raise invalid(f"problem_type: classification or regression, got {problem_type!r}")
        if isinstance(granularities, (str, int)):
            granularities = [granularities]
        grans = sorted({granularity_seconds(g) for g in granularities})
        if not grans or len(grans) > MAX_GRANULARITIES:
            raise invalid(f"granularities: between 1 and {MAX_GRANULARITIES}")
        if isinstance(settle_s, bool) or not isinstance(settle_s, (int, float)) or not 0 <= settle_s <= 3600:
            raise invalid(f"settle_s: between 0 and 3600 seconds, got {settle_s!r}")

        def op(b: Batch) -> MonitorRecord:
            if b.txn.get(endpoint.encode(), db=b.dbs["monitors"]) is not None:
                raise already_exists(f"Endpoint '{endpoint}' already has a monitor.")
            rec = MonitorRecord(b.next_id(NEXT_MONITOR_ID), endpoint, grans, now_ms(), created_by, float(settle_s),
                                problem_type=problem_type)
            b.txn.put(endpoint.encode(), MONITOR.encode(rec), db=b.dbs["monitors"])
            return rec

        return self._env.write(op)

    def get_monitor(self, endpoint: str) -> MonitorRecord:
        with self._env.read() as txn:
            raw = txn.get(str(endpoint).encode(), db=self._db["monitors"])
        if raw is None:
            raise not_found(f"Endpoint '{endpoint}' has no monitor: create one with `cairn monitors create "
                            f"{endpoint}`")
        return MONITOR.decode(raw)

    def list_monitors(self) -> list[MonitorRecord]:
        with self._env.read() as txn, txn.cursor(db=self._db["monitors"]) as cur:
            return [MONITOR.decode(v) for _, v in cur]

    def delete_monitor(self, endpoint: str) -> None:
        rec = self.get_monitor(endpoint)
        prefix = u64(rec.monitor_id)

        def op(b: Batch) -> None:
            b.txn.delete(endpoint.encode(), db=b.dbs["monitors"])
            for table in ("monitor_windows", "monitor_labels", "monitor_requests", "monitor_alerts"):
                with b.txn.cursor(db=b.dbs[table]) as cur:
                    keys = []
                    if cur.set_range(prefix):
                        for k in cur.iternext(values=False):
                            if not k.startswith(prefix):
                                break
                            keys.append(k)
                for k in keys:
                    b.txn.delete(k, db=b.dbs[table])

        self._env.write(op)

    # -- windows ---------------------------------------------------------------------
    def windows(self, endpoint: str, granularity: object = None, entity: str = ALL, start_ms: int | None = None,
                end_ms: int | None = None) -> list[WindowRecord]:
        """A monitor's windows of one granularity (its smallest by default) and entity,
        oldest first, starting in [start_ms, end_ms)."""
        rec = self.get_monitor(endpoint)
        g = granularity_seconds(granularity) if granularity is not None else rec.granularities[0]
        if g not in rec.granularities:
            raise invalid(f"The monitor of '{endpoint}' has no {g} s windows: it has {rec.granularities}")
        prefix = u64(rec.monitor_id) + u32(g)
        out = []
        with self._env.read() as txn, txn.cursor(db=self._db["monitor_windows"]) as cur:
            if cur.set_range(prefix + (i64(start_ms) if start_ms is not None else b"")):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    start = read_i64(k, 12)
                    if end_ms is not None and start >= end_ms:
                        break
                    if k[20:].decode() == entity:
                        out.append(WINDOW.decode(v))
        return out

    def refresh(self, endpoint: str, now: int | None = None, pace: Callable[[], None] = no_pace) -> RefreshResult:
        """Compute the windows the payload log has news for, then their alerts, in one
        write at the end (an interrupted refresh leaves nothing half-done). `pace`: called
        often (per payload read, per window), so a background caller can rest there and
        leave the GIL to serving; it may raise to abandon the refresh."""
        import numpy as np

        t0 = time.perf_counter()
        rec = self.get_monitor(endpoint)
        now = now if now is not None else now_ms()
        again = rec.recompute_from_ms  # labels came for requests logged from then on
        done_by = {g: min(rec.final_until.get(str(g), 0), again - again % (g * 1000) if again else 1 << 62)
                   for g in rec.granularities}
        baselines: dict[str, Profile | None] = {}  # by model key, read once a refresh
        log = self._read_log(rec, min(done_by.values()), now, baselines, pace)
        settle = int(rec.settle_s * 1000)
        written: list[tuple[bytes, WindowRecord]] = []
        fresh: dict[bytes, WindowRecord] = {}  # this pass's windows: the next one compares against them
        final_until = dict(rec.final_until)
        for g in rec.granularities:
            size = g * 1000
            new = log.ts[log.span(done_by[g], END)[0]:]
            for wstart in np.unique(new - new % size).tolist():
                final = wstart + size + settle <= now
                lo, hi = log.span(wstart, wstart + size)
                entities = log.entities(lo, hi)
                keep = self._keep(log, lo, hi, baselines)
                for entity in [ALL, *entities] if len(entities) > 1 else [ALL]:
                    pace()
                    view = log.view(lo, hi, None if entity == ALL else entity, keep)
                    name = entity if entity == ALL else entity or "?"
                    window = self._window(rec, g, wstart, name, view, final, fresh, baselines, pace)
                    key = _window_key(rec.monitor_id, g, wstart, name)
                    written.append((key, window))
                    fresh[key] = window
                if final:
                    final_until[str(g)] = wstart + size
        rec.final_until, rec.last_refresh_ms, rec.last_error = final_until, now, ""
        if len(log):
            rec.indexed_until_ms = max(rec.indexed_until_ms, int(log.ts[-1]))
        prefix = u64(rec.monitor_id)
        changed: list[AlertState] = []

        def op(b: Batch) -> None:
            raw = b.txn.get(endpoint.encode(), db=b.dbs["monitors"])
            if raw is None:
                raise not_found(f"Endpoint '{endpoint}' has no monitor (deleted during the refresh)")
            stored = MONITOR.decode(raw)
            # labels posted while this refresh ran still ask for their windows again
            rec.recompute_from_ms = stored.recompute_from_ms if stored.recompute_from_ms != again else 0
            for key, window in written:
                b.txn.put(key, WINDOW.encode(window), db=b.dbs["monitor_windows"])
            for rule in rec.alerts:
                key = prefix + rule.name.encode()
                raw = b.txn.get(key, db=b.dbs["monitor_alerts"])
                state = ALERT_STATE.decode(raw) if raw is not None else AlertState(name=rule.name)
                after = evaluate(rule, self._newest(b.txn, rec, rule, fresh), state, now)
                if after.state != state.state:
                    changed.append(after)
                b.txn.put(key, ALERT_STATE.encode(after), db=b.dbs["monitor_alerts"])
            b.txn.put(endpoint.encode(), MONITOR.encode(rec), db=b.dbs["monitors"])

        self._env.write(op)
        if changed and rec.webhook_url:
            _notify(rec.webhook_url, endpoint, changed)
        return RefreshResult(endpoint=endpoint, payloads_read=len(log), windows_written=len(written),
                             seconds=time.perf_counter() - t0, alerts_changed=changed)

    def _index_requests(self, rec: MonitorRecord, ids: list[tuple[str, str, int]]) -> None:
        """(request id, client request id, log time) -> the monitor's request index, for
        labels posted later. Written page by page as a refresh reads, in short writes
        apart from the refresh's own, so none holds the writer (or the GIL) long; what an
        abandoned refresh wrote is written again, the same, by the next."""
        prefix, key = u64(rec.monitor_id), rec.endpoint.encode()

        def op(b: Batch) -> None:
            raw = b.txn.get(key, db=b.dbs["monitors"])
            if raw is None or MONITOR.decode(raw).monitor_id != rec.monitor_id:
                return  # deleted meanwhile: its keys would outlive it
            put, requests = b.txn.put, b.dbs["monitor_requests"]
            for request_id, client_request_id, ts in ids:
                when = i64(ts)
                for rid in (request_id, client_request_id):
                    if rid:
                        put(prefix + rid.encode(), when, db=requests)

        self._env.write(op)

    def _newest(self, txn, rec: MonitorRecord, rule: AlertRule, fresh: dict[bytes, WindowRecord]
                ) -> WindowRecord | None:
        """The newest window of the rule's granularity and entity (this refresh's or stored)."""
        g = rule.granularity_s or rec.granularities[0]
        prefix = u64(rec.monitor_id) + u32(g)
        mine = [w for k, w in fresh.items() if k.startswith(prefix) and w.entity == rule.entity]
        if mine:
            return max(mine, key=lambda w: w.start_ms)
        with txn.cursor(db=self._db["monitor_windows"]) as cur:
            end = prefix + b"\xff" * 8
            if cur.set_range(end) or cur.last():
                for k, v in cur.iterprev():
                    if k < prefix:
                        break
                    if k.startswith(prefix) and k[20:].decode() == rule.entity:
                        return WINDOW.decode(v)
        return None

    def note_error(self, endpoint: str, message: str) -> None:
        """Keep why a background refresh failed on the monitor (shown by get)."""

        def op(b: Batch) -> None:
            raw = b.txn.get(endpoint.encode(), db=b.dbs["monitors"])
            if raw is not None:
                rec = MONITOR.decode(raw)
                rec.last_error = message[:2000]
                b.txn.put(endpoint.encode(), MONITOR.encode(rec), db=b.dbs["monitors"])

        self._env.write(op)

    # -- alerts ----------------------------------------------------------------------
    def set_alerts(self, endpoint: str, rules: object, webhook_url: str | None = None) -> MonitorRecord:
        """Replace a monitor's alert rules (the states of rules kept by name stay)."""
        rec = self.get_monitor(endpoint)
        baselines = [p for m in self._served(endpoint) if (p := self._baseline(m)) is not None]
        checked = check_rules(rules, rec.granularities, {n for p in baselines for n in p.names} if baselines else None)
        if webhook_url and not re.fullmatch(r"https?://\S{1,2000}", webhook_url):
            raise invalid(f"webhook_url: an http(s) URL, got {webhook_url!r}")
        prefix = u64(rec.monitor_id)

        def op(b: Batch) -> MonitorRecord:
            raw = b.txn.get(endpoint.encode(), db=b.dbs["monitors"])
            if raw is None:
                raise not_found(f"Endpoint '{endpoint}' has no monitor")
            current = MONITOR.decode(raw)
            kept = {r.name for r in checked}
            for r in current.alerts:
                if r.name not in kept:
                    b.txn.delete(prefix + r.name.encode(), db=b.dbs["monitor_alerts"])
            current.alerts = checked
            if webhook_url is not None:
                current.webhook_url = webhook_url
            b.txn.put(endpoint.encode(), MONITOR.encode(current), db=b.dbs["monitors"])
            return current

        return self._env.write(op)

    def alerts(self, endpoint: str) -> list[tuple[AlertRule, AlertState]]:
        rec = self.get_monitor(endpoint)
        prefix = u64(rec.monitor_id)
        with self._env.read() as txn:
            out = []
            for rule in rec.alerts:
                raw = txn.get(prefix + rule.name.encode(), db=self._db["monitor_alerts"])
                out.append((rule, ALERT_STATE.decode(raw) if raw is not None else AlertState(name=rule.name)))
        return out

    def firing(self) -> list[tuple[str, str, bool]]:
        """(endpoint, rule, firing) of every alert of every monitor (the /metrics gauges)."""
        return [(m.endpoint, rule.name, state.state == FIRING) for m in self.list_monitors()
                for rule, state in self.alerts(m.endpoint)]

    def _read_log(self, rec: MonitorRecord, start_ms: int, now: int, baselines: dict[str, Profile | None],
                  pace: Callable[[], None]) -> LogColumns:
        """The payload log from `start_ms` up to `now` (a refresh never chases a log
        that grows as it reads), decoded once into columns; the request ids of payloads
        not yet indexed go to the request index as each page is read. Requests of
        bare values are named by their model version's baseline, else by the baseline of
        a version the endpoint serves (its versions take the same inputs, as a rule)."""
        default = next((p.names for m in self._served(rec.endpoint)
                        if (p := self._memo_baseline(m, baselines)) is not None), [])

        names: dict[str, list[str]] = {}

        def names_for(model_key: str) -> list[str]:
            if model_key not in names:
                profile = self._memo_baseline(model_key, baselines) if model_key else None
                names[model_key] = profile.names if profile is not None else default
            return names[model_key]

        log = LogColumns(names_for, self._label_reader(rec.monitor_id))
        keys: dict[tuple[str, str], str] = {}  # (model name, version) -> model key, parsed once
        token = None
        while True:
            page = self._endpoints.read_payloads(rec.endpoint, start_ms=start_ms or None, end_ms=now + 1,
                                                 max_results=PAGE, page_token=token)
            ids = []  # each payload's ids once: open windows are read again, but were indexed
            for r in page.items:
                pace()
                if r.shadow:
                    continue  # the shadow's answers never reached a client
                if r.timestamp_ms >= rec.indexed_until_ms:
                    ids.append((r.request_id, r.client_request_id, r.timestamp_ms))
                model = ""
                if r.model_name:
                    model = keys.get((r.model_name, r.model_version), "")
                    if not model:
                        model = keys[(r.model_name, r.model_version)] = (
                            f"{parse_model_name(r.model_name).full}\0{r.model_version}")
                log.add(r.timestamp_ms, r.served_entity_name, model, r.status_code, r.latency_ms, r.request,
                        r.response, r.request_id, r.client_request_id)
            if ids:
                self._index_requests(rec, ids)
            token = page.next_page_token
            if not token:
                return log.finish()

    def _served(self, endpoint: str) -> list[str]:
        """The model keys (full name \\0 version) of the versions the endpoint names."""
        return [f"{parse_model_name(e.entity_name).full}\0{e.entity_version}"
                for e in self._endpoints.get_endpoint(endpoint).config.served_entities if e.entity_version]

    def _label_reader(self, monitor_id: int):
        """(request id, client request id) -> the label posted for it; None when the
        monitor has no labels at all (nothing to look up per payload)."""
        prefix, db = u64(monitor_id), self._db["monitor_labels"]
        with self._env.read() as txn, txn.cursor(db=db) as cur:
            if not cur.set_range(prefix) or not cur.key().startswith(prefix):
                return None

        def label_for(request_id: str, client_request_id: str) -> Any:
            with self._env.read() as txn:
                for rid in (request_id, client_request_id):
                    raw = txn.get(prefix + rid.encode(), db=db) if rid else None
                    if raw is not None:
                        return msgspec.msgpack.decode(raw)
            return None

        return label_for

    def _memo_baseline(self, model_key: str, baselines: dict[str, Profile | None]) -> Profile | None:
        if model_key not in baselines:
            baselines[model_key] = self._baseline(model_key)
        return baselines[model_key]

    @staticmethod
    def _keep(log: LogColumns, lo: int, hi: int, baselines: dict[str, Profile | None]) -> list[str]:
        """The baseline columns of the versions logged in lo..hi: a window profiles them
        even when every value is missing (a null share of 100% is news)."""
        names: list[str] = []
        for m in set(log.model[lo:hi].tolist()):
            profile = baselines.get(m)
            if profile is not None:
                names.extend(profile.names)
        return names

    def _window(self, rec: MonitorRecord, g: int, wstart: int, entity: str, view: LogView, final: bool,
                fresh: dict[bytes, WindowRecord], baselines: dict[str, Profile | None],
                pace: Callable[[], None]) -> WindowRecord:
        import numpy as np

        # The version compared against: the busiest one that has a baseline (for ALL,
        # with several versions served), else the busiest.
        model_key, baseline = (view.models[0] if view.models else ""), None
        for m in view.models:
            if self._memo_baseline(m, baselines) is not None:
                model_key, baseline = m, baselines[m]
                break
        measured, labeled = quality(view.columns, view.labels, rec.problem_type) if view.labels else ({}, 0)
        profile = drift = consecutive = None
        note = ""
        if view.rows:
            profile = profile_columns(view.columns, f"window {wstart}", baseline, pace)
            if baseline is not None:
                drift = dataset_drift(baseline, view.columns, pace)
            else:
                name, _, version = model_key.partition("\0")
                note = f"no baseline for {name} version {version}" if model_key else "no model version logged"
            previous = self._previous(rec, g, wstart, entity, fresh)
            if previous is not None and previous.profile is not None:
                consecutive = dataset_drift(previous.profile, view.columns, pace)
        lat = view.latency_ms
        return WindowRecord(
            start_ms=wstart, end_ms=wstart + g * 1000, granularity_s=g, entity=entity, requests=view.requests,
            errors=view.errors, latency_p50_ms=float(np.percentile(lat, 50)) if len(lat) else None,
            latency_p99_ms=float(np.percentile(lat, 99)) if len(lat) else None, rows=view.rows,
            skipped=view.skipped, final=final, model=model_key.replace("\0", "/"), profile=profile, drift=drift,
            consecutive=consecutive, note=note, labeled=labeled, quality=measured)

    def log_labels(self, endpoint: str, labels: dict[str, Any]) -> int:
        """Ground truth by request id (Databricks' or the client's): a value, or a list
        of one per row of the request. Windows holding requests already read are
        computed again on the next refresh. Returns how many were for requests the
        monitor has read already."""
        rec = self.get_monitor(endpoint)
        if not isinstance(labels, dict) or not labels or len(labels) > MAX_LABELS:
            raise invalid(f"labels: between 1 and {MAX_LABELS:,} request ids with their labels")
        prefix = u64(rec.monitor_id)
        encoded = {}
        for rid, label in labels.items():
            if not isinstance(rid, str) or not rid or len(rid) > 256:
                raise invalid(f"labels: request ids are 1-256 character strings, got {rid!r}")
            if label is None or not isinstance(label, (str, int, float, bool, list)):
                raise invalid(f"labels[{rid!r}]: a number, string, bool or a list of them (one per row)")
            encoded[prefix + rid.encode()] = msgspec.msgpack.encode(label)

        def op(b: Batch) -> int:
            raw = b.txn.get(endpoint.encode(), db=b.dbs["monitors"])
            if raw is None:
                raise not_found(f"Endpoint '{endpoint}' has no monitor")
            current = MONITOR.decode(raw)
            seen = []
            for key, value in encoded.items():
                b.txn.put(key, value, db=b.dbs["monitor_labels"])
                ts = b.txn.get(key, db=b.dbs["monitor_requests"])
                if ts is not None:
                    seen.append(read_i64(ts))
            if seen:
                first = min(seen)
                current.recompute_from_ms = min(current.recompute_from_ms or first, first)
                b.txn.put(endpoint.encode(), MONITOR.encode(current), db=b.dbs["monitors"])
            return len(seen)

        return self._env.write(op)

    def _previous(self, rec: MonitorRecord, g: int, wstart: int, entity: str,
                  fresh: dict[bytes, WindowRecord]) -> WindowRecord | None:
        key = _window_key(rec.monitor_id, g, wstart - g * 1000, entity)
        if key in fresh:
            return fresh[key]
        with self._env.read() as txn:
            raw = txn.get(key, db=self._db["monitor_windows"])
        return WINDOW.decode(raw) if raw is not None else None


def _notify(url: str, endpoint: str, changed: list[AlertState]) -> None:
    """POST the changed alerts to the monitor's webhook; best effort (a dead receiver
    must not fail a refresh), bounded by a short timeout."""
    import logging
    import urllib.request

    body = msgspec.json.encode({"endpoint": endpoint, "alerts": changed})
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT_S):
            pass
    except Exception as exc:  # noqa: BLE001 - logged, never raised
        logging.getLogger("cairn.monitoring").warning("alert webhook %s failed: %s", url, exc)
