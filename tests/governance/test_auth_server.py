"""A real `cairn server --auth` (another process, ephemeral loopback port) with the
official mlflow client: tokens and basic auth let it in, nothing else does; revocation
(from another process too), expiry and a deleted user take effect on the next request;
the audit log records changes and refusals and its chain verifies."""
from __future__ import annotations

import base64
import subprocess
import sys
import time

import httpx
import pytest

from cairn import engine

pytestmark = pytest.mark.filterwarnings("ignore")
PASSWORD = "correct horse battery"


@pytest.fixture
def secured(tmp_path, launch):
    data = tmp_path / "data"
    with engine.open(data) as eng:
        gov = eng.governance
        gov.principals.create("user", "ana", admin=True, password=PASSWORD)
        gov.principals.create("service_principal", "ci-bot")
        token, _ = gov.credentials.create_token("ana", comment="test")
        short, _ = gov.credentials.create_token("ci-bot", lifetime_seconds=1)
    _, url = launch(data, "--auth")
    return url, data, token, short


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_only_credentials_get_in(secured, monkeypatch):
    url, data, token, short = secured
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/health").status_code == 200  # load balancers need no token
        r = c.post("/api/2.0/mlflow/experiments/search", json={"max_results": 10})
        assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
        assert "MLFLOW_TRACKING_TOKEN" in r.json()["message"]
        bad = c.get("/api/2.0/mlflow/experiments/search", headers={"Authorization": "Bearer cairn_nope"})
        assert bad.status_code == 401 and "not valid" in bad.json()["message"]
        wrong = c.get("/api/2.0/mlflow/experiments/search", headers={"Authorization": _basic("ana", "nope-nope")})
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.json()["message"]
        assert c.post("/serving-endpoints/x/invocations", json={"inputs": [[1]]}).status_code == 401
        assert c.get("/metrics").status_code == 401

    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    client = MlflowClient(tracking_uri=url)
    exp = client.create_experiment("secured")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "m", 1.0)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ana")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with pytest.raises(mlflow.exceptions.MlflowException, match="UNAUTHENTICATED|401"):
        client.get_run(run.info.run_id)

    time.sleep(1.1)  # ci-bot's token lived one second
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.get("/api/2.0/mlflow/experiments/search", headers={"Authorization": f"Bearer {short}"})
        assert r.status_code == 401 and "expired" in r.json()["message"]


def test_tokens_over_rest_revocation_and_the_audit(secured):
    url, data, token, _ = secured
    ana = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/api/2.0/token/create", json={"comment": "laptop", "lifetime_seconds": 3600}, headers=ana)
        assert r.status_code == 200, r.text
        fresh, token_id = r.json()["token_value"], r.json()["token_info"]["token_id"]
        mine = {"Authorization": f"Bearer {fresh}"}
        assert c.get("/api/2.0/mlflow/experiments/search", headers=mine).status_code == 200
        ids = [t["token_id"] for t in c.get("/api/2.0/token/list", headers=ana).json()["token_infos"]]
        assert token_id in ids
        assert c.post("/api/2.0/token/delete", json={"token_id": token_id}, headers=ana).status_code == 200
        assert c.get("/api/2.0/mlflow/experiments/search", headers=mine).status_code == 401  # at once

        # revoked from another process (the command line), refused on the next request
        assert c.get("/api/2.0/mlflow/experiments/search", headers=ana).status_code == 200
        with engine.open(data) as eng:
            ana_id = next(t.token_id for t in eng.governance.credentials.list_tokens("ana") if t.comment == "test")
        out = subprocess.run([sys.executable, "-m", "cairn.cli", "--data", str(data), "tokens", "revoke", ana_id],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert c.get("/api/2.0/mlflow/experiments/search", headers=ana).status_code == 401
        basic = {"Authorization": _basic("ana", PASSWORD)}
        assert c.post("/api/2.0/mlflow/experiments/create", json={"name": "audited"}, headers=basic).status_code == 200

    time.sleep(0.5)  # request audits commit with the next group commit
    with engine.open(data) as eng:
        audit = eng.governance.audit
        actions = [(e.principal, e.action, e.outcome) for e in audit.entries()]
        assert ("ana", "POST /api/2.0/mlflow/experiments/create", "200") in actions
        assert ("ana", "token.create", "ok") in actions and ("ana", "token.revoke", "ok") in actions
        assert any(p == "" and o == "401" for p, _, o in actions)  # the refused requests
        assert any(a == "token.revoke" and p.startswith("os:") for p, a, _ in actions)  # the CLI's
        assert audit.verify() == (len(actions), None)
