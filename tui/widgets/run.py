"""What the run screen draws: a metric's chart (textual-plotext when installed)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from engine.entities import Metric

# A terminal is a few hundred cells wide: more points than this add nothing but time.
MAX_POINTS = 2000


def downsample(points: list[Metric], limit: int = MAX_POINTS) -> list[Metric]:
    """At most about `limit` points, evenly spaced over the history, keeping the first
    and the last; each kept bucket's min and max both stay, so spikes still show."""
    if len(points) <= limit:
        return points
    buckets = limit // 2
    size = len(points) / buckets
    out: list[Metric] = []
    for b in range(buckets):
        chunk = points[int(b * size): int((b + 1) * size)] or [points[-1]]
        lo = min(chunk, key=lambda m: m.value)
        hi = max(chunk, key=lambda m: m.value)
        pair = sorted({id(lo): lo, id(hi): hi}.values(), key=lambda m: (m.step, m.timestamp))
        out.extend(pair)
    if out[0] is not points[0]:
        out.insert(0, points[0])
    if out[-1] is not points[-1]:
        out.append(points[-1])
    return out


class MetricChart(Vertical):
    """Step against value for one metric. Falls back to a sparkline without plotext."""

    def compose(self) -> ComposeResult:
        yield Static("", id="chart-title")
        try:
            from textual_plotext import PlotextPlot
        except ImportError:
            yield Sparkline([], id="chart-spark")
        else:
            yield PlotextPlot(id="chart-plot")

    def show(self, key: str, points: list[Metric], total: int) -> None:
        shown = f" (drawn from {len(points):,} of {total:,} points)" if total > len(points) else f" ({total:,} point{'s' if total != 1 else ''})"
        self.query_one("#chart-title", Static).update(f"[b]{key}[/b]{shown}")
        finite = [p for p in points if p.value == p.value and abs(p.value) != float("inf")]
        plots = self.query("#chart-plot")
        if plots:
            widget = plots.first()
            plt = widget.plt
            plt.clear_data()
            plt.clear_figure()
            plt.title(key)
            plt.xlabel("step")
            if finite:
                plt.plot([p.step for p in finite], [p.value for p in finite], marker="braille")
            widget.refresh()
        else:
            self.query_one("#chart-spark", Sparkline).data = [p.value for p in finite]
