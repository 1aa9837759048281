"""Serving's Prometheus metrics (prometheus_client underneath): the page a real
Prometheus scrapes, read back with a strict parser of text format 0.0.4
(prometheus_text.py) that checks the format's rules independently of the library:
names, types and labels as dashboards know them, cumulative histograms with `le`
boundaries, escaping, exact counts under threads, series removed with their endpoint,
and the batchers' figures read at scrape time.
"""
from __future__ import annotations

import threading

import pytest
from prometheus_text import parse, samples_of

from cairn.app.serving.metrics import (
    BATCH_ROWS_BUCKETS,
    CONTENT_TYPE,
    LATENCY_BUCKETS,
    ServingMetrics,
)

FAMILIES = {
    "cairn_serving_requests_total": "counter",
    "cairn_serving_errors_total": "counter",
    "cairn_serving_request_latency_seconds": "histogram",
    "cairn_serving_queue_depth": "gauge",
    "cairn_serving_queue_rows": "gauge",
    "cairn_serving_workers": "gauge",
    "cairn_serving_batch_rows": "histogram",
    "cairn_serving_shadow_requests_total": "counter",
    "cairn_serving_payload_log_dropped_total": "counter",
    "cairn_serving_model_load_seconds": "histogram",
    "cairn_feature_lookups_total": "counter",
    "cairn_feature_lookup_misses_total": "counter",
    "cairn_feature_lookup_stale_total": "counter",
    "cairn_monitor_alert_firing": "gauge",
}
ENTITY = (("endpoint", "iris"), ("served_entity", "champion"), ("version", "3"))


def _stats(queue_requests=0, queue_rows=0, workers=1, counts=None, total=0.0) -> dict:
    """The shape Batcher.stats() has (per-bucket batch counts, +Inf last)."""
    counts = counts if counts is not None else [0] * (len(BATCH_ROWS_BUCKETS) + 1)
    return {"queue_requests": queue_requests, "queue_rows": queue_rows, "workers": workers,
            "batch_rows_counts": counts, "batch_rows_sum": total}


def test_serving_metrics_render_parses():
    m = ServingMetrics()
    counts = [0] * (len(BATCH_ROWS_BUCKETS) + 1)
    counts[3] = 1  # one batch of 7 rows: the le=8 bucket
    m.set_batcher_stats(lambda: [(("iris", "champion", 3), _stats(5, 9, 2, counts, 7.0))])
    m.observe_request("iris", "champion", 3, 200, 0.0004)
    m.observe_request("iris", "champion", 3, 200, 0.002)
    m.observe_request("iris", "champion", 3, 503, 0.00005)
    m.observe_request("iris", "", "", 400, 0.0001)
    m.observe_shadow("iris", "challenger", "4", 200)
    m.observe_model_load("iris", "champion", 3, 0.12)
    m.payload_dropped("iris", 3)
    m.set_feature_counts(lambda: {"cust": [10, 2, 1]})
    m.set_alert_states(lambda: [("iris", "x0 moved", True), ("iris", "slow", False)])
    fams = parse(m.render())
    assert samples_of(fams, "cairn_monitor_alert_firing") == {
        ("cairn_monitor_alert_firing", (("alert", "x0 moved"), ("endpoint", "iris"))): 1,
        ("cairn_monitor_alert_firing", (("alert", "slow"), ("endpoint", "iris"))): 0}
    assert {name: f["type"] for name, f in fams.items()} == FAMILIES
    assert samples_of(fams, "cairn_feature_lookups_total") == {("cairn_feature_lookups_total", (("table", "cust"),)): 10}
    assert samples_of(fams, "cairn_feature_lookup_stale_total") == {
        ("cairn_feature_lookup_stale_total", (("table", "cust"),)): 1}

    def with_class(cls: str) -> tuple:
        return tuple(sorted((*ENTITY, ("status_class", cls))))

    reqs = samples_of(fams, "cairn_serving_requests_total")
    assert reqs[("cairn_serving_requests_total", with_class("2xx"))] == 2
    assert reqs[("cairn_serving_requests_total", with_class("5xx"))] == 1
    errors = samples_of(fams, "cairn_serving_errors_total")
    assert set(errors.values()) == {1} and len(errors) == 2  # the 503 and the 400
    count = samples_of(fams, "cairn_serving_request_latency_seconds_count")
    assert count[("cairn_serving_request_latency_seconds_count", ENTITY)] == 3
    assert samples_of(fams, "cairn_serving_queue_depth") == {("cairn_serving_queue_depth", ENTITY): 5}
    assert samples_of(fams, "cairn_serving_queue_rows") == {("cairn_serving_queue_rows", ENTITY): 9}
    assert samples_of(fams, "cairn_serving_workers") == {("cairn_serving_workers", ENTITY): 2}
    le8 = tuple(sorted((*ENTITY, ("le", "8.0"))))
    assert samples_of(fams, "cairn_serving_batch_rows_bucket")[("cairn_serving_batch_rows_bucket", le8)] == 1
    assert samples_of(fams, "cairn_serving_batch_rows_sum") == {("cairn_serving_batch_rows_sum", ENTITY): 7}
    dropped = samples_of(fams, "cairn_serving_payload_log_dropped_total")
    assert list(dropped.values()) == [3]
    shadow = samples_of(fams, "cairn_serving_shadow_requests_total")
    assert list(shadow.values()) == [1]
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_bucket_layouts():
    assert LATENCY_BUCKETS[0] == 0.0001 and LATENCY_BUCKETS[-1] == 10
    assert BATCH_ROWS_BUCKETS == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def test_latency_histogram_is_cumulative_with_le_boundaries():
    m = ServingMetrics()
    for v in (0.00005, 0.0001, 0.0003, 0.0005, 0.004, 50.0, 50.0):
        m.observe_request("iris", "champion", 3, 200, v)
    fams = parse(m.render())
    buckets = {labels["le"]: v for s, labels, v in fams["cairn_serving_request_latency_seconds"]["samples"]
               if s.endswith("_bucket")}
    # value == bound counts in that bucket (le = "less or equal")
    assert buckets["0.0001"] == 2 and buckets["0.00025"] == 2 and buckets["0.0005"] == 4
    assert buckets["0.005"] == 5 and buckets["10.0"] == 5 and buckets["+Inf"] == 7
    total = samples_of(fams, "cairn_serving_request_latency_seconds_sum")
    assert total[("cairn_serving_request_latency_seconds_sum", ENTITY)] == pytest.approx(100.00495)


