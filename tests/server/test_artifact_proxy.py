"""The artifact proxy against a real `cairn server`: the official mlflow client's uploads,
listings and downloads, raw HTTP for what the client never sends (traversal, torn
bodies), and the server's memory while a large body streams through it.

(Not named test_artifacts.py: tests/ has no packages, so pytest needs unique basenames and
tests/engine/test_artifacts.py holds that one.)"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import mlflow
import pytest
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

MiB = 1024 * 1024
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture()
def own_server(launch, tmp_path):
    """(process, url) of a server of this test's own, for reading its /proc status."""
    return launch(tmp_path / "data")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def raw_request(url: str, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    """One request with `path` sent exactly as written: httpx and requests would resolve
    '..' segments and fold slashes before the server saw them."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or b"")
        resp = conn.getresponse()
        data = resp.read()
        if resp.getheader("content-type", "").startswith("application/json"):
            return resp.status, json.loads(data)
        return resp.status, {"body": data}
    finally:
        conn.close()


def tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def experiment(mlflow_client):
    exp_id = mlflow_client.create_experiment(unique("artifacts"))
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@pytest.fixture(scope="module")
def local_tree(tmp_path_factory) -> Path:
    """A nested folder of binary files, one of them 30 MiB of random bytes."""
    root = tmp_path_factory.mktemp("tree")
    (root / "data" / "deep" / "deeper").mkdir(parents=True)
    (root / "empty-name-sibling").mkdir()
    (root / "top.bin").write_bytes(os.urandom(1000))
    (root / "data" / "big.bin").write_bytes(os.urandom(30 * MiB))
    (root / "data" / "zeros.bin").write_bytes(b"\x00" * 4096)
    (root / "data" / "deep" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (root / "data" / "deep" / "deeper" / "note with space.txt").write_bytes("ünïcode\n".encode())
    (root / "empty-name-sibling" / "empty.bin").write_bytes(b"")
    return root


# -- the official client -----------------------------------------------------------------
def test_log_artifacts_tree_list_and_download_by_uri(mlflow_client, experiment, local_tree, tmp_path):
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(local_tree), artifact_path="model")
        mlflow.log_artifact(str(local_tree / "top.bin"))
        mlflow.log_text("plain text ✓", "notes/readme.txt")
        mlflow.log_dict({"a": [1, 2], "b": {"c": None}}, "config/params.json")
    uri = run.info.artifact_uri
    assert uri == f"mlflow-artifacts:/{experiment}/{run.info.run_id}/artifacts"

    # The repository the client itself uploads through (MlflowArtifactsRepository).
    repo = get_artifact_repository(uri)
    root = repo.list_artifacts()
    assert [(f.path, f.is_dir, f.file_size) for f in root] == [
        ("config", True, None),
        ("model", True, None),
        ("notes", True, None),
        ("top.bin", False, 1000),
    ]
    data = repo.list_artifacts("model/data")
    assert [(f.path, f.is_dir, f.file_size) for f in data] == [
        ("model/data/big.bin", False, 30 * MiB),
        ("model/data/deep", True, None),
        ("model/data/zeros.bin", False, 4096),
    ]
    assert repo.list_artifacts("top.bin") == []

    got = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/model", dst_path=str(tmp_path / "m")))
    assert tree_files(got) == tree_files(local_tree)
    one = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/model/data/big.bin", dst_path=str(tmp_path / "b"))
    assert Path(one).read_bytes() == (local_tree / "data" / "big.bin").read_bytes()
    assert mlflow.artifacts.load_text(f"{uri}/notes/readme.txt") == "plain text ✓"
    assert mlflow.artifacts.load_dict(f"{uri}/config/params.json") == {"a": [1, 2], "b": {"c": None}}


def test_client_list_and_download_by_run_id(mlflow_client, experiment, local_tree, tmp_path):
    """The run-id forms go through 'runs:/' (which also asks the logged-model search for a
    model of that name) and the tracking-side /mlflow/artifacts/list."""
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(local_tree / "data"), artifact_path="data")
        mlflow.log_artifact(str(local_tree / "top.bin"))
    rid = run.info.run_id

    assert [f.path for f in mlflow_client.list_artifacts(rid)] == ["data", "top.bin"]
    assert [(f.path, f.is_dir) for f in mlflow_client.list_artifacts(rid, "data/deep")] == [
        ("data/deep/deeper", True),
        ("data/deep/weights.bin", False),
    ]
    assert [f.path for f in mlflow_client.list_artifacts(rid, "data/deep/deeper")] == [
        "data/deep/deeper/note with space.txt"
    ]
    assert mlflow_client.list_artifacts(rid, "top.bin") == []  # a file lists as nothing

    big = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data/big.bin", dst_path=str(tmp_path / "f"))
    assert Path(big).read_bytes() == (local_tree / "data" / "big.bin").read_bytes()
    whole = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data", dst_path=str(tmp_path / "d"))
    assert tree_files(Path(whole)) == tree_files(local_tree / "data")


def test_tracking_listing_over_http(server_url, mlflow_client, experiment):
    with mlflow.start_run() as run:
        mlflow.log_text("x", "a/b/c.txt")
        mlflow.log_text("yy", "a/d.txt")
    url = f"{server_url}/api/2.0/mlflow/artifacts/list"
    body = httpx.get(url, params={"run_id": run.info.run_id, "path": "a"}).json()
    assert body == {
        "root_uri": run.info.artifact_uri,
        "files": [{"path": "a/b", "is_dir": True}, {"path": "a/d.txt", "is_dir": False, "file_size": 2}],
    }
    # The deprecated run_uuid works too; the root lists relative to the run's root.
    body = httpx.get(url, params={"run_uuid": run.info.run_id}).json()
    assert body["files"] == [{"path": "a", "is_dir": True}]
    r = httpx.get(url, params={"run_id": run.info.run_id, "path": "../x"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = httpx.get(url, params={"run_id": "0" * 32})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = httpx.get(url)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_multipart_switched_on_falls_back_to_plain_put(mlflow_client, experiment, tmp_path, monkeypatch):
    """With MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD the client first asks /mpu/create; the
    refusal's message is what makes it fall back to one streamed PUT."""
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(MiB))
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "true")
    src = tmp_path / "two.bin"
    src.write_bytes(os.urandom(2 * MiB + 3))
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src))
    got = mlflow.artifacts.download_artifacts(artifact_uri=f"{run.info.artifact_uri}/two.bin", dst_path=str(tmp_path / "o"))
    assert Path(got).read_bytes() == src.read_bytes()


