"""Durability of the LMDB store across processes: SIGKILL in the middle of writing, two
processes writing one data directory at once, map growth (in one process and across
processes) and the schema-version guard.

Child processes run small scripts written to tmp_path with this interpreter and the repo
on PYTHONPATH. A child prints one acknowledgement line (flushed) after each write that the
contract says is durable when it returns (params, tags, runs, log_batch) and after each
flush() (metric points). Every wait on a child is bounded; only children started here are
killed, by their own Popen handle.
"""
from __future__ import annotations

import os
import queue
import runpy
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import lmdb
import pytest

from cairn import engine
from cairn.engine.errors import CairnError
from cairn.engine.store.keys import read_u64, u32
from cairn.engine.tracking.entities import Metric, Param, RunTag
from cairn.engine.tracking.records import LATEST, RUN, SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 30.0

# Shared by the parent and the child scripts: what the child logs, deterministically.
COMMON = textwrap.dedent(
    """
    import sys
    from cairn.engine.tracking.entities import Metric, Param, RunTag

    BATCHES = 3          # log_batch calls per run, PARAMS_PER_BATCH params + one tag each
    PARAMS_PER_BATCH = 20
    CHUNKS = 3           # metric chunks per run, each followed by flush()
    CHUNK_POINTS = 700   # 3 x 700 points cross the 1,024-point block boundary
    SYNC_POINTS = 50     # metric points logged with log_batch(wait=True)

    def param_value(r, b, j):
        return f"{r}-{b}-{j}"

    def loss(r, n):
        return Metric("loss", r * 1_000_000 + n * 0.5, 1_000_000 + n, n)

    def sync_point(r, n):
        return Metric("sync", float(r - n), 2_000_000 + n, n)

    def ack(*parts):
        sys.stdout.write(" ".join(str(p) for p in parts) + "\\n")
        sys.stdout.flush()
    """
)

CRASH_CHILD = textwrap.dedent(
    """
    import time
    from cairn import engine
    from common import *

    data = sys.argv[1]
    eng = engine.open(data)
    s = eng.tracking
    exp = s.create_experiment("crash")
    ack("EXP", exp)
    for r in range(10_000):  # bounded; the parent kills the process long before the end
        rid = s.create_run(exp, run_name=f"run-{r}").info.run_id
        ack("RUN", rid, r)
        for b in range(BATCHES):
            s.log_batch(
                rid,
                params=[Param(f"b{b}_p{j}", param_value(r, b, j)) for j in range(PARAMS_PER_BATCH)],
                tags=[RunTag(f"b{b}_t", str(b))],
            )
            ack("BATCH", rid, b)
        s.set_tag(rid, "solo", f"tag-{r}")
        ack("TAG", rid)
        n = 0
        for c in range(CHUNKS):
            for i in range(CHUNK_POINTS):
                s.log_metric(rid, loss(r, n))
                n += 1
                if i == CHUNK_POINTS // 2:
                    time.sleep(0.005)  # let the writer commit some points no flush covers
                    ack("PROGRESS", rid, n)  # not an acknowledgement: a kill point
            s.flush()
            ack("FLUSH", rid, n)
        s.log_batch(rid, metrics=[sync_point(r, i) for i in range(SYNC_POINTS)])
        ack("SYNC", rid)
        s.log_param(rid, "done", "yes")
        ack("PARAM", rid)
    """
)


