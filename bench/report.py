"""What both benches share: the workload table, measurements, the search data set and
its expected answers, the machine-conditions probe, the printed table and the --json file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_TS = 1_700_000_000_000  # fixed timestamps (ms): identical data on both sides
MODELS = ("rf", "gbm", "svm", "mlp")
LRS = ("0.1", "0.01", "0.001")
FILTER = "metrics.acc > 0.5 and params.model = 'rf'"
ORDER_FILTER = ["metrics.acc DESC"]
ORDER_ONLY = ["metrics.loss ASC"]
SEARCH_MAX = 100
BATCH = 1_000
PARAMS_PER_RUN = 10
METRICS_PER_RUN = 10


@dataclass(frozen=True)
class Workload:
    name: str
    unit: str
    throughput: bool  # True: higher is better; False: latency, lower is better
    target: float  # minimum ratio


@dataclass
class Measure:
    value: float | None = None  # rate (items/s) or latency (ms)
    size: str = ""  # what was measured, e.g. "10,000" or "5,000 runs"
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    percentiles_ms: dict[str, float] = field(default_factory=dict)  # e.g. {"p50": .., "p99": ..}


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB: VmHWM (peak RSS;
    ru_maxrss would carry a parent's peak across the fork and exec that started a
    child), RssAnon (heap) or RssFile (mapped files, such as LMDB's pages: clean,
    given back under memory pressure)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return status_mib("VmHWM")


def _fmt_n(n: int) -> str:
    return f"{n:,}"


@contextlib.contextmanager
def _tmpdir(prefix: str, parent: str | None = None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"cairn-bench-{prefix}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


def _median_ms(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def _search_data(n: int) -> list[tuple[str, float, float, str, str]]:
    """Deterministic run data: (run_name, acc, loss, model, lr); a prefix for smaller n."""
    rng = random.Random(20240501)
    rows = []
    for i in range(n):
        rows.append(
            (
                f"run-{i:05d}",
                rng.random(),
                rng.random() * 2.0,
                rng.choice(MODELS),
                rng.choice(LRS),
            )
        )
    return rows


def _expected_filter(rows) -> list[str]:
    hits = [r for r in rows if r[1] > 0.5 and r[3] == "rf"]
    hits.sort(key=lambda r: -r[1])
    return [r[0] for r in hits[:SEARCH_MAX]]


def _expected_order(rows) -> list[str]:
    return [r[0] for r in sorted(rows, key=lambda r: r[2])[:SEARCH_MAX]]


def _check(m: Measure, got: list[str], want: list[str], what: str) -> None:
    if got != want:
        first = next(
            (i for i, (a, b) in enumerate(zip(got, want)) if a != b),
            min(len(got), len(want)),
        )
        m.notes.append(
            f"WRONG RESULT for {what}: {len(got)} runs, expected {len(want)}; first difference at {first}"
        )


def _run_payload() -> tuple[dict[str, str], dict[str, float]]:
    params = {f"p{j}": str(j * 7) for j in range(PARAMS_PER_RUN)}
    metrics = {f"m{j}": j * 0.125 for j in range(METRICS_PER_RUN)}
    return params, metrics


def _guard(fn: Callable[..., Measure], *args) -> Measure:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 (one broken side must not hide the others)
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Measure(error=f"{fn.__name__}: {tb}")


@contextlib.contextmanager
def _guard_fixture(cm_factory: Callable[[], Any]):
    """Yield (fixture, error): the fixture or None with the error that prevented it."""
    try:
        cm = cm_factory()
        fixture = cm.__enter__()
    except Exception as exc:  # noqa: BLE001 (reported in the table)
        yield None, traceback.format_exception_only(type(exc), exc)[-1].strip()
        return
    try:
        yield fixture, None
    finally:
        with contextlib.suppress(Exception):
            cm.__exit__(None, None, None)


def conditions(parent: str | None = None) -> str:
    """What the machine was like: both sides commit with fsync, so a busy disk moves
    every write number (and the ratios less so, since both pay it)."""
    parts = [f"{os.cpu_count()} cpus"]
    with contextlib.suppress(OSError):
        parts.append(f"load {os.getloadavg()[0]:.2f}")
    with contextlib.suppress(OSError), _tmpdir("probe", parent) as d:
        fd = os.open(d / "probe", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            times = []
            for i in range(21):
                os.pwrite(fd, b"\0" * 4096, (i % 4) * 4096)
                t0 = time.perf_counter()
                os.fsync(fd)
                times.append(time.perf_counter() - t0)
        finally:
            os.close(fd)
        parts.append(
            f"fsync {statistics.median(times) * 1000:.2f} ms (median, temp dir)"
        )
    return ", ".join(parts)


def _ratio(w: Workload, cairn: Measure, base: Measure) -> float | None:
    if cairn.value is None or base.value is None or cairn.value <= 0 or base.value <= 0:
        return None
    return cairn.value / base.value if w.throughput else base.value / cairn.value


def _met(w: Workload, cairn: Measure, ratio: float | None) -> bool:
    # A wrong answer, or a bound of the target besides the ratio (e.g. a p99), misses.
    wrong = any("WRONG" in n or "MISS" in n for n in cairn.notes)
    return ratio is not None and ratio >= w.target and not wrong


def _fmt_value(v: float | None, err: str | None) -> str:
    if err is not None or v is None:
        return "error"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.1f}"
    if v >= 10:
        return f"{v:.2f}"
    return f"{v:.3f}"


def print_table(
    rows: list[tuple[Workload, Measure, Measure, float | None]], out=sys.stdout, baseline: str = "mlflow"
) -> None:
    header = (
        "workload",
        "unit",
        "cairn",
        baseline,
        "ratio",
        "target",
        "met",
        f"sizes (cairn / {baseline})",
    )
    body = []
    for w, c, b, r in rows:
        body.append(
            (
                w.name,
                w.unit,
                _fmt_value(c.value, c.error),
                _fmt_value(b.value, b.error),
                "-" if r is None else f"{r:,.1f}x",
                f">= {w.target:g}x",
                "ok" if _met(w, c, r) else "MISS",
                f"{c.size or '-'} / {b.size or '-'}",
            )
        )
    widths = [max(len(str(x[i])) for x in [header, *body]) for i in range(len(header))]
    right = {2, 3, 4, 5}

    def line(cells):
        return "  ".join(
            str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i])
            for i, c in enumerate(cells)
        ).rstrip()

    print(line(header), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for cells in body:
        print(line(cells), file=out)


def bench_args(doc: str, workloads, quick_help: str, argv: list[str] | None = None):
    """The flags every side-by-side bench takes: --quick, --json PATH, --only NAMES.
    Returns (args, the selected workloads in table order)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument(
        "--only", metavar="NAMES", help="comma-separated workloads (" + ", ".join(w.name for w in workloads) + ")"
    )
    args = ap.parse_args(argv)
    selected = list(workloads)
    if args.only:
        only = {x.strip() for x in args.only.split(",") if x.strip()}
        unknown = only - {w.name for w in workloads}
        if unknown:
            ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
        selected = [w for w in workloads if w.name in only]
    return args, selected


