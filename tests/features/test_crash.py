"""kill -9 in the middle of a stream of Delta writes: the table stays readable at the
last committed version, and that version is whole (every row from one write)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from cairn import engine
from cairn.features import FeatureEngineeringClient

ROWS = 20_000


def test_kill_9_mid_write_leaves_the_last_version_whole(tmp_path):
    data = tmp_path / "data"
    script = textwrap.dedent(f"""
        import pandas as pd
        from cairn.features import FeatureEngineeringClient
        fe = FeatureEngineeringClient({str(data)!r})
        ids = list(range({ROWS}))
        fe.create_table("t", primary_keys="id", df=pd.DataFrame({{"id": ids, "batch": [0] * {ROWS}}}))
        print("ready", flush=True)
        for i in range(1, 400):  # bounded: the parent kills it long before
            fe.write_table("t", pd.DataFrame({{"id": ids, "batch": [i] * {ROWS}}}))
            print(i, flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        seen = 0
        while seen < 3 and time.monotonic() < deadline:  # a few commits in, then mid-write
            seen = int(child.stdout.readline() or 0)
        assert seen >= 3
        time.sleep(0.05)
    finally:
        child.kill()  # SIGKILL
        child.wait(timeout=30)
    e = engine.open(data)
    try:
        fe = FeatureEngineeringClient(data)
        table = fe.read_table("t", as_arrow=True)
        batches = set(table.column("batch").to_pylist())
        assert table.num_rows == ROWS and len(batches) == 1  # one write's rows, whole
        version = fe.get_table("t").delta_version
        assert batches == {version - 1} and version - 1 >= seen
        assert fe.write_table("t", fe.read_table("t")) == version + 1  # and it takes writes again
    finally:
        e.close()
