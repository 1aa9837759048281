"""kill -9 of an in-process SDK writer in the middle of logging, and what the SDK promises
for the points it buffers.

The promise (engine/sdk/fluent.py, engine/tracking/metrics.py): `cairn.log_metric`
returns once the point is queued, before it is committed. The single writer commits
queued work in order, so
- every point logged before a call that waits for its commit (`log_param`, `set_tag`,
  `log_batch`, `flush`, `end_run`, `log_metric(synchronous=True)`) is durable when that
  call returns;
- points logged after the last such call may be lost to a kill -9, but what survives of
  them is a prefix in logging order: never a gap, never a point twice.
This test holds the SDK to both: a child logs metric "m" at steps 0, 1, 2, ... with a
`log_param` every 50 points, printing each one that returned; it is killed at a random
moment; the history must be steps 0..n-1 exactly, with n at least the last printed
checkpoint, and every printed param present.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from cairn import engine

REPO = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("CAIRN_SDK_KILLS", "5"))
CHILD = """
import sys
import cairn
cairn.set_tracking_dir(sys.argv[1])
with cairn.start_run() as run:
    print("run", run.info.run_id, flush=True)
    i = 0
    while True:
        cairn.log_metric("m", float(i), step=i)
        i += 1
        if i % 50 == 0:
            cairn.log_param(f"p{i}", str(i))  # waits: every point before it is committed now
            print("durable", i, flush=True)
"""


def test_buffered_points_survive_as_a_prefix_and_waiting_calls_make_them_durable(tmp_path):
    data = tmp_path / "data"
    rng = random.Random(int(os.environ.get("CAIRN_KILL_SEED", "9")))
    lines_out = []
    for _ in range(KILLS):
        env = {**os.environ, "PYTHONPATH": str(REPO), "CAIRN_HOME": str(tmp_path / "home")}
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(data)], cwd=REPO, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            run_id, durable = None, 0
            want = rng.randint(2, 40)  # checkpoints to see before the kill
            deadline = time.monotonic() + 60
            for line in child.stdout:
                word, value = line.split()
                if word == "run":
                    run_id = value
                else:
                    durable = int(value)
                    if durable // 50 >= want:
                        break
                assert time.monotonic() < deadline, "the child logs too slowly"
            time.sleep(rng.uniform(0, 0.01))  # land anywhere between checkpoints
        finally:
            child.send_signal(signal.SIGKILL)  # by its PID
            child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
        with engine.open(data) as eng:
            history = sorted(eng.tracking.get_metric_history(run_id, "m").items, key=lambda m: m.step)
            params = {p.key: p.value for p in eng.tracking.get_run(run_id).data.params}
        steps = [m.step for m in history]
        assert steps == list(range(len(steps))), "a gap or a repeat among the surviving points"
        assert [m.value for m in history] == [float(s) for s in steps]
        assert len(steps) >= durable, f"{durable} points were promised durable, {len(steps)} survived"
        assert all(params.get(f"p{i}") == str(i) for i in range(50, durable + 1, 50))
        lines_out.append((durable, len(steps)))
    print(f"\nSDK kill -9: {KILLS} kills; points promised durable / surviving per kill: "
          f"{', '.join(f'{a}/{b}' for a, b in lines_out)}; 0 gaps, 0 lost of those promised")
