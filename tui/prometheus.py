"""Reading Prometheus' text exposition format and the arithmetic of a scrape window.

The UI reads the /metrics page `cairn server` renders (app/serving/metrics.py) with
prometheus_client's own parser. A Prometheus server would compute rates and quantiles
from two scrapes; the UI has none, so it does the same itself: counters' deltas over the
time between two scrapes, and histogram quantiles from the buckets' deltas, interpolated
linearly within a bucket as PromQL's histogram_quantile does. The tests check that the
page is strict; the UI only has to read it, so a line the parser refuses is skipped
rather than blanking the whole screen.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: hashable, comparable


def parse_value(text: str) -> float:
    # Go's ParseFloat spellings: +Inf, -Inf, NaN; float() reads "inf"/"nan" alike.
    return float(text)


def _samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def parse(text: str) -> list[Sample]:
    """Every sample of the page (name, labels, value), in page order. Comments are
    skipped; when the parser refuses the page, it is read again line by line and the
    lines it refuses are skipped: one bad line must not blank the whole screen."""
    try:
        return _samples(text)
    except ValueError:
        pass
    samples: list[Sample] = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                samples.extend(_samples(line + "\n"))
            except ValueError:
                continue
    return samples


def key_of(labels: Mapping[str, str], drop: Iterable[str] = ()) -> Labels:
    skip = set(drop)
    return tuple(sorted((k, v) for k, v in labels.items() if k not in skip))


class Page:
    """One scrape, indexed: counter/gauge values and histogram buckets by label set."""

    def __init__(self, samples: Iterable[Sample], at: float) -> None:
        self.at = at  # time.monotonic() of the scrape
        self.values: dict[str, dict[Labels, float]] = {}
        # histogram base name -> label set (without le) -> {upper bound: cumulative count}
        self.buckets: dict[str, dict[Labels, dict[float, float]]] = {}
        for s in samples:
            if s.name.endswith("_bucket") and "le" in s.labels:
                try:
                    le = parse_value(s.labels["le"])
                except ValueError:
                    continue
                per = self.buckets.setdefault(s.name[: -len("_bucket")], {})
                per.setdefault(key_of(s.labels, ("le",)), {})[le] = s.value
            else:
                self.values.setdefault(s.name, {})[key_of(s.labels)] = s.value

    @classmethod
    def from_text(cls, text: str, at: float) -> Page:
        return cls(parse(text), at)


def counter_delta(now: float, before: float | None) -> float:
    """A counter's increase; a smaller value means the server restarted (the counter
    began again from 0), so the whole current value is the increase, as PromQL's
    rate() treats a reset."""
    if before is None or now < before:
        return now
    return now - before


def bucket_deltas(now: Mapping[float, float], before: Mapping[float, float] | None) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) over the window, ascending bounds, +Inf last. A
    reset anywhere (the +Inf count went down) means the whole current histogram."""
    bounds = sorted(now)
    if before is None or now.get(math.inf, 0) < before.get(math.inf, 0):
        return [(le, now[le]) for le in bounds]
    return [(le, max(0.0, now[le] - before.get(le, 0.0))) for le in bounds]


def add_buckets(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sums two cumulative histograms (several versions behind one served entity)."""
    if not a:
        return list(b)
    merged: dict[float, float] = dict(a)
    for le, c in b:
        merged[le] = merged.get(le, 0.0) + c
    return sorted(merged.items())


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """PromQL's histogram_quantile over cumulative (upper bound, count) pairs: the rank
    q * total falls in one bucket, and the value is interpolated linearly between that
    bucket's lower and upper bound (the lowest bucket starts at 0). A rank in the +Inf
    bucket answers the highest finite bound. None when nothing was observed."""
    if not buckets or not 0 <= q <= 1:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank and count > below:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower
