"""A data directory whose disk fills up: writes get IO_ERROR (HTTP 507, which MLflow's
client does not retry) saying so and that nothing was stored, never a 500; reads keep
working; nothing half-written shows (the failed artifact is absent, the failed batch has
none of its params); once space is freed, writes resume. A read-only data directory is
refused at start with a clear message (LMDB needs its lock file, and Linux will not make a
file system read-only under a process writing to it, so this is the only way it happens);
writable again, everything acknowledged is there.

The data directory lives on a small tmpfs of this test's own, mounted and unmounted
here: that needs root and mount rights, so without them the test is skipped.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
SIZE_MIB = 48


@pytest.fixture()
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _remount(mnt: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mnt)], check=True, capture_output=True)


def _refused(resp: httpx.Response, words: str) -> None:
    assert resp.status_code == 507, resp.text
    body = resp.json()
    assert body["error_code"] == "IO_ERROR" and words in body["message"], body


def test_disk_full_then_read_only(small_disk, launch):
    filler = small_disk / "filler.bin"
    filler.write_bytes(b"\0" * (8 << 20))  # freed later, as an operator would
    _, url = launch(small_disk / "data")
    with httpx.Client(base_url=url, timeout=60) as c:
        info = c.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
        run, art = info["run_id"], info["artifact_uri"].split("mlflow-artifacts:", 1)[-1]
        acked, failed = [], None
        for i in range(400):  # bounded: 48 MiB fill well before 400 x 300 KB
            bid = uuid.uuid4().hex[:8]
            r = c.post(f"{API}/runs/log-batch", json={"run_id": run, "params": [
                {"key": f"{bid}.{j}", "value": "x" * 6000} for j in range(50)]})
            if r.status_code != 200:
                failed = (bid, r)
                break
            acked.append(bid)
        assert failed is not None, "the disk never filled"
        _refused(failed[1], "disk is full")
        _refused(c.put(f"{PROXY}{art}/big.bin", content=os.urandom(12 << 20)), "disk is full")

        def params() -> set[str]:
            got = c.get(f"{API}/runs/get", params={"run_id": run})
            assert got.status_code == 200  # reads keep working
            return {p["key"].split(".")[0] for p in got.json()["run"]["data"]["params"]}

        assert set(acked) <= params() and failed[0] not in params()
        assert c.get(f"{PROXY}{art}/big.bin").status_code == 404
        assert c.post(f"{API}/runs/search", json={"experiment_ids": ["0"]}).status_code == 200

        filler.unlink()  # space freed: writes resume
        assert c.post(f"{API}/runs/log-batch", json={"run_id": run, "params": [
            {"key": "after.0", "value": "freed"}]}).status_code == 200
        assert c.put(f"{PROXY}{art}/small.bin", content=b"back").status_code == 200

        assert set(acked) | {"after"} <= params()
    launch.stop(launch.procs[-1])
    _remount(small_disk, "ro")
    try:
        refused = subprocess.run([sys.executable, "-m", "cairn.cli", "--data", str(small_disk / "data"), "server",
                                  "--port", "0"], capture_output=True, text=True, timeout=60, cwd=REPO,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "Cannot open the data directory" in refused.stderr and "Read-only file system" in refused.stderr
    finally:
        _remount(small_disk, "rw")
    _, url = launch(small_disk / "data")
    with httpx.Client(base_url=url, timeout=60) as c:
        got = c.get(f"{API}/runs/get", params={"run_id": run}).json()["run"]["data"]["params"]
        assert set(acked) | {"after"} <= {p["key"].split(".")[0] for p in got}
        assert c.get(f"{PROXY}{art}/small.bin").content == b"back"
    print(f"\ndisk full: {len(acked)} batches acknowledged, the next one and a 12 MiB artifact refused with "
          f"507 IO_ERROR, reads served, writes back after freeing 8 MiB; read-only: refused at start, clearly; "
          f"writable again: everything there")


def test_storage_errors_are_told_apart(tmp_path):
    """Without a mount: which failures become IO_ERROR, and which stay what they are."""
    import errno

    from cairn.engine.errors import storage_error

    full = storage_error(OSError(errno.ENOSPC, "No space left on device"))
    assert (full.error_code, full.http_status) == ("IO_ERROR", 507) and "disk is full" in full.message
    assert "read-only" in storage_error(OSError(errno.EROFS, "Read-only file system")).message
    assert storage_error(ValueError("no")) is None
    # LMDB's commit says only "Input/output error": with room to spare it is a real I/O error, left alone
    assert storage_error(Exception("mdb_txn_commit: Input/output error"), tmp_path) is None
