"""Prometheus metrics: strict text-format parsing, cumulative histograms, escaping, threads.

prometheus_client is not installed in the venv (and is not a dependency), so the tests
carry a strict parser of text exposition format 0.0.4 instead (prometheus_text.py).
"""
from __future__ import annotations

import math
import threading

import pytest
from prometheus_text import parse, samples_of

from cairn.app.serving.metrics import (
    BATCH_ROWS_BUCKETS,
    CONTENT_TYPE,
    LATENCY_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    Registry,
    ServingMetrics,
)

# --- tests -----------------------------------------------------------------------------

def test_serving_metrics_render_parses():
    m = ServingMetrics()
    m.queue_depth.set_function(lambda: {("iris", "champion", 3): 5})
    m.observe_request("iris", "champion", 3, 200, 0.0004)
    m.observe_request("iris", "champion", 3, 200, 0.002)
    m.observe_request("iris", "champion", 3, 503, 0.00005)
    m.observe_request("iris", "", "", 400, 0.0001)
    m.observe_batch("iris", "champion", 3, 7)
    m.observe_shadow("iris", "challenger", "4", 200)
    m.observe_model_load("iris", "champion", 3, 0.12)
    m.payload_dropped("iris", 3)
    fams = parse(m.render())
    assert {name: f["type"] for name, f in fams.items()} == {
        "cairn_serving_requests_total": "counter",
        "cairn_serving_errors_total": "counter",
        "cairn_serving_request_latency_seconds": "histogram",
        "cairn_serving_batch_rows": "histogram",
        "cairn_serving_queue_depth": "gauge",
        "cairn_serving_queue_rows": "gauge",
        "cairn_serving_workers": "gauge",
        "cairn_serving_shadow_requests_total": "counter",
        "cairn_serving_payload_log_dropped_total": "counter",
        "cairn_serving_model_load_seconds": "histogram",
    }
    entity = (("endpoint", "iris"), ("served_entity", "champion"), ("version", "3"))

    def with_class(cls: str) -> tuple:
        return tuple(sorted((*entity, ("status_class", cls))))

    reqs = samples_of(fams, "cairn_serving_requests_total")
    assert reqs[("cairn_serving_requests_total", with_class("2xx"))] == 2
    assert reqs[("cairn_serving_requests_total", with_class("5xx"))] == 1
    errors = samples_of(fams, "cairn_serving_errors_total")
    assert set(errors.values()) == {1} and len(errors) == 2  # the 503 and the 400
    count = samples_of(fams, "cairn_serving_request_latency_seconds_count")
    assert count[("cairn_serving_request_latency_seconds_count", entity)] == 3
    depth = samples_of(fams, "cairn_serving_queue_depth")
    assert depth == {("cairn_serving_queue_depth", entity): 5}
    dropped = samples_of(fams, "cairn_serving_payload_log_dropped_total")
    assert list(dropped.values()) == [3]
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_bucket_layouts():
    assert LATENCY_BUCKETS[0] == 0.0001 and LATENCY_BUCKETS[-1] == 10
    assert BATCH_ROWS_BUCKETS == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def test_histogram_is_cumulative_with_le_boundaries():
    r = Registry()
    h = Histogram("lat_seconds", "latency", buckets=[0.1, 1, 10], registry=r)
    for v in (0.05, 0.1, 0.5, 1.0, 5, 50, 50):
        h.observe(v)
    fams = parse(r.render())
    buckets = [(labels["le"], v) for s, labels, v in fams["lat_seconds"]["samples"]
               if s == "lat_seconds_bucket"]
    # value == bound counts in that bucket (le = "less or equal")
    assert buckets == [("0.1", 2), ("1.0", 4), ("10.0", 5), ("+Inf", 7)]
    assert samples_of(fams, "lat_seconds_sum")[("lat_seconds_sum", ())] == pytest.approx(106.65)
    assert h.snapshot() == ([2, 4, 5, 7], pytest.approx(106.65))


