"""Prometheus metrics for serving, through prometheus_client, rendered at /metrics as text
exposition format 0.0.4 (the content type and metric names dashboards already read).

One CollectorRegistry per ServingMetrics (never the library's global one): two servers
in one process, or a test beside a server, never share counts. The request path touches
three children per request (requests, errors, latency), found with one dict lookup in
`_request_children` instead of `Metric.labels()`, which takes the metric's lock and
normalizes the values on every call.

Values that already live elsewhere (the batchers' queues, workers and batch sizes) are
not pushed at all: a custom collector reads them at scrape time, one snapshot per scrape
(`_BatcherCollector`), so batching costs nothing extra per request. A source that fails
mid-scrape (a batcher shutting down) leaves its families empty on that page instead of
failing the scrape.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["BATCH_ROWS_BUCKETS", "CONTENT_TYPE", "LATENCY_BUCKETS", "MODEL_LOAD_BUCKETS", "ServingMetrics"]

log = logging.getLogger("cairn.serving")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# The `_created` series (a timestamp per counter and histogram child) double the page and
# no dashboard of ours reads them; prometheus_client's switch is process-wide.
disable_created_metrics()

# Request latency in seconds: 100 us (the target p50 is 500 us) up to 10 s.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Rows per ONNX Runtime call: powers of two up to the largest max_batch_rows we expect.
BATCH_ROWS_BUCKETS = tuple(float(2 ** i) for i in range(11))
MODEL_LOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_ENTITY = ("endpoint", "served_entity", "version")
# What the batchers' stats give per served version: ((endpoint, entity, version), stats).
BatcherStats = Callable[[], Iterable[tuple[tuple[Any, ...], Mapping]]]


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


class _BatcherCollector(Collector):
    """The batcher families, read from the live batchers at scrape time."""

    def __init__(self) -> None:
        self.source: BatcherStats | None = None

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("cairn_serving_queue_depth",
                                  "Requests waiting in a served version's queue when scraped.", labels=_ENTITY)
        rows = GaugeMetricFamily("cairn_serving_queue_rows",
                                 "Rows waiting in a served version's queue (the bound that gives 429).",
                                 labels=_ENTITY)
        workers = GaugeMetricFamily("cairn_serving_workers",
                                    "Worker threads a served version's batcher runs (grows with its queue).",
                                    labels=_ENTITY)
        batch = HistogramMetricFamily("cairn_serving_batch_rows",
                                      "Rows per ONNX Runtime call made by a served version's batcher.",
                                      labels=_ENTITY)
        source = self.source
        try:  # every value read before any is added: a family never shows half a snapshot
            samples = [
                (tuple(str(v) for v in labels), s["queue_requests"], s["queue_rows"], s["workers"],
                 self._buckets(s), s["batch_rows_sum"])
                for labels, s in (source() if source is not None else ())
            ]
        except Exception:  # noqa: BLE001 - a scrape survives a bad source (a batcher closing)
            log.debug("batcher stats unavailable for this scrape", exc_info=True)
            samples = []
        for labels, queued, queued_rows, threads, buckets, rows_sum in samples:
            depth.add_metric(labels, queued)
            rows.add_metric(labels, queued_rows)
            workers.add_metric(labels, threads)
            batch.add_metric(labels, buckets, rows_sum)
        yield from (depth, rows, workers, batch)

    @staticmethod
    def _buckets(stats: Mapping) -> list[tuple[str, float]]:
        """The batcher keeps per-bucket counts (+Inf last); the family takes cumulative."""
        counts = stats["batch_rows_counts"]
        if len(counts) != len(BATCH_ROWS_BUCKETS) + 1:
            raise ValueError(f"expected {len(BATCH_ROWS_BUCKETS) + 1} bucket counts, got {len(counts)}")
        bounds = [floatToGoString(b) for b in BATCH_ROWS_BUCKETS] + ["+Inf"]
        return list(zip(bounds, accumulate(counts)))


class _FeatureCollector(Collector):
    """Online feature lookups per table (FeatureStore.lookup_counts), read at scrape."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, list[int]]] | None = None

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily("cairn_feature_lookups", "Keys looked up in the online store, by table.",
                                      labels=("table",))
        misses = CounterMetricFamily("cairn_feature_lookup_misses",
                                     "Keys looked up that the online store does not hold, by table.", labels=("table",))
        stale = CounterMetricFamily("cairn_feature_lookup_stale",
                                    "Keys whose online row was older than the table's TTL, by table.",
                                    labels=("table",))
        counts = dict(self.source()) if self.source is not None else {}
        for table, (n, missed, old) in sorted(counts.items()):
            lookups.add_metric((table,), n)
            misses.add_metric((table,), missed)
            stale.add_metric((table,), old)
        yield from (lookups, misses, stale)


class _AlertCollector(Collector):
    """Monitor alerts (MonitorStore.firing), read at scrape: 1 while firing, else 0."""

    def __init__(self) -> None:
        self.source: Callable[[], list[tuple[str, str, bool]]] | None = None

    def collect(self) -> Iterator[Metric]:
        firing = GaugeMetricFamily("cairn_monitor_alert_firing", "1 while a monitor's alert fires, else 0.",
                                   labels=("endpoint", "alert"))
        for endpoint, name, on in (self.source() if self.source is not None else []):
            firing.add_metric((endpoint, name), 1.0 if on else 0.0)
        yield firing


