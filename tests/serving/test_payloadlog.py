"""Payload log writer: batches, sampling, truncation, a stalled writer, close()."""
from __future__ import annotations

import math
import threading
import time

import pytest

from cairn.app.serving.payloadlog import PayloadLogger, PayloadRecord, truncate_payload


class Sink:
    """A write_batch that keeps what it gets; `gate` (when set) holds the writer."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[PayloadRecord]] = []
        self.gate = gate
        self.entered = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, records):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        with self.lock:
            self.batches.append(list(records))

    @property
    def records(self) -> list[PayloadRecord]:
        with self.lock:
            return [r for batch in self.batches for r in batch]


def offer(log: PayloadLogger, i: int, **fields) -> bool:
    fields.setdefault("status_code", 200)
    fields.setdefault("latency_ms", 0.5)
    return log.offer(f"req-{i}", **fields)


def test_everything_offered_under_capacity_arrives_in_batches():
    sink = Sink()
    log = PayloadLogger(sink, batch_size=100, flush_interval_s=10)
    try:
        for i in range(2345):
            assert offer(log, i, request=b'{"inputs": [[1, 2]]}', response='{"predictions": [3]}',
                         client_request_id=f"c{i}", timestamp_ms=1_700_000_000_000 + i,
                         served_entity_name="champion", model_name="cat.sch.iris",
                         model_version=3, shadow=i % 10 == 0)
        assert log.flush(timeout=10)
    finally:
        log.close()
    records = sink.records
    assert [r.request_id for r in records] == [f"req-{i}" for i in range(2345)]
    assert all(1 <= len(b) <= 100 for b in sink.batches)
    assert len(sink.batches) >= 24  # 2345 / 100, rounded up
    first = records[0]
    assert isinstance(first, PayloadRecord)
    assert (first.client_request_id, first.timestamp_ms, first.status_code, first.latency_ms,
            first.served_entity_name, first.model_name, first.model_version, first.request,
            first.response, first.truncated, first.shadow) == (
        "c0", 1_700_000_000_000, 200, 0.5, "champion", "cat.sch.iris", "3",
        '{"inputs": [[1, 2]]}', '{"predictions": [3]}', False, True)
    assert log.written == 2345 and log.dropped == 0 and log.failed == 0


def test_a_full_batch_is_written_without_waiting_for_the_interval():
    sink = Sink()
    log = PayloadLogger(sink, batch_size=50, flush_interval_s=30)
    try:
        for i in range(50):
            offer(log, i)
        deadline = time.monotonic() + 5
        while len(sink.records) < 50 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(sink.records) == 50
    finally:
        log.close()


def test_a_trickle_is_written_within_the_flush_interval():
    sink = Sink()
    log = PayloadLogger(sink, batch_size=500, flush_interval_s=0.05)
    try:
        offer(log, 1)
        deadline = time.monotonic() + 5
        while not sink.records and time.monotonic() < deadline:
            time.sleep(0.005)
        assert [r.request_id for r in sink.records] == ["req-1"]
        assert sink.records[0].timestamp_ms == pytest.approx(time.time() * 1000, abs=10_000)
    finally:
        log.close()


@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.9])
def test_sampling_fraction_within_bounds_and_predictable(fraction):
    sink = Sink()
    log = PayloadLogger(sink, sampling_fraction=fraction, flush_interval_s=10)
    n = 20_000
    try:
        predicted = {f"req-{i}" for i in range(n) if log.sampled(f"req-{i}")}
        queued = {f"req-{i}" for i in range(n) if offer(log, i)}
        assert log.flush(timeout=10)
    finally:
        log.close()
    assert {r.request_id for r in sink.records} == queued == predicted
    sigma = math.sqrt(n * fraction * (1 - fraction))
    assert abs(len(queued) - n * fraction) <= 5 * sigma
    # the same id gets the same answer from another logger (another process, a restart)
    other = PayloadLogger(Sink(), sampling_fraction=fraction)
    try:
        assert all(other.sampled(rid) for rid in list(predicted)[:500])
    finally:
        other.close()


def test_sampling_edges():
    none_log = PayloadLogger(Sink(), sampling_fraction=0.0)
    all_log = PayloadLogger(Sink(), sampling_fraction=1.0)
    half = PayloadLogger(Sink(), sampling_fraction=0.5)
    try:
        assert not any(offer(none_log, i) for i in range(1000))
        assert all(offer(all_log, i) for i in range(1000))
        # no id: a fair draw instead of one fixed answer for every id-less request
        assert 300 < sum(half.sampled("") for _ in range(1000)) < 700
        assert none_log.dropped == 0  # not sampled is not dropped
    finally:
        for log in (none_log, all_log, half):
            log.close()


def test_sampling_is_not_aligned_with_router_buckets():
    from cairn.app.serving.router import Router

    router = Router([("a", 30), ("b", 70)])
    log = PayloadLogger(Sink(), sampling_fraction=0.3)
    try:
        ids = [f"req-{i}" for i in range(20_000)]
        sampled_on_a = sum(1 for rid in ids if log.sampled(rid) and router.choose(rid) == "a")
        sampled = sum(1 for rid in ids if log.sampled(rid))
        # independent hashes: ~30% of the sampled requests went to a, not all of them
        assert abs(sampled_on_a / sampled - 0.3) < 0.05
    finally:
        log.close()


def test_payloads_truncated_and_marked():
    sink = Sink()
    log = PayloadLogger(sink, max_payload_bytes=10, max_queue_bytes=1000, flush_interval_s=10)
    try:
        offer(log, 0, request=b"0123456789", response="abcdefghij")  # exactly the cap
        offer(log, 1, request=b"0123456789abc", response="ok")
        offer(log, 2, request="ok", response="x" * 1000)
        offer(log, 3, request="ééééééé", response=None)  # 14 bytes of 2-byte chars
        offer(log, 4, request=b"abcdefgh\xe2\x82\xac\xe2\x82\xac", response=bytearray(b"r"))
        assert log.flush(timeout=10)
    finally:
        log.close()
    got = [(r.request, r.response, r.truncated) for r in sink.records]
    assert got == [
        ("0123456789", "abcdefghij", False),
        ("0123456789", "ok", True),
        ("ok", "x" * 10, True),
        ("ééééé", "", True),  # cut at a character boundary: 10 bytes
        ("abcdefgh", "r", True),  # the euro sign would straddle the cap: cut before it
    ]


@pytest.mark.parametrize("payload, cap, expected", [
    (None, 5, ("", 0, False)),
    ("", 0, ("", 0, False)),
    ("abc", 0, ("", 0, True)),
    (b"abc", 0, (b"", 0, True)),
    ("a€b", 4, ("a€", 4, True)),
    ("a€b", 3, ("a", 1, True)),
    ("a€b", 5, ("a€b", 5, False)),
    ("😀😀", 7, ("😀", 4, True)),
    (b"\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 7, (b"\xf0\x9f\x98\x80", 4, True)),
    (b"\x80\x80\x80\x80\x80\x80", 5, (b"\x80\x80\x80\x80\x80", 5, True)),  # not UTF-8
    (memoryview(b"abcdef"), 3, (b"abc", 3, True)),
])
def test_truncate_payload(payload, cap, expected):
    assert truncate_payload(payload, cap) == expected


def test_stalled_writer_never_blocks_offers_and_counts_drops():
    gate = threading.Event()
    sink = Sink(gate)
    drops: list[int] = []
    log = PayloadLogger(sink, max_queue=1000, batch_size=100, flush_interval_s=0.01,
                        on_drop=drops.append)
    try:
        offer(log, -1)
        assert sink.entered.wait(5)  # the writer now holds one record and is stuck
        n = 50_000
        worst = 0.0
        start = time.perf_counter()
        accepted = 0
        for i in range(n):
            t0 = time.perf_counter()
            accepted += offer(log, i, request=b"x" * 100)
            worst = max(worst, time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        assert accepted == 1000  # the queue bound, nothing more
        assert log.dropped == n - 1000 == sum(drops)
        stats = log.stats()
        assert stats["queued"] == 1000 and stats["queued_bytes"] == 1000 * 100
        assert worst < 0.05, f"an offer took {worst * 1000:.1f} ms"
        assert elapsed / n < 50e-6, f"{elapsed / n * 1e6:.1f} us per offer"
        assert not log.flush(timeout=0.05)  # a stalled writer: flush says so, in time
        gate.set()
        assert log.flush(timeout=10)
        assert len(sink.records) == 1001 and log.written == 1001
    finally:
        gate.set()
        log.close()


def test_queue_byte_budget_bounds_memory():
    gate = threading.Event()
    sink = Sink(gate)
    log = PayloadLogger(sink, max_queue=10_000, max_payload_bytes=1000,
                        max_queue_bytes=10_000, flush_interval_s=0.01)
    try:
        offer(log, -1)
        assert sink.entered.wait(5)
        accepted = sum(offer(log, i, request=b"y" * 1000) for i in range(100))
        assert accepted == 10 and log.dropped == 90
        assert log.stats()["queued_bytes"] == 10_000
        # small records still fit when big ones do not
        assert not offer(log, 999, request=b"z")
    finally:
        gate.set()
        log.close()


def test_close_flushes_and_later_offers_are_dropped():
    sink = Sink()
    drops: list[int] = []
    log = PayloadLogger(sink, batch_size=500, flush_interval_s=60, on_drop=drops.append)
    for i in range(123):
        offer(log, i)
    assert log.close(timeout=10)
    assert len(sink.records) == 123
    assert not offer(log, 124) and log.dropped == 1 and drops == [1]
    assert log.closed and log.close(timeout=1)  # closing twice is fine


def test_close_with_a_stalled_writer_returns_in_time():
    gate = threading.Event()
    log = PayloadLogger(Sink(gate), flush_interval_s=0.01)
    try:
        offer(log, 1)
        start = time.monotonic()
        assert not log.close(timeout=0.1)
        assert time.monotonic() - start < 2
    finally:
        gate.set()
    assert log.close(timeout=5)


def test_a_failed_write_loses_only_its_batch():
    calls: list[int] = []
    drops: list[int] = []

    def write(records):
        calls.append(len(records))
        if len(calls) == 1:
            raise OSError("disk full")

    log = PayloadLogger(write, batch_size=10, flush_interval_s=60, on_drop=drops.append)
    try:
        for i in range(10):
            offer(log, i)
        assert log.flush(timeout=10)
        for i in range(10, 15):
            offer(log, i)
        assert log.flush(timeout=10)
    finally:
        log.close()
    assert calls == [10, 5]
    assert log.failed == 10 and log.written == 5 and drops == [10]
    assert isinstance(log.last_error, OSError)


def test_on_drop_errors_never_reach_the_caller():
    def boom(n):
        raise RuntimeError("metrics broken")

    log = PayloadLogger(Sink(), on_drop=boom)
    log.close()
    assert offer(log, 1) is False


def test_concurrent_offers_all_arrive_once():
    sink = Sink()
    log = PayloadLogger(sink, max_queue=100_000, batch_size=256, flush_interval_s=0.05)
    threads_n, per = 8, 2_000

    def work(t):
        for i in range(per):
            offer(log, t * per + i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.close(timeout=10)
    ids = [r.request_id for r in sink.records]
    assert len(ids) == len(set(ids)) == threads_n * per


@pytest.mark.parametrize("kwargs, message", [
    ({"max_queue": 0}, "max_queue"),
    ({"batch_size": 0}, "batch_size"),
    ({"flush_interval_s": 0}, "flush_interval_s"),
    ({"sampling_fraction": 1.5}, "sampling_fraction"),
    ({"sampling_fraction": float("nan")}, "sampling_fraction"),
    ({"max_payload_bytes": -1}, "max_payload_bytes"),
    ({"max_payload_bytes": 1000, "max_queue_bytes": 1999}, "max_queue_bytes"),
])
def test_bad_settings_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PayloadLogger(Sink(), **kwargs)
