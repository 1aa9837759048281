"""A strict parser of Prometheus' text exposition format 0.0.4, for the tests that read
/metrics (test_prometheus_metrics.py on ServingMetrics, test_endpoints_serving.py on a real
`cairn server`).

prometheus_client renders the page; this parser checks it independently of that
library (whose own parser is lenient, and is what the terminal UI reads with). Strict
on purpose: it asserts the format's rules, so a page a real Prometheus would reject
fails the test that scraped it.
"""
from __future__ import annotations

import math
import re

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"({_NAME})(\{{.*\}})? (\S+)(?: (-?\d+))?\Z")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_VALUE = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)\Z")
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _parse_labels(text: str, line: str) -> dict[str, str]:
    assert text.startswith("{") and text.endswith("}"), line
    body, labels, pos = text[1:-1], {}, 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        assert m, f"bad label at {body[pos:]!r} in {line!r}"
        name, raw = m.groups()
        assert name not in labels, f"duplicate label {name} in {line!r}"
        labels[name] = re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group()], raw)
        pos = m.end()
        if pos < len(body):
            assert body[pos] == ",", f"expected ',' in {line!r}"
            pos += 1
    return labels


def parse(text: str) -> dict[str, dict]:
    """family name -> {"type", "help", "samples": [(name, labels, value)]}; asserts the
    rules of format 0.0.4 (TYPE before samples, one TYPE/HELP per family, families
    contiguous, sample names match their family's type, histograms well formed)."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, dict] = {}
    current: str | None = None
    closed: set[str] = set()
    for line in text[:-1].split("\n"):
        assert line, "no blank lines inside the exposition"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert re.fullmatch(_NAME, name), line
                fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
                if current != name:
                    assert name not in closed, f"family {name} is not contiguous"
                    if current:
                        closed.add(current)
                    current = name
                if parts[1] == "TYPE":
                    assert fam["type"] is None and not fam["samples"], f"late TYPE: {line}"
                    assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped")
                    fam["type"] = parts[3]
                else:
                    assert fam["help"] is None, f"second HELP: {line}"
                    help_text = parts[3] if len(parts) > 3 else ""
                    assert re.fullmatch(r"(?:[^\\\n]|\\[\\n])*", help_text), line
                    fam["help"] = re.sub(r"\\[\\n]", lambda e: _UNESCAPE[e.group()], help_text)
            continue
        m = _SAMPLE.match(line)
        assert m, f"bad sample line {line!r}"
        name, labels_text, value_text, _ = m.groups()
        assert _VALUE.match(value_text), f"bad value in {line!r}"
        labels = _parse_labels(labels_text, line) if labels_text else {}
        assert current is not None, f"sample before any TYPE: {line}"
        fam = families[current]
        kind = fam["type"]
        allowed = {current}
        if kind == "histogram":
            allowed = {f"{current}_bucket", f"{current}_sum", f"{current}_count"}
        assert name in allowed, f"sample {name} inside family {current} ({kind})"
        fam["samples"].append((name, labels, float(value_text)))
    for name, fam in families.items():
        assert fam["type"] is not None, f"{name} has no TYPE"
        if fam["type"] == "counter":
            assert all(v >= 0 for _, _, v in fam["samples"]), name
        if fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return families


def _check_histogram(name: str, samples: list) -> None:
    series: dict[tuple, dict] = {}
    for sample, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sample.endswith("_bucket"):
            s["buckets"].append((float(labels["le"]), value))
        elif sample.endswith("_sum"):
            s["sum"] = value
        else:
            s["count"] = value
    for key, s in series.items():
        les = [le for le, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        assert les == sorted(les) and les[-1] == math.inf, f"{name}{key}: le order {les}"
        assert counts == sorted(counts), f"{name}{key}: buckets not cumulative {counts}"
        assert s["count"] == counts[-1], f"{name}{key}: _count != +Inf bucket"
        assert s["sum"] is not None, f"{name}{key}: no _sum"


def samples_of(families: dict, name: str) -> dict[tuple, float]:
    return {(sample, tuple(sorted(labels.items()))): value
            for fam in families.values() for sample, labels, value in fam["samples"]
            if sample == name}
