"""Request batching on real ONNX Runtime sessions (small scikit-learn models converted
with skl2onnx): batched answers equal unbatched ones, batches really form, the queue is
bounded, errors stay with their batch, workers grow and shrink, close() drains or fails.

Concurrency is forced deterministically: a gate in front of the model holds the worker
in its first call until the test has queued what it needs, so no assertion depends on
timing."""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from cairn.app.serving.batcher import Batcher, BatcherClosed, Overloaded
from cairn.app.serving.runtime import ServedModel

N_FEATURES = 6
BOUND_S = 20.0  # the longest any wait in these tests may take before it fails


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    X = rng.normal(size=(400, N_FEATURES)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64), X[:, 2] * 2 + X[:, 3]


@pytest.fixture(scope="module")
def classifier(data):
    """Two batch-major outputs: labels [N] and probabilities [N, 2]."""
    X, y, _ = data
    model = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(X, y)
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}})
    return ServedModel.load(onx.SerializeToString())


@pytest.fixture(scope="module")
def regressor(data):
    X, _, y = data
    model = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(X, y)
    return ServedModel.load(to_onnx(model, X[:1]).SerializeToString())


class Gate:
    """run_fn in front of a real one: records each call's rows; while closed, a call
    blocks (so requests pile up in the queue behind it); `poison` rows raise."""

    def __init__(self, run_fn, closed: bool = True):
        self.run_fn = run_fn
        self.calls: list[int] = []
        self.entered = threading.Event()
        self._open = threading.Event()
        if not closed:
            self._open.set()
        self.poison = float("nan")

    def open(self) -> None:
        self._open.set()

    def __call__(self, feeds):
        x = next(iter(feeds.values()))
        self.calls.append(len(x))
        self.entered.set()
        assert self._open.wait(BOUND_S), "the test never opened the gate"
        if np.any(x[:, 0] == self.poison):
            raise ValueError("poisoned row")
        return self.run_fn(feeds)


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def queued(batcher: Batcher, n: int) -> None:
    wait_until(lambda: batcher.stats()["queue_requests"] == n, f"{n} queued requests")


def same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, value in a.items():
        np.testing.assert_array_equal(value, b[k])


def slices(X, sizes):
    out, start = [], 0
    for n in sizes:
        out.append({"X": X[start:start + n]})
        start += n
    return out


# -- results -------------------------------------------------------------------------


def test_asyncio_results_equal_unbatched(classifier, data):
    X = data[0]
    sizes = [1 + (i * 7) % 9 for i in range(120)]  # 1..9 rows, 600 rows in all
    X = np.concatenate([X, X])[: sum(sizes)]
    requests = slices(X, sizes)
    batcher = Batcher(classifier.run, max_batch_rows=32, max_workers=2, name="clf")

    async def main():
        return await asyncio.gather(*(batcher.submit(f, len(f["X"])) for f in requests))

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    for feeds, got in zip(requests, results):
        same(got, classifier.run(feeds))
    stats = batcher.stats()
    assert stats["requests"] == len(requests) and stats["rows"] == sum(sizes)
    assert stats["errors"] == 0 and stats["queue_rows"] == 0


def test_threads_results_equal_unbatched(regressor, data):
    X = data[0]
    sizes = [1 + (i * 5) % 6 for i in range(100)]
    requests = slices(X, sizes)
    batcher = Batcher(regressor.run, max_batch_rows=16, max_workers=2)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda f: batcher.submit_sync(f, len(f["X"]), timeout=BOUND_S), requests))
    finally:
        batcher.close()
    for feeds, got in zip(requests, results):
        same(got, regressor.run(feeds))
    assert batcher.stats()["requests"] == len(requests)


def test_batches_form_under_concurrency(classifier, data):
    X = data[0]
    gate = Gate(classifier.run)
    batcher = Batcher(gate, max_batch_rows=64, max_workers=1)
    with ThreadPoolExecutor(24) as pool:
        first = pool.submit(batcher.submit_sync, {"X": X[:1]}, 1)
        assert gate.entered.wait(BOUND_S)
        rest = [pool.submit(batcher.submit_sync, {"X": X[i:i + 1]}, 1) for i in range(1, 21)]
        queued(batcher, 20)
        gate.open()
        same(first.result(BOUND_S), classifier.run({"X": X[:1]}))
        for i, fut in enumerate(rest, 1):
            same(fut.result(BOUND_S), classifier.run({"X": X[i:i + 1]}))
    batcher.close()
    assert gate.calls == [1, 20]  # the 20 queued requests ran as ONE call
    stats = batcher.stats()
    assert stats["batches"] == 2 and stats["max_batch_requests"] == 20
    buckets = dict(zip(stats["batch_rows_buckets"], stats["batch_rows_counts"]))
    assert buckets[1] == 1 and buckets[32] == 1  # one batch of 1 row, one of 17..32
    assert sum(stats["batch_rows_counts"]) == 2 and stats["batch_rows_sum"] == 21


