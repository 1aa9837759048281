"""Prometheus metrics for serving, rendered as text exposition format 0.0.4 at /metrics.

A small registry of our own instead of prometheus_client: that package is not a
dependency (the appliance installs offline from one bundle), and the serving hot path
needs only three operations, each a few hundred nanoseconds here: find a label set's
child (one dict lookup), bump a counter, observe a histogram. Values that already live
elsewhere (the batchers' queues and batch counts) are not pushed at all: a metric's `fn`
reads them at scrape time, from one snapshot per render (Registry.on_render).

Thread safety. Each child (one label set) owns a lock, taken around its read-modify-write.
`self._value += n` is several bytecodes (load, add, store); CPython 3.11 happens not to
switch threads between them, but that is an interpreter detail, not a promise (3.13's
free-threaded build has no GIL at all), and a lost increment is a wrong number on a
dashboard forever. An uncontended lock costs ~150 ns here; requests on different served
entities never share one. acquire/release with try/finally is used instead of `with`:
in 3.11 the `with` protocol costs about as much again as the lock itself.
Finding a child is lock-free: dict.get of an existing key is atomic under the GIL; only
creating a child takes the metric's lock (double-checked), and render() copies the child
list under that lock so a child created mid-scrape cannot break the iteration.
"""
from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate, pairwise
from typing import Any