# -- child process handling -----------------------------------------------------------------
class Child:
    """A child Python process whose stdout lines arrive on a queue (bounded waits)."""

    def __init__(self, tmp_path: Path, name: str, source: str, *args: object, stdin: bool = False):
        (tmp_path / "common.py").write_text(COMMON)
        script = tmp_path / f"{name}.py"
        script.write_text(source)
        self.stderr_path = tmp_path / f"{name}.stderr"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(tmp_path)])
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *map(str, args)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.received: list[str] = []  # every line taken from the queue so far
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill is no acknowledgement
                self.lines.put(line[:-1])
        self.lines.put(None)

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def next_line(self, timeout: float = CHILD_TIMEOUT_S) -> str | None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child sent nothing for {timeout}s; stderr:\n{self.stderr()}") from None
        if line is not None:
            self.received.append(line)
        return line

    def expect(self, prefix: str) -> str:
        line = self.next_line()
        assert line is not None and line.startswith(prefix), (line, self.stderr())
        return line

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def drain(self) -> list[str]:
        """Every line the child wrote (taken already or not), once its stdout has closed."""
        while self.next_line() is not None:
            pass
        self._reader.join(timeout=CHILD_TIMEOUT_S)
        return list(self.received)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=CHILD_TIMEOUT_S)

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"child did not finish in time; stderr:\n{self.stderr()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if self.proc.stdin:
            self.proc.stdin.close()
        self._stderr.close()


@pytest.fixture
def children():
    started: list[Child] = []
    yield started
    for c in started:
        c.close()


@pytest.fixture
def common(tmp_path):
    """The child's helpers, loaded here so the parent computes the same expected values."""
    path = tmp_path / "common_for_parent.py"
    path.write_text(COMMON)
    return runpy.run_path(str(path))


def open_engine(path: Path, **kw):
    """engine.open on a directory this process has not opened yet (a fresh Engine)."""
    before = engine.open.__globals__.get("_open_engines", {}).get(path.resolve())
    assert before is None, f"{path} is already open in this process"
    return engine.open(path, **kw)


# -- raw reads for integrity checks -----------------------------------------------------------
def raw_runs(eng) -> dict[str, object]:
    """Every run record in the store, decoded (a half-written record would not decode)."""
    with eng.env.read() as txn, txn.cursor(db=eng.env.dbs["runs"]) as cur:
        return {k.hex(): RUN.decode(v) for k, v in cur}


def raw_exp_runs(eng) -> set[tuple[int, str]]:
    """(experiment id, run id) from the experiment -> runs index."""
    with eng.env.read() as txn, txn.cursor(db=eng.env.dbs["exp_runs"]) as cur:
        return {(read_u64(k), k[16:32].hex()) for k in cur.iternext(values=False)}


def stored_points(eng, run_id: str, key: str) -> tuple[int, int]:
    """(points in the history blocks, count in the latest row); (0, 0) if never logged."""
    s = eng.tracking
    with eng.env.read() as txn:
        nid = s.names.lookup(txn, key)
        if nid is None:
            return 0, 0
        prefix = bytes.fromhex(run_id) + u32(nid)
        rows = 0
        with txn.cursor(db=eng.env.dbs["metrics"]) as cur:
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    assert len(v) % 24 == 0, "a history block holds whole points"
                    rows += len(v) // 24
        raw = txn.get(prefix, db=eng.env.dbs["latest"])
    return rows, (LATEST.decode(raw).count if raw is not None else 0)


def check_metric_integrity(eng, run_id: str, key: str, expected_prefix: list[Metric]) -> int:
    """The history is a prefix of what was logged, the latest value its maximum, and the
    counts agree. Returns how many points are stored."""
    s = eng.tracking
    hist = s.get_metric_history(run_id, key).items
    assert hist == expected_prefix[: len(hist)], f"{key}: history is not a prefix of the logged points"
    rows, count = stored_points(eng, run_id, key)
    assert rows == count == len(hist), (key, rows, count, len(hist))
    latest = {m.key: m for m in s.get_run(run_id).data.metrics}
    if hist:
        best = max(hist, key=lambda m: (m.step, m.timestamp, m.value))
        assert latest[key] == best
    else:
        assert key not in latest
    return len(hist)


