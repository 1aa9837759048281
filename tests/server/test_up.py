"""`cairn up` (what `make run` starts): demo data on first start, then the server."""
from __future__ import annotations

import httpx
from mlflow import MlflowClient


def test_up_logs_demo_data_then_serves_it(launch, tmp_path):
    _proc, url = launch(tmp_path / "data", command="up", timeout=120)
    assert httpx.get(f"{url}/health").text == "OK"
    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name("cairn-demo")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) >= 5
    assert any(r.data.metrics for r in runs)
