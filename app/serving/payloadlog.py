"""Payload logging (Databricks' inference tables), written off the request path.

The request path calls `PayloadLogger.offer(...)` after the response is ready. offer()
never blocks and never raises for a full log: it samples, caps the payload sizes, and
appends to a bounded in-memory queue; a background thread takes the queue in batches and
hands each batch to `write_batch` (the endpoint store's `log_payloads(endpoint, records)`,
itself a queued LMDB group commit). When the writer falls behind and the queue is full,
new records are dropped and counted; memory stays bounded by `max_queue` records and
`max_queue_bytes` of payload, whatever the storage does.

Why it looks like this:
- Sampling is a hash of the request id (blake2b, personalized so it does not line up with
  the router's hash of a routing key), not a coin flip: the same id is always in or out,
  so a request and its shadow copy are logged together, and tests can predict the sample.
- Truncation happens in offer(), not in the writer: the queue must only ever hold capped
  payloads, or a burst of 16 MiB bodies would defeat the memory bound. Cutting bytes backs
  off to a UTF-8 character boundary so the stored text stays valid.
- Everything else (decoding bytes, building PayloadRecord structs) happens in the writer
  thread; offer() builds one tuple and takes one uncontended lock (~1-2 us here).
- The writer wakes when the queue reaches `batch_size` (one Event.set per batch, not per
  record) or every `flush_interval_s`, so a trickle of requests still lands within that.
"""
from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from hashlib import blake2b
from typing import Any

from cairn.engine.endpoints.contract import PayloadRecord

__all__ = ["PayloadLogger", "PayloadRecord", "truncate_payload"]

_TWO_64 = float(1 << 64)
_SAMPLING_PERSON = b"cairn-payloadlog"  # blake2b personalization, at most 16 bytes


def truncate_payload(payload: str | bytes | None, max_bytes: int
                     ) -> tuple[str | bytes, int, bool]:
    """(payload cut to at most `max_bytes` UTF-8 bytes, its size, whether it was cut).

    Cheap for what fits: len() for bytes and ASCII text; only an oversized non-ASCII str
    is encoded. A cut never splits a UTF-8 character. The size (for the queue's byte
    budget) is in bytes, except for text short enough to fit for sure, where it is the
    character count: near enough for a memory bound, and it spares an encode.
    """
    if payload is None:
        return "", 0, False
    if isinstance(payload, str):
        n = len(payload)
        if n <= max_bytes // 4:  # at most 4 UTF-8 bytes per character: fits for sure
            return payload, n, False
        if payload.isascii():
            if n <= max_bytes:
                return payload, n, False
            return payload[:max_bytes], max_bytes, True
        data = payload.encode("utf-8", "surrogatepass")
        if len(data) <= max_bytes:
            return payload, len(data), False
        cut = _char_boundary(data, max_bytes)
        return data[:cut].decode("utf-8", "replace"), cut, True
    if isinstance(payload, (bytearray, memoryview)):
        payload = bytes(payload)
    if len(payload) <= max_bytes:
        return payload, len(payload), False
    cut = _char_boundary(payload, max_bytes)
    return payload[:cut], cut, True


def _char_boundary(data: bytes, limit: int) -> int:
    """The largest cut <= limit that does not split a UTF-8 character of `data`."""
    if limit <= 0:
        return 0
    i = limit - 1
    # back up over continuation bytes (10xxxxxx) to the lead byte of the last character
    while i > 0 and limit - i < 4 and data[i] & 0xC0 == 0x80:
        i -= 1
    lead = data[i]
    width = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 \
        else 4 if lead >> 3 == 0b11110 else 1  # invalid lead: treat as one byte
    return limit if i + width <= limit else i