__all__ = [
    "BATCH_ROWS_BUCKETS",
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "MODEL_LOAD_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "Registry",
    "ServingMetrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_INF = math.inf


def _format_value(value: float) -> str:
    """A sample value as Go's ParseFloat reads it: ints plain, floats shortest round-trip."""
    if value.__class__ is int:
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{_escape_label_value(v)}"' for n, v in zip(names, values))


class Registry:
    """The metrics one /metrics page shows, in registration order."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def register(self, metric: _Metric) -> None:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name!r} is already registered")
            self._metrics[metric.name] = metric

    def get(self, name: str) -> _Metric | None:
        return self._metrics.get(name)

    def on_render(self, hook: Callable[[], None]) -> None:
        """Call `hook` at the start of every render (before any metric's `fn`): lets
        several metrics share one snapshot of a source, e.g. the batchers' stats."""
        with self._lock:
            self._hooks.append(hook)

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
            hooks = list(self._hooks)
        lines: list[str] = []
        for hook in hooks:
            try:
                hook()
            except Exception as exc:  # noqa: BLE001 - a scrape survives a bad source
                lines.append(f"# render hook failed: {_one_line(exc)}")
        for metric in metrics:
            lines.append(f"# HELP {metric.name} {_escape_help(metric.documentation)}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            metric._render(lines)
        lines.append("")
        return "\n".join(lines)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


# What a metric's render-time source returns: for an unlabeled metric one value; for a
# labeled one a mapping, or an iterable of pairs, of label values tuple -> value. A value
# is a number, or for a histogram (per-bucket counts, not cumulative, +Inf last; sum).
Source = Callable[[], Any]


class _Metric:
    """One metric family: a name, help text, label names and a child per label set.

    Values come from children (updated on the hot path) or, when `fn` is set, from `fn`
    at render time instead: right for values that already live elsewhere (the batchers'
    queue depths and batch counts), since nothing then happens per request at all.
    """

    kind = "untyped"
    _reserved_labels: frozenset[str] = frozenset()

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 *, registry: Registry | None = None, fn: Source | None = None) -> None:
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        labelnames = tuple(labelnames)
        for label in labelnames:
            if not isinstance(label, str) or not _LABEL_NAME.match(label):
                raise ValueError(f"{name}: invalid label name {label!r}")
            if label.startswith("__") or label in self._reserved_labels:
                raise ValueError(f"{name}: label name {label!r} is reserved")
        if len(set(labelnames)) != len(labelnames):
            raise ValueError(f"{name}: duplicate label names in {labelnames!r}")
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self._fn = fn
        self._lock = threading.Lock()
        # normalized (str) label values -> child, in creation order
        self._children: dict[tuple[str, ...], Any] = {}
        # the label tuples callers actually pass (e.g. a version as int) -> child, so the
        # hot path is one dict.get without normalizing
        self._lookup: dict[tuple[Any, ...], Any] = {}
        self._default = None if labelnames else self._make_child(())
        if self._default is not None:
            self._children[()] = self._default
        if registry is not None:
            registry.register(self)

    def set_function(self, fn: Source | None) -> None:
        """Render from `fn` instead of the children (None: back to the children)."""
        self._fn = fn

    def labels(self, *values: Any, **named: Any) -> Any:
        """The child for one label set (created on first use, then cached).

        Positional values follow `labelnames`; values are rendered with str(). Callers on
        the hot path may keep the child and skip even this lookup.
        """
        if named:
            if values:
                raise ValueError(f"{self.name}: pass label values by position or by name, "
                                 f"not both")
            if set(named) != set(self.labelnames):
                raise ValueError(f"{self.name}: labels must be {self.labelnames}, "
                                 f"got {tuple(named)}")
            values = tuple(named[n] for n in self.labelnames)
        child = self._lookup.get(values)
        if child is None:
            child = self._create(values)
        return child

    def _create(self, values: tuple[Any, ...]) -> Any:
        if not self.labelnames:
            raise ValueError(f"{self.name} has no labels; use it directly")
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values "
                             f"{self.labelnames}, got {len(values)}")
        key = tuple(str(v) for v in values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._make_child(key)
                self._children[key] = child
            self._lookup[values] = child
        return child

    def _unlabeled(self, use: str) -> Any:
        if self._default is None:
            raise ValueError(f"{self.name} has labels; use .labels(...).{use}")
        return self._default

    def remove_where(self, **labels: Any) -> int:
        """Drop the children whose labels match all of `labels` (an endpoint deleted, say);
        returns how many went. Their series vanish from /metrics."""
        unknown = set(labels) - set(self.labelnames)
        if unknown:
            raise ValueError(f"{self.name}: no label(s) {sorted(unknown)}")
        if not self.labelnames:
            return 0
        want = [(self.labelnames.index(n), str(v)) for n, v in labels.items()]
        with self._lock:
            gone = [k for k in self._children if all(k[i] == v for i, v in want)]
            for key in gone:
                child = self._children.pop(key)
                for alias in [a for a, c in self._lookup.items() if c is child]:
                    del self._lookup[alias]
        return len(gone)

    def _make_child(self, key: tuple[str, ...]) -> Any:
        raise NotImplementedError

    def _sample_lines(self, labels: str, value: Any, lines: list[str]) -> None:
        braces = f"{{{labels}}}" if labels else ""
        lines.append(f"{self.name}{braces} {_format_value(value)}")

    def _render(self, lines: list[str]) -> None:
        fn = self._fn
        if fn is None:
            with self._lock:
                children = list(self._children.values())
            for child in children:
                self._sample_lines(child.label_text, child.state(), lines)
            return
        # A scrape must not fail because one source is mid-shutdown: the error becomes a
        # comment line (the format ignores comments) and this metric shows no samples.
        rendered: list[str] = []
        try:
            result = fn()
            if not self.labelnames:
                self._sample_lines("", result, rendered)
            else:
                items = result.items() if isinstance(result, Mapping) else result
                for values, value in items:
                    values = tuple(str(v) for v in values)
                    if len(values) != len(self.labelnames):
                        raise ValueError(f"expected {len(self.labelnames)} label values, "
                                         f"got {values!r}")
                    self._sample_lines(_label_text(self.labelnames, values), value, rendered)
        except Exception as exc:  # noqa: BLE001 - any source failure, see above
            lines.append(f"# {self.name} source failed: {_one_line(exc)}")
            return
        lines.extend(rendered)


class _CounterChild:
    __slots__ = ("_lock", "_value", "label_text")

    def __init__(self, label_text: str) -> None:
        self.label_text = label_text
        self._lock = threading.Lock()
        self._value: float = 0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        lock = self._lock
        lock.acquire()
        try:
            self._value += amount
        finally:
            lock.release()

    @property
    def value(self) -> float:
        return self._value

    def state(self) -> float:
        return self._value


class Counter(_Metric):
    """A monotonic count. Name it `..._total` (the exposition format does not add it)."""

    kind = "counter"

    def _make_child(self, key: tuple[str, ...]) -> _CounterChild:
        return _CounterChild(_label_text(self.labelnames, key))

    def inc(self, amount: float = 1) -> None:
        self._unlabeled("inc()").inc(amount)

    @property
    def value(self) -> float:
        return self._unlabeled("value").value


class _GaugeChild(_CounterChild):
    __slots__ = ()

    def set(self, value: float) -> None:
        self._value = value  # a single store: nothing to lose to a race

    def inc(self, amount: float = 1) -> None:
        lock = self._lock
        lock.acquire()
        try:
            self._value += amount
        finally:
            lock.release()

    def dec(self, amount: float = 1) -> None:
        self.inc(-amount)


class Gauge(_Metric):
    """A value that goes up and down: set directly, or read from `fn` at render time."""

    kind = "gauge"

    def _make_child(self, key: tuple[str, ...]) -> _GaugeChild:
        return _GaugeChild(_label_text(self.labelnames, key))

    def set(self, value: float) -> None:
        self._unlabeled("set()").set(value)

    def inc(self, amount: float = 1) -> None:
        self._unlabeled("inc()").inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._unlabeled("dec()").inc(-amount)

    @property
    def value(self) -> float:
        return self._unlabeled("value").value


class _HistogramChild:
    __slots__ = ("_bounds", "_counts", "_lock", "_sum", "label_text")

    def __init__(self, label_text: str, bounds: tuple[float, ...]) -> None:
        self.label_text = label_text
        self._bounds = bounds  # ends with +Inf, so bisect always lands on a bucket
        self._counts = [0] * len(bounds)  # per bucket, not cumulative: one add per observe
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        # `le` buckets: value == bound counts in that bucket, which bisect_left gives.
        i = bisect_left(self._bounds, value)
        lock = self._lock
        lock.acquire()
        try:
            self._counts[i] += 1
            self._sum += value
        finally:
            lock.release()

    def state(self) -> tuple[list[int], float]:
        """Per-bucket counts and the sum, copied together so that a scrape never shows a
        count that disagrees with its buckets."""
        lock = self._lock
        lock.acquire()
        try:
            return list(self._counts), self._sum
        finally:
            lock.release()

    def snapshot(self) -> tuple[list[int], float]:
        """Cumulative bucket counts (the last is +Inf, i.e. the count) and the sum."""
        counts, total = self.state()
        return list(accumulate(counts)), total


class Histogram(_Metric):
    """Observations counted into cumulative `le` buckets, with their sum and count.

    A render-time `fn` gives, per label set, (per-bucket counts with +Inf last, sum): the
    shape the batchers' stats keep (`batch_rows_counts`, `batch_rows_sum`).
    """

    kind = "histogram"
    _reserved_labels = frozenset({"le"})

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 *, buckets: Iterable[float], registry: Registry | None = None,
                 fn: Source | None = None) -> None:
        bounds = [float(b) for b in buckets]
        if bounds and bounds[-1] == _INF:
            bounds.pop()
        if not bounds:
            raise ValueError(f"{name}: a histogram needs at least one finite bucket")
        if any(not math.isfinite(b) for b in bounds):
            raise ValueError(f"{name}: bucket bounds must be finite numbers (+Inf is added)")
        if any(a >= b for a, b in pairwise(bounds)):
            raise ValueError(f"{name}: bucket bounds must increase strictly, got {bounds}")
        self.buckets: tuple[float, ...] = (*bounds, _INF)
        self._le = tuple(_format_value(b) for b in self.buckets)
        super().__init__(name, documentation, labelnames, registry=registry, fn=fn)

    def _make_child(self, key: tuple[str, ...]) -> _HistogramChild:
        return _HistogramChild(_label_text(self.labelnames, key), self.buckets)

    def observe(self, value: float) -> None:
        self._unlabeled("observe()").observe(value)

    def snapshot(self) -> tuple[list[int], float]:
        return self._unlabeled("snapshot()").snapshot()

    def _sample_lines(self, labels: str, value: Any, lines: list[str]) -> None:
        counts, total = value
        if len(counts) != len(self.buckets):
            raise ValueError(f"expected {len(self.buckets)} bucket counts (+Inf last), "
                             f"got {len(counts)}")
        name = self.name
        prefix = f"{labels}," if labels else ""
        running = 0
        for le, count in zip(self._le, counts):
            running += count
            lines.append(f'{name}_bucket{{{prefix}le="{le}"}} {running}')
        braces = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}_sum{braces} {_format_value(total)}")
        lines.append(f"{name}_count{braces} {running}")