def test_a_fresh_page_has_every_family_and_no_samples():
    """Help and type for all ten families before the first request (a dashboard's
    queries resolve from the start), and no `_created` series."""
    text = ServingMetrics().render()
    fams = parse(text)
    assert {name: f["type"] for name, f in fams.items()} == FAMILIES
    assert all(f["samples"] == [] for f in fams.values())
    assert "_created" not in text


@pytest.mark.parametrize("value", [
    'plain', 'quote " inside', "back\\slash", "new\nline", 'all \\" \n \\n', "ünïcödé ✓", "trailing\\",
])
def test_label_values_escaped_and_round_trip(value):
    m = ServingMetrics()
    m.observe_request(value, "a", 1, 200, 0.001)
    fams = parse(m.render())
    (sample,) = fams["cairn_serving_requests_total"]["samples"]
    assert sample[1]["endpoint"] == value


def test_int_and_str_versions_are_one_series():
    m = ServingMetrics()
    m.observe_request("iris", "champion", 3, 200, 0.001)
    m.observe_request("iris", "champion", "3", 200, 0.001)
    fams = parse(m.render())
    assert list(samples_of(fams, "cairn_serving_requests_total").values()) == [2]


def test_concurrent_requests_add_up_exactly():
    m = ServingMetrics()
    threads_n, per_thread = 8, 3_000
    start = threading.Barrier(threads_n + 1)
    stop = threading.Event()
    pages = []

    def work(i: int) -> None:
        start.wait()
        for n in range(per_thread):
            m.observe_request("shared", "a", 1, 200 if n % 2 else 500, 0.25 if n % 2 else 1.0)
            m.observe_request(f"t{n % 50}", "a", 1, 200, 0.001)  # concurrent series creation too

    def scrape() -> None:
        start.wait()
        while not stop.is_set():
            pages.append(parse(m.render()))  # never raises mid-update, and always parses

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    scraper = threading.Thread(target=scrape)
    for t in (*threads, scraper):
        t.start()
    for t in threads:
        t.join()
    stop.set()
    scraper.join()
    assert pages
    fams = parse(m.render())
    total = threads_n * per_thread
    reqs = samples_of(fams, "cairn_serving_requests_total")
    shared = sum(v for (_, labels), v in reqs.items() if ("endpoint", "shared") in labels)
    assert shared == total
    assert sum(v for (_, labels), v in reqs.items() if dict(labels)["endpoint"].startswith("t")) == total
    errors = samples_of(fams, "cairn_serving_errors_total")
    assert sum(errors.values()) == total // 2
    count = samples_of(fams, "cairn_serving_request_latency_seconds_count")
    key = ("cairn_serving_request_latency_seconds_count", (("endpoint", "shared"), ("served_entity", "a"),
                                                           ("version", "1")))
    assert count[key] == total