def test_empty_families_render_help_and_type_only():
    r = Registry()
    Histogram("h", "no samples yet", ("a",), buckets=[1], registry=r)
    Counter("c_total", "none either", ("a",), registry=r)
    text = r.render()
    assert text == ("# HELP h no samples yet\n# TYPE h histogram\n"
                    "# HELP c_total none either\n# TYPE c_total counter\n")
    parse(text)


def test_unlabeled_metrics_and_value_formats():
    r = Registry()
    c = Counter("jobs_total", "jobs", registry=r)
    g = Gauge("temp", "temperature", registry=r)
    c.inc()
    c.inc(2)
    g.set(-1.5)
    text = r.render()
    assert "\njobs_total 3\n" in text and "\ntemp -1.5\n" in text
    g.set(math.inf)
    assert "\ntemp +Inf\n" in r.render()
    g.set(math.nan)
    assert "\ntemp NaN\n" in r.render()
    g.set(1e-7)
    assert "\ntemp 1e-07\n" in r.render()
    g.set(3)
    g.inc(2)
    g.dec(0.5)
    assert g.value == 4.5 and c.value == 3
    parse(r.render())


@pytest.mark.parametrize("value", [
    'plain', 'quote " inside', "back\\slash", "new\nline", 'all \\" \n \\n', "ünïcödé ✓",
    "", "trailing\\",
])
def test_label_values_escaped_and_round_trip(value):
    r = Registry()
    Counter("x_total", "x", ("v",), registry=r).labels(value).inc()
    fams = parse(r.render())
    (sample,) = fams["x_total"]["samples"]
    assert sample[1] == {"v": value}


def test_help_text_escaped():
    r = Registry()
    Counter("y_total", 'multi\nline \\ "help"', registry=r)
    text = r.render()
    assert '# HELP y_total multi\\nline \\\\ "help"\n' in text
    assert parse(text)["y_total"]["help"] == 'multi\nline \\ "help"'


def test_label_children_cached_and_normalized():
    c = Counter("z_total", "z", ("endpoint", "version"))
    child = c.labels("a", 3)
    assert c.labels("a", 3) is child
    assert c.labels("a", "3") is child  # int and str version are one series
    assert c.labels(version=3, endpoint="a") is child
    assert c.labels("a", 4) is not child


