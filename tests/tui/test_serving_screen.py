"""The Serving screen: the scrape-window arithmetic on fixed Prometheus pages, the screen over
a local data directory (endpoints and payload logs, no live figures) and over a real
`cairn server` (figures from its /metrics)."""
from __future__ import annotations

import asyncio
import json
import math
import time

import httpx
import pytest
from textual.app import App
from textual.widgets import DataTable

from cairn import engine
from cairn.engine.endpoints.contract import PayloadRecord
from cairn.tui.backend import LocalBackend, RemoteBackend
from cairn.tui.prometheus import Page, bucket_deltas, parse, quantile
from cairn.tui.screens.serving import PayloadsLoaded, ServingPolled, ServingScreen
from cairn.tui.servingdata import NO_LIVE_METRICS, ServingReader, endpoint_from_json, window

pytestmark = pytest.mark.filterwarnings("ignore")

LABELS = 'endpoint="ep",served_entity="a",version="1"'


def page(requests: int, errors: int, latency: list[int], batches: int, rows: int, at: float) -> Page:
    """A /metrics page as app/serving/metrics.py renders it; `latency` are the per-bucket
    (not cumulative) counts of the buckets 0.001, 0.002, 0.004, +Inf."""
    lines = ["# HELP cairn_serving_requests_total Scoring requests.", "# TYPE cairn_serving_requests_total counter",
             f'cairn_serving_requests_total{{{LABELS},status_class="2xx"}} {requests - errors}',
             f'cairn_serving_requests_total{{{LABELS},status_class="5xx"}} {errors}',
             "# TYPE cairn_serving_errors_total counter",
             f'cairn_serving_errors_total{{{LABELS},status="503"}} {errors}',
             "# TYPE cairn_serving_request_latency_seconds histogram"]  # fmt: skip
    running = 0
    for le, n in zip(("0.001", "0.002", "0.004", "+Inf"), latency):
        running += n
        lines.append(f'cairn_serving_request_latency_seconds_bucket{{{LABELS},le="{le}"}} {running}')
    lines += [f"cairn_serving_request_latency_seconds_sum{{{LABELS}}} 0.5",
              f"cairn_serving_request_latency_seconds_count{{{LABELS}}} {running}",
              "# TYPE cairn_serving_batch_rows histogram",
              f'cairn_serving_batch_rows_bucket{{{LABELS},le="+Inf"}} {batches}',
              f"cairn_serving_batch_rows_sum{{{LABELS}}} {rows}",
              f"cairn_serving_batch_rows_count{{{LABELS}}} {batches}",
              "# TYPE cairn_serving_queue_depth gauge", f"cairn_serving_queue_depth{{{LABELS}}} 3",
              "# cairn_serving_workers source failed: RuntimeError: x", ""]  # fmt: skip
    text = "\n".join(lines)
    result = Page.from_text(text, at)
    result.text = text  # the page itself, for a fake server to serve
    return result


# -- arithmetic ---------------------------------------------------------------------------
def test_parse_reads_labels_escapes_and_special_values():
    samples = parse('# TYPE x counter\nx{a="q\\"uote",b="back\\\\slash\\n"} 1.5e3\ny +Inf\nz NaN 1700000000\nbad line\n')
    assert [(s.name, s.labels, s.value) for s in samples[:2]] == [
        ("x", {"a": 'q"uote', "b": "back\\slash\n"}, 1500.0), ("y", {}, math.inf)]
    assert samples[2].name == "z" and math.isnan(samples[2].value) and len(samples) == 3


def test_window_rates_error_rate_quantiles_and_batch_from_deltas():
    before = page(100, 2, [50, 40, 10, 0], batches=20, rows=200, at=10.0)
    # 40 more requests in 4 s: 10 in (0, 1ms], 20 in (1, 2ms], 10 in (2, 4ms]; 4 more errors
    now = page(140, 6, [60, 60, 20, 0], batches=30, rows=360, at=14.0)
    s = window(before, now)[("ep", "a")]
    assert (s.requests, s.total, s.errors, s.seconds) == (40, 140, 4, 4.0)
    assert s.rps == 10.0 and s.error_rate == 0.1
    # rank 20 of 40: the 10th of the 20 in (1ms, 2ms] -> 1ms + 1ms * 10/20
    assert s.p50 == pytest.approx(0.0015)
    # rank 39.6: the 9.6th of the 10 in (2ms, 4ms] -> 2ms + 2ms * 9.6/10
    assert s.p99 == pytest.approx(0.00392)
    assert s.mean_batch == 16.0  # 160 rows in 10 batches
    assert s.queue_depth == 3 and s.versions == {"1"}

    first = window(None, now)[("ep", "a")]  # no previous scrape: the server's whole life
    assert first.rps is None and first.requests == 140 and first.mean_batch == 12.0
    idle = window(now, page(140, 6, [60, 60, 20, 0], 30, 360, at=16.0))[("ep", "a")]
    assert idle.rps == 0 and idle.p50 is None and idle.error_rate is None and idle.mean_batch is None


