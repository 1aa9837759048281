"""What the Serving screen shows, read from either backend: endpoints, their recent payload
log rows and, from a running server, live figures per served entity.

Live figures exist only where serving runs: a server's process, read through its
/metrics page. A RemoteBackend reads them from the server it talks to. A LocalBackend
opens the data directory in the UI's own process: under `cairn up` it knows the URL of
the server running beside the UI (`server_url`) and scrapes that; on its own (`cairn ui`)
nothing is served, so it has endpoints and payload logs but no figures (`live` False).

`ServingReader.poll()` is called every few seconds from a thread worker; it keeps the
previous scrape, so each call's figures cover the window since the last one. The first
call has no previous scrape: its figures cover the server's whole life (rate unknown).
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cairn.engine.endpoints.contract import Endpoint, EndpointConfig, PayloadRecord, ServedEntity
from cairn.engine.errors import CairnError
from cairn.tui.prometheus import Page, add_buckets, bucket_deltas, counter_delta, quantile

REQUESTS = "cairn_serving_requests_total"
ERRORS = "cairn_serving_errors_total"
LATENCY = "cairn_serving_request_latency_seconds"
BATCH_ROWS = "cairn_serving_batch_rows"
QUEUE_DEPTH = "cairn_serving_queue_depth"
NO_LIVE_METRICS = "live metrics need a running server: cairn up, or cairn ui --remote URL"
# Payload rows shown for the selected endpoint: a screenful, the newest last.
RECENT_PAYLOADS = 50
# Windows tried, narrowest first, to find the newest records without reading a whole log.
# A window is widened only when it held fewer than the rows wanted, so the re-reads cost
# little; the last window read costs at most its rate x its length (1 s on a busy endpoint).
_LOOKBACK_MS = (1_000, 10_000, 60_000, 3_600_000, 86_400_000, None)
_PAGE = 1000


@dataclass
class EntityStats:
    """One served entity's figures over a window (all its answering versions summed)."""

    requests: float = 0.0  # requests answered in the window
    total: float = 0.0  # requests answered since the server started
    errors: float = 0.0
    seconds: float | None = None  # the window's length; None: since the server started
    latency: list[tuple[float, float]] = field(default_factory=list)  # cumulative buckets
    batches: float = 0.0
    batch_rows: float = 0.0
    queue_depth: float = 0.0
    versions: set[str] = field(default_factory=set)  # versions that answered, ever

    @property
    def rps(self) -> float | None:
        return self.requests / self.seconds if self.seconds else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def p50(self) -> float | None:
        return quantile(0.5, self.latency)

    @property
    def p99(self) -> float | None:
        return quantile(0.99, self.latency)

    @property
    def mean_batch(self) -> float | None:
        return self.batch_rows / self.batches if self.batches else None


EntityKey = tuple[str, str]  # (endpoint, served entity name)


def window(before: Page | None, now: Page) -> dict[EntityKey, EntityStats]:
    """Per (endpoint, served entity), the figures between two scrapes (or, without
    `before`, since the server started). Series of requests refused before routing
    (served_entity "") are kept under that empty name."""
    stats: dict[EntityKey, EntityStats] = {}
    seconds = (now.at - before.at) if before is not None and now.at > before.at else None

    def entry(labels) -> EntityStats:
        d = dict(labels)
        s = stats.setdefault((d.get("endpoint", ""), d.get("served_entity", "")), EntityStats(seconds=seconds))
        if d.get("version"):
            s.versions.add(d["version"])
        return s

    def previous(name: str, labels) -> float | None:
        return before.values.get(name, {}).get(labels) if before is not None else None

    # Requests refused before routing (400, 413, 415, 429) are labelled served_entity="".
    for labels, value in now.values.get(REQUESTS, {}).items():
        s = entry(labels)
        s.total += value
        s.requests += counter_delta(value, previous(REQUESTS, labels))
    for labels, value in now.values.get(ERRORS, {}).items():
        entry(labels).errors += counter_delta(value, previous(ERRORS, labels))
    for labels, buckets in now.buckets.get(LATENCY, {}).items():
        old = before.buckets.get(LATENCY, {}).get(labels) if before is not None else None
        s = entry(labels)
        s.latency = add_buckets(s.latency, bucket_deltas(buckets, old))
    for labels, value in now.values.get(f"{BATCH_ROWS}_count", {}).items():
        s = entry(labels)
        s.batches += counter_delta(value, previous(f"{BATCH_ROWS}_count", labels))
        rows = now.values.get(f"{BATCH_ROWS}_sum", {}).get(labels, 0.0)
        s.batch_rows += counter_delta(rows, previous(f"{BATCH_ROWS}_sum", labels))
    for labels, value in now.values.get(QUEUE_DEPTH, {}).items():
        entry(labels).queue_depth += value
    return stats


@dataclass
class ServingState:
    """One refresh: the endpoints and, where live, each served entity's figures."""

    endpoints: list[Endpoint]
    stats: dict[EntityKey, EntityStats] | None  # None: no live metrics (see `note`)
    note: str = ""  # why there are no figures (local data, or the scrape failed)


def entity_version(se: ServedEntity) -> str:
    return f"@{se.entity_alias}" if se.entity_alias else str(se.entity_version)


