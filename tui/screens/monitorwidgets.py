"""The Monitors screen's pieces that only take values: the drift table's cells, the trend
series of the sparklines, and the drill-down modal that sets one column of one window
beside its training baseline. The screen keeps every backend call. Styles live in
tui/styles/monitors.tcss."""
from __future__ import annotations

import math
import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from cairn.engine.monitoring.drift import ColumnDrift
from cairn.engine.monitoring.profiles import NUMERIC, ColumnProfile
from cairn.engine.monitoring.records import WindowRecord

DRIFT_WINDOWS = 8  # the drift table shows this many of the newest windows
BAR = 40  # characters of the histogram's longest bar


def clock(ms: int) -> str:
    return time.strftime("%H:%M", time.localtime(ms / 1000))


def drift_cell(c: ColumnDrift | None) -> Text:
    """A column's verdict in one window: its score (a p-value for KS and chi-squared, a
    distance otherwise), red when it drifted."""
    if c is None:
        return Text("")
    return Text(f"{c.score:.3g}" + (" !" if c.drifted else ""), style="bold red" if c.drifted else "green")


def drift_matrix(windows: list[WindowRecord]) -> tuple[list[WindowRecord], list[tuple[str, str, list[ColumnDrift | None]]]]:
    """The newest DRIFT_WINDOWS windows with a drift, oldest first, and per column (in the
    order the baseline names them): its name, the method of its latest verdict, and its
    verdict in each of those windows (None where the window lacks it)."""
    shown = [w for w in windows if w.drift is not None][-DRIFT_WINDOWS:]
    names: dict[str, str] = {}
    for w in shown:
        for c in w.drift.columns:
            names[c.name] = c.method
    by_window = [{c.name: c for c in w.drift.columns} for w in shown]
    return shown, [(name, method, [cols.get(name) for cols in by_window]) for name, method in names.items()]


def trend_series(windows: list[WindowRecord]) -> dict[str, list[float]]:
    """What the sparklines draw, one point per window, oldest first: requests, error
    share in percent, p99 latency and the first quality metric the windows carry."""
    quality = next((k for w in windows for k in w.quality), None)
    series = {"requests": [float(w.requests) for w in windows],
              "errors %": [100.0 * w.errors / w.requests if w.requests else 0.0 for w in windows],
              "p99 ms": [w.latency_p99_ms or 0.0 for w in windows]}
    if quality is not None:
        series[quality] = [w.quality.get(quality, math.nan) for w in windows if quality in w.quality]
    return series


def _edge(x: float) -> str:
    return f"{x:.4g}"


def histogram_rows(baseline: ColumnProfile, window: ColumnProfile | None) -> list[tuple[str, float, float]]:
    """(bin or category, baseline share, window share) for the drill-down. Numbers: the
    baseline's bins (a window is binned on its baseline's edges); categories: the
    baseline's values by frequency, then values only the window has."""
    if baseline.kind == NUMERIC:
        edges, base = baseline.bin_edges, baseline.bin_counts
        seen = window.bin_counts if window is not None and len(window.bin_counts) == len(base) else [0] * len(base)
        labels = []
        for i in range(len(base)):
            lo, hi = edges[i], edges[i + 1]
            labels.append(f"< {_edge(hi)}" if math.isinf(lo) else f">= {_edge(lo)}" if math.isinf(hi)
                          else f"[{_edge(lo)}, {_edge(hi)})")
        pairs = list(zip(labels, base, seen, strict=True))
    else:
        freq = window.frequencies if window is not None else {}
        keys = sorted(baseline.frequencies, key=lambda k: -baseline.frequencies[k])
        keys += sorted((k for k in freq if k not in baseline.frequencies), key=lambda k: -freq[k])
        pairs = [(k, baseline.frequencies.get(k, 0), freq.get(k, 0)) for k in keys]
    base_total = sum(p[1] for p in pairs) or 1
    seen_total = sum(p[2] for p in pairs) or 1
    return [(label, b / base_total, s / seen_total) for label, b, s in pairs]


def _bars(rows: list[tuple[str, float, float]]) -> Text:
    width = max((len(r[0]) for r in rows), default=0)
    scale = BAR / max(max(max(r[1], r[2]) for r in rows), 1e-9)
    out = Text()
    out.append("baseline", style="cyan")
    out.append(" / ")
    out.append("window", style="yellow")
    out.append(" share of rows\n")
    for label, base, seen in rows:
        out.append(f"{label:>{width}} ")
        out.append("█" * round(base * scale), style="cyan")
        out.append(f" {base:.1%}\n")
        out.append(" " * (width + 1))
        out.append("█" * round(seen * scale), style="yellow")
        out.append(f" {seen:.1%}\n")
    return out


class HistogramModal(ModalScreen[None]):
    """One column of one window (yellow) against the training baseline (cyan), with the
    window's drift statistics. Escape closes."""

    CSS_PATH = "../styles/monitors.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close")]

    def __init__(self, title: str, rows: list[tuple[str, float, float]], drift: ColumnDrift | None) -> None:
        super().__init__(classes="monitors-modal")
        self.heading = title
        self.rows = rows
        self.drift = drift

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.heading, id="histogram-title", markup=False)
            yield Static(_bars(self.rows) if self.rows else "No histogram: the baseline holds none for this column.",
                         id="histogram-bars")
            yield Static(self._statistics(), id="histogram-stats", markup=False)

    def _statistics(self) -> str:
        d = self.drift
        if d is None:
            return "No drift verdict for this column in this window."
        named = {"KS": d.ks_statistic, "KS p": d.ks_p_value, "chi2": d.chi2_statistic, "chi2 p": d.chi2_p_value,
                 "PSI": d.psi, "JS": d.js_distance,
                 "Wasserstein": d.wasserstein, "TV": d.total_variation, "L-inf": d.l_infinity}
        stats = "  ".join(f"{k} {v:.3g}" for k, v in named.items() if v is not None)
        verdict = "DRIFTED" if d.drifted else "no drift"
        return f"{verdict} by {d.method} {d.score:.3g} (threshold {d.threshold:g})\n{stats}"

    def action_close(self) -> None:
        self.dismiss(None)
