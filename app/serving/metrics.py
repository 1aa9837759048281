"""Prometheus metrics for serving, rendered as text exposition format 0.0.4 at /metrics.

A small registry of our own instead of prometheus_client: that package is not a
dependency (the appliance installs offline from one bundle), and the serving hot path
needs only three operations, each a few hundred nanoseconds here: find a label set's
child (one dict lookup), bump a counter, observe a histogram.

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
from itertools import pairwise
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
        self._lock = threading.Lock()

    def register(self, metric: _Metric) -> None:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name!r} is already registered")
            self._metrics[metric.name] = metric

    def get(self, name: str) -> _Metric | None:
        return self._metrics.get(name)

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for metric in metrics:
            lines.append(f"# HELP {metric.name} {_escape_help(metric.documentation)}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            metric._render(lines)
        lines.append("")
        return "\n".join(lines)


class _Metric:
    """One metric family: a name, help text, label names and a child per label set."""

    kind = "untyped"
    _reserved_labels: frozenset[str] = frozenset()

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 *, registry: Registry | None = None) -> None:
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

    def _snapshot(self) -> list[Any]:
        with self._lock:
            return list(self._children.values())

    def _make_child(self, key: tuple[str, ...]) -> Any:
        raise NotImplementedError

    def _render(self, lines: list[str]) -> None:
        name = self.name
        for child in self._snapshot():
            labels = child.label_text
            braces = f"{{{labels}}}" if labels else ""
            lines.append(f"{name}{braces} {_format_value(child.value)}")


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


class Counter(_Metric):
    """A monotonic count. Name it `..._total` (the exposition format does not add it)."""

    kind = "counter"

    def _make_child(self, key: tuple[str, ...]) -> _CounterChild:
        return _CounterChild(_label_text(self.labelnames, key))

    def inc(self, amount: float = 1) -> None:
        if self._default is None:
            raise ValueError(f"{self.name} has labels; use .labels(...).inc()")
        self._default.inc(amount)

    @property
    def value(self) -> float:
        if self._default is None:
            raise ValueError(f"{self.name} has labels; use .labels(...).value")
        return self._default.value


class _GaugeChild:
    __slots__ = ("_lock", "_value", "label_text")

    def __init__(self, label_text: str) -> None:
        self.label_text = label_text
        self._lock = threading.Lock()
        self._value: float = 0

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

    @property
    def value(self) -> float:
        return self._value


GaugeFunction = Callable[[], "float | Mapping[tuple[Any, ...], float] | Iterable[tuple[tuple[Any, ...], float]]"]


class Gauge(_Metric):
    """A value that goes up and down: set directly, or read from `fn` at render time.

    `fn` suits values that already live elsewhere (the batchers' queue depths): nothing is
    written on the hot path, the scrape asks. For an unlabeled gauge fn returns a number;
    for a labeled one, a mapping or iterable of (label values tuple, value). When fn is
    set it replaces the children in the output.
    """

    kind = "gauge"

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 *, registry: Registry | None = None, fn: GaugeFunction | None = None) -> None:
        super().__init__(name, documentation, labelnames, registry=registry)
        self._fn = fn

    def set_function(self, fn: GaugeFunction | None) -> None:
        self._fn = fn

    def _make_child(self, key: tuple[str, ...]) -> _GaugeChild:
        return _GaugeChild(_label_text(self.labelnames, key))

    def set(self, value: float) -> None:
        self._unlabeled().set(value)

    def inc(self, amount: float = 1) -> None:
        self._unlabeled().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._unlabeled().inc(-amount)

    @property
    def value(self) -> float:
        return self._unlabeled().value

    def _unlabeled(self) -> _GaugeChild:
        if self._default is None:
            raise ValueError(f"{self.name} has labels; use .labels(...)")
        return self._default

    def _render(self, lines: list[str]) -> None:
        fn = self._fn
        if fn is None:
            super()._render(lines)
            return
        # A scrape must not fail because one source is mid-shutdown: the error becomes a
        # comment line (the format ignores comments) and this gauge shows no samples.
        try:
            result = fn()
            if not self.labelnames:
                rendered = [f"{self.name} {_format_value(result)}"]
            else:
                items = result.items() if isinstance(result, Mapping) else result
                rendered = []
                for values, value in items:
                    values = tuple(str(v) for v in values)
                    if len(values) != len(self.labelnames):
                        raise ValueError(f"expected {len(self.labelnames)} label values, "
                                         f"got {values!r}")
                    labels = _label_text(self.labelnames, values)
                    rendered.append(f"{self.name}{{{labels}}} {_format_value(value)}")
        except Exception as exc:  # noqa: BLE001 - any source failure, see above
            reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            lines.append(f"# {self.name} source failed: {reason}")
            return
        lines.extend(rendered)


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

    def snapshot(self) -> tuple[list[int], float]:
        """Cumulative bucket counts (the last is +Inf, the count) and the sum, taken
        together so that a scrape never shows a count that disagrees with its buckets."""
        lock = self._lock
        lock.acquire()
        try:
            counts, total = list(self._counts), self._sum
        finally:
            lock.release()
        running = 0
        for i, c in enumerate(counts):
            running += c
            counts[i] = running
        return counts, total


class Histogram(_Metric):
    """Observations counted into cumulative `le` buckets, with their sum and count."""

    kind = "histogram"
    _reserved_labels = frozenset({"le"})

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 *, buckets: Iterable[float], registry: Registry | None = None) -> None:
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
        super().__init__(name, documentation, labelnames, registry=registry)

    def _make_child(self, key: tuple[str, ...]) -> _HistogramChild:
        return _HistogramChild(_label_text(self.labelnames, key), self.buckets)

    def observe(self, value: float) -> None:
        if self._default is None:
            raise ValueError(f"{self.name} has labels; use .labels(...).observe()")
        self._default.observe(value)

    def snapshot(self) -> tuple[list[int], float]:
        if self._default is None:
            raise ValueError(f"{self.name} has labels; use .labels(...).snapshot()")
        return self._default.snapshot()

    def _render(self, lines: list[str]) -> None:
        name = self.name
        for child in self._snapshot():
            counts, total = child.snapshot()
            labels = child.label_text
            prefix = f"{labels}," if labels else ""
            for le, count in zip(self._le, counts):
                lines.append(f'{name}_bucket{{{prefix}le="{le}"}} {count}')
            braces = f"{{{labels}}}" if labels else ""
            lines.append(f"{name}_sum{braces} {_format_value(total)}")
            lines.append(f"{name}_count{braces} {counts[-1]}")


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
    version that answered). A request refused before routing (404 endpoint, 400 body,
    415, 413, 429) has served_entity="" and version="".
    """

    def __init__(self, registry: Registry | None = None, *,
                 queue_depth: GaugeFunction | None = None) -> None:
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
            _ENTITY, fn=queue_depth, registry=r)
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

    def set_queue_depth(self, fn: GaugeFunction | None) -> None:
        """fn() -> {(endpoint, served_entity, version): depth} or pairs of the same."""
        self.queue_depth.set_function(fn)

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
                       self.shadow_requests, self.payload_log_dropped, self.model_load):
            metric.remove_where(endpoint=endpoint)

    def render(self) -> str:
        return self.registry.render()
