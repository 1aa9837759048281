"""Rate limits on serving endpoints (Databricks' `rate_limits`): so many calls a minute
per principal, or for the whole endpoint; beyond them a call is refused with 429
REQUEST_LIMIT_EXCEEDED and Retry-After.

The limits live in LMDB (set by an endpoint's managers); the counts are this process's,
in fixed windows of one renewal period. Reading the limits is on the scoring path: they
are cached with the governance generation, which a change bumps, so a new limit holds on the
next call in every process.
"""
from __future__ import annotations

import math
import threading
import time

import msgspec

from cairn.engine.errors import REQUEST_LIMIT_EXCEEDED, CairnError, invalid
from cairn.engine.governance.cache import MISSING, GenerationCache
from cairn.engine.governance.principals import bump_generation
from cairn.engine.governance.records import RATE_LIMITS, RateLimit, RateLimitsRecord
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms

PERIODS = {"minute": 60.0}
KEYS = ("user", "endpoint")
MAX_LIMITS = 4
MAX_CALLS = 10**9


class RateLimited(CairnError):
    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message, REQUEST_LIMIT_EXCEEDED)
        self.retry_after_s = retry_after_s


def check_limits(limits: object) -> list[RateLimit]:
    if not isinstance(limits, list) or len(limits) > MAX_LIMITS:
        raise invalid(f"rate_limits: a list of at most {MAX_LIMITS} {{calls, key, renewal_period}} objects")
    out = []
    for i, limit in enumerate(limits):
        try:
            rl = msgspec.convert(limit, RateLimit) if not isinstance(limit, RateLimit) else limit
        except msgspec.ValidationError as exc:
            raise invalid(f"rate_limits[{i}]: {exc}") from None
        if isinstance(rl.calls, bool) or not 0 < rl.calls <= MAX_CALLS:
            raise invalid(f"rate_limits[{i}].calls: between 1 and {MAX_CALLS}, got {rl.calls!r}")
        key, period = rl.key.lower(), rl.renewal_period.lower()
        if key not in KEYS:
            raise invalid(f"rate_limits[{i}].key: one of {', '.join(KEYS)}, got {rl.key!r}")
        if period not in PERIODS:
            raise invalid(f"rate_limits[{i}].renewal_period: one of {', '.join(PERIODS)}, got {rl.renewal_period!r}")
        out.append(RateLimit(calls=rl.calls, key=key, renewal_period=period))
    return out


class RateLimits:
    def __init__(self, lenv: LmdbEnv):
        self._env = lenv
        self._db = lenv.dbs
        self._lock = threading.Lock()  # the windows'
        self._cache = GenerationCache(lenv, 10_000)  # endpoint -> its limits
        self._windows: dict[tuple[str, str, int], tuple[float, int]] = {}  # -> (window start, calls)

    def get(self, endpoint: str, generation: int | None = None) -> list[RateLimit]:
        hit, generation = self._cache.lookup(endpoint, generation)
        if hit is not MISSING:
            return hit
        with self._env.read() as txn:
            raw = txn.get(endpoint.encode(), db=self._db["rate_limits"])
        limits = RATE_LIMITS.decode(raw).limits if raw is not None else []
        self._cache.store(endpoint, limits, generation)
        return limits

    def set(self, endpoint: str, limits: object, by: str) -> list[RateLimit]:
        checked = check_limits(limits)

        def op(b: Batch) -> None:
            if checked:
                b.txn.put(endpoint.encode(), RATE_LIMITS.encode(RateLimitsRecord(checked, now_ms(), by)),
                          db=b.dbs["rate_limits"])
            else:
                b.txn.delete(endpoint.encode(), db=b.dbs["rate_limits"])
            bump_generation(b)

        self._env.write(op)
        return checked

    def forget(self, endpoint: str) -> None:
        if self.get(endpoint):
            self.set(endpoint, [], "")

    def admit(self, endpoint: str, principal: str, generation: int | None = None) -> None:
        """Count one call; RateLimited (with the seconds until the window renews) when
        a limit is reached."""
        limits = self.get(endpoint, generation)
        if not limits:
            return
        now = time.monotonic()
        with self._lock:
            counted = []
            for i, limit in enumerate(limits):
                period = PERIODS[limit.renewal_period]
                slot = (endpoint, principal if limit.key == "user" else "", i)
                start, calls = self._windows.get(slot, (now, 0))
                if now - start >= period:
                    start, calls = now, 0
                if calls >= limit.calls:  # refused: nothing counted, in any window
                    wait = period - (now - start)
                    who = f"'{principal}'" if limit.key == "user" else "all callers"
                    raise RateLimited(f"Rate limit of {limit.calls} calls per {limit.renewal_period} on endpoint "
                                      f"'{endpoint}' reached for {who}: retry in {math.ceil(wait)} s", wait)
                counted.append((slot, start, calls + 1))
            for slot, start, calls in counted:
                self._windows[slot] = (start, calls)
