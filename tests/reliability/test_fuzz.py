"""OpenAPI fuzzing in CI: schemathesis generates requests for every operation the live
server publishes (its own /schema/openapi.json), valid and invalid, and no answer may be
a server error. MLflow's deliberate 501s (presigned URLs, multipart upload) are left to
their own check here, by name; nothing else may answer 5xx. Bounded: 10 examples an
operation and a fixed seed, so a failure replays (the output says how); about 30 s.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

NOT_IMPLEMENTED = r"^/api/2\.0/mlflow-artifacts/(presigned|mpu)/"


def test_no_generated_request_is_a_server_error(tmp_path, launch):
    _, url = launch(tmp_path / "data")
    st = Path(sys.executable).with_name("st")
    out = subprocess.run(
        [str(st), "run", f"{url}/schema/openapi.json", "--checks", "not_a_server_error", "--max-examples", "10",
         "--seed", "20261207", "--workers", "2", "--request-timeout", "10", "--exclude-path-regex", NOT_IMPLEMENTED,
         "--warnings", "off", "--no-color"],
        capture_output=True, text=True, timeout=600)
    summary = "\n".join(line for line in out.stdout.splitlines()
                        if re.search(r"generated|Tested|failures|passed|ST\d{3}", line))
    print(f"\nschemathesis against {url}:\n{summary}")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert re.search(r"Tested: *1\d\d", out.stdout), "fewer operations than published were tested"

    with httpx.Client(base_url=url, timeout=30) as c:  # the 501s, by name: MLflow's own answer
        for method, path in (("GET", "/api/2.0/mlflow-artifacts/presigned/0/x"),
                             ("POST", "/api/2.0/mlflow-artifacts/mpu/create/0/x")):
            r = c.request(method, path)
            assert r.status_code == 501 and r.json()["error_code"] == "NOT_IMPLEMENTED", (path, r.text)