def traffic_of(ep: Endpoint) -> dict[str, str]:
    """served entity name -> its share as shown: "70%", or "shadow 10%"."""
    cfg = ep.config
    shares = {r.served_entity_name: f"{r.traffic_percentage}%" for r in cfg.traffic_config.routes} \
        if cfg.traffic_config else {}
    shadow = cfg.shadow.served_entity_name if cfg.shadow else None
    serving = [se.name for se in cfg.served_entities if se.name != shadow]
    if not shares and len(serving) == 1:
        shares[serving[0]] = "100%"  # routes may be omitted when one entity takes all traffic
    if ep.config.shadow:
        shares[ep.config.shadow.served_entity_name] = f"shadow {ep.config.shadow.fraction:.0%}"
    return shares


def endpoint_from_json(doc: dict) -> Endpoint:
    """The REST shape (app/controllers/endpoints.py) keeps config_version inside config."""
    config = dict(doc.get("config") or {})
    version = config.pop("config_version", 1)
    return Endpoint(
        name=doc["name"], id=doc.get("id", ""), creator=doc.get("creator", ""),
        creation_timestamp=doc.get("creation_timestamp", 0),
        last_updated_timestamp=doc.get("last_updated_timestamp", 0),
        config=msgspec.convert(config, EndpointConfig, strict=False), config_version=version,
    )  # fmt: skip


class ServingReader:
    """Endpoints, payloads and metrics through `backend`: a RemoteBackend's HTTP client
    (its `client` and `url`), or a LocalBackend's engine (`eng.endpoints`) and, given its
    `server_url`, that server's /metrics. Blocking:
    call from thread workers; `poll` is serialized (it keeps the last scrape)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.store = getattr(getattr(backend, "eng", None), "endpoints", None)
        self.client = None if self.store is not None else getattr(backend, "client", None)
        server_url = getattr(backend, "server_url", None)
        if self.store is not None and server_url:
            import httpx

            # Endpoints and payloads still come from the engine; only /metrics is scraped.
            token = getattr(backend, "server_token", None)
            self.client = httpx.Client(base_url=server_url, timeout=5.0,
                                       headers={"Authorization": f"Bearer {token}"} if token else None)
        self._last: Page | None = None
        # Two polls at once (a slow server, a refresh key) would both diff against the same
        # previous page and then race to replace it: one waits for the other instead.
        self._poll_lock = threading.Lock()

    @property
    def live(self) -> bool:
        return self.client is not None

    # -- transport -------------------------------------------------------------------
    def _get(self, path: str, **params) -> Any:
        import httpx

        try:
            resp = self.client.get(path, params={k: v for k, v in params.items() if v is not None})
        except httpx.HTTPError as exc:
            raise CairnError(f"Cannot reach {self.client.base_url}: {exc}", "INVALID_STATE") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            raise CairnError(body.get("message") or f"HTTP {resp.status_code} from {path}",
                             body.get("error_code") or "INTERNAL_ERROR")  # fmt: skip
        return resp

    # -- reads -----------------------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        if self.store is None and self.client is None:  # e.g. a test's in-memory backend
            raise CairnError(f"{self.backend.describe()} has no serving endpoints to read", "INVALID_STATE")
        if self.store is not None:
            return self.store.list_endpoints()
        body = self._get("/api/2.0/serving-endpoints").json()
        return [endpoint_from_json(doc) for doc in body.get("endpoints", [])]

    def _read(self, name: str, start_ms: int | None, token: str | None) -> tuple[list[PayloadRecord], str | None]:
        if self.store is not None:
            page = self.store.read_payloads(name, start_ms=start_ms, max_results=_PAGE, page_token=token)
            return list(page.items), page.next_page_token
        body = self._get(f"/api/2.0/serving-endpoints/{name}/payloads", start_time_ms=start_ms,
                         max_results=_PAGE, page_token=token).json()  # fmt: skip
        return msgspec.convert(body.get("payloads", []), list[PayloadRecord], strict=False), body.get("next_page_token")

    def recent_payloads(self, name: str, limit: int = RECENT_PAYLOADS) -> list[PayloadRecord]:
        """The newest `limit` records, oldest first. The log reads oldest first only, so
        look back over a second, then wider windows up to everything, until `limit` are
        found: a busy endpoint costs one narrow read, not a scan of its whole log."""
        newest: deque[PayloadRecord] = deque(maxlen=limit)
        now_ms = int(time.time() * 1000)
        for lookback in _LOOKBACK_MS:
            newest.clear()
            start = now_ms - lookback if lookback is not None else None
            token = None
            while True:
                items, token = self._read(name, start, token)
                newest.extend(items)
                if not token or not items:
                    break
            if len(newest) >= limit:
                break
        return list(newest)

    def scrape(self) -> Page:
        return Page.from_text(self._get("/metrics").text, time.monotonic())

    def poll(self) -> ServingState:
        """The endpoints and the figures since the previous poll. A failed scrape keeps
        the endpoints on screen with the error as the note."""
        with self._poll_lock:
            endpoints = self.endpoints()
            if not self.live:
                return ServingState(endpoints, None, NO_LIVE_METRICS)
            try:
                page = self.scrape()
            except CairnError as exc:
                return ServingState(endpoints, None, f"/metrics: {exc.message}")
            stats = window(self._last, page)
            self._last = page
            return ServingState(endpoints, stats)


# -- formatting (shared by the table and the tests) ------------------------------------------
def fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def fmt_seconds(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    if v < 1e-3:
        return f"{v * 1e6:.0f}us"
    if v < 1:
        return f"{v * 1e3:.1f}ms"
    return f"{v:.2f}s"


def fmt_percent(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def fmt_batch(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"
