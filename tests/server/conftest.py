"""A real `cairn server` on an ephemeral 127.0.0.1 port, driven over HTTP (started with
the repository conftest.py.s launcher, as a user would start it)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def server(tmp_path_factory, session_launch):
    """(url, data_dir) of one server shared by the session; tests use unique names."""
    data = tmp_path_factory.mktemp("cairn-server")
    _, url = session_launch(data)
    return url, data


@pytest.fixture(scope="session")
def server_url(server) -> str:
    return server[0]


@pytest.fixture()
def mlflow_client(server_url, monkeypatch):
    """The official MLflow client pointed at the server (fluent API too)."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server_url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server_url)
    yield MlflowClient(tracking_uri=server_url)
    while mlflow.active_run() is not None:
        mlflow.end_run()