def test_quantile_edges_and_counter_resets():
    assert quantile(0.5, []) is None and quantile(0.5, [(1.0, 0), (math.inf, 0)]) is None
    assert quantile(0.5, [(0.1, 0), (math.inf, 8)]) == 0.1  # all above the last bound
    assert quantile(0.25, [(4.0, 8), (math.inf, 8)]) == 1.0  # the first bucket starts at 0
    # the server restarted between scrapes: the new histogram is the window
    assert bucket_deltas({1.0: 2, math.inf: 3}, {1.0: 50, math.inf: 90}) == [(1.0, 2), (math.inf, 3)]
    restarted = window(page(100, 2, [50, 40, 10, 0], 20, 200, at=0.0), page(5, 0, [5, 0, 0, 0], 1, 5, at=2.0))
    assert restarted[("ep", "a")].requests == 5 and restarted[("ep", "a")].rps == 2.5


def test_endpoint_from_rest_json():
    ep = endpoint_from_json({"name": "e", "id": "x" * 32, "creation_timestamp": 1, "last_updated_timestamp": 2,
                             "config": {"served_entities": [{"name": "a", "entity_name": "iris", "entity_version": "1"}],
                                        "traffic_config": {"routes": [{"served_entity_name": "a", "traffic_percentage": 100}]},
                                        "config_version": 3},
                             "state": {"config_update": "NOT_UPDATING"}})  # fmt: skip
    assert ep.config_version == 3 and ep.config.served_entities[0].entity_name == "iris"


# -- the screen -----------------------------------------------------------------------------
class Harness(App):
    def __init__(self, backend) -> None:
        super().__init__()
        self.backend = backend

    def on_mount(self) -> None:
        self.push_screen(ServingScreen(self.backend))


def run_ui(backend, scenario) -> list:
    messages: list = []

    async def main() -> None:
        app = Harness(backend)
        async with app.run_test(size=(160, 45), message_hook=messages.append) as pilot:
            await until(pilot, lambda: any(isinstance(m, ServingPolled) for m in messages), "the first poll")
            await scenario(pilot, app.screen, messages)

    asyncio.run(main())
    return messages