# ================================================================ crash (SIGKILL) test
# Lines per run: RUN, BATCH x3, TAG, (PROGRESS, FLUSH) x3, SYNC, PARAM; EXP comes first.
# 3: inside run 0's second log_batch; 20: mid-chunk of run 1's first metric chunk (points
# buffered and partly committed, none flushed); 37: run 2's last chunk, across the 2,048
# block boundary; 64: run 4's synchronous metric batch.
@pytest.mark.parametrize("kill_after_acks", [3, 20, 37, 64], ids=lambda n: f"after{n}lines")
def test_sigkill_while_writing_loses_nothing_acknowledged(tmp_path, children, common, kill_after_acks):
    data = tmp_path / "data"
    child = Child(tmp_path, "crash_child", CRASH_CHILD, data)
    children.append(child)
    for _ in range(kill_after_acks):
        line = child.next_line()
        assert line is not None, f"child ended early; stderr:\n{child.stderr()}"
    child.kill()  # mid-write: the child never stops on its own before this
    assert child.proc.returncode == -signal.SIGKILL
    acks = child.drain()  # includes lines acknowledged after the ones counted above
    assert len(acks) >= kill_after_acks

    # What the child acknowledged, by kind.
    exp = None
    runs: dict[str, int] = {}
    batches: dict[str, set[int]] = {}
    tagged, synced, done = set(), set(), set()
    flushed: dict[str, int] = {}
    for line in acks:
        kind, *rest = line.split()
        if kind == "EXP":
            exp = rest[0]
        elif kind == "RUN":
            runs[rest[0]] = int(rest[1])
        elif kind == "BATCH":
            batches.setdefault(rest[0], set()).add(int(rest[1]))
        elif kind == "TAG":
            tagged.add(rest[0])
        elif kind == "FLUSH":
            flushed[rest[0]] = int(rest[1])
        elif kind == "SYNC":
            synced.add(rest[0])
        elif kind == "PARAM":
            done.add(rest[0])
        elif kind == "PROGRESS":
            pass
        else:
            raise AssertionError(line)
    assert exp is not None and runs

    eng = open_engine(data)
    try:
        s = eng.tracking
        assert s.get_experiment(exp).name == "crash"
        all_runs = raw_runs(eng)
        index = raw_exp_runs(eng)
        # the run table and its experiment index agree: no half-created run
        assert {rid for e, rid in index if e == int(exp)} == set(all_runs)
        for rid, rec in all_runs.items():
            assert rec.experiment_id == int(exp) and rec.lifecycle_stage == "active"
        assert set(runs) <= set(all_runs)
        assert len(all_runs) <= len(runs) + 1  # at most the run being created when killed

        for rid in all_runs:
            run = s.get_run(rid)
            r = int(run.info.run_name.removeprefix("run-"))
            assert runs.get(rid, r) == r
            params, tags = run.data.params_dict, run.data.tags_dict
            assert tags["mlflow.runName"] == f"run-{r}"
            # every log_batch is all there or not at all
            for b in range(common["BATCHES"]):
                keys = [f"b{b}_p{j}" for j in range(common["PARAMS_PER_BATCH"])]
                present = [k in params for k in keys]
                assert all(present) or not any(present), (rid, b, present)
                assert (f"b{b}_t" in tags) == present[0]
                if present[0]:
                    assert [params[k] for k in keys] == [
                        common["param_value"](r, b, j) for j in range(len(keys))
                    ]
                    assert tags[f"b{b}_t"] == str(b)
                if b in batches.get(rid, ()):
                    assert present[0], f"acknowledged batch {b} of {rid} is missing"
            if rid in tagged:
                assert tags["solo"] == f"tag-{r}"
            if rid in done:
                assert params["done"] == "yes"
            n_all = common["CHUNKS"] * common["CHUNK_POINTS"]
            stored = check_metric_integrity(eng, rid, "loss", [common["loss"](r, n) for n in range(n_all)])
            assert stored >= flushed.get(rid, 0), f"acknowledged points of {rid} are missing"
            n_sync = check_metric_integrity(
                eng, rid, "sync", [common["sync_point"](r, n) for n in range(common["SYNC_POINTS"])]
            )
            assert n_sync in (0, common["SYNC_POINTS"])  # one log_batch: all or nothing
            if rid in synced:
                assert n_sync == common["SYNC_POINTS"]

        # the store takes new writes after the crash
        rid = s.create_run(exp).info.run_id
        s.log_batch(rid, params=[Param("after", "crash")], metrics=[Metric("m", 1.0, 1, 1)])
        assert s.get_run(rid).data.params_dict == {"after": "crash"}
    finally:
        eng.close()