def test_request_bigger_than_max_batch_runs_alone(regressor, data):
    X = data[0]
    gate = Gate(regressor.run)
    batcher = Batcher(gate, max_batch_rows=8, max_workers=1)
    sizes = [3, 20, 2, 2, 1]
    requests = slices(X[1:], sizes)
    with ThreadPoolExecutor(8) as pool:
        blocker = pool.submit(batcher.submit_sync, {"X": X[:1]}, 1)
        assert gate.entered.wait(BOUND_S)
        futs = []
        for i, f in enumerate(requests):  # one at a time, so the queue keeps this order
            futs.append(pool.submit(batcher.submit_sync, f, len(f["X"])))
            queued(batcher, i + 1)
        gate.open()
        blocker.result(BOUND_S)
        for f, fut in zip(requests, futs):
            same(fut.result(BOUND_S), regressor.run(f))
    batcher.close()
    # FIFO, whole requests: 3 (20 would overflow 8), 20 alone, then 2+2+1.
    assert gate.calls == [1, 3, 20, 5]


def test_overloaded_when_queue_full_then_recovers(regressor, data):
    X = data[0]
    gate = Gate(regressor.run)
    batcher = Batcher(gate, max_queue_rows=10, max_workers=1)
    with ThreadPoolExecutor(4) as pool:
        blocker = pool.submit(batcher.submit_sync, {"X": X[:1]}, 1)
        assert gate.entered.wait(BOUND_S)  # taken: the queue is empty again
        a = pool.submit(batcher.submit_sync, {"X": X[:6]}, 6)
        queued(batcher, 1)
        b = pool.submit(batcher.submit_sync, {"X": X[6:10]}, 4)
        queued(batcher, 2)  # 10 rows: full
        with pytest.raises(Overloaded) as info:
            batcher.submit_sync({"X": X[10:11]}, 1)
        assert info.value.retry_after_s > 0 and info.value.queue_rows == 10

        async def one_async():
            with pytest.raises(Overloaded):
                await batcher.submit({"X": X[10:11]}, 1)

        asyncio.run(one_async())
        assert batcher.stats()["overloaded"] == 2
        gate.open()
        blocker.result(BOUND_S)
        same(a.result(BOUND_S), regressor.run({"X": X[:6]}))
        same(b.result(BOUND_S), regressor.run({"X": X[6:10]}))
    # Drained: it takes requests again.
    same(batcher.submit_sync({"X": X[10:20]}, 10), regressor.run({"X": X[10:20]}))
    batcher.close()


def test_run_error_fails_only_its_requests(regressor, data):
    X = data[0].copy()
    gate = Gate(regressor.run)
    gate.poison = -99.0
    bad = X[5:6].copy()
    bad[0, 0] = -99.0
    batcher = Batcher(gate, max_workers=1)
    with ThreadPoolExecutor(16) as pool:
        blocker = pool.submit(batcher.submit_sync, {"X": X[:1]}, 1)
        assert gate.entered.wait(BOUND_S)
        good = [pool.submit(batcher.submit_sync, {"X": X[i:i + 2]}, 2) for i in range(10, 20, 2)]
        poisoned = pool.submit(batcher.submit_sync, {"X": bad}, 1)
        queued(batcher, 6)
        gate.open()
        blocker.result(BOUND_S)
        with pytest.raises(ValueError, match="poisoned row"):
            poisoned.result(BOUND_S)
        for i, fut in zip(range(10, 20, 2), good):
            same(fut.result(BOUND_S), regressor.run({"X": X[i:i + 2]}))
    # The batch failed as a whole, then each request ran alone: only the culprit failed.
    assert gate.calls[:2] == [1, 11] and sorted(gate.calls[2:]) == [1, 2, 2, 2, 2, 2]
    assert batcher.stats()["errors"] == 1

    # A model that fails every call fails every request of the batch; the worker lives on.
    broken = {"on": True}

    def flaky(feeds):
        if broken["on"]:
            raise RuntimeError("model is broken")
        return regressor.run(feeds)

    batcher2 = Batcher(flaky, max_workers=1)

    async def burst():
        return await asyncio.gather(
            *(batcher2.submit({"X": X[i:i + 1]}, 1) for i in range(8)), return_exceptions=True
        )

    results = asyncio.run(burst())
    assert all(isinstance(r, RuntimeError) for r in results)
    broken["on"] = False
    same(batcher2.submit_sync({"X": X[:3]}, 3), regressor.run({"X": X[:3]}))
    assert batcher2.stats()["errors"] == 8 and batcher2.stats()["workers"] == 1
    batcher.close()
    batcher2.close()