class PayloadLogger:
    """A bounded, sampled, batched payload log writer for one endpoint.

    `write_batch(records)` is called from the logger's thread with 1..batch_size
    PayloadRecords, oldest first; if it raises, that batch is lost and counted in
    `failed`. `on_drop(n)` is called whenever n records are lost (queue full, closed, or a
    failed write), from whichever thread noticed: keep it cheap (a counter increment,
    e.g. functools.partial(ServingMetrics.payload_dropped, endpoint)); its errors are
    ignored.
    """

    def __init__(self, write_batch: Callable[[list[PayloadRecord]], Any], *,
                 max_queue: int = 10_000, batch_size: int = 500,
                 flush_interval_s: float = 0.5, sampling_fraction: float = 1.0,
                 max_payload_bytes: int = 65_536, max_queue_bytes: int = 64 << 20,
                 on_drop: Callable[[int], Any] | None = None,
                 name: str = "payload-log") -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        if not 0.0 <= sampling_fraction <= 1.0:
            raise ValueError(f"sampling_fraction must be between 0 and 1, "
                             f"got {sampling_fraction}")
        if max_payload_bytes < 0:
            raise ValueError(f"max_payload_bytes must be >= 0, got {max_payload_bytes}")
        if max_queue_bytes < 2 * max_payload_bytes or max_queue_bytes < 1:
            raise ValueError(f"max_queue_bytes ({max_queue_bytes}) must hold at least one "
                             f"capped request and response (2 x {max_payload_bytes})")
        self.write_batch = write_batch
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.sampling_fraction = float(sampling_fraction)
        self.max_payload_bytes = max_payload_bytes
        self.max_queue_bytes = max_queue_bytes
        self.on_drop = on_drop
        self.name = name
        self.last_error: BaseException | None = None

        self._lock = threading.Lock()  # guards the queue, its byte count and the counters
        self._queue: deque[tuple] = deque()
        self._queued_bytes = 0
        self._accepted = 0  # records ever queued (the flush() sequence number)
        self._dropped = 0
        self._closed = False
        # Written by the writer thread only; read anywhere.
        self._written = 0
        self._failed = 0
        self._settled = 0  # written + failed, under _settled_cond for flush()
        self._settled_cond = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        # A daemon thread: a writer stuck in storage must not hold the process open at
        # exit; close() is how an owner waits for the log to be written.
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)
        self._thread.start()

    # -- the request path -----------------------------------------------------------------

    def sampled(self, request_id: str) -> bool:
        """Whether a request with this id is logged (the same answer every time)."""
        fraction = self.sampling_fraction
        if fraction >= 1.0:
            return True
        if fraction <= 0.0:
            return False
        if not request_id:
            return random.random() < fraction  # nothing to hash: a fair draw
        digest = blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8,
                         person=_SAMPLING_PERSON).digest()
        return int.from_bytes(digest, "big") / _TWO_64 < fraction

    def offer(self, request_id: str, *, status_code: int, latency_ms: float,
              request: str | bytes | None = None, response: str | bytes | None = None,
              client_request_id: str | None = "", timestamp_ms: int | None = None,
              served_entity_name: str = "", model_name: str = "",
              model_version: str | int | None = "", shadow: bool = False) -> bool:
        """Log one request if it is sampled and the queue has room; never blocks.

        Returns True when queued, False when not sampled or dropped (dropped ones are
        counted and reported to on_drop). `request`/`response` may be str or bytes (the
        raw body; decoded as UTF-8 by the writer) and are capped at max_payload_bytes.
        """
        if self.sampling_fraction < 1.0 and not self.sampled(request_id):
            return False
        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        cap = self.max_payload_bytes
        # Inline the common case (a bytes body under the cap): a call costs ~0.4 us here.
        if request.__class__ is bytes and len(request) <= cap:
            request_size, cut_request = len(request), False
        else:
            request, request_size, cut_request = truncate_payload(request, cap)
        if response.__class__ is bytes and len(response) <= cap:
            response_size, cut_response = len(response), False
        else:
            response, response_size, cut_response = truncate_payload(response, cap)
        size = request_size + response_size
        item = (request_id, client_request_id, timestamp_ms, status_code, latency_ms,
                served_entity_name, model_name, model_version, request, response,
                cut_request or cut_response, shadow, size)
        lock = self._lock
        lock.acquire()
        try:
            if (self._closed or len(self._queue) >= self.max_queue
                    or self._queued_bytes + size > self.max_queue_bytes):
                self._dropped += 1
                queued = -1
            else:
                self._queue.append(item)
                self._queued_bytes += size
                self._accepted += 1
                queued = len(self._queue)
        finally:
            lock.release()
        if queued < 0:
            self._report_drop(1)
            return False
        if queued >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    # -- owner calls ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued before this call is written (or failed).
        False if `timeout` passed first (a stalled writer)."""
        with self._lock:
            target = self._accepted
        self._wake.set()
        with self._settled_cond:
            return self._settled_cond.wait_for(lambda: self._settled >= target, timeout)

    def close(self, timeout: float | None = 5.0) -> bool:
        """Stop accepting records, write what is queued, stop the thread. True when all
        of it was written or failed within `timeout`; later offers are dropped."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def dropped(self) -> int:
        """Records lost because the queue was full (or the logger closed)."""
        return self._dropped

    @property
    def failed(self) -> int:
        """Records lost because write_batch raised."""
        return self._failed

    @property
    def written(self) -> int:
        return self._written

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"queued": len(self._queue), "queued_bytes": self._queued_bytes,
                    "accepted": self._accepted, "dropped": self._dropped,
                    "written": self._written, "failed": self._failed,
                    "closed": self._closed}

    # -- the writer thread ----------------------------------------------------------------

    def _report_drop(self, count: int) -> None:
        on_drop = self.on_drop
        if on_drop is not None:
            try:
                on_drop(count)
            except Exception:  # noqa: BLE001, S110 - a metrics callback never fails a request
                pass

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            # Cleared before draining: an offer that sets it meanwhile is either drained
            # now or wakes the next round, never lost.
            self._wake.clear()
            self._drain()
            if self._closed:
                self._drain()  # anything offered between the drain and the flag
                return

    def _drain(self) -> None:
        while True:
            with self._lock:
                queue = self._queue
                n = min(self.batch_size, len(queue))
                if not n:
                    return
                items = [queue.popleft() for _ in range(n)]
                self._queued_bytes -= sum(item[-1] for item in items)
            try:
                self.write_batch(_records(items))
            except Exception as exc:  # noqa: BLE001 - storage trouble loses this batch only
                self.last_error = exc
                self._failed += n
                self._report_drop(n)
            else:
                self._written += n
            with self._settled_cond:
                self._settled += n
                self._settled_cond.notify_all()


def _records(items: Sequence[tuple]) -> list[PayloadRecord]:
    return [PayloadRecord(
        request_id=request_id,
        client_request_id=client_request_id or "",
        timestamp_ms=timestamp_ms,
        status_code=status_code,
        latency_ms=float(latency_ms),
        served_entity_name=served_entity_name or "",
        model_name=model_name or "",
        model_version="" if model_version is None else str(model_version),
        request=_text(request),
        response=_text(response),
        truncated=truncated,
        shadow=shadow,
    ) for (request_id, client_request_id, timestamp_ms, status_code, latency_ms,
           served_entity_name, model_name, model_version, request, response, truncated,
           shadow, _size) in items]


def _text(payload: str | bytes) -> str:
    # Bodies are JSON or CSV and nearly always UTF-8; anything else is kept readable
    # rather than refused, since the log must never fail on what a client sent.
    return payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
