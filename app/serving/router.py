"""Traffic routing between an endpoint's served entities.

Databricks' `traffic_config.routes` gives each served entity an integer percentage; the
percentages sum to 100. The router turns them into a table of 100 buckets, bucket i ->
entity, laid out in route order (70/30 -> buckets 0-69 A, 70-99 B). A request picks a
bucket and reads the table: O(1), no lock, no allocation.

- Without a routing key the bucket is random.
- With a routing key (a request header) the bucket is a hash of the key: blake2b with an
  8-byte digest, scaled to [0, 100). blake2b, not `hash()`, because `hash()` of a str is
  salted per process and stickiness must survive restarts and hold across processes.
  Because the table is cumulative in route order, changing 70/30 to 60/40 moves only the
  keys in buckets 60-69 (10% of keys); every other key keeps its entity.
- An optional shadow entity gets a copy of a fraction of the traffic; its answers are
  logged, never returned (the caller does that; the router only says yes or no).

Thread safety: the table is an immutable tuple built once; a config update builds a new
Router and swaps the reference. The random source is `random.Random.random`, a single C
call that holds the GIL for its whole duration, so concurrent callers cannot corrupt its
state.
"""
from __future__ import annotations

import random
from hashlib import blake2b

__all__ = ["BUCKETS", "Router", "key_bucket"]

BUCKETS = 100


def key_bucket(routing_key: str | bytes) -> int:
    """The bucket (0-99) of a routing key; the same in every process and release.

    The 64-bit digest is scaled, not reduced modulo 100, so the bucket is the integer part
    of a uniform point in [0, 100) (modulo would be as uniform here, scaling says what it
    means).
    """
    data = routing_key.encode("utf-8") if isinstance(routing_key, str) else routing_key
    digest = blake2b(data, digest_size=8).digest()
    return (int.from_bytes(digest, "big") * BUCKETS) >> 64


class Router:
    """Weighted, optionally sticky choice of a served entity, plus an optional shadow copy.

    `routes` is `[(entity name, percentage), ...]` with integer percentages summing to 100;
    a 0% route is allowed (an entity that is served but takes no traffic, e.g. the shadow).
    `shadow` is `(entity name, fraction in [0, 1])`. `seed` makes the unkeyed choices and
    unnumbered shadow draws reproducible (tests).
    """

    __slots__ = ("_only", "_random", "_routes", "_shadow", "_shadow_fraction",
                 "_shadow_name", "_table")

    def __init__(self, routes: list[tuple[str, int]],
                 shadow: tuple[str, float] | None = None,
                 seed: int | None = None) -> None:
        self._routes = _check_routes(routes)
        self._shadow = _check_shadow(shadow, self._routes)
        table: list[str] = []
        for name, percent in self._routes:
            table.extend([name] * percent)
        self._table: tuple[str, ...] = tuple(table)
        live = [name for name, percent in self._routes if percent]
        # One entity at 100% is the common case: skip the draw and the hash entirely.
        self._only: str | None = live[0] if len(live) == 1 else None
        self._random = random.Random(seed).random
        self._shadow_name = self._shadow[0] if self._shadow else None
        self._shadow_fraction = self._shadow[1] if self._shadow else 0.0

    @property
    def routes(self) -> tuple[tuple[str, int], ...]:
        return self._routes

    @property
    def shadow(self) -> tuple[str, float] | None:
        return self._shadow

    def choose(self, routing_key: str | bytes | None = None) -> str:
        """The entity that answers this request.

        A non-empty routing key always gives the same entity for the same routes; None or
        an empty key (an empty header is no key) gives a weighted random choice.
        """
        only = self._only
        if only is not None:
            return only
        if routing_key:
            return self._table[key_bucket(routing_key)]
        # random() < 1.0, so the index is 0..99; int() truncates like floor for >= 0.
        return self._table[int(self._random() * BUCKETS)]

    def shadow_for(self, request_no: int | None = None) -> str | None:
        """The shadow entity if this request should also be copied to it, else None.

        With a request number (a per-endpoint counter, e.g. `next(itertools.count())`,
        which is atomic under the GIL) the copies are spread evenly and the share is exact
        over any run of consecutive numbers: request n is copied when floor((n+1)*f)
        passes floor(n*f). Without one the draw is random with probability f.
        """
        fraction = self._shadow_fraction
        if fraction <= 0.0:
            return None
        if fraction >= 1.0:
            return self._shadow_name
        if request_no is None:
            return self._shadow_name if self._random() < fraction else None
        if int((request_no + 1) * fraction) > int(request_no * fraction):
            return self._shadow_name
        return None

    def __repr__(self) -> str:
        return f"Router(routes={list(self._routes)!r}, shadow={self._shadow!r})"


# Every config mistake is a ValueError, wrong types included (hence the TRY004 waivers):
# the endpoint API maps one exception type to INVALID_PARAMETER_VALUE.
def _check_routes(routes: object) -> tuple[tuple[str, int], ...]:
    if isinstance(routes, (str, bytes)) or not hasattr(routes, "__iter__"):
        raise ValueError(f"routes must be a list of (served entity name, percentage) pairs, "
                         f"got {type(routes).__name__}")
    checked: list[tuple[str, int]] = []
    seen: set[str] = set()
    for i, route in enumerate(routes):  # type: ignore[union-attr]
        if not isinstance(route, (tuple, list)) or len(route) != 2:
            raise ValueError(f"route {i} must be a (served entity name, percentage) pair, "
                             f"got {route!r}")
        name, percent = route
        if not isinstance(name, str) or not name:
            raise ValueError(f"route {i}: the served entity name must be a non-empty "
                             f"string, got {name!r}")
        # bool is an int subclass; True% is a config mistake, not 1%.
        if isinstance(percent, bool) or not isinstance(percent, int):
            raise ValueError(f"route {i} ({name}): the traffic percentage must be an "  # noqa: TRY004
                             f"integer, got {percent!r}")
        if not 0 <= percent <= 100:
            raise ValueError(f"route {i} ({name}): the traffic percentage must be between "
                             f"0 and 100, got {percent}")
        if name in seen:
            raise ValueError(f"served entity {name!r} appears in more than one route")
        seen.add(name)
        checked.append((name, percent))
    if not checked:
        raise ValueError("routes must name at least one served entity")
    total = sum(percent for _, percent in checked)
    if total != 100:
        raise ValueError(f"traffic percentages must sum to 100, got {total} "
                         f"({', '.join(f'{n}={p}' for n, p in checked)})")
    return tuple(checked)


def _check_shadow(shadow: object, routes: tuple[tuple[str, int], ...]
                  ) -> tuple[str, float] | None:
    if shadow is None:
        return None
    if not isinstance(shadow, (tuple, list)) or len(shadow) != 2:
        raise ValueError(f"shadow must be a (served entity name, fraction) pair, "
                         f"got {shadow!r}")
    name, fraction = shadow
    if not isinstance(name, str) or not name:
        raise ValueError(f"the shadow entity name must be a non-empty string, got {name!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"the shadow fraction must be a number, got {fraction!r}")  # noqa: TRY004
    fraction = float(fraction)
    # NaN fails both comparisons, so it is rejected here too.
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the shadow fraction must be between 0 and 1, got {fraction}")
    # A shadow that also takes live traffic would answer some requests twice (once for
    # real, once as a discarded copy); a 0% route for the shadow entity is fine.
    for route_name, percent in routes:
        if route_name == name and percent:
            raise ValueError(f"shadow entity {name!r} also takes {percent}% of live traffic; "
                             f"a shadow must have a 0% route or none")
    return (name, fraction)
