"""Step sampling for get-history-bulk-interval, as MLflow's abstract store does it: pick up
to `max_results` steps evenly over the union of the runs' steps in [start, end], always
keeping each run's first and last step, then return each run's points at those steps."""
from __future__ import annotations

import bisect

from cairn.engine.errors import invalid
from cairn.engine.tracking.entities import Metric


def evenly_spaced_indices(total: int, max_results: int) -> list[int]:
    if total <= 0:
        return []
    if total <= max_results:
        return list(range(total))
    if max_results == 1:
        return [total - 1]
    step = (total - 1) / (max_results - 1)
    return sorted({round(i * step) for i in range(max_results)})


def sample_histories(
    histories: list[tuple[str, list[Metric]]],
    max_results: int,
    start_step: int | None,
    end_step: int | None,
) -> list[tuple[str, Metric]]:
    if (start_step is None) != (end_step is None):
        raise invalid("Both start_step and end_step must be provided together, or neither should be provided.")
    if start_step is not None and start_step > end_step:
        raise invalid(
            f"end_step must be greater than start_step. Found start_step={start_step} and end_step={end_step}."
        )
    max_results = max(1, max_results)
    run_steps = [[m.step for m in points] for _rid, points in histories]
    bounds = {s for steps in run_steps if steps for s in (min(steps), max(steps))}
    all_steps = sorted({s for steps in run_steps for s in steps})
    if start_step is None:
        start_step, end_step = 0, (all_steps[-1] if all_steps else 0)
    bounds = {s for s in bounds if start_step <= s <= end_step}
    lo = bisect.bisect_left(all_steps, start_step)
    hi = bisect.bisect_right(all_steps, end_step)
    if hi - lo <= max_results:
        sampled = set(all_steps[lo:hi])
    else:
        interval = (hi - lo) / max_results
        sampled = {all_steps[lo + int(i * interval)] for i in range(max_results) if lo + int(i * interval) < hi}
        sampled.add(all_steps[hi - 1])
    steps = sampled | bounds
    per_run = max(max_results, len(steps))
    out: list[tuple[str, Metric]] = []
    for rid, points in histories:
        chosen = sorted((m for m in points if m.step in steps), key=lambda m: (m.step, m.timestamp))
        out.extend((rid, chosen[i]) for i in evenly_spaced_indices(len(chosen), per_run))
    return out
