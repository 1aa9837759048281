"""The tracking domain as callers see it, shaped like MLflow's REST messages.

Field names follow `mlflow/protos/service.proto`, so the HTTP layer can encode these
Structs directly. Storage records (records.py) differ: they hold interned key ids and
omit what the key already says.
"""
from __future__ import annotations

from typing import TypeVar

import msgspec

T = TypeVar("T")


class LifecycleStage:
    ACTIVE = "active"
    DELETED = "deleted"


class RunStatus:
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    ALL = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
    TERMINAL = ("FINISHED", "FAILED", "KILLED")


class ViewType:
    """Which lifecycle stages a search returns (MLflow's ViewType)."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    @staticmethod
    def parse(value: int | str | None) -> int:
        if value is None:
            return ViewType.ACTIVE_ONLY
        if isinstance(value, int) and value in (1, 2, 3):
            return value
        names = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}
        if isinstance(value, str) and value.upper() in names:
            return names[value.upper()]
        from cairn.engine.errors import invalid

        raise invalid(f"Invalid view type {value!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL")


class ExperimentTag(msgspec.Struct, frozen=True):
    key: str
    value: str


class Experiment(msgspec.Struct, kw_only=True):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    last_update_time: int
    creation_time: int
    tags: list[ExperimentTag] = []

    @property
    def tags_dict(self) -> dict[str, str]:
        return {t.key: t.value for t in self.tags}


class Metric(msgspec.Struct, frozen=True):
    key: str
    value: float
    timestamp: int
    step: int = 0


class Param(msgspec.Struct, frozen=True):
    key: str
    value: str


class RunTag(msgspec.Struct, frozen=True):
    key: str
    value: str


class InputTag(msgspec.Struct, frozen=True):
    key: str
    value: str


class Dataset(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema: str = ""
    profile: str = ""


class DatasetInput(msgspec.Struct, frozen=True, kw_only=True):
    dataset: Dataset
    tags: list[InputTag] = []


class RunInfo(msgspec.Struct, kw_only=True):
    run_id: str
    run_uuid: str
    run_name: str
    experiment_id: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None = None
    artifact_uri: str
    lifecycle_stage: str


class RunData(msgspec.Struct, kw_only=True):
    metrics: list[Metric] = []
    params: list[Param] = []
    tags: list[RunTag] = []

    @property
    def params_dict(self) -> dict[str, str]:
        return {p.key: p.value for p in self.params}

    @property
    def metrics_dict(self) -> dict[str, float]:
        return {m.key: m.value for m in self.metrics}

    @property
    def tags_dict(self) -> dict[str, str]:
        return {t.key: t.value for t in self.tags}


class RunInputs(msgspec.Struct, kw_only=True):
    dataset_inputs: list[DatasetInput] = []


class Run(msgspec.Struct, kw_only=True):
    info: RunInfo
    data: RunData
    inputs: RunInputs = msgspec.field(default_factory=RunInputs)
