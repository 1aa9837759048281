"""Evidently's side of bench/monitoring.py, run by a Python that has `evidently`
installed (its own virtual environment; Evidently pins pandas < 3). Reads the same
Parquet files Cairn's side profiled, runs the DataDriftPreset report, prints JSON:
seconds, peak RSS and each column's drift score.

    EVIDENTLY_PYTHON/bin/python bench/evidently_side.py DATA_DIR
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
from report import peak_rss_mib  # bench/ is this script's folder


def main() -> int:
    data = Path(sys.argv[1])
    start_rss = peak_rss_mib()
    t0 = time.perf_counter()
    ref = pd.read_parquet(data / "reference.parquet")
    cur = pd.read_parquet(data / "current.parquet")
    snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref).dict()
    seconds = time.perf_counter() - t0
    scores = {}
    for m in snap["metrics"]:
        found = re.match(r"ValueDrift\(column=([^,]+),method=([^,]+),", m["metric_name"])
        if found:
            scores[found.group(1)] = {"method": found.group(2), "score": float(m["value"])}
    print(json.dumps({"seconds": seconds, "rss_mib": peak_rss_mib(), "start_rss_mib": start_rss, "scores": scores}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