def test_forget_removes_an_endpoints_series():
    m = ServingMetrics()
    m.observe_request("gone", "a", 1, 500, 0.01)
    m.observe_request("kept", "a", 1, 200, 0.01)
    m.observe_shadow("gone", "b", 2, 200)
    m.observe_model_load("gone", "a", 1, 0.2)
    m.payload_dropped("gone")
    m.forget("gone")
    text = m.render()
    assert 'endpoint="gone"' not in text and 'endpoint="kept"' in text
    m.forget("never-seen")  # nothing to remove is fine
    m.observe_request("gone", "a", 1, 500, 0.01)  # comes back cleanly if recreated
    fams = parse(m.render())
    assert samples_of(fams, "cairn_serving_errors_total") == {
        ("cairn_serving_errors_total", (("endpoint", "gone"), ("served_entity", "a"),
                                        ("status", "500"), ("version", "1"))): 1}


@pytest.mark.parametrize("source", [
    lambda: (_ for _ in ()).throw(RuntimeError("manager reloading")),
    lambda: [(("iris", "champion", 3), _stats(counts=[1, 2]))],  # wrong bucket count
    lambda: [(("iris", "champion", 3), {"queue_requests": 1})],  # fields missing
    lambda: [(("iris", "champion", 3), {k: v for k, v in _stats().items() if k != "workers"})],
])
def test_a_failing_batcher_source_leaves_its_families_empty_and_keeps_the_page(source):
    m = ServingMetrics()
    m.set_batcher_stats(source)
    m.observe_request("iris", "champion", 3, 200, 0.001)
    fams = parse(m.render())
    assert fams["cairn_serving_queue_depth"]["samples"] == []
    assert fams["cairn_serving_batch_rows"]["samples"] == []
    assert list(samples_of(fams, "cairn_serving_requests_total").values()) == [1]
    m.set_batcher_stats(None)
    assert parse(m.render())["cairn_serving_workers"]["samples"] == []


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
        blocked = threading.Thread(target=batcher.submit_sync, args=({"x": np.ones((1, 2), np.float32)}, 1))
        blocked.start()
        while batcher.stats()["busy_workers"] < 1:
            threading.Event().wait(0.001)
        queued = [threading.Thread(target=batcher.submit_sync, args=({"x": np.ones((3, 2), np.float32)}, 3))
                  for _ in range(4)]
        for t in queued:
            t.start()
        while batcher.stats()["queue_requests"] < 4:
            threading.Event().wait(0.001)
        fams = parse(m.render())
        assert len(calls) == 1  # one snapshot per scrape, shared by four families
        assert samples_of(fams, "cairn_serving_queue_depth") == {("cairn_serving_queue_depth", ENTITY): 4}
        assert samples_of(fams, "cairn_serving_queue_rows") == {("cairn_serving_queue_rows", ENTITY): 12}
        assert samples_of(fams, "cairn_serving_workers") == {("cairn_serving_workers", ENTITY): 1}
        release.set()
        for t in (blocked, *queued):
            t.join(5)
        fams = parse(m.render())
        count = samples_of(fams, "cairn_serving_batch_rows_count")
        total = samples_of(fams, "cairn_serving_batch_rows_sum")
        assert count[("cairn_serving_batch_rows_count", ENTITY)] == batcher.stats()["batches"]
        assert total[("cairn_serving_batch_rows_sum", ENTITY)] == 13
        assert samples_of(fams, "cairn_serving_queue_depth")[("cairn_serving_queue_depth", ENTITY)] == 0
    finally:
        release.set()
        batcher.close()
