"""The live serving endpoints of one process: built from the endpoint store, kept in
step with it, and the request path that runs through them.

`EndpointManager.invoke(name, ...)` is the whole hot path of
`/serving-endpoints/{name}/invocations`: route, parse against the chosen version's
signature, batch, answer, then count and log off the reply's critical path.

Keeping in step: a poller thread compares the store's config stamps (id,
config_version) and, for entities that follow an alias, the alias's current version,
every `poll_s`. A changed endpoint is built anew beside the old one (sessions loaded
first), swapped in with one assignment, and the old one is closed after a grace period
with its queues drained, so no request in flight is dropped or failed. An idle entity
with scale_to_zero_enabled has its session unloaded; the next request loads it again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cairn.app.serving.batcher import Batcher, BatcherClosed, Overloaded
from cairn.app.serving.featureserving import LiveFeatureEntity
from cairn.app.serving.metrics import ServingMetrics
from cairn.app.serving.payloadlog import PayloadLogger
from cairn.app.serving.router import Router
from cairn.app.serving.runtime import ServedModel
from cairn.app.serving.scoring import ScoringError, error_body, format_response, parse_request
from cairn.engine.endpoints.contract import FEATURE_SPEC, Endpoint, PayloadRecord, ServedEntity
from cairn.engine.errors import CairnError
from cairn.engine.sdk.features import version_filler
from cairn.engine.sdk.modelloading import version_onnx

log = logging.getLogger("cairn.serving")

POLL_S = 0.25
# How long a replaced endpoint keeps taking requests that already chose it.
RETIRE_GRACE_S = 2.0
# How long a failed build's error is answered before the next request tries again.
RETRY_BUILD_S = 1.0
# An idle scale-to-zero entity unloads its session after this long.
IDLE_UNLOAD_S = 30.0
ROUTING_KEY_HEADER = b"x-cairn-routing-key"
CLIENT_REQUEST_ID_HEADER = b"x-client-request-id"
JSON = b"application/json"
# MLflow's code for 429 (databricks.proto), as `cairn models serve` answers.
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class LiveEntity:
    """One served entity: its resolved version, session and batcher."""

    def __init__(self, endpoint: str, spec: ServedEntity, registry, engine):
        self.spec = spec
        self.name = spec.name
        mv = (
            registry.get_model_version_by_alias(spec.entity_name, spec.entity_alias)
            if spec.entity_alias
            else registry.get_model_version(spec.entity_name, spec.entity_version)
        )
        self.model_name = mv.name
        self.version = mv.version
        onnx, signature = version_onnx(engine, mv)
        t0 = time.perf_counter()
        self.model = ServedModel.load(onnx, signature, spec.workload_type, name=f"{endpoint}/{spec.name}")
        self.load_s = time.perf_counter() - t0
        self.signature = self.model.signature
        # A version logged from a training set: its features come from the online store.
        filler = version_filler(engine, mv)
        self.fill = filler.fill if filler is not None else None
        self.batcher = Batcher(
            self.model.run,
            max_batch_rows=spec.max_batch_rows,
            max_wait_ms=spec.max_wait_ms,
            max_queue_rows=spec.max_queue_rows,
            max_workers=spec.max_workers,
            batchable=self.model.batchable,
            name=f"{endpoint}/{spec.name}",
        )
        self.headers = [
            (b"served-model-name", spec.name.encode()),
            (b"x-cairn-model-version", f"{mv.name}/{mv.version}".encode()),
        ]

    def close(self) -> None:
        self.batcher.close(drain=True)


class LiveEndpoint:
    def __init__(self, ep: Endpoint, registry, engine, metrics: ServingMetrics, store):
        self.name = ep.name
        self.stamp = (ep.id, ep.config_version)
        cfg = ep.config
        self.entities: dict[str, LiveEntity] = {}
        self.logger: PayloadLogger | None = None  # before any load: close() reads it
        try:
            for spec in cfg.served_entities:
                self.entities[spec.name] = (
                    LiveFeatureEntity(ep.name, spec, engine) if spec.entity_type == FEATURE_SPEC
                    else LiveEntity(ep.name, spec, registry, engine))
        except BaseException:
            self.close()
            raise
        for ent in self.entities.values():
            metrics.observe_model_load(ep.name, ent.name, ent.version, ent.load_s)
        routes = [(r.served_entity_name, r.traffic_percentage) for r in cfg.traffic_config.routes]
        shadow = (cfg.shadow.served_entity_name, cfg.shadow.fraction) if cfg.shadow else None
        self.router = Router(routes, shadow)
        capture = cfg.auto_capture_config
        if capture is not None and capture.enabled:
            self.logger = PayloadLogger(
                functools.partial(store.log_payloads, ep.name),
                sampling_fraction=capture.sampling_fraction,
                max_payload_bytes=capture.max_payload_bytes,
                on_drop=functools.partial(metrics.payload_dropped, ep.name),
                name=f"payload-log-{ep.name}",
            )

    def alias_targets(self) -> dict[str, tuple[str, str, str]]:
        """entity name -> (model, alias, version now served), for entities on an alias."""
        return {
            e.name: (e.spec.entity_name, e.spec.entity_alias, e.version)
            for e in self.entities.values()
            if e.spec.entity_alias
        }

    def close(self) -> None:
        for ent in self.entities.values():
            ent.close()
        if self.logger is not None:
            self.logger.close()


class EndpointManager:
    def __init__(
        self, engine, metrics: ServingMetrics | None = None, poll_s: float = POLL_S,
        idle_unload_s: float = IDLE_UNLOAD_S,
    ):
        self.engine = engine
        self.store = engine.endpoints
        self.registry = engine.registry
        self.metrics = metrics or ServingMetrics()
        self.metrics.set_batcher_stats(self._batcher_stats)
        self.metrics.set_feature_counts(lambda: engine.features.lookup_counts)
        self.metrics.set_alert_states(engine.monitoring.firing)
        self.poll_s = poll_s
        self.idle_unload_s = idle_unload_s
        self._live: dict[str, LiveEndpoint] = {}
        self._building: dict[str, threading.Lock] = {}
        # name -> ((id, config_version), when, error) of the last failed build
        self._failed: dict[str, tuple[tuple[str, int], float, CairnError]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shadow_tasks: set[asyncio.Task] = set()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll_loop, name="cairn-endpoints", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            live, self._live = self._live, {}
        for ep in live.values():
            ep.close()

    # -- the request path ----------------------------------------------------------------
    async def invoke(self, name: str, content_type: str | None, body: bytes, headers: dict[bytes, bytes]) -> Reply:
        t0 = time.perf_counter()
        # One id per request: logged with its payload (and its shadow copy's), sent back
        # in x-request-id so a client can find its row in the payload log.
        rid = uuid.uuid4().hex
        ep = self._live.get(name)
        if ep is None:
            try:
                ep = await asyncio.to_thread(self.live, name)
            except CairnError as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    # Counted under endpoint="": any name can be asked for, and each one
                    # kept as a label would grow /metrics (and its memory) without bound.
                    return self._refused("", 404, exc.error_code, exc.message, t0)
                return self._refused(name, 503, exc.error_code, exc.message, t0)
        key = headers.get(ROUTING_KEY_HEADER)
        ent = ep.entities[ep.router.choose(key)]
        if ent.batcher is None:  # a feature spec: keys in, feature values out
            try:
                out, client_id = ent.answer(content_type, body)
            except ScoringError as exc:
                return self._answer(ep, ent, t0, Reply(exc.status, exc.body()), body, headers, rid)
            return self._answer(ep, ent, t0, Reply(200, out), body, headers, rid, client_id=client_id)
        try:
            parsed = parse_request(content_type, body, ent.signature, ent.fill)
        except ScoringError as exc:
            return self._answer(ep, ent, t0, Reply(exc.status, exc.body()), body, headers, rid)
        for attempt in (0, 1):
            try:
                outputs = await ent.batcher.submit(parsed.feeds, parsed.rows)
                break
            except BatcherClosed:
                # Replaced between routing and queueing: the new endpoint takes it.
                if attempt:
                    raise
                ep = self._live.get(name) or ep
                ent = ep.entities.get(ent.name) or ent
            except Overloaded as exc:
                reply = Reply(
                    429, error_body(REQUEST_LIMIT_EXCEEDED, str(exc)),
                    [(b"retry-after", str(max(1, round(exc.retry_after_s))).encode())],
                )
                return self._answer(ep, ent, t0, reply, body, headers, rid)
            except CairnError as exc:
                return self._answer(ep, ent, t0, Reply(400, error_body(exc.error_code, exc.message)), body, headers, rid)
        reply = Reply(200, format_response(outputs, ent.signature))
        self._maybe_shadow(ep, content_type, body, headers, rid)
        return self._answer(ep, ent, t0, reply, body, headers, rid, client_id=parsed.client_request_id or "")

    def _answer(
        self, ep: LiveEndpoint, ent: LiveEntity, t0: float, reply: Reply, body: bytes, headers, rid: str,
        shadow: bool = False, client_id: str = "",
    ) -> Reply:
        latency = time.perf_counter() - t0
        if shadow:
            self.metrics.observe_shadow(ep.name, ent.name, ent.version, reply.status)
        else:
            reply.headers.extend(ent.headers)
            reply.headers.append((b"x-request-id", rid.encode()))
            self.metrics.observe_request(ep.name, ent.name, ent.version, reply.status, latency)
        if ep.logger is not None:
            ep.logger.offer(
                rid,
                status_code=reply.status,
                latency_ms=latency * 1000.0,
                request=body,
                response=reply.body,
                client_request_id=client_id or headers.get(CLIENT_REQUEST_ID_HEADER, b"").decode("utf-8", "replace"),
                served_entity_name=ent.name,
                model_name=ent.model_name,
                model_version=ent.version,
                shadow=shadow,
            )
        return reply

    def _refused(self, name: str, status: int, code: str, message: str, t0: float) -> Reply:
        self.metrics.observe_request(name, "", "", status, time.perf_counter() - t0)
        return Reply(status, error_body(code, message))

    def _maybe_shadow(self, ep: LiveEndpoint, content_type, body: bytes, headers, rid: str) -> None:
        target = ep.router.shadow_for()
        if target is None:
            return
        ent = ep.entities[target]
        if ent.batcher is None:  # a feature spec as the shadow: nothing to compare
            return

        async def shadow() -> None:
            t0 = time.perf_counter()
            try:
                parsed = parse_request(content_type, body, ent.signature, ent.fill)
                outputs = await ent.batcher.submit(parsed.feeds, parsed.rows)
                reply = Reply(200, format_response(outputs, ent.signature))
            except ScoringError as exc:
                reply = Reply(exc.status, exc.body())
            except Overloaded as exc:
                reply = Reply(429, error_body(REQUEST_LIMIT_EXCEEDED, str(exc)))
            except (CairnError, BatcherClosed) as exc:
                reply = Reply(400, error_body("INVALID_PARAMETER_VALUE", str(exc)))
            self._answer(ep, ent, t0, reply, body, headers, rid, shadow=True)

        # Fire and forget: the primary reply never waits for the shadow's answer.
        task = asyncio.get_running_loop().create_task(shadow())
        self._shadow_tasks.add(task)  # a reference, so the task is not collected mid-run
        task.add_done_callback(self._shadow_tasks.discard)

    # -- building and following the store ------------------------------------------------
    def live(self, name: str) -> LiveEndpoint:
        """The live endpoint `name`, built now if it is not yet (blocking: sessions load)."""
        ep = self._live.get(name)
        if ep is not None:
            return ep
        # An unknown name is refused before it gets a build lock: locks for every name
        # ever asked for would pile up.
        self.store.get_endpoint(name)
        with self._lock:
            lock = self._building.setdefault(name, threading.Lock())
        with lock:  # concurrent first requests build once
            ep = self._live.get(name)
            if ep is not None:
                return ep
            endpoint = self.store.get_endpoint(name)
            # A build that failed is not retried by every request of a burst: the same
            # answer for RETRY_BUILD_S, unless the endpoint's config changed meanwhile.
            failed = self._failed.get(name)
            if failed is not None and failed[0] == (endpoint.id, endpoint.config_version) and (
                time.monotonic() - failed[1] < RETRY_BUILD_S
            ):
                raise failed[2]
            try:
                ep = self._build(endpoint)
            except CairnError as exc:
                self._failed[name] = ((endpoint.id, endpoint.config_version), time.monotonic(), exc)
                raise
            self._failed.pop(name, None)
            self._live[name] = ep
            return ep

    def _build(self, endpoint: Endpoint) -> LiveEndpoint:
        try:
            return LiveEndpoint(endpoint, self.registry, self.engine, self.metrics, self.store)
        except CairnError as exc:
            raise CairnError(f"Endpoint {endpoint.name!r} cannot serve: {exc.message}", "TEMPORARILY_UNAVAILABLE") from None

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.reconcile()
            except Exception:  # keep polling; the next round retries
                log.exception("endpoint reconcile failed")

    def reconcile(self) -> None:
        """Rebuild endpoints whose config or followed alias changed; drop deleted ones;
        unload idle scale-to-zero sessions."""
        stamps = self.store.config_stamps()
        for name, ep in list(self._live.items()):
            stamp = stamps.get(name)
            if stamp is None:
                self._retire(name, ep, None)
                continue
            if tuple(stamp) != ep.stamp or self._alias_moved(ep):
                try:
                    fresh = self._build(self.store.get_endpoint(name))
                except CairnError as exc:
                    log.warning("endpoint %s keeps its old config: %s", name, exc.message)
                    continue
                self._retire(name, ep, fresh)
            else:
                self._unload_idle(ep)

    def _alias_moved(self, ep: LiveEndpoint) -> bool:
        for model, alias, version in ep.alias_targets().values():
            try:
                if self.registry.get_model_version_by_alias(model, alias).version != version:
                    return True
            except CairnError:
                continue  # alias deleted: keep serving what we have
        return False

    def _retire(self, name: str, old: LiveEndpoint, fresh: LiveEndpoint | None) -> None:
        with self._lock:
            if fresh is None:
                self._live.pop(name, None)
                self._building.pop(name, None)
                self.metrics.forget(name)
            else:
                self._live[name] = fresh
        # Requests that chose `old` a moment ago still reach its queues; close it later.
        timer = threading.Timer(RETIRE_GRACE_S, old.close)
        timer.daemon = True
        timer.start()

    def _unload_idle(self, ep: LiveEndpoint) -> None:
        now = time.monotonic()
        for ent in ep.entities.values():
            if ent.batcher is None:  # a feature spec: nothing loaded
                continue
            if ent.spec.scale_to_zero_enabled and ent.model.loaded and now - ent.model.last_used > self.idle_unload_s:
                ent.model.unload()

    def _batcher_stats(self):
        for ep in list(self._live.values()):
            for ent in ep.entities.values():
                if ent.batcher is not None:
                    yield (ep.name, ent.name, ent.version), ent.batcher.stats()

    def describe(self) -> list[dict[str, Any]]:
        """What is live: per endpoint and entity, version, provider and why (doctor)."""
        out = []
        for ep in list(self._live.values()):
            for ent in ep.entities.values():
                if ent.batcher is None:  # a feature spec runs no model
                    out.append({"endpoint": ep.name, "served_entity": ent.name, "model": ent.model_name,
                                "version": "", "provider": "LMDB", "provider_reason": "feature lookup",
                                "loaded": True})
                    continue
                out.append({
                    "endpoint": ep.name, "served_entity": ent.name, "model": ent.model_name,
                    "version": ent.version, "provider": ent.model.provider,
                    "provider_reason": ent.model.provider_reason, "loaded": ent.model.loaded,
                })
        return out


__all__ = ["EndpointManager", "PayloadRecord", "Reply"]
