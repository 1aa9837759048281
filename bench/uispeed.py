"""The terminal UI's speed: opening an experiment of 5,000 runs until its first rows are
on screen (issue 6's target: under 300 ms), headless (Textual's run_test), in-process
over a LocalBackend on a real data directory.

    .venv/bin/python bench/uispeed.py [--runs N] [--reps N] [--json PATH]

Each repetition opens the runs screen from the experiments list and stops the clock
when the screen has drawn its first page (its RunsPage message handled). MLflow has no
terminal UI to compare against: this bench prints Cairn's figure and the target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from report import _tmpdir, conditions

TARGET_MS = 300.0
T0 = 1_767_225_600_000


def fill(eng, n: int) -> str:
    from cairn.engine.tracking.entities import Metric, Param

    tr = eng.tracking
    exp = tr.create_experiment("big")

    def one(i: int) -> None:
        run = tr.create_run(exp, start_time=T0 + i * 1000, run_name=f"big-{i:05d}")
        tr.log_batch(
            run.info.run_id,
            metrics=[Metric("loss", (i * 7919) % 1000 / 1000, T0, 0), Metric("acc", (i * 31) % 100 / 100, T0, 0)],
            params=[Param("seed", str(i)), Param("model", ("rf", "gbm", "mlp")[i % 3])],
            wait=False,
        )

    # Many writers at once: group commit shares one sync among them.
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(one, range(n)))
    tr.flush()
    return exp


async def open_once(backend, exp_id: str) -> float:
    from textual.widgets import DataTable

    from cairn.tui.app import create_tui
    from cairn.tui.screens.runs import RunsScreen

    app = create_tui(backend)
    drawn: list[float] = []
    original = RunsScreen.on_runs_page

    def first_page(self, msg):  # passes through; notes when the first page is drawn
        original(self, msg)
        if not drawn:
            drawn.append(time.perf_counter())

    RunsScreen.on_runs_page = first_page
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            screen = app.screen
            deadline = time.monotonic() + 30
            # The list's run counts are read in the background after it shows: let them
            # finish, so the clock measures the runs screen alone.
            while not (getattr(screen, "experiments", None) and len(screen.stats) == len(screen.experiments)):
                assert time.monotonic() < deadline, "experiments never loaded"
                await pilot.pause(0.01)
            table = screen.query_one("#experiments", DataTable)
            table.move_cursor(row=table.get_row_index(exp_id))
            start = time.perf_counter()
            screen.action_open()
            while not drawn:
                assert time.monotonic() < deadline, "the runs screen never drew"
                await asyncio.sleep(0.001)
            return (drawn[0] - start) * 1000.0
    finally:
        RunsScreen.on_runs_page = original


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)

    from cairn import engine
    from cairn.tui.backend import LocalBackend

    print(f"machine: {conditions()}")
    with _tmpdir("tui") as root:
        eng = engine.open(root / "data")
        t0 = time.perf_counter()
        exp = fill(eng, args.runs)
        print(f"filled {args.runs:,} runs in {time.perf_counter() - t0:.1f} s")
        backend = LocalBackend(eng)
        times = [asyncio.run(open_once(backend, exp)) for _ in range(args.reps)]
        eng.close()
    med = statistics.median(times)
    print(f"\nopen an experiment of {args.runs:,} runs -> first rows drawn (ms), {args.reps} reps")
    print("  " + ", ".join(f"{t:.0f}" for t in times))
    print(f"  median {med:.0f} ms (target < {TARGET_MS:.0f} ms): {'ok' if med < TARGET_MS else 'MISS'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"workload": "open_5000", "cairn_ms": med, "target_ms": TARGET_MS}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
