"""Processes sharing one data directory at once: `cairn up --no-ui` and `cairn server`
side by side, each taking HTTP writes, while an SDK script logs runs into the same
directory in-process. LMDB serves several processes (one writer at a time, readers
never blocked), so nothing is refused: no request fails, no write is lost, and each
server reads what the other server and the SDK wrote as soon as it is committed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
API = "/api/2.0/mlflow"
RUNS = 60  # per writer
SDK = """
import sys
import cairn
cairn.set_tracking_dir(sys.argv[1])
for i in range(int(sys.argv[2])):
    with cairn.start_run() as run:
        cairn.log_param("writer", "sdk")
        cairn.log_metric("i", float(i), step=i)
        cairn.set_tag("i", str(i))
    print(run.info.run_id, flush=True)
"""


def _http_writer(url: str, who: str, out: list[str], errors: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(RUNS):
            r = c.post(f"{API}/runs/create", json={"experiment_id": "0"})
            if r.status_code != 200:
                errors.append(f"{who} create: {r.status_code} {r.text[:200]}")
                return
            run = r.json()["run"]["info"]["run_id"]
            r = c.post(f"{API}/runs/log-batch", json={
                "run_id": run, "params": [{"key": "writer", "value": who}],
                "metrics": [{"key": "i", "value": i, "timestamp": 1, "step": i}], "tags": [{"key": "i", "value": str(i)}]})
            if r.status_code != 200:
                errors.append(f"{who} log-batch: {r.status_code} {r.text[:200]}")
                return
            out.append(run)


def test_up_server_and_an_sdk_script_share_one_data_directory(tmp_path, launch):
    data = tmp_path / "data"
    _, up_url = launch(data, "--port", "0", "--no-ui", command="up")  # demo data on first start
    _, server_url = launch(data)
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAIRN_HOME": str(tmp_path / "home")}
    sdk = subprocess.Popen([sys.executable, "-c", SDK, str(data), str(RUNS)], cwd=REPO, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    written: dict[str, list[str]] = {"up": [], "server": []}
    errors: list[str] = []
    threads = [threading.Thread(target=_http_writer, args=(url, who, written[who], errors))
               for who, url in (("up", up_url), ("server", server_url))]
    for t in threads:
        t.start()
    out, err = sdk.communicate(timeout=180)
    for t in threads:
        t.join(timeout=180)
    assert sdk.returncode == 0, err[-2000:]
    assert not errors, errors
    written["sdk"] = out.split()
    assert all(len(runs) == RUNS for runs in written.values()), {k: len(v) for k, v in written.items()}

    # each server reads every writer's runs, whole
    for url in (up_url, server_url):
        with httpx.Client(base_url=url, timeout=30) as c:
            for who, runs in written.items():
                for i, run in enumerate(runs):
                    got = c.get(f"{API}/runs/get", params={"run_id": run})
                    assert got.status_code == 200, (url, who, run)
                    d = got.json()["run"]["data"]
                    assert {p["key"]: p["value"] for p in d["params"]}["writer"] == who
                    assert [m["value"] for m in d["metrics"] if m["key"] == "i"] == [i]
                    assert {t["key"]: t["value"] for t in d["tags"]}["i"] == str(i)
            found, token = 0, None
            while True:
                page = c.post(f"{API}/runs/search", json={
                    "experiment_ids": ["0"], "filter": "params.writer != ''", "max_results": 100,
                    **({"page_token": token} if token else {})}).json()
                found += len(page.get("runs", []))
                token = page.get("next_page_token")
                if not token:
                    break
            assert found == 3 * RUNS, (url, found)
