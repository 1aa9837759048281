"""A bounded HTTP/1.1 load generator for loopback benches: asyncio (uvloop when present),
keep-alive connections, request bytes built once, responses read by Content-Length.

Kept cheap on purpose: on a 2-core machine the generator shares the CPU with the server
it measures, so every microsecond it spends is one the server does not get. Both sides
of a comparison are driven by the same generator, so its cost weighs on both.

Every run is bounded in count and in time (`max_requests`, `max_seconds`); a request
that fails or answers non-2xx is counted as an error, never retried.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.pct(0.99)


def build_request(url: str, path: str, body: bytes, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> bytes:
    u = urlparse(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; return its status. Only Content-Length bodies (what both
    servers send for these requests)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def _run(url: str, request: bytes, concurrency: int, max_requests: int, max_seconds: float) -> LoadResult:
    u = urlparse(url)
    res = LoadResult()
    budget = [max_requests]
    deadline = time.perf_counter() + max_seconds
    lat = res.latencies_ms
    statuses = res.statuses

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        try:
            while budget[0] > 0 and time.perf_counter() < deadline:
                budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    writer.write(request)
                    status = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    res.errors += 1
                    res.first_error = res.first_error or f"{type(exc).__name__}: {exc}"
                    return
                lat.append((time.perf_counter() - t0) * 1000.0)
                statuses[status] = statuses.get(status, 0) + 1
                if not 200 <= status < 300:
                    res.errors += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    res.seconds = time.perf_counter() - t0
    res.requests = len(lat)
    return res


def run_load(
    url: str,
    path: str,
    body: bytes,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup: int = 50,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Drive `concurrency` keep-alive connections with the same POST until
    `max_requests` are answered or `max_seconds` pass; a short warm-up first."""
    request = build_request(url, path, body, content_type, headers)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    if warmup:
        runner(_run(url, request, min(concurrency, 8), warmup, max_seconds))
    return runner(_run(url, request, concurrency, max_requests, max_seconds))