# -- raw HTTP ----------------------------------------------------------------------------
def test_put_get_delete_round_trip(server_url):
    base = f"{server_url}{PROXY}/{unique('raw')}"
    payload = os.urandom(3 * MiB + 17)
    r = httpx.put(f"{base}/dir/blob.bin", content=payload)
    assert r.status_code == 200 and r.json() == {}
    r = httpx.get(f"{base}/dir/blob.bin")
    assert r.status_code == 200 and r.content == payload
    assert r.headers["content-disposition"].startswith("attachment")
    assert r.headers["x-content-type-options"] == "nosniff"
    # Replacing a file keeps one entry with the new content.
    assert httpx.put(f"{base}/dir/blob.bin", content=b"v2").status_code == 200
    assert httpx.get(f"{base}/dir/blob.bin").content == b"v2"
    # An empty body is an empty file.
    assert httpx.put(f"{base}/dir/empty", content=b"").status_code == 200
    assert httpx.get(f"{base}/dir/empty").content == b""

    prefix = urlsplit(base).path[len(PROXY) + 1 :]
    listing = httpx.get(f"{server_url}{PROXY}", params={"path": f"{prefix}/dir"}).json()
    # The proxy lists base names, as MLflow's server does.
    assert listing == {"files": [
        {"path": "blob.bin", "is_dir": False, "file_size": 2},
        {"path": "empty", "is_dir": False, "file_size": 0},
    ]}
    # Listing a file, or a directory that is not there, gives no files.
    assert httpx.get(f"{server_url}{PROXY}", params={"path": f"{prefix}/dir/blob.bin"}).json() == {}
    assert httpx.get(f"{server_url}{PROXY}", params={"path": f"{prefix}/nope"}).json() == {}

    # A directory is not downloadable; a file under a file cannot be written.
    r = httpx.get(f"{base}/dir")
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = httpx.put(f"{base}/dir/blob.bin/under", content=b"x")
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    assert httpx.delete(f"{base}/dir").json() == {}
    r = httpx.get(f"{base}/dir/blob.bin")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert httpx.delete(f"{base}/dir").status_code == 200  # deleting nothing is fine


def test_missing_path_is_404_json(server_url):
    r = httpx.get(f"{server_url}{PROXY}/{unique('nothing')}/here.txt")
    assert r.status_code == 404
    assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST" and "here.txt" in r.json()["message"]