def test_workers_grow_under_load_and_shrink_when_idle(regressor, data):
    X = data[0]
    gate = Gate(regressor.run)
    batcher = Batcher(gate, max_workers=3, min_workers=1, idle_shrink_s=0.1)
    assert batcher.stats()["workers"] == 1
    with ThreadPoolExecutor(8) as pool:
        futs = []
        for i in range(6):
            futs.append(pool.submit(batcher.submit_sync, {"X": X[i:i + 1]}, 1))
            if i < 3:  # each request finds every worker busy: one more worker each
                wait_until(lambda i=i: len(gate.calls) == i + 1, f"{i + 1} running batches")
        wait_until(lambda: batcher.stats()["queue_requests"] == 3, "3 queued requests")
        stats = batcher.stats()
        assert stats["workers"] == 3 and stats["busy_workers"] == 3  # capped at max_workers
        gate.open()
        for i, fut in enumerate(futs):
            same(fut.result(BOUND_S), regressor.run({"X": X[i:i + 1]}))
    wait_until(lambda: batcher.stats()["workers"] == 1, "idle workers to exit")
    # Still serving after the shrink, and it can grow again.
    same(batcher.submit_sync({"X": X[:4]}, 4), regressor.run({"X": X[:4]}))
    batcher.close()
    assert batcher.stats()["workers"] == 0


def test_scales_from_zero_workers(regressor, data):
    X = data[0]
    batcher = Batcher(regressor.run, min_workers=0, max_workers=2, idle_shrink_s=0.05)
    assert batcher.stats()["workers"] == 0
    same(batcher.submit_sync({"X": X[:2]}, 2), regressor.run({"X": X[:2]}))
    wait_until(lambda: batcher.stats()["workers"] == 0, "the last worker to exit")
    same(batcher.submit_sync({"X": X[2:3]}, 1), regressor.run({"X": X[2:3]}))
    batcher.close()


def test_close_drains_pending(regressor, data):
    X = data[0]
    gate = Gate(regressor.run)
    batcher = Batcher(gate, max_batch_rows=2, max_workers=1)
    with ThreadPoolExecutor(8) as pool:
        blocker = pool.submit(batcher.submit_sync, {"X": X[:1]}, 1)
        assert gate.entered.wait(BOUND_S)
        futs = [pool.submit(batcher.submit_sync, {"X": X[i:i + 1]}, 1) for i in range(1, 6)]
        queued(batcher, 5)
        closing = pool.submit(batcher.close, True, BOUND_S)
        wait_until(lambda: batcher.closed, "close() to start")
        with pytest.raises(BatcherClosed):
            batcher.submit_sync({"X": X[:1]}, 1)
        gate.open()
        closing.result(BOUND_S)
        blocker.result(BOUND_S)
        for i, fut in enumerate(futs, 1):
            same(fut.result(BOUND_S), regressor.run({"X": X[i:i + 1]}))
    assert batcher.stats()["workers"] == 0 and gate.calls == [1, 2, 2, 1]


def test_close_without_drain_fails_pending(regressor, data):
    X = data[0]
    gate = Gate(regressor.run)
    batcher = Batcher(gate, max_workers=1)

    async def main():
        blocker = asyncio.ensure_future(batcher.submit({"X": X[:1]}, 1))
        assert await asyncio.to_thread(gate.entered.wait, BOUND_S)
        pending = [asyncio.ensure_future(batcher.submit({"X": X[i:i + 1]}, 1)) for i in range(1, 5)]
        await asyncio.to_thread(queued, batcher, 4)
        await asyncio.to_thread(batcher.close, False, 0.0)  # fails the queue; running batch goes on
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, BatcherClosed) for r in results)
        gate.open()
        return await blocker

    same(asyncio.run(main()), regressor.run({"X": X[:1]}))
    wait_until(lambda: batcher.stats()["workers"] == 0, "the worker to exit")
    assert gate.calls == [1]