async def until(pilot, check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        notes = [n.message for n in pilot.app._notifications]
        assert time.monotonic() < deadline, f"timed out waiting for {what}; {notes}"
        await pilot.pause(0.05)


def rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


CONFIG = {
    "served_entities": [{"name": "a", "entity_name": "iris", "entity_version": "1"},
                        {"name": "b", "entity_name": "iris", "entity_alias": "champion"},
                        {"name": "s", "entity_name": "iris", "entity_version": "2"}],
    "traffic_config": {"routes": [{"served_entity_name": "a", "traffic_percentage": 70},
                                  {"served_entity_name": "b", "traffic_percentage": 30}]},
    "shadow": {"served_entity_name": "s", "fraction": 0.1},
    "auto_capture_config": {"enabled": True, "sampling_fraction": 0.5},
}  # fmt: skip


def test_local_lists_endpoints_config_and_payloads(tmp_path, capsys, register_versions):
    eng = engine.open(tmp_path / "data")
    try:
        register_versions(eng, "iris", 3, {"champion": 1})
        eng.endpoints.create_endpoint("split", CONFIG)
        eng.endpoints.create_endpoint("other", {"served_entities": [{"entity_name": "iris", "entity_version": 3}]})
        now = int(time.time() * 1000)
        eng.endpoints.log_payloads("split", [
            PayloadRecord(request_id=f"r{i}", timestamp_ms=now - 1000 + i, status_code=500 if i == 2 else 200,
                          latency_ms=1.25 + i, served_entity_name="a", model_name="iris", model_version="1",
                          request=json.dumps({"inputs": [[i] * 40]}, indent=2), response=f'{{"predictions": [{i}]}}')
            for i in range(3)])  # fmt: skip
        eng.flush()
        assert ServingReader(LocalBackend(eng)).recent_payloads("split", limit=2)[-1].request_id == "r2"

        async def scenario(pilot, screen, messages):
            table = screen.query_one("#serving-table", DataTable)
            assert [str(c.label) for c in table.columns.values()] == ["endpoint", "served entity", "model",
                                                                      "version", "traffic"]  # no figures
            assert rows(table) == [["other", "iris-3", "iris", "3", "100%"],
                                   ["split", "a", "iris", "1", "70%"], ["split", "b", "iris", "@champion", "30%"],
                                   ["split", "s", "iris", "2", "shadow 10%"]]  # fmt: skip
            assert NO_LIVE_METRICS in str(screen.query_one("#serving-note").render())
            screen.select_endpoint("split")
            await until(pilot, lambda: len(screen.payloads) == 3, "the payload rows")
            config = str(screen.query_one("#endpoint-config").render())
            assert "traffic: a 70%, b 30%" in config and "shadow: s (10% of requests)" in config
            assert "payload logging: on, 50% sampled" in config
            payloads = rows(screen.query_one("#payload-table", DataTable))
            assert [r[1] for r in payloads] == ["500", "200", "200"]  # newest first
            assert payloads[0][2:5] == ["3.2 ms", "a", "1"] and payloads[0][5].startswith('{ "inputs": [ [ 2, 2')
            assert len(payloads[0][5]) == 60 and payloads[0][6] == '{"predictions": [2]}'
            # a refresh keeps the cursor on the endpoint
            polls = len([m for m in messages if isinstance(m, ServingPolled)])
            await pilot.press("down")
            await pilot.press("r")
            await until(pilot, lambda: len([m for m in messages if isinstance(m, ServingPolled)]) > polls, "a refresh")
            assert screen.query_one("#serving-table", DataTable).cursor_row == 2

        run_ui(LocalBackend(eng), scenario)
    finally:
        eng.close()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # Textual owns the terminal


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import cairn

    path = tmp_path_factory.mktemp("tui-serving") / "data"
    X, y = load_iris(return_X_y=True)
    cairn.set_tracking_dir(path)
    try:
        with cairn.start_run():
            info = cairn.sklearn.log_model(LogisticRegression(max_iter=300).fit(X, y), "model", input_example=X[:3])
        assert cairn.register_model(info.model_uri, "iris").status == "READY"
    finally:
        cairn.set_tracking_dir(None)
        engine.open(path).close()  # released before the server opens it
    return path, X


def test_remote_shows_live_figures(served, launch):
    path, X = served
    _, url = launch(path, timeout=90)
    body = json.dumps({"inputs": X[:4].astype("float32").tolist()})
    with httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/api/2.0/serving-endpoints", json={"name": "live", "config": {
            "served_entities": [{"name": "v1", "entity_name": "iris", "entity_version": "1"}],
            "auto_capture_config": {"enabled": True}}})  # fmt: skip
        assert r.status_code == 200, r.text

        def invoke(n: int) -> None:
            for _ in range(n):
                r = client.post("/serving-endpoints/live/invocations", content=body,
                                headers={"Content-Type": "application/json"})  # fmt: skip
                assert r.status_code == 200, r.text

        invoke(50)
        for _ in range(5):  # a missing column: routed, answered 400 by the entity
            assert client.post("/serving-endpoints/live/invocations", json={"inputs": {"x": [1.0]}}).status_code == 400
        for _ in range(3):  # not JSON at all
            assert client.post("/serving-endpoints/live/invocations", content=b"{nope",
                               headers={"Content-Type": "application/json"}).status_code == 400  # fmt: skip
        remote = RemoteBackend(url)

        async def scenario(pilot, screen, messages):
            table = screen.query_one("#serving-table", DataTable)
            assert [str(c.label) for c in table.columns.values()][5:] == ["requests", "req/s", "p50", "p99",
                                                                          "errors", "batch"]  # fmt: skip
            row = rows(table)[0]
            assert row[:5] == ["live", "v1", "iris", "1", "100%"] and int(row[5]) == 58
            assert row[6] == "-"  # the first scrape has no window yet: no rate
            assert row[7] != "-" and row[10] == "4.0"  # p50 known, 4 rows per batch
            assert row[9] == "13.8%"  # 8 errors in 58 requests
            # more traffic between two polls gives a rate
            await asyncio.to_thread(invoke, 20)
            polls = len([m for m in messages if isinstance(m, ServingPolled)])
            await until(pilot, lambda: len([m for m in messages if isinstance(m, ServingPolled)]) > polls, "a poll")
            await until(pilot, lambda: rows(table)[0][6] not in ("-", "0.0"), "a rate")
            assert int(rows(table)[0][5]) >= 78
            await until(pilot, lambda: len(screen.payloads) >= 50, "the payload rows")
            assert rows(screen.query_one("#payload-table", DataTable))[0][1] == "200"

        messages = run_ui(remote, scenario)
        remote.close()
        assert any(isinstance(m, PayloadsLoaded) for m in messages)