def finish(rows, elapsed: float, json_path: str | None, baseline_name: str) -> None:
    """The closing lines every bench prints, and its --json file."""
    met = sum(_met(w, c, r) for w, c, _, r in rows)
    print(f"\ntotal time: {elapsed:.1f} s")
    print(f"targets met: {met}/{len(rows)}")
    if json_path:
        out = [
            {
                "workload": w.name,
                "unit": w.unit,
                "cairn": c.value,
                "baseline": b.value,
                "baseline_name": baseline_name,
                "ratio": r,
            }
            for w, c, b, r in rows
        ]
        Path(json_path).write_text(json.dumps(out, indent=2) + "\n")


def quiet_mlflow_client() -> None:
    """The MLflow client in a bench process: no telemetry thread, no silent retries with
    back-off inside a timed loop (a failed request is reported, not waited out), no
    tracking URI from the environment, no log lines between the progress lines."""
    import logging
    import os
    import warnings

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    for name in ("mlflow", "urllib3", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def stderr_progress() -> tuple[Callable[[str], None], float]:
    """(progress(msg), start): progress lines on stderr, seconds since start first."""
    import time

    start = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"  .. {time.perf_counter() - start:5.1f}s {msg}", file=sys.stderr, flush=True)

    return progress, start


def print_report(title: str, before: str, after: str, rows, baseline: str = "mlflow") -> None:
    """The title, the machine before and after, the table and each side's errors."""
    print(f"\n{title}")
    print(f"machine before: {before}")
    print(f"machine after:  {after}\n")
    print_table(rows, baseline=baseline)
    for w, cm, bm, _ in rows:
        for side, m in (("cairn", cm), (baseline, bm)):
            if m.error:
                print(f"  {w.name} ({side}): {m.error}")
