"""Request batching for one served version: a bounded queue and a few worker threads.

A worker takes whatever is queued (whole requests, up to `max_batch_rows` rows; a larger
request runs alone), concatenates the feeds along axis 0, makes ONE `run_fn` call off
the event loop and hands each request its slice of the outputs. There is no wait window
by default: a lone request runs at once, so concurrency-1 latency is that of running the
model in a thread. `max_wait_ms` (GPU, heavy models) lets one worker hold a batch open
for more rows.

Why the pieces look the way they do:
- Idle workers sit on a LIFO stack, each blocked on its own lock. A request wakes the
  most recently idle worker (warm caches), so under light load the others stay idle and
  time out after `idle_shrink_s`; a FIFO condition variable would rotate work through
  every worker and none would ever shrink.
- Workers grow one at a time, only when a request finds every worker busy, up to
  `max_workers` (ONNX Runtime sessions run with one intra-op thread, so more workers
  than cores only adds contention).
- The queue is bounded in rows: a request that would push it past `max_queue_rows` gets
  `Overloaded` at once (429 with Retry-After), never an unbounded backlog.
- A batch whose `run_fn` call fails is retried one request at a time, so a request that
  breaks the model fails alone instead of taking its batch-mates with it (feeds are
  checked against the signature before they get here, so this path is rare).
- Outputs that are not batch-major (a scalar, a fixed-size tensor) cannot be split by
  rows: `batchable=False` says so up front; with None it is detected on the first
  multi-request batch, which is then rerun one request at a time, as is every later one.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from cairn.engine.endpoints.contract import DEFAULT_MAX_BATCH_ROWS

Feeds = dict[str, np.ndarray]
RunFn = Callable[[Feeds], dict[str, Any]]

# Upper bounds (rows per batch) of the batch-size histogram; the last bucket is +Inf.
BATCH_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Overloaded(Exception):
    """The queue is full. `retry_after_s` estimates when it will have drained."""

    def __init__(self, retry_after_s: float, queue_rows: int = 0, name: str = ""):
        self.retry_after_s = retry_after_s
        self.queue_rows = queue_rows
        where = f" for {name}" if name else ""
        super().__init__(f"Too many queued rows{where} ({queue_rows}); retry after {retry_after_s:.3f} s")


class BatcherClosed(RuntimeError):
    """The batcher was closed: no new requests, and with close(drain=False) none pending."""


class _Request:
    __slots__ = ("done", "error", "feeds", "future", "key", "loop", "result", "rows")

    def __init__(self, feeds: Feeds, rows: int, key: Any, future=None, loop=None, done=None):
        self.feeds = feeds
        self.rows = rows
        self.key = key  # requests concatenate only with requests of the same key
        self.future = future  # asyncio: resolved on its loop
        self.loop = loop
        self.done = done  # threads: a held lock, released when the answer is in
        self.result = None
        self.error: BaseException | None = None

    def abandoned(self) -> bool:
        # Read from a worker thread: a benign race, at worst a cancelled request runs.
        return self.future is not None and self.future.done()


class _Worker:
    __slots__ = ("fresh", "thread", "wake")

    def __init__(self):
        self.wake = threading.Lock()
        self.wake.acquire()  # held while the worker is not on the idle stack
        self.thread: threading.Thread | None = None
        self.fresh = True  # started, not yet looked at the queue


class Batcher:
    def __init__(
        self,
        run_fn: RunFn,
        *,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_wait_ms: float = 0.0,
        max_queue_rows: int = 4096,
        max_workers: int = 0,
        min_workers: int = 1,
        idle_shrink_s: float = 5.0,
        batchable: bool | None = None,
        name: str = "",
    ):
        if max_batch_rows < 1 or max_queue_rows < 1:
            raise ValueError("max_batch_rows and max_queue_rows must be at least 1")
        self.run_fn = run_fn
        self.name = name
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.max_queue_rows = max_queue_rows
        self.max_workers = max(1, max_workers or os.cpu_count() or 1)
        self.min_workers = max(0, min(min_workers, self.max_workers))
        self.idle_shrink_s = idle_shrink_s
        self.batchable = batchable

        self._lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._queue_rows = 0
        self._idle: list[_Worker] = []  # LIFO: the last to go idle is woken first
        self._gatherer: _Worker | None = None  # the worker holding a max_wait window open
        self._workers: set[_Worker] = set()
        self._busy = 0
        self._starting = 0  # spawned workers that will look at the queue first thing
        self._closed = False
        self._drain = True
        # Counters (written under the lock by workers, read by stats()).
        self._batches = self._rows = self._requests = self._errors = self._overloaded = 0
        self._hist = [0] * (len(BATCH_ROW_BUCKETS) + 1)
        self._max_batch_requests = 0
        self._s_per_row = 0.0  # moving average of run time per row, for Retry-After
        with self._lock:
            for _ in range(self.min_workers):
                self._spawn()

    # -- submitting ----------------------------------------------------------------------

    async def submit(self, feeds: Feeds, rows: int) -> dict[str, Any]:
        """This request's outputs (its rows only). Raises Overloaded at once when the queue
        is full, BatcherClosed after close(), or what `run_fn` raised for it."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(_Request(feeds, rows, _key(feeds, rows), future=future, loop=loop))
        return await future

    def submit_sync(self, feeds: Feeds, rows: int, timeout: float | None = None) -> dict[str, Any]:
        """submit() for threads: blocks until the answer is in (TimeoutError after
        `timeout` seconds; the request is then dropped if it has not run yet)."""
        done = threading.Lock()
        done.acquire()
        req = _Request(feeds, rows, _key(feeds, rows), done=done)
        self._enqueue(req)
        if not done.acquire(timeout=-1 if timeout is None else timeout):
            with self._lock:
                if req in self._queue:
                    self._queue.remove(req)
                    self._queue_rows -= req.rows
            raise TimeoutError(f"No answer within {timeout} s")
        if req.error is not None:
            raise req.error
        return req.result

    def _enqueue(self, req: _Request) -> None:
        with self._lock:
            if self._closed:
                raise BatcherClosed(f"Batcher {self.name!r} is closed")
            # A request larger than the whole queue is let in when the queue is empty,
            # or it could never run.
            if self._queue_rows and self._queue_rows + req.rows > self.max_queue_rows:
                self._overloaded += 1
                raise Overloaded(self._retry_after(), self._queue_rows, self.name)
            self._queue.append(req)
            self._queue_rows += req.rows
            if self._gatherer is not None:
                # One worker is holding a batch open: it takes this request; wake it
                # early once a full batch is waiting.
                if self._queue_rows >= self.max_batch_rows:
                    self._gatherer.wake.release()
                    self._gatherer = None
            else:
                self._wake_or_grow()

    def _wake_or_grow(self) -> None:
        """Under the lock, with work queued: wake an idle worker, or add one."""
        if self._idle:
            self._idle.pop().wake.release()
        elif self._starting:
            pass  # a worker on its way in will take it
        elif len(self._workers) < self.max_workers and not self._closed:
            self._spawn()

    def _retry_after(self) -> float:
        workers = max(1, len(self._workers))
        return min(30.0, max(0.01, self._queue_rows * self._s_per_row / workers))

    # -- workers -------------------------------------------------------------------------

    def _spawn(self) -> None:
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._work, args=(worker,), name=f"cairn-batch-{self.name or id(self)}", daemon=True
        )
        self._workers.add(worker)
        self._starting += 1
        worker.thread.start()

    def _work(self, worker: _Worker) -> None:
        try:
            while True:
                batch = self._next_batch(worker)
                if batch is None:
                    return
                self._run(batch)
        finally:
            with self._lock:
                self._workers.discard(worker)

    def _wait(self, worker: _Worker, timeout: float) -> bool:
        """Under the lock, with the worker on the idle stack or in the gatherer slot:
        sleep until woken (True) or `timeout` passes (False). Returns with the lock held
        and the worker off the stack and out of the slot."""
        self._lock.release()
        try:
            woken = worker.wake.acquire(timeout=timeout)
        finally:
            self._lock.acquire()
        if woken:
            return True
        if worker in self._idle:
            self._idle.remove(worker)
            return False
        if self._gatherer is worker:
            self._gatherer = None
            return False
        # Woken between the timeout and taking the lock back: the release happened (it
        # is done under the lock), so re-arm the wake lock and count it as woken.
        worker.wake.acquire()
        return True

    def _next_batch(self, worker: _Worker) -> list[_Request] | None:
        gathered = False
        with self._lock:
            if worker.fresh:
                worker.fresh = False
                self._starting -= 1
            while True:
                self._drop_abandoned()
                if not self._queue:
                    if self._closed:
                        return None
                    self._idle.append(worker)
                    woken = self._wait(worker, self.idle_shrink_s)
                    if not woken and not self._queue and len(self._workers) > self.min_workers:
                        self._workers.discard(worker)  # idle for idle_shrink_s: shrink
                        return None
                    continue
                if (
                    not gathered
                    and self.max_wait_s > 0
                    and self._queue_rows < self.max_batch_rows
                    and self._gatherer is None
                    and not self._closed
                    and self.batchable is not False
                ):
                    # Hold the batch open for more rows; a full batch wakes us early.
                    # (Another worker that frees up meanwhile may take the rows first.)
                    gathered = True
                    self._gatherer = worker
                    self._wait(worker, self.max_wait_s)
                    continue
                break
            batch = self._take()
            self._busy += 1
            if self._queue:  # more waiting while this worker is busy: wake or add one
                self._wake_or_grow()
            return batch

    def _drop_abandoned(self) -> None:
        while self._queue and self._queue[0].abandoned():
            self._queue_rows -= self._queue.popleft().rows

    def _take(self) -> list[_Request]:
        """Under the lock: whole requests from the head of the queue, up to
        max_batch_rows rows, all with the head's key (FIFO: none skips ahead)."""
        first = self._queue.popleft()
        batch, rows = [first], first.rows
        if first.key is not None and self.batchable is not False:
            queue = self._queue
            while queue and rows + queue[0].rows <= self.max_batch_rows and queue[0].key == first.key:
                req = queue.popleft()
                if req.abandoned():
                    self._queue_rows -= req.rows
                    continue
                batch.append(req)
                rows += req.rows
        self._queue_rows -= rows
        return batch

    # -- running -------------------------------------------------------------------------

    def _run(self, batch: list[_Request]) -> None:
        start = time.perf_counter()
        rows = sum(r.rows for r in batch)
        failed = 0
        if len(batch) == 1:
            failed += self._run_one(batch[0])
        else:
            first = batch[0].feeds
            try:
                feeds = {n: np.concatenate([r.feeds[n] for r in batch], axis=0) for n in first}
                out = self.run_fn(feeds)
            except Exception:  # noqa: BLE001 (any model error: retried per request below)
                out = None  # isolate the culprit: each request alone
            if out is not None and self.batchable is None:
                self.batchable = all(_batch_major(v, rows) for v in out.values())
            if out is None or not self.batchable:
                for req in batch:
                    failed += self._run_one(req)
            else:
                offset = 0
                for req in batch:
                    end = offset + req.rows
                    req.result = {k: v[offset:end] for k, v in out.items()}
                    offset = end
        elapsed = time.perf_counter() - start
        # Bookkeeping before answers: a caller that has its answer sees it counted, and
        # the woken event loop does not wait for this thread to finish it (GIL).
        with self._lock:
            self._busy -= 1
            self._batches += 1
            self._rows += rows
            self._requests += len(batch)
            self._errors += failed
            self._hist[_bucket(rows)] += 1
            self._max_batch_requests = max(self._max_batch_requests, len(batch))
            per_row = elapsed / max(rows, 1)
            self._s_per_row = per_row if not self._s_per_row else 0.9 * self._s_per_row + 0.1 * per_row
        self._resolve(batch)

    def _run_one(self, req: _Request) -> int:
        try:
            req.result = self.run_fn(req.feeds)
            return 0
        except Exception as exc:  # noqa: BLE001 (the request's answer, never the worker's death)
            req.error = exc
            return 1

    @staticmethod
    def _resolve(batch: list[_Request]) -> None:
        # One wake-up per event loop for the whole batch, not one per request.
        by_loop: dict[Any, list[_Request]] = {}
        for req in batch:
            if req.done is not None:
                req.done.release()
            else:
                by_loop.setdefault(req.loop, []).append(req)
        for loop, reqs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, reqs)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    # -- lifecycle and stats ----------------------------------------------------------------

    def close(self, drain: bool = True, timeout: float | None = 10.0) -> None:
        """Stop taking requests. drain=True: the queued ones still run; drain=False: they
        fail with BatcherClosed. Batches already running finish either way. Waits up to
        `timeout` for the workers to exit (call it off the event loop)."""
        with self._lock:
            self._closed = True
            dropped: list[_Request] = []
            if not drain:
                dropped = list(self._queue)
                self._queue.clear()
                self._queue_rows = 0
            elif self._queue and not self._workers:
                self._spawn()
            while self._idle:
                self._idle.pop().wake.release()
            if self._gatherer is not None:
                self._gatherer.wake.release()
                self._gatherer = None
            threads = [w.thread for w in self._workers if w.thread is not None]
        for req in dropped:
            req.error = BatcherClosed(f"Batcher {self.name!r} closed before this request ran")
        self._resolve(dropped)
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in threads:
            if t is not threading.current_thread():
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics. `batch_rows_counts[i]` counts batches of at most
        `batch_rows_buckets[i]` rows and more than the bucket before (per bucket, not
        cumulative; the last entry is +Inf)."""
        with self._lock:
            return {
                "name": self.name,
                "queue_rows": self._queue_rows,
                "queue_requests": len(self._queue),
                "workers": len(self._workers),
                "busy_workers": self._busy,
                "batches": self._batches,
                "rows": self._rows,
                "requests": self._requests,
                "errors": self._errors,
                "overloaded": self._overloaded,
                "max_batch_requests": self._max_batch_requests,
                "batch_rows_buckets": BATCH_ROW_BUCKETS,
                "batch_rows_counts": list(self._hist),
                "batch_rows_sum": self._rows,
                "batchable": self.batchable,
            }


def _key(feeds: Feeds, rows: int) -> Any:
    """What a request must share with others to be concatenated with them: each input's
    name, dtype and trailing shape. None (never batched) for a 0-d input, and a
    ValueError when an input's first dimension is not `rows` (the split would be wrong)."""
    if rows < 1:
        raise ValueError("A request needs at least one row")
    key = []
    for name, arr in feeds.items():
        shape = getattr(arr, "shape", None)
        if not shape:
            return None
        if shape[0] != rows:
            raise ValueError(f"Input {name!r} has {shape[0]} rows, the request says {rows}")
        key.append((name, arr.dtype.str, shape[1:]))
    return tuple(key)


def _batch_major(value: Any, rows: int) -> bool:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return len(shape) > 0 and shape[0] == rows
    return isinstance(value, list) and len(value) == rows  # a ZipMap's list of dicts


def _bucket(rows: int) -> int:
    for i, bound in enumerate(BATCH_ROW_BUCKETS):
        if rows <= bound:
            return i
    return len(BATCH_ROW_BUCKETS)


def _settle(reqs: list[_Request]) -> None:
    for req in reqs:
        fut = req.future
        if fut.done():  # cancelled while it ran
            continue
        if req.error is not None:
            fut.set_exception(req.error)
        else:
            fut.set_result(req.result)


__all__ = ["BATCH_ROW_BUCKETS", "Batcher", "BatcherClosed", "Overloaded"]