def test_up_hands_its_server_to_the_serving_screen(served):
    """`cairn up`'s UI (cli/up.py) reads endpoints from the engine in-process and live
    figures from the server running beside it: requests, p50 and errors appear."""
    from cairn.cli.up import ServerThread, create_up_tui

    path, X = served
    eng = engine.open(path)
    server = ServerThread(eng, "0.0.0.0", 0)  # a wildcard bind: the UI scrapes loopback
    server.start()
    try:
        assert server.wait_started(30)
        assert server.local_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=server.local_url, timeout=30) as client:
            r = client.post("/api/2.0/serving-endpoints", json={"name": "beside", "config": {
                "served_entities": [{"name": "v1", "entity_name": "iris", "entity_version": "1"}]}})  # fmt: skip
            assert r.status_code == 200, r.text
            for _ in range(12):
                r = client.post("/serving-endpoints/beside/invocations", json={"inputs": X[:2].astype("float32").tolist()})
                assert r.status_code == 200, r.text
            assert client.post("/serving-endpoints/beside/invocations", json={"inputs": {"x": [1.0]}}).status_code == 400

        polled: list[ServingPolled] = []

        async def main() -> None:
            app = create_up_tui(eng, server)
            async with app.run_test(size=(160, 40), message_hook=lambda m: isinstance(m, ServingPolled) and polled.append(m)) as pilot:
                await pilot.press("v")
                assert isinstance(app.screen, ServingScreen) and app.screen.reader.live
                await until(pilot, lambda: polled, "the first poll")
                stats = polled[-1].state.stats
                assert stats is not None, polled[-1].state.note
                assert stats[("beside", "v1")].total == 13 and stats[("beside", "v1")].errors == 1
                row = rows(app.screen.query_one("#serving-table", DataTable))[0]
                assert row[:2] == ["beside", "v1"] and row[5] == "13" and row[7] != "-" and row[9] == "7.7%"

        asyncio.run(main())
    finally:
        assert server.stop()
        eng.close()


def test_local_ui_without_a_server_has_no_live_figures(tmp_path):
    reader = ServingReader(LocalBackend(engine.open(tmp_path / "data")))
    try:
        assert not reader.live and reader.poll().note == NO_LIVE_METRICS
    finally:
        reader.backend.eng.close()


def test_v_opens_the_serving_screen_from_the_app(tmp_path):
    from textual.widgets import Static

    from cairn.tui.app import create_tui

    eng = engine.open(tmp_path / "data")

    async def main() -> None:
        app = create_tui(LocalBackend(eng))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("question_mark")
            assert "Serving" in str(app.screen.query_one("#help-text", Static).render())
            await pilot.press("escape")
            await pilot.press("v")
            assert isinstance(app.screen, ServingScreen)
            await until(pilot, lambda: "No serving endpoints" in str(app.screen.query_one("#serving-note").render()),
                        "the empty list")
            assert "Serving" in {c.title for c in app.get_system_commands(app.screen)}

    try:
        asyncio.run(main())
    finally:
        eng.close()


class FakeServer:
    """A RemoteBackend's shape (`client`, `describe`) over httpx.MockTransport: fixed
    endpoint JSON and a /metrics page the test changes between polls."""

    def __init__(self, payloads: list[dict] | None = None) -> None:
        self.metrics = ""
        self.payloads = payloads or []
        self.client = httpx.Client(base_url="http://fake", transport=httpx.MockTransport(self.handle))

    def describe(self) -> str:
        return "http://fake"

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, text=self.metrics)
        if request.url.path == "/api/2.0/serving-endpoints":
            return httpx.Response(200, json={"endpoints": [{"name": "ep", "config": {
                "served_entities": [{"name": "a", "entity_name": "iris", "entity_alias": "champion"}],
                "config_version": 1}}]})  # fmt: skip
        if request.url.path.endswith("/payloads"):
            return httpx.Response(200, json={"payloads": self.payloads})
        return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"})


