"""/api/2.0/mlflow/metrics/*: metric history reads (service.proto). Both are GETs with
their parameters in the query string, as MLflow's client and UI send them."""
from __future__ import annotations

import msgspec
from litestar import Controller, get

from cairn.app.controllers.runs import required_run_id
from cairn.app.wire import metrics_out, number
from cairn.engine.errors import invalid
from cairn.engine.governance.access import Access
from cairn.engine.tracking.contract import TrackingStore

# MLflow's server limits for get-history-bulk-interval (mlflow/server/handlers.py).
MAX_RUNS_PER_BULK_REQUEST = 100
MAX_RESULTS_PER_RUN = 2500


class MetricWithRunId(msgspec.Struct):
    key: str
    value: float | str  # str only for NaN/Infinity, as protobuf JSON writes them
    timestamp: int
    step: int
    run_id: str



class MetricController(Controller):
    path = "/api/2.0/mlflow/metrics"
    tags = ("metrics",)

    # Histories can be long (the client asks for 25,000 points a page): read in a thread
    # so one big history does not stall every other request on the event loop.
    @get("/get-history", sync_to_thread=True)
    def get_history(
        self,
        store: TrackingStore,
        access: Access,
        metric_key: str,
        run_id: str | None = None,
        run_uuid: str | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> dict:
        rid = required_run_id(run_id, run_uuid)
        access.run(rid)
        page = store.get_metric_history(
            rid, metric_key, max_results=max_results, page_token=page_token or None
        )
        out: dict = {"metrics": metrics_out(page.items)}
        if page.next_page_token:
            out["next_page_token"] = page.next_page_token
        return out

    @get("/get-history-bulk-interval", sync_to_thread=True)
    def get_history_bulk_interval(
        self,
        store: TrackingStore,
        access: Access,
        run_ids: list[str],
        metric_key: str,
        start_step: int | None = None,
        end_step: int | None = None,
        max_results: int | None = None,
    ) -> dict:
        if len(run_ids) > MAX_RUNS_PER_BULK_REQUEST:
            raise invalid(
                f"GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS_PER_BULK_REQUEST} "
                f"run_ids. Received {len(run_ids)} run_ids."
            )
        if max_results is None:
            max_results = MAX_RESULTS_PER_RUN
        elif not 1 <= max_results <= MAX_RESULTS_PER_RUN:
            raise invalid(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}.")
        for rid in run_ids:
            access.run(rid)
        points = store.get_metric_history_bulk_interval(
            run_ids, metric_key, max_results, start_step=start_step, end_step=end_step
        )
        return {
            "metrics": [
                MetricWithRunId(m.key, number(m.value), m.timestamp, m.step, rid) for rid, m in points
            ]
        }
