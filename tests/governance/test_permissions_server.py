"""Grants through a real `cairn server --auth` with the official mlflow client: what a
user creates is its own, others do not see it (not in searches, not by id, not by
name) until it is shared through MLflow's permission API or Unity Catalog's; a group
membership removed from another process takes effect on the next request; ownership
moves; endpoints answer CAN_QUERY and their rate limits; HTTPS with --tls-cert."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import httpx
import pytest

from cairn import engine

pytestmark = pytest.mark.filterwarnings("ignore")
UC = "/api/2.1/unity-catalog"


@pytest.fixture
def site(tmp_path, launch):
    data = tmp_path / "data"
    with engine.open(data) as eng:
        gov = eng.governance
        gov.principals.create("user", "root", admin=True)
        for name in ("bob", "alice"):
            gov.principals.create("user", name)
        gov.principals.create("group", "analysts")
        gov.grants.set_default_permission("NO_PERMISSIONS")
        tokens = {n: gov.credentials.create_token(n)[0] for n in ("root", "bob", "alice")}
    _, url = launch(data, "--auth")
    return url, data, tokens


class As:
    """The mlflow client reads MLFLOW_TRACKING_TOKEN on every request: `as_("bob")`
    makes the next calls bob's."""

    def __init__(self, monkeypatch, url, tokens):
        from mlflow import MlflowClient

        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        self.mp, self.tokens = monkeypatch, tokens
        self.client = MlflowClient(tracking_uri=url, registry_uri=url)

    def __call__(self, who: str):
        self.mp.setenv("MLFLOW_TRACKING_TOKEN", self.tokens[who])
        return self.client