def test_concurrent_increments_add_up_exactly():
    r = Registry()
    c = Counter("hits_total", "hits", ("k",), registry=r)
    h = Histogram("obs", "obs", ("k",), buckets=[0.5], registry=r)
    g = Gauge("level", "level", ("k",), registry=r)
    threads_n, per_thread = 8, 4_000
    start = threading.Barrier(threads_n + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        start.wait()
        shared_c, shared_h, shared_g = c.labels("shared"), h.labels("shared"), g.labels("s")
        for n in range(per_thread):
            shared_c.inc()
            shared_h.observe(0.25 if n % 2 else 1.0)
            shared_g.inc()
            shared_g.dec(0.5)
            c.labels(f"t{n % 50}").inc()  # concurrent child creation too

    def scrape() -> None:
        start.wait()
        while not stop.is_set():
            parse(r.render())  # never raises mid-update, and stays consistent

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    scraper = threading.Thread(target=scrape)
    for t in (*threads, scraper):
        t.start()
    for t in threads:
        t.join()
    stop.set()
    scraper.join()
    total = threads_n * per_thread
    assert c.labels("shared").value == total
    assert sum(c.labels(f"t{n}").value for n in range(50)) == total
    assert len(c._children) == 51
    counts, s = h.labels("shared").snapshot()
    assert counts == [total // 2, total]
    assert s == pytest.approx(total // 2 * 0.25 + total // 2 * 1.0)
    assert g.labels("s").value == total * 0.5


def test_gauge_function_sources():
    r = Registry()
    Gauge("depth", "d", ("q",), fn=lambda: [(("a",), 1), (("b",), 2)], registry=r)
    Gauge("workers", "w", fn=lambda: 4, registry=r)
    fams = parse(r.render())
    assert [(lab, v) for _, lab, v in fams["depth"]["samples"]] == [({"q": "a"}, 1),
                                                                     ({"q": "b"}, 2)]
    assert fams["workers"]["samples"] == [("workers", {}, 4)]


def test_gauge_function_failure_keeps_the_page():
    r = Registry()

    def broken():
        raise RuntimeError("batcher\nclosing")

    g = Gauge("depth", "d", ("q",), fn=broken, registry=r)
    Counter("after_total", "still here", registry=r).inc()
    text = r.render()
    assert "# depth source failed: RuntimeError: batcher closing\n" in text
    fams = parse(text)
    assert fams["depth"]["samples"] == [] and fams["after_total"]["samples"][0][2] == 1
    g.set_function(lambda: {("a", "extra"): 1})  # wrong label count is a failure too
    assert "source failed" in r.render()
    g.set_function(None)
    g.labels("x").set(7)
    assert "\ndepth{q=\"x\"} 7\n" in r.render()


def test_forget_removes_an_endpoints_series():
    m = ServingMetrics()
    m.observe_request("gone", "a", 1, 500, 0.01)
    m.observe_request("kept", "a", 1, 200, 0.01)
    m.observe_batch("gone", "a", 1, 4)
    m.payload_dropped("gone")
    m.forget("gone")
    text = m.render()
    assert 'endpoint="gone"' not in text and 'endpoint="kept"' in text
    m.observe_request("gone", "a", 1, 500, 0.01)  # comes back cleanly if recreated
    fams = parse(m.render())
    assert samples_of(fams, "cairn_serving_errors_total") == {
        ("cairn_serving_errors_total", (("endpoint", "gone"), ("served_entity", "a"),
                                        ("status", "500"), ("version", "1"))): 1}


@pytest.mark.parametrize("make, message", [
    (lambda r: Counter("bad-name", "x", registry=r), "invalid metric name"),
    (lambda r: Counter("1x", "x", registry=r), "invalid metric name"),
    (lambda r: Counter("x", "x", ("bad-label",), registry=r), "invalid label name"),
    (lambda r: Counter("x", "x", ("__meta",), registry=r), "reserved"),
    (lambda r: Counter("x", "x", ("a", "a"), registry=r), "duplicate"),
    (lambda r: Histogram("x", "x", ("le",), buckets=[1], registry=r), "reserved"),
    (lambda r: Histogram("x", "x", buckets=[], registry=r), "at least one"),
    (lambda r: Histogram("x", "x", buckets=[2, 1], registry=r), "increase strictly"),
    (lambda r: Histogram("x", "x", buckets=[1, 1], registry=r), "increase strictly"),
    (lambda r: Histogram("x", "x", buckets=[1, math.nan], registry=r), "finite"),
    (lambda r: (Counter("x", "x", registry=r), Gauge("x", "y", registry=r)),
     "already registered"),
    (lambda r: Counter("x", "x", ("a",), registry=r).labels("1", "2"), "expected 1"),
    (lambda r: Counter("x", "x", ("a",), registry=r).labels(b="1"), "labels must be"),
    (lambda r: Counter("x", "x", ("a",), registry=r).labels("1", a="1"), "not both"),
    (lambda r: Counter("x", "x", registry=r).labels("1"), "no labels"),
    (lambda r: Counter("x", "x", ("a",), registry=r).inc(), "has labels"),
    (lambda r: Histogram("x", "x", ("a",), buckets=[1], registry=r).observe(1), "has labels"),
    (lambda r: Gauge("x", "x", ("a",), registry=r).set(1), "has labels"),
    (lambda r: Counter("x", "x", registry=r).inc(-1), "only goes up"),
    (lambda r: Counter("x", "x", ("a",), registry=r).remove_where(b=1), "no label"),
])
def test_misuse_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make(Registry())


def test_histogram_accepts_explicit_inf_bucket():
    h = Histogram("x", "x", buckets=[1, 2, math.inf])
    assert h.buckets == (1.0, 2.0, math.inf)


@pytest.mark.parametrize("text", [
    "x 1\n",  # no TYPE
    "# TYPE x counter\nx{a=\"1\"\"} 1\n",  # stray quote
    "# TYPE x counter\nx{a=\"\\t\"} 1\n",  # unknown escape
    "# TYPE x counter\nx one\n",  # bad value
    "# TYPE x counter\nx -1\n",  # negative counter
    "# TYPE x counter\nx 1",  # no final newline
    "# TYPE x counter\ny 1\n",  # sample outside its family
    "# TYPE x counter\n# TYPE y gauge\n# TYPE x counter\n",  # family split
    '# TYPE h histogram\nh_bucket{le="1.0"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="1.0"} 1\nh_sum 1\nh_count 1\n',  # no +Inf
    '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n',  # count mismatch
])
def test_the_strict_parser_rejects_bad_expositions(text):
    with pytest.raises(AssertionError):
        parse(text)


def test_batcher_stats_feed_queue_gauges_and_batch_histogram():
    import numpy as np

    from cairn.app.serving.batcher import Batcher

    release = threading.Event()

    def run(feeds):
        release.wait(5)
        return {"y": feeds["x"] * 2}

    batcher = Batcher(run, max_batch_rows=64, max_workers=1, name="iris/champion")
    m = ServingMetrics()
    calls = []

    def source():
        calls.append(1)
        return [(("iris", "champion", "3"), batcher.stats())]

    m.set_batcher_stats(source)
    try:
        blocked = threading.Thread(target=batcher.submit_sync,
                                   args=({"x": np.ones((1, 2), np.float32)}, 1))
        blocked.start()
        while batcher.stats()["busy_workers"] < 1:
            threading.Event().wait(0.001)
        queued = [threading.Thread(target=batcher.submit_sync,
                                   args=({"x": np.ones((3, 2), np.float32)}, 3))
                  for _ in range(4)]
        for t in queued:
            t.start()
        while batcher.stats()["queue_requests"] < 4:
            threading.Event().wait(0.001)
        fams = parse(m.render())
        assert len(calls) == 1  # one snapshot per render, shared by four metrics
        entity = (("endpoint", "iris"), ("served_entity", "champion"), ("version", "3"))
        assert samples_of(fams, "cairn_serving_queue_depth") == {
            ("cairn_serving_queue_depth", entity): 4}
        assert samples_of(fams, "cairn_serving_queue_rows") == {
            ("cairn_serving_queue_rows", entity): 12}
        assert samples_of(fams, "cairn_serving_workers") == {("cairn_serving_workers", entity): 1}
        release.set()
        for t in (blocked, *queued):
            t.join(5)
        fams = parse(m.render())
        count = samples_of(fams, "cairn_serving_batch_rows_count")
        total = samples_of(fams, "cairn_serving_batch_rows_sum")
        assert count[("cairn_serving_batch_rows_count", entity)] == batcher.stats()["batches"]
        assert total[("cairn_serving_batch_rows_sum", entity)] == 13
        assert samples_of(fams, "cairn_serving_queue_depth")[
            ("cairn_serving_queue_depth", entity)] == 0
    finally:
        release.set()
        batcher.close()

    def broken():
        raise RuntimeError("manager reloading")

    m.set_batcher_stats(broken)
    text = m.render()
    assert "# render hook failed: RuntimeError: manager reloading" in text
    assert "# cairn_serving_queue_depth source failed" in text
    parse(text)
    m.set_batcher_stats(None)  # back to pushed values
    m.observe_batch("iris", "champion", 3, 8)
    fams = parse(m.render())
    assert samples_of(fams, "cairn_serving_batch_rows_count") == {
        ("cairn_serving_batch_rows_count", entity): 1}
    assert samples_of(fams, "cairn_serving_queue_depth") == {}


def test_histogram_source_with_wrong_bucket_count_fails_alone():
    r = Registry()
    Histogram("h", "h", ("a",), buckets=[1, 2], fn=lambda: {("x",): ([1, 2], 3.0)}, registry=r)
    text = r.render()
    assert "# h source failed: ValueError: expected 3 bucket counts" in text
    parse(text)
