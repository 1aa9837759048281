"""`from cairn import monitoring`: baselines and endpoint monitors (re-exports; logic in
cairn.engine.monitoring and cairn.engine.sdk.monitoring)."""
from cairn.engine.monitoring.drift import ColumnDrift, DatasetDrift
from cairn.engine.monitoring.profiles import ColumnProfile, Profile
from cairn.engine.monitoring.records import ALL, MonitorRecord, WindowRecord
from cairn.engine.sdk.monitoring import (
    baseline_from_table,
    create_monitor,
    delete_monitor,
    get_baseline,
    log_labels,
    refresh,
    set_baseline,
    windows,
)

__all__ = ["ALL", "ColumnDrift", "ColumnProfile", "DatasetDrift", "MonitorRecord", "Profile", "WindowRecord",
           "baseline_from_table", "create_monitor", "delete_monitor", "get_baseline", "log_labels", "refresh", "set_baseline",
           "windows"]
