"""What the run and compare screens draw: a metric's chart (textual-plotext when installed)."""
from __future__ import annotations

import json

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from cairn.engine.loggedmodels.records import LoggedModel
from cairn.engine.tracking.entities import Metric

# Tags a logged model carries: the registered versions made from it (MLflow's server
# sets it on create), and whether Cairn added the ONNX flavor (READY) or why not.
MODEL_VERSIONS_TAG = "mlflow.modelVersions"
ONNX_TAG = "cairn.onnx"
LOGGED_MODEL_COLUMNS = ("name", "model id", "status", "flavors", "onnx", "registered as")
STATUS_STYLE = {"READY": "green", "FAILED": "bold red", "PENDING": "yellow"}

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


# One line of a chart: (legend label, the points to draw, how many points were logged).
Series = tuple[str, list[Metric], int]


class MetricChart(Vertical):
    """Step against value for one metric, one line per series (a run); the legend names
    the series when there are several. Falls back to a sparkline (of the first series)
    without plotext."""

    def compose(self) -> ComposeResult:
        yield Static("", id="chart-title")
        try:
            from textual_plotext import PlotextPlot
        except ImportError:
            yield Sparkline([], id="chart-spark")
        else:
            yield PlotextPlot(id="chart-plot")

    def show(self, key: str, points: list[Metric], total: int) -> None:
        self.show_series(key, [("", points, total)])

    def show_series(self, key: str, series: list[Series]) -> None:
        drawn = sum(len(points) for _, points, _ in series)
        total = sum(n for _, _, n in series)
        shown = f" (drawn from {drawn:,} of {total:,} points)" if total > drawn else f" ({total:,} point{'s' if total != 1 else ''})"
        if len(series) > 1:
            shown += f" · {len(series)} runs"
        self.query_one("#chart-title", Static).update(f"[b]{escape(key)}[/b]{shown}")
        lines = [(label, [p for p in points if p.value == p.value and abs(p.value) != float("inf")])
                 for label, points, _ in series]  # fmt: skip
        plots = self.query("#chart-plot")
        if plots:
            widget = plots.first()
            plt = widget.plt
            plt.clear_data()
            plt.clear_figure()
            plt.title(key)
            plt.xlabel("step")
            for label, finite in lines:
                if finite:
                    plt.plot([p.step for p in finite], [p.value for p in finite], marker="braille",
                             label=label if len(lines) > 1 else None)  # fmt: skip
            widget.refresh()
        else:
            self.query_one("#chart-spark", Sparkline).data = [p.value for p in lines[0][1]] if lines else []


def registered_text(tag: str | None) -> str:
    """"iris v1, iris v3" from the model's mlflow.modelVersions tag (a JSON list of
    {name, version}); a tag that is not that list shows as it is."""
    if not tag:
        return ""
    try:
        listed = json.loads(tag)
        return ", ".join(f"{v['name']} v{v['version']}" for v in listed)
    except (ValueError, TypeError, KeyError):
        return tag[:60]


def flavors_text(flavors: list[str], model_type: str | None) -> str:
    """"sklearn, onnx" from the model's MLmodel flavors (python_function, which every
    MLflow model has, left out); the model's type when it has no MLmodel yet."""
    shown = [f for f in flavors if f != "python_function"] or flavors
    return ", ".join(shown) or model_type or ""


def logged_model_cells(model: LoggedModel, flavors: list[str]) -> list:
    info = model.info
    tags = {t.key: t.value for t in info.tags}
    onnx = tags.get(ONNX_TAG, "")
    return [info.name, info.model_id, Text(info.status, style=STATUS_STYLE.get(info.status, "")),
            flavors_text(flavors, info.model_type), onnx if len(onnx) <= 40 else onnx[:39] + "…",
            registered_text(tags.get(MODEL_VERSIONS_TAG))]  # fmt: skip