class ServingMetrics:
    """The serving metrics of one process, and the calls the request path makes.

    Labels: endpoint, served_entity, version (the served entity's name and the model
    version that answered). A request refused before routing (400 body, 415, 413, 429)
    has served_entity="" and version=""; one for an endpoint that does not exist also
    has endpoint="" (the manager's choice: a name nobody created is not a label).

    Pushed on the request path: observe_request (requests, errors, latency),
    observe_shadow, observe_model_load, payload_dropped. Pulled at scrape time from the
    batchers (set_batcher_stats): queue depth, queued rows, workers and the batch-size
    histogram; from the online feature store (set_feature_counts): lookups, misses and
    stale rows per table.
    """

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cairn_serving_requests_total",
            "Scoring requests answered, by endpoint, served entity, version and status class.",
            (*_ENTITY, "status_class"), registry=r)
        self.errors = Counter(
            "cairn_serving_errors_total",
            "Scoring requests answered with an HTTP error status (4xx, 5xx).",
            (*_ENTITY, "status"), registry=r)
        self.latency = Histogram(
            "cairn_serving_request_latency_seconds",
            "Time from receiving a scoring request to its response, in seconds.",
            _ENTITY, buckets=LATENCY_BUCKETS, registry=r)
        self._batchers = _BatcherCollector()
        r.register(self._batchers)
        self._features = _FeatureCollector()
        r.register(self._features)
        self._alerts = _AlertCollector()
        r.register(self._alerts)
        self.shadow_requests = Counter(
            "cairn_serving_shadow_requests_total",
            "Copies of requests sent to a shadow entity (answers logged, never returned).",
            (*_ENTITY, "status_class"), registry=r)
        self.payload_log_dropped = Counter(
            "cairn_serving_payload_log_dropped_total",
            "Payload log records dropped because the log writer fell behind.",
            ("endpoint",), registry=r)
        self.model_load = Histogram(
            "cairn_serving_model_load_seconds",
            "Time to load a served version's ONNX Runtime session(s), in seconds.",
            _ENTITY, buckets=MODEL_LOAD_BUCKETS, registry=r)
        # (endpoint, entity, version, status) -> the three children one request touches
        self._request_children: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        # endpoint -> the (metric, label values) series it has, for forget()
        self._series: dict[str, set[tuple[Any, tuple[str, ...]]]] = {}
        self._series_lock = threading.Lock()

    def set_batcher_stats(self, fn: BatcherStats | None) -> None:
        """Read the batchers at each scrape: fn() yields ((endpoint, served_entity,
        version), batcher.stats()) per live batcher, once per scrape. None: stop."""
        self._batchers.source = fn

    def set_feature_counts(self, fn: Callable[[], Mapping[str, list[int]]] | None) -> None:
        """Read the online store's lookup counts at each scrape: fn() gives
        {table: [lookups, misses, stale]}."""
        self._features.source = fn

    def set_alert_states(self, fn: Callable[[], list[tuple[str, str, bool]]] | None) -> None:
        """Read the monitors' alerts at each scrape: fn() gives (endpoint, alert, firing)."""
        self._alerts.source = fn

    def _child(self, metric: Any, *values: Any) -> Any:
        """metric.labels(*values), remembered under its endpoint (the first label)."""
        key = tuple(str(v) for v in values)
        with self._series_lock:
            self._series.setdefault(key[0], set()).add((metric, key))
        return metric.labels(*key)

    def observe_request(self, endpoint: str, served_entity: str, version: Any,
                        status: int, latency_s: float) -> None:
        key = (endpoint, served_entity, version, status)
        children = self._request_children.get(key)
        if children is None:
            entity = (endpoint, served_entity, version)
            children = (self._child(self.requests, *entity, _status_class(status)),
                        self._child(self.errors, *entity, status) if status >= 400 else None,
                        self._child(self.latency, *entity))
            self._request_children[key] = children  # a racing duplicate is harmless
        requests, errors, latency = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(latency_s)

    def observe_shadow(self, endpoint: str, served_entity: str, version: Any, status: int) -> None:
        self._child(self.shadow_requests, endpoint, served_entity, version, _status_class(status)).inc()

    def observe_model_load(self, endpoint: str, served_entity: str, version: Any, seconds: float) -> None:
        self._child(self.model_load, endpoint, served_entity, version).observe(seconds)

    def payload_dropped(self, endpoint: str, count: int = 1) -> None:
        """Suits PayloadLogger's on_drop: functools.partial(metrics.payload_dropped, name)."""
        self._child(self.payload_log_dropped, endpoint).inc(count)

    def forget(self, endpoint: str) -> None:
        """Remove a deleted endpoint's series so /metrics stops showing them."""
        # list(dict) is one C call, so a request adding a key meanwhile cannot break it
        for key in [k for k in list(self._request_children) if k[0] == endpoint]:
            self._request_children.pop(key, None)
        with self._series_lock:
            series = self._series.pop(str(endpoint), set())
        for metric, values in series:
            try:
                metric.remove(*values)
            except KeyError:  # never observed after all
                pass

    def render(self) -> str:
        return generate_latest(self.registry).decode()