def test_max_wait_gathers_rows(regressor, data):
    X = data[0]
    gate = Gate(regressor.run, closed=False)
    # A long window that a full batch cuts short: the test never sleeps through it.
    batcher = Batcher(gate, max_batch_rows=5, max_wait_ms=10_000, max_workers=1)
    with ThreadPoolExecutor(8) as pool:
        futs = []
        for i in range(5):
            futs.append(pool.submit(batcher.submit_sync, {"X": X[i:i + 1]}, 1))
            if i < 4:  # the fifth fills the batch, which then runs at once
                wait_until(lambda i=i: batcher.stats()["queue_requests"] == i + 1, "the request to queue")
        for i, fut in enumerate(futs):
            same(fut.result(BOUND_S), regressor.run({"X": X[i:i + 1]}))
    batcher.close()
    assert gate.calls == [5]  # without the window the first request would have run alone


def test_without_wait_window_a_lone_request_runs_at_once(regressor, data):
    X = data[0]
    gate = Gate(regressor.run, closed=False)
    batcher = Batcher(gate, max_batch_rows=5, max_workers=1)
    for i in range(3):
        same(batcher.submit_sync({"X": X[i:i + 1]}, 1), regressor.run({"X": X[i:i + 1]}))
    batcher.close()
    assert gate.calls == [1, 1, 1]


def test_outputs_not_batch_major_run_unbatched(data):
    X = data[0]

    def with_scalar(feeds):  # a per-request total beside the per-row values
        x = feeds["X"]
        return {"rows": x[:, :1] * 2, "total": np.float32(x.sum())}

    gate = Gate(with_scalar)
    batcher = Batcher(gate, max_workers=1)
    with ThreadPoolExecutor(8) as pool:
        blocker = pool.submit(batcher.submit_sync, {"X": X[:1]}, 1)
        assert gate.entered.wait(BOUND_S)
        futs = [pool.submit(batcher.submit_sync, {"X": X[i:i + 3]}, 3) for i in range(3, 15, 3)]
        queued(batcher, 4)
        gate.open()
        blocker.result(BOUND_S)
        for i, fut in zip(range(3, 15, 3), futs):
            same(fut.result(BOUND_S), with_scalar({"X": X[i:i + 3]}))
        assert batcher.batchable is False  # found out on the first batch, remembered
        more = [pool.submit(batcher.submit_sync, {"X": X[i:i + 2]}, 2) for i in range(20, 30, 2)]
        for i, fut in zip(range(20, 30, 2), more):
            same(fut.result(BOUND_S), with_scalar({"X": X[i:i + 2]}))
    batcher.close()
    assert gate.calls[:3] == [1, 12, 3]  # tried once as a batch, then one request at a time
    assert batcher.stats()["max_batch_requests"] <= 4


def test_inputs_of_different_shapes_do_not_mix(data):
    gate = Gate(lambda feeds: {"y": feeds["X"] * 2})
    batcher = Batcher(gate, max_workers=1)
    X = data[0]
    with ThreadPoolExecutor(8) as pool:
        blocker = pool.submit(batcher.submit_sync, {"X": X[:1]}, 1)
        assert gate.entered.wait(BOUND_S)
        shapes = [(2, 6), (2, 6), (1, 3), (1, 3), (2, 6)]
        futs = []
        for i, (rows, width) in enumerate(shapes):
            futs.append(pool.submit(batcher.submit_sync, {"X": X[:rows, :width]}, rows))
            queued(batcher, i + 1)
        gate.open()
        blocker.result(BOUND_S)
        for (rows, width), fut in zip(shapes, futs):
            np.testing.assert_array_equal(fut.result(BOUND_S)["y"], X[:rows, :width] * 2)
    batcher.close()
    assert gate.calls == [1, 4, 2, 2]  # FIFO runs of the same trailing shape


def test_rows_must_match_the_feeds(regressor, data):
    batcher = Batcher(regressor.run)
    with pytest.raises(ValueError, match="3 rows"):
        batcher.submit_sync({"X": data[0][:3]}, 2)
    batcher.close()
