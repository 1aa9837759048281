"""The tracking bench's workload sizes, read by both of its sides (tracking.py runs
Cairn's, mlflow_baseline.py MLflow's)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """(cairn, mlflow) per workload. The full run gives Cairn the specified sizes; MLflow's
    side, and everything in --quick, is scaled to the time budget and reported as a rate."""

    log_metric: tuple[int, int]  # calls
    log_batch: tuple[int, int]  # values (batches of BATCH)
    runs: tuple[int, int]  # runs
    search_runs: tuple[int, int]  # runs in the experiment
    search_reps: tuple[int, int]  # query repetitions (median)
    history: tuple[int, int]  # steps of one metric
    history_reps: tuple[int, int]
