"""Monitoring from Python: a model version's baseline from its training data (a frame,
a file, or a feature table version), and an endpoint's monitor, on the data directory
of the SDK (or a given engine), as `cairn monitors` does.

    from cairn import monitoring
    monitoring.set_baseline("churn", 3, X_train.assign(prediction=model.predict(X_train)))
    monitoring.create_monitor("churn-ep", granularities=["5 minutes", "1 hour"])
    monitoring.refresh("churn-ep"); monitoring.windows("churn-ep", "5 minutes")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from cairn.engine.errors import invalid
from cairn.engine.monitoring.profiles import Profile, profile_frame
from cairn.engine.monitoring.records import ALL, MonitorRecord, WindowRecord
from cairn.engine.monitoring.store import DEFAULT_GRANULARITIES, DEFAULT_SETTLE_S, RefreshResult
from cairn.engine.sdk.context import current_user, open_engine


def read_file(path: str | Path):
    """A Parquet, CSV or JSON-lines file as an Arrow table (the `features` extra)."""
    p = Path(path)
    if not p.is_file():
        raise invalid(f"No file {p}")
    try:
        import pyarrow.csv as pcsv
        import pyarrow.json as pjson
        import pyarrow.parquet as pq
    except ImportError:
        raise invalid("Reading a file needs the `features` extra (pyarrow): pip install 'cairn[features]'") from None
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pq.read_table(p)
        if suffix in (".csv", ".tsv"):
            return pcsv.read_csv(p, parse_options=pcsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","))
        if suffix in (".json", ".jsonl", ".ndjson"):
            return pjson.read_json(p)
    except Exception as exc:  # pyarrow's errors name the line or the column
        raise invalid(f"Cannot read {p}: {exc}") from None
    raise invalid(f"{p}: use a .parquet, .csv, .tsv or .jsonl file")


def set_baseline(model: str, version: str | int, data: Any, *, source: str = "", engine=None) -> Profile:
    """Profile `data` (a DataFrame, an Arrow table, {column: values}, or a file path) as
    what `model` `version` was trained on; the monitors of endpoints serving it compare
    against it."""
    eng = engine or open_engine()
    if isinstance(data, (str, Path)):
        source = source or f"file {data}"
        data = read_file(data)
    profile = profile_frame(data, source)
    eng.monitoring.set_baseline(model, version, profile)
    return profile


def baseline_from_table(model: str, version: str | int, table: str, table_version: int | None = None, *,
                        engine=None) -> Profile:
    """The baseline from a feature table (at a Delta version: what the model trained on)."""
    from cairn.engine.sdk.features import offline_store

    eng = engine or open_engine()
    frame = offline_store(eng.features).read_table(table, table_version)
    where = f"feature table {table}" + (f" v{table_version}" if table_version is not None else "")
    return set_baseline(model, version, frame, source=where, engine=eng)


def get_baseline(model: str, version: str | int, *, engine=None) -> Profile:
    return (engine or open_engine()).monitoring.get_baseline(model, version)


def create_monitor(endpoint: str, granularities=DEFAULT_GRANULARITIES, settle_s: float = DEFAULT_SETTLE_S, *,
                   problem_type: str = "", engine=None) -> MonitorRecord:
    return (engine or open_engine()).monitoring.create_monitor(endpoint, granularities, settle_s,
                                                               created_by=current_user(), problem_type=problem_type)


def refresh(endpoint: str, *, engine=None) -> RefreshResult:
    return (engine or open_engine()).monitoring.refresh(endpoint)


def windows(endpoint: str, granularity: str | int | None = None, entity: str = ALL, *, start_ms: int | None = None,
            end_ms: int | None = None, engine=None) -> list[WindowRecord]:
    return (engine or open_engine()).monitoring.windows(endpoint, granularity, entity, start_ms, end_ms)


def log_labels(endpoint: str, labels: dict[str, Any], *, engine=None) -> int:
    """Ground truth by request id (a value, or a list of one per row); the windows of
    requests already read are computed again on the next refresh."""
    return (engine or open_engine()).monitoring.log_labels(endpoint, labels)


def delete_monitor(endpoint: str, *, engine=None) -> None:
    (engine or open_engine()).monitoring.delete_monitor(endpoint)


__all__ = ["ALL", "baseline_from_table", "create_monitor", "delete_monitor", "get_baseline", "log_labels",
           "read_file", "refresh", "set_baseline", "windows"]