# ================================================================ two processes at once
CONCURRENT_CHILD = textwrap.dedent(
    """
    import time
    from cairn import engine
    from common import *

    data, exp, parent_run = sys.argv[1], sys.argv[2], sys.argv[3]
    eng = engine.open(data)
    s = eng.tracking
    seen = s.get_run(parent_run)
    assert seen.data.params_dict == {"who": "parent"}, seen.data.params_dict
    assert seen.info.run_name == "parent-pre"
    ack("SAW_PARENT")
    deadline = time.monotonic() + 20
    for r in range(4):
        rid = s.create_run(exp, run_name=f"child-{r}").info.run_id
        s.log_batch(rid, params=[Param("who", "child"), Param("r", str(r))])
        for n in range(500):
            s.log_metric(rid, Metric("shared_key", r * 1000 + n, 10_000 + n, n))
            if n % 100 == 99:
                s.flush()
        s.flush()
        ack("RUN", rid, r)
        assert time.monotonic() < deadline
    ack("WAITING")
    marker = sys.stdin.readline().strip()  # a run the parent wrote while we were writing
    run = s.get_run(marker)
    assert run.data.params_dict == {"who": "parent-marker"}, run.data.params_dict
    hist = s.get_metric_history(marker, "shared_key").items
    assert [m.value for m in hist] == [float(i) for i in range(30)], hist
    ack("SAW_MARKER")
    eng.close()
    """
)


def test_two_processes_write_one_store(tmp_path, children):
    data = tmp_path / "data"
    eng = open_engine(data)
    try:
        s = eng.tracking
        exp = s.create_experiment("shared")
        pre = s.create_run(exp, run_name="parent-pre").info.run_id
        s.log_param(pre, "who", "parent")

        child = Child(tmp_path, "concurrent_child", CONCURRENT_CHILD, data, exp, pre, stdin=True)
        children.append(child)
        child.expect("SAW_PARENT")
        # write while the child writes, until it reports its last run (bounded)
        parent_runs: list[str] = []
        child_lines: list[str] = []
        for i in range(300):
            rid = s.create_run(exp, run_name=f"parent-{i}").info.run_id
            s.log_batch(rid, params=[Param("who", "parent"), Param("i", str(i))], tags=[RunTag("side", "p")])
            for n in range(20):
                s.log_metric(rid, Metric("shared_key", -float(n), 5_000 + n, n))
            s.flush()
            parent_runs.append(rid)
            while not child.lines.empty():
                child_lines.append(child.next_line())
            if "WAITING" in child_lines or None in child_lines:
                break
        while "WAITING" not in child_lines:
            line = child.next_line()
            assert line is not None, child.stderr()
            child_lines.append(line)
        marker = s.create_run(exp, run_name="marker").info.run_id
        s.log_param(marker, "who", "parent-marker")
        for n in range(30):
            s.log_metric(marker, Metric("shared_key", float(n), 7_000 + n, n))
        s.flush()

        child_runs = {}
        for line in child_lines[:-1]:
            kind, rid, r = line.split()
            assert kind == "RUN", line
            child_runs[rid] = int(r)
        child.send(marker)
        child.expect("SAW_MARKER")
        assert child.wait() == 0, child.stderr()
        assert len(child_runs) == 4

        # the parent sees everything the child wrote
        for rid, r in child_runs.items():
            run = s.get_run(rid)
            assert run.info.run_name == f"child-{r}" and run.info.experiment_id == exp
            assert run.data.params_dict == {"who": "child", "r": str(r)}
            hist = s.get_metric_history(rid, "shared_key").items
            assert [(m.value, m.timestamp, m.step) for m in hist] == [
                (float(r * 1000 + n), 10_000 + n, n) for n in range(500)
            ]
            assert run.data.metrics == [Metric("shared_key", float(r * 1000 + 499), 10_499, 499)]
        # and its own writes are intact
        for i, rid in enumerate(parent_runs):
            run = s.get_run(rid)
            assert run.data.params_dict == {"who": "parent", "i": str(i)}
            assert run.data.tags_dict == {"side": "p", "mlflow.runName": f"parent-{i}"}
            assert [m.value for m in s.get_metric_history(rid, "shared_key").items] == [
                -float(n) for n in range(20)
            ]
        everything = raw_runs(eng)
        assert set(everything) == {pre, marker, *parent_runs, *child_runs}
        assert {rid for e, rid in raw_exp_runs(eng) if e == int(exp)} == set(everything)
        # one key name, one id, whichever process interned it first
        with eng.env.read() as txn:
            nid = s.names.lookup(txn, "shared_key")
            assert txn.get(u32(nid), db=eng.env.dbs["name_ids"]) == b"shared_key"
    finally:
        eng.close()