# Request latency in seconds: 100 us (the target p50 is 500 us) up to 10 s.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Rows per ONNX Runtime call: powers of two up to the largest max_batch_rows we expect.
BATCH_ROWS_BUCKETS = tuple(float(2 ** i) for i in range(11))
MODEL_LOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_ENTITY = ("endpoint", "served_entity", "version")


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


class ServingMetrics:
    """The serving metrics of one process, and the calls the request path makes.

    Labels: endpoint, served_entity, version (the served entity's name and the model
    version that answered). A request refused before routing (400 body, 415, 413, 429)
    has served_entity="" and version=""; one for an endpoint that does not exist also
    has endpoint="" (the manager's choice: a name nobody created is not a label).

    Pushed on the request path: observe_request (requests, errors, latency),
    observe_shadow, observe_model_load, payload_dropped. Pulled at scrape time from the
    batchers (set_batcher_stats): queue depth, queued rows, workers and the batch-size
    histogram, so batching costs nothing extra per request. observe_batch pushes batch
    sizes instead, for a batcher without stats; use one or the other.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry if registry is not None else Registry()
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
        self.batch_rows = Histogram(
            "cairn_serving_batch_rows",
            "Rows per ONNX Runtime call made by a served version's batcher.",
            _ENTITY, buckets=BATCH_ROWS_BUCKETS, registry=r)
        self.queue_depth = Gauge(
            "cairn_serving_queue_depth",
            "Requests waiting in a served version's queue when scraped.",
            _ENTITY, registry=r)
        self.queue_rows = Gauge(
            "cairn_serving_queue_rows",
            "Rows waiting in a served version's queue (the bound that gives 429).",
            _ENTITY, registry=r)
        self.workers = Gauge(
            "cairn_serving_workers",
            "Worker threads a served version's batcher runs (grows with its queue).",
            _ENTITY, registry=r)
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
        self._batcher_stats: Callable[[], Iterable[tuple[tuple[Any, ...], Mapping]]] | None
        self._batcher_stats = None
        self._hooked = False
        self._render_local = threading.local()

    def set_batcher_stats(self, fn: Callable[[], Iterable[tuple[tuple[Any, ...], Mapping]]]
                          | None) -> None:
        """Read the batchers at each scrape: fn() yields ((endpoint, served_entity,
        version), batcher.stats()) per live batcher. fn runs once per render (a render
        hook); the gauges and the histogram read that one snapshot. None: stop."""
        self._batcher_stats = fn
        if fn is None:
            for metric in (self.queue_depth, self.queue_rows, self.workers, self.batch_rows):
                metric.set_function(None)
            return
        if not self._hooked:
            self.registry.on_render(self._take_batcher_snapshot)
            self._hooked = True

        def field(*names: str) -> Source:
            def read() -> list[tuple[tuple[Any, ...], Any]]:
                snapshot = getattr(self._render_local, "batchers", None)
                if snapshot is None:
                    raise RuntimeError("no batcher stats this render")
                if len(names) == 1:
                    return [(labels, stats[names[0]]) for labels, stats in snapshot]
                return [(labels, tuple(stats[n] for n in names)) for labels, stats in snapshot]
            return read

        self.queue_depth.set_function(field("queue_requests"))
        self.queue_rows.set_function(field("queue_rows"))
        self.workers.set_function(field("workers"))
        self.batch_rows.set_function(field("batch_rows_counts", "batch_rows_sum"))

    def _take_batcher_snapshot(self) -> None:
        # Thread-local: two concurrent scrapes each render from their own snapshot.
        local = self._render_local
        local.batchers = None
        fn = self._batcher_stats
        if fn is not None:
            local.batchers = list(fn())

    def observe_request(self, endpoint: str, served_entity: str, version: Any,
                        status: int, latency_s: float) -> None:
        key = (endpoint, served_entity, version, status)
        children = self._request_children.get(key)
        if children is None:
            entity = (endpoint, served_entity, version)
            children = (self.requests.labels(*entity, _status_class(status)),
                        self.errors.labels(*entity, status) if status >= 400 else None,
                        self.latency.labels(*entity))
            self._request_children[key] = children  # a racing duplicate is harmless
        requests, errors, latency = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(latency_s)

    def observe_batch(self, endpoint: str, served_entity: str, version: Any,
                      rows: int) -> None:
        self.batch_rows.labels(endpoint, served_entity, version).observe(rows)

    def observe_shadow(self, endpoint: str, served_entity: str, version: Any,
                       status: int) -> None:
        self.shadow_requests.labels(endpoint, served_entity, version,
                                    _status_class(status)).inc()

    def observe_model_load(self, endpoint: str, served_entity: str, version: Any,
                           seconds: float) -> None:
        self.model_load.labels(endpoint, served_entity, version).observe(seconds)

    def payload_dropped(self, endpoint: str, count: int = 1) -> None:
        """Suits PayloadLogger's on_drop: functools.partial(metrics.payload_dropped, name)."""
        self.payload_log_dropped.labels(endpoint).inc(count)

    def forget(self, endpoint: str) -> None:
        """Remove a deleted endpoint's series so /metrics stops showing them."""
        # list(dict) is one C call, so a request adding a key meanwhile cannot break it
        for key in [k for k in list(self._request_children) if k[0] == endpoint]:
            self._request_children.pop(key, None)
        for metric in (self.requests, self.errors, self.latency, self.batch_rows,
                       self.queue_depth, self.queue_rows, self.workers,
                       self.shadow_requests, self.payload_log_dropped, self.model_load):
            metric.remove_where(endpoint=endpoint)

    def render(self) -> str:
        return self.registry.render()
