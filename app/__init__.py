"""The running process: the HTTP API (`server.create_app(engine)`, one Litestar
controller per MLflow resource in controllers/) and model serving (serving/: scoring
protocol, batcher, router, payload log, metrics).

Imports: `cairn.engine` only; never `cairn.tui` or `cairn.cli`.
"""