# ================================================================ map growth
def test_map_grows_when_full(tmp_path):
    small = 1 << 20
    data = tmp_path / "data"
    eng = open_engine(data, map_size=small)
    big_value = "p" * 5990
    big_tag = "t" * 7990
    try:
        assert eng.env.map_size() == small
        s = eng.tracking
        exp = s.create_experiment("grow")
        runs = []
        for r in range(6):  # 6 x 100 x (6,000 + 8,000) chars: about 8 MiB of params and tags
            rid = s.create_run(exp, run_name=f"g{r}").info.run_id
            s.log_batch(
                rid,
                params=[Param(f"p{i}", f"{r}:{i}:{big_value}") for i in range(100)],
                tags=[RunTag(f"t{i}", f"{r}:{i}:{big_tag}") for i in range(100)],
            )
            runs.append(rid)
        # buffered points drained across a growth, then more growth with synchronous batches
        hot = runs[0]
        for n in range(40_000):
            s.log_metric(hot, Metric(f"k{n % 4}", float(n), n, n // 4))
        s.flush()
        for b in range(20):
            s.log_batch(runs[1], metrics=[Metric("w", float(b * 1000 + i), b * 1000 + i, b * 1000 + i) for i in range(1000)])
        grown = eng.env.map_size()
        assert grown > small and grown >= 8 * small

        def check(e):
            st = e.tracking
            for r, rid in enumerate(runs):
                run = st.get_run(rid)
                assert run.data.params_dict == {f"p{i}": f"{r}:{i}:{big_value}" for i in range(100)}
                tags = run.data.tags_dict
                assert len(tags) == 101
                assert all(tags[f"t{i}"] == f"{r}:{i}:{big_tag}" for i in range(100))
            for k in range(4):
                hist = st.get_metric_history(hot, f"k{k}").items
                assert [m.value for m in hist] == [float(n) for n in range(k, 40_000, 4)]
            hist = st.get_metric_history(runs[1], "w").items
            assert [m.step for m in hist] == list(range(20_000))
            assert st.get_run(runs[1]).data.metrics == [Metric("w", 19_999.0, 19_999, 19_999)]

        check(eng)
    finally:
        eng.close()
    # reopening with the small map size still reads (and writes) everything
    eng = open_engine(data, map_size=small)
    try:
        # LMDB maps at least what the file holds, whatever size is asked for
        assert eng.env.map_size() > small
        check(eng)
        s = eng.tracking
        s.log_param(runs[0], "after", "reopen")
        extra = s.create_run(exp).info.run_id
        s.log_batch(extra, params=[Param(f"x{i}", big_value) for i in range(100)])
        assert s.get_run(runs[0]).data.params_dict["after"] == "reopen"
        assert s.get_run(extra).data.params_dict == {f"x{i}": big_value for i in range(100)}
    finally:
        eng.close()


RESIZE_CHILD = textwrap.dedent(
    """
    from cairn import engine
    from common import *

    data, seed_run = sys.argv[1], sys.argv[2]
    eng = engine.open(data, map_size=1 << 20)
    s = eng.tracking
    assert s.get_run(seed_run).data.params_dict == {"seed": "1"}
    mine = s.create_run("0", run_name="resize-child").info.run_id
    s.log_param(mine, "phase", "before")
    for n in range(100):
        s.log_metric(mine, Metric("m", float(n), n, n))
    s.flush()
    ack("READY", mine, eng.env.map_size())
    # the parent now grows the map far beyond ours and tells us which runs it wrote
    line = sys.stdin.readline().split()
    assert line[0] == "GROWN", line
    for rid in line[1:]:
        params = s.get_run(rid).data.params_dict
        assert len(params) == 100 and all(len(v) == 6000 for v in params.values()), rid
    ack("READ_BIG", eng.env.map_size())
    # keep writing: small writes, then enough to need growth from here too
    s.log_param(mine, "phase2", "after")
    for n in range(100, 200):
        s.log_metric(mine, Metric("m", float(n), n, n))
    s.flush()
    for r in range(4):
        rid = s.create_run("0", run_name=f"child-big-{r}").info.run_id
        s.log_batch(rid, params=[Param(f"c{i}", chr(97 + i % 26) * 6000) for i in range(100)])
        ack("BIG", rid)
    assert len(s.get_metric_history(mine, "m").items) == 200
    ack("DONE", eng.env.map_size())
    eng.close()
    """
)


def test_map_resize_is_adopted_by_another_process(tmp_path, children):
    small = 1 << 20
    data = tmp_path / "data"
    eng = open_engine(data, map_size=small)
    try:
        s = eng.tracking
        seed = s.create_run("0").info.run_id
        s.log_param(seed, "seed", "1")
        child = Child(tmp_path, "resize_child", RESIZE_CHILD, data, seed, stdin=True)
        children.append(child)
        _, mine, child_map = child.expect("READY").split()
        assert int(child_map) == small

        big = []
        for r in range(8):  # about 5 MiB of params: the map must grow several times
            rid = s.create_run("0", run_name=f"parent-big-{r}").info.run_id
            s.log_batch(rid, params=[Param(f"p{i}", f"{i % 10}" * 6000) for i in range(100)])
            big.append(rid)
        assert eng.env.map_size() >= 4 * small
        child.send("GROWN " + " ".join(big))
        child_map_after = int(child.expect("READ_BIG").split()[1])
        assert child_map_after > small  # adopted the size the parent set
        child_big = [child.expect("BIG").split()[1] for _ in range(4)]
        child.expect("DONE")
        assert child.wait() == 0, child.stderr()

        # the parent reads what the child wrote after both grew the map
        run = s.get_run(mine)
        assert run.data.params_dict == {"phase": "before", "phase2": "after"}
        assert [m.value for m in s.get_metric_history(mine, "m").items] == [float(n) for n in range(200)]
        for rid in child_big:
            params = s.get_run(rid).data.params_dict
            assert params == {f"c{i}": chr(97 + i % 26) * 6000 for i in range(100)}
        # and can still write
        s.log_param(seed, "after", "resize")
        assert s.get_run(seed).data.params_dict == {"seed": "1", "after": "resize"}
    finally:
        eng.close()


def test_reads_in_other_threads_survive_map_growth(tmp_path):
    """LMDB may resize only while no transaction of the process is open: readers in
    other threads keep reading, without errors, while the writer grows the map."""
    small = 1 << 20
    eng = open_engine(tmp_path / "data", map_size=small)
    try:
        s = eng.tracking
        rid = s.create_run("0", run_name="snap").info.run_id
        errors: list[BaseException] = []
        reads = [0, 0]
        stop = threading.Event()

        def reader(slot: int) -> None:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    assert s.get_run(rid).info.run_name == "snap"
                    reads[slot] += 1
                except BaseException as exc:  # noqa: BLE001 - any failure fails the test
                    errors.append(exc)
                    return
                # A pause as real readers have: two threads spinning on py-lmdb calls
                # (which release and retake the GIL) would starve the writer thread.
                time.sleep(0.0005)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
        for th in threads:
            th.start()
        try:
            for _ in range(4):  # about 2.4 MiB: the map must grow at least once
                other = s.create_run("0").info.run_id
                s.log_batch(other, params=[Param(f"p{i}", "v" * 5990) for i in range(100)])
        finally:
            stop.set()
            for th in threads:
                th.join(timeout=60)
        assert not errors, errors[:3]
        assert eng.env.map_size() > small
        assert min(reads) > 0
    finally:
        eng.close()


def test_waiting_for_a_write_while_holding_a_snapshot_fails_clearly(tmp_path, monkeypatch):
    """The one misuse the resize rule forbids ends in a clear error, not a hang."""
    import cairn.engine.store.lmdbenv as lmdbenv

    monkeypatch.setattr(lmdbenv, "RESIZE_WAIT_S", 0.5)
    eng = open_engine(tmp_path / "data", map_size=1 << 20)
    try:
        s = eng.tracking
        with eng.env.read():
            with pytest.raises(CairnError, match="read snapshot stayed open"):
                for _ in range(4):
                    other = s.create_run("0").info.run_id
                    s.log_batch(other, params=[Param(f"p{i}", "v" * 5990) for i in range(100)])
        # once the snapshot is closed, growth and writes work again
        other = s.create_run("0").info.run_id
        s.log_batch(other, params=[Param(f"p{i}", "v" * 5990) for i in range(100)])
    finally:
        eng.close()


# ================================================================ schema version
def test_new_store_is_stamped_with_schema_version(tmp_path):
    data = tmp_path / "data"
    open_engine(data).close()
    env = lmdb.open(str(data / "lmdb"), max_dbs=64, readonly=True, lock=False)
    try:
        meta = env.open_db(b"meta", create=False)
        with env.begin() as txn:
            assert txn.get(b"schema_version", db=meta) == struct.pack(">I", SCHEMA_VERSION)
    finally:
        env.close()


def _stamp(data: Path, version: int) -> None:
    env = lmdb.open(str(data / "lmdb"), max_dbs=64)
    try:
        meta = env.open_db(b"meta")
        with env.begin(write=True) as txn:
            txn.put(b"schema_version", struct.pack(">I", version), db=meta)
    finally:
        env.close()


def _writer_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "cairn-writer")


def test_store_from_newer_cairn_is_refused(tmp_path):
    data = tmp_path / "data"
    eng = open_engine(data)
    rid = eng.tracking.create_run("0").info.run_id
    eng.close()
    _stamp(data, SCHEMA_VERSION + 1)
    threads = _writer_threads()
    for _ in range(2):  # refused every time: no half-open engine is cached
        with pytest.raises(CairnError) as info:
            engine.open(data)
        assert info.value.error_code == "INVALID_STATE"
        msg = info.value.message
        assert "newer Cairn" in msg and f"schema {SCHEMA_VERSION + 1}" in msg and str(data.resolve()) in msg
    assert _writer_threads() == threads  # the refused engine's writer thread is gone
    # the refusal changed nothing and released the environment (it opens again here)
    env = lmdb.open(str(data / "lmdb"), max_dbs=64)
    try:
        with env.begin() as txn:
            assert txn.get(b"schema_version", db=env.open_db(b"meta", txn=txn)) == struct.pack(
                ">I", SCHEMA_VERSION + 1
            )
    finally:
        env.close()
    # back at this version, the store opens with its data
    _stamp(data, SCHEMA_VERSION)
    eng = open_engine(data)
    try:
        assert eng.tracking.get_run(rid).info.run_id == rid
    finally:
        eng.close()