def test_window_figures_on_screen_and_the_before_routing_row(monkeypatch):
    from cairn.tui.screens import serving

    # Long enough that a loaded machine still checks one poll's figures before the next
    # poll (of the same page, whose window would be empty) replaces them.
    monkeypatch.setattr(serving, "REFRESH_S", 1.0)
    fake = FakeServer()
    refused = '\ncairn_serving_requests_total{endpoint="ep",served_entity="",version="",status_class="4xx"} 7\n'
    fake.metrics = page(100, 2, [50, 40, 10, 0], batches=20, rows=200, at=0).text + refused
    text_now = page(140, 6, [60, 60, 20, 0], batches=30, rows=360, at=0).text + refused

    async def scenario(pilot, screen, messages):
        table = screen.query_one("#serving-table", DataTable)
        first = rows(table)[0]
        assert first[:6] == ["ep", "a", "iris", "@champion (1)", "100%", "100"]
        assert first[6] in ("-", "0.0")  # one poll (no window yet), or more of the same page
        assert rows(table)[1][:6] == ["ep", "(before routing)", "", "", "", "7"]
        table.move_cursor(row=1)
        fake.metrics = text_now
        # Not "the next poll": one already in flight when the page changed reports the old one.
        await until(pilot, lambda: rows(table)[0][5] == "140", "a poll of the new page")
        row = rows(table)[0]
        assert row[5] == "140" and float(row[6]) > 0 and row[7:] == ["1.5ms", "3.9ms", "10.0%", "16.0"]
        assert table.cursor_row == 1  # updated in place: the cursor stays

    run_ui(fake, scenario)
    fake.client.close()


def test_snapshot_serving(snap_compare, monkeypatch):
    """The screen on a fixed /metrics page and payload log, UTC, no second poll."""
    from cairn.tui.screens import serving

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(serving, "REFRESH_S", 3600)
    t0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC
    fake = FakeServer([{"request_id": f"r{i}", "timestamp_ms": t0 + i * 250, "status_code": 503 if i == 1 else 200,
                        "latency_ms": 0.5 + i, "served_entity_name": "a", "model_version": "1",
                        "request": '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', "response": '{"predictions": [0]}'}
                       for i in range(3)])  # fmt: skip
    fake.metrics = page(140, 6, [60, 60, 20, 0], batches=30, rows=360, at=0).text

    async def run_before(pilot) -> None:
        await until(pilot, lambda: len(getattr(pilot.app.screen, "payloads", [])) == 3, "the payload rows")
        await pilot.pause()

    try:
        assert snap_compare(Harness(fake), terminal_size=(120, 24), run_before=run_before)
    finally:
        fake.client.close()
        monkeypatch.undo()
        time.tzset()


def test_new_payloads_keep_the_cursor_on_the_record_read(monkeypatch):
    from cairn.tui.screens import serving

    monkeypatch.setattr(serving, "REFRESH_S", 0.2)
    record = {"status_code": 200, "latency_ms": 1.0, "served_entity_name": "a", "model_version": "1"}
    fake = FakeServer([{**record, "request_id": f"r{i}", "timestamp_ms": 1000 + i} for i in range(5)])

    async def scenario(pilot, screen, messages):
        await until(pilot, lambda: len(screen.payloads) == 5, "the payload rows")
        table = screen.query_one("#payload-table", DataTable)
        table.move_cursor(row=2)  # r2 (newest first)
        fake.payloads = fake.payloads[1:] + [{**record, "request_id": "r5", "timestamp_ms": 1005}]
        await until(pilot, lambda: screen.payloads[-1].request_id == "r5", "the new record")
        assert table.row_count == 5 and table.cursor_row == 3  # still on r2, one row lower

    run_ui(fake, scenario)
    fake.client.close()


def test_a_backend_without_serving_data_is_a_notification_not_a_crash():
    class Bare:
        def describe(self) -> str:
            return "fixed data"

    async def main() -> None:
        app = Harness(Bare())
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: pilot.app._notifications, "the notification")
            assert "has no serving endpoints" in next(iter(pilot.app._notifications)).message

    asyncio.run(main())