TRAVERSALS = [
    "../x",
    "../../../../etc/passwd",
    "%2e%2e/x",
    "%2E%2E/%2E%2E/x",
    "a/%2e%2e/%2e%2e/b",
    "a/../../b",
    "a%2f..%2f..%2fb",
    "%252e%252e/x",  # double-encoded: MLflow decodes until stable, so do we
    "/etc/passwd",  # the request path then has '//' after the anchor
    "%2Fetc/passwd",
    "%2fetc%2fpasswd",
    "a%5c..%5cb",
    "a\\b",
    "C:/windows",
    "a//b",
    "a/./b",
    "a%00b",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_400_and_writes_nothing(server, path):
    url, data = server
    outside = data.parent
    before = sorted(p for p in outside.rglob("*") if data not in p.parents and p != data)
    marker = unique("escape").encode()
    status, body = raw_request(url, "PUT", f"{PROXY}/{path}", marker)
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "Invalid artifact path" in body["message"]
    for method in ("GET", "DELETE"):
        status, body = raw_request(url, method, f"{PROXY}/{path}")
        assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", (method, body)
    after = sorted(p for p in outside.rglob("*") if data not in p.parents and p != data)
    assert after == before
    assert not list((data / "blobs" / "tmp").iterdir())


def test_route_spelled_oddly(server_url):
    """The path is cut at the route's anchor after decoding, so an encoded anchor still
    serves; slashes the router folded inside the anchor are refused, not guessed at."""
    name = f"{unique('odd')}/f.txt"
    assert httpx.put(f"{server_url}{PROXY}/{name}", content=b"odd").status_code == 200
    status, body = raw_request(server_url, "GET", f"/api/2.0/mlflow-artifacts/artifact%73/{name}")
    assert status == 200 and body == {"body": b"odd"}
    status, body = raw_request(server_url, "GET", f"/api/2.0/mlflow-artifacts//artifacts/{name}")
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize("path", ["../x", "%2e%2e", "/etc", "a\\b", "a//b"])
def test_listing_traversal_is_400(server_url, path):
    status, body = raw_request(server_url, "GET", f"{PROXY}?path={path}")
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"


def test_multipart_endpoints_refuse_with_mlflows_message(server_url):
    for action in ("create", "complete", "abort"):
        r = httpx.post(f"{server_url}/api/2.0/mlflow-artifacts/mpu/{action}/1/r/artifacts", json={"path": "f"})
        assert r.status_code == 501
        assert r.json()["message"].startswith("Multipart upload is not supported")


def test_torn_upload_keeps_nothing(server):
    """A client that promises 8 MiB and hangs up after 1 MiB leaves no file and no temp."""
    url, data = server
    tmp = data / "blobs" / "tmp"
    path = f"{unique('torn')}/big.bin"
    parts = urlsplit(url)

    def wait_for(cond) -> bool:
        deadline = time.monotonic() + 10
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.02)
        return cond()

    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"PUT {PROXY}/{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {8 * MiB}\r\n\r\n".encode())
        sock.sendall(os.urandom(MiB))
        # The blob is being written while the connection is open: the test sees it begin.
        assert wait_for(lambda: any(tmp.iterdir()))
    assert wait_for(lambda: not any(tmp.iterdir())), list(tmp.iterdir())
    assert httpx.get(f"{url}{PROXY}/{path}").status_code == 404


def test_parallel_uploads(server_url):
    base = f"{server_url}{PROXY}/{unique('par')}"
    payloads = {f"f{i}.bin": os.urandom(2 * MiB + i) for i in range(8)}
    errors = []

    def send(name, body):
        try:
            assert httpx.put(f"{base}/{name}", content=body, timeout=60).status_code == 200
        except (AssertionError, httpx.HTTPError) as exc:  # surfaced below: raised in a thread it would vanish
            errors.append(exc)

    threads = [threading.Thread(target=send, args=item) for item in payloads.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for name, body in payloads.items():
        assert httpx.get(f"{base}/{name}").content == body


# -- memory --------------------------------------------------------------------------------
def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_large_body_streams_in_bounded_memory(own_server):
    """200 MiB up and down through the server; its peak RSS grows by well under that."""
    proc, url = own_server
    target = f"{url}{PROXY}/mem/big.bin"
    # Warm up first (thread pools, first blob directories), then take the baseline.
    assert httpx.put(f"{url}{PROXY}/mem/warm.bin", content=os.urandom(4 * MiB)).status_code == 200
    assert len(httpx.get(f"{url}{PROXY}/mem/warm.bin").content) == 4 * MiB
    base_kib = _status_kib(proc.pid, "VmRSS")

    block = os.urandom(MiB)
    sent = hashlib.sha256()

    def body():  # chunked transfer: the server sees no Content-Length
        for i in range(200):
            chunk = i.to_bytes(8, "big") + block[8:]
            sent.update(chunk)
            yield chunk

    r = httpx.put(target, content=body(), timeout=120)
    assert r.status_code == 200, r.text
    got = hashlib.sha256()
    size = 0
    with httpx.stream("GET", target, timeout=120) as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_bytes():
            got.update(chunk)
            size += len(chunk)
    assert size == 200 * MiB and got.hexdigest() == sent.hexdigest()

    peak_kib = _status_kib(proc.pid, "VmHWM")
    grown_mib = (peak_kib - base_kib) / 1024
    assert grown_mib < 100, f"server peak RSS grew by {grown_mib:.0f} MiB for a 200 MiB body"