def _http(url, token):
    return httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def test_experiments_are_their_creators_until_shared(site, monkeypatch):
    from mlflow.exceptions import MlflowException

    url, _, tokens = site
    as_ = As(monkeypatch, url, tokens)
    exp = as_("bob").create_experiment("bobs")
    run = as_("bob").create_run(exp)
    assert run.info.user_id == "bob"  # the signed-in creator, whatever the client says
    as_("bob").log_metric(run.info.run_id, "loss", 0.5)

    alice = as_("alice")
    assert exp not in [e.experiment_id for e in alice.search_experiments()]
    with pytest.raises(MlflowException) as err:
        alice.get_experiment(exp)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"  # as if it did not exist
    assert alice.get_experiment_by_name("bobs") is None
    with pytest.raises(MlflowException) as err:
        alice.get_run(run.info.run_id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert alice.search_runs([exp]) == []

    with _http(url, tokens["bob"]) as h:  # MLflow's permission API, as its auth plugin has it
        r = h.post("/api/2.0/mlflow/experiments/permissions/create",
                   json={"experiment_id": exp, "username": "alice", "permission": "READ"})
        assert r.status_code == 200, r.text
        assert r.json()["experiment_permission"]["permission"] == "READ"
    assert alice.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    with pytest.raises(MlflowException) as err:
        alice.log_metric(run.info.run_id, "loss", 0.4)
    assert err.value.error_code == "PERMISSION_DENIED" and "CAN_EDIT" in err.value.message
    with _http(url, tokens["bob"]) as h:
        r = h.patch("/api/2.0/mlflow/experiments/permissions/update",
                    json={"experiment_id": exp, "username": "alice", "permission": "EDIT"})
        assert r.status_code == 200, r.text
        got = h.get("/api/2.0/mlflow/experiments/permissions/get", params={"experiment_id": exp, "username": "alice"})
        assert got.json()["experiment_permission"]["permission"] == "EDIT"
    alice.log_metric(run.info.run_id, "loss", 0.4)
    with pytest.raises(MlflowException) as err:
        alice.delete_experiment(exp)
    assert err.value.error_code == "PERMISSION_DENIED"
    with _http(url, tokens["alice"]) as h:  # only a manager changes permissions
        r = h.patch("/api/2.0/mlflow/experiments/permissions/update",
                    json={"experiment_id": exp, "username": "alice", "permission": "MANAGE"})
        assert r.status_code == 403 and "CAN_MANAGE" in r.json()["message"]


def test_models_groups_and_ownership_through_unity_catalog_grants(site, monkeypatch, tmp_path):
    from mlflow.exceptions import MlflowException

    url, data, tokens = site
    as_ = As(monkeypatch, url, tokens)
    as_("bob").create_registered_model("churn")  # the workspace defaults: anyone may create in main.default
    as_("bob").set_registered_model_tag("churn", "team", "risk")
    alice = as_("alice")
    assert [m.name for m in alice.search_registered_models()] == []
    with pytest.raises(MlflowException) as err:
        alice.get_registered_model("churn")
    assert err.value.error_code == "PERMISSION_DENIED"
    assert "EXECUTE on registered model 'main.default.churn'" in err.value.message
    with pytest.raises(MlflowException) as err:  # the same answer for a model that does not exist
        alice.get_registered_model("nothing-here")
    assert err.value.error_code == "PERMISSION_DENIED"

    with _http(url, tokens["bob"]) as h:  # bob owns it, so bob may grant on it
        r = h.patch(f"{UC}/permissions/registered_model/churn",
                    json={"changes": [{"principal": "analysts", "add": ["EXECUTE", "APPLY_TAG"]}]})
        assert r.status_code == 200, r.text
        assert r.json()["privilege_assignments"] == [{"principal": "analysts", "privileges": ["EXECUTE", "APPLY_TAG"]}]
    add = subprocess.run([sys.executable, "-m", "cairn.cli", "--data", str(data), "groups", "add-member", "analysts",
                          "alice"], capture_output=True, text=True)
    assert add.returncode == 0, add.stderr
    assert alice.get_registered_model("churn").tags == {"team": "risk"}
    assert [m.name for m in alice.search_registered_models()] == ["churn"]
    with pytest.raises(MlflowException) as err:
        alice.set_registered_model_alias("churn", "champion", "1")
    assert err.value.error_code == "PERMISSION_DENIED" and "MODIFY" in err.value.message
    with _http(url, tokens["alice"]) as h:
        eff = h.get(f"{UC}/effective-permissions/registered_model/churn", params={"principal": "alice"}).json()
        held = {p["privilege"]: p.get("inherited_from_name") for a in eff["privilege_assignments"]
                for p in a["privileges"]}
        assert held["EXECUTE"] is None and held["USE_CATALOG"] == "main" and eff["owner"] == "bob"

    remove = subprocess.run([sys.executable, "-m", "cairn.cli", "--data", str(data), "groups", "remove-member",
                             "analysts", "alice"], capture_output=True, text=True)
    assert remove.returncode == 0, remove.stderr
    with pytest.raises(MlflowException) as err:  # the next request, another process's change
        alice.get_registered_model("churn")
    assert err.value.error_code == "PERMISSION_DENIED"

    with _http(url, tokens["bob"]) as h:  # ownership moves: bob keeps nothing
        r = h.patch(f"{UC}/permissions/registered_model/churn", json={"changes": [], "owner": "alice"})
        assert r.status_code == 200, r.text
    alice.update_registered_model("churn", description="alice's now")
    with pytest.raises(MlflowException) as err:
        as_("bob").update_registered_model("churn", description="still mine?")
    assert err.value.error_code == "PERMISSION_DENIED"
    with _http(url, tokens["root"]) as root:
        entries = root.get("/api/2.0/audit/entries", params={"action": "owner.transfer"}).json()["entries"]
        assert entries[-1]["principal"] == "bob" and entries[-1]["detail"] == "alice"
        assert root.get("/api/2.0/audit/verify").json()["intact"] is True


def test_endpoints_answer_can_query_and_rate_limits(site, tmp_path):
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    url, data, tokens = site
    X = np.random.default_rng(0).normal(size=(20, 3))
    onnx_path = tmp_path / "ridge.onnx"
    onnx_path.write_bytes(to_onnx(Ridge().fit(X, X.sum(axis=1)), X[:1].astype(np.float32),
                                  target_opset=17).SerializeToString())
    reg = subprocess.run([sys.executable, "-m", "cairn.cli", "--data", str(data), "models", "register",
                          str(onnx_path), "ridge"], capture_output=True, text=True)
    assert reg.returncode == 0, reg.stderr
    body = {"inputs": [[1.0, 2.0, 3.0]]}
    with _http(url, tokens["root"]) as root, _http(url, tokens["alice"]) as alice, _http(url, tokens["bob"]) as bob:
        r = root.post("/api/2.0/serving-endpoints/", json={
            "name": "score", "config": {"served_entities": [{"entity_name": "ridge", "entity_version": "1"}]},
            "rate_limits": [{"calls": 3, "key": "user", "renewal_period": "minute"}]})
        assert r.status_code == 200, r.text
        assert r.json()["rate_limits"] == [{"calls": 3, "key": "user", "renewal_period": "minute"}]
        missing = alice.post("/serving-endpoints/score/invocations", json=body)
        assert missing.status_code == 404  # alice cannot see it: as if it were not there
        for who in ("alice", "bob"):
            assert root.patch(f"{UC}/permissions/serving_endpoint/score",
                              json={"changes": [{"principal": who, "add": ["CAN_QUERY"]}]}).status_code == 200
        assert alice.get("/api/2.0/serving-endpoints/score/payloads").status_code == 403  # CAN_MANAGE's
        for _ in range(3):
            assert alice.post("/serving-endpoints/score/invocations", json=body).status_code == 200
        over = alice.post("/serving-endpoints/score/invocations", json=body)
        assert over.status_code == 429 and over.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert bob.post("/serving-endpoints/score/invocations", json=body).status_code == 200  # per principal
        r = root.put("/api/2.0/serving-endpoints/score/rate-limits", json={"rate_limits": []})
        assert r.status_code == 200 and r.json() == {"rate_limits": []}
        assert alice.post("/serving-endpoints/score/invocations", json=body).status_code == 200
        bad = root.put("/api/2.0/serving-endpoints/score/rate-limits", json={"rate_limits": [{"calls": 0}]})
        assert bad.status_code == 400 and "calls" in bad.json()["message"]


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_https_with_a_certificate(tmp_path, launch, monkeypatch):
    data = tmp_path / "data"
    with engine.open(data) as eng:
        eng.governance.principals.create("user", "root", admin=True)
        token = eng.governance.credentials.create_token("root")[0]
    cert, key = _self_signed(tmp_path)
    bad = subprocess.run([sys.executable, "-m", "cairn.cli", "--data", str(data), "server", "--tls-cert", cert],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "--tls-cert and --tls-key go together" in bad.stderr
    _, url = launch(data, "--auth", "--tls-cert", cert, "--tls-key", key)
    assert url.startswith("https://")
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", cert)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    from mlflow import MlflowClient

    exp = MlflowClient(tracking_uri=url).create_experiment("over-tls")
    with httpx.Client(base_url=url, verify=cert, timeout=30) as c:
        r = c.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": exp},
                  headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["experiment"]["name"] == "over-tls"
