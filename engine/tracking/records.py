"""Storage records: what each LMDB sub-database holds, and the table list.

Values are msgspec Structs encoded as MessagePack (array_like: compact, fast), with one
encoder/decoder per Struct built once. Schema evolution follows msgspec's rules: new
fields go at the end with defaults, so old records still decode.

Keys (all fixed width, big-endian; see keys.py). `nid` is an interned key name (names.py):
  meta              ascii name                       -> counters, schema version
  names             utf-8 name                       -> u32 nid
  name_ids          u32 nid                          -> utf-8 name
  experiments       u64 exp                          -> ExperimentRecord
  experiment_names  utf-8 name                       -> u64 exp
  runs              run(16)                          -> RunRecord
  exp_runs          u64 exp + desc start(8) + run(16)   (default search order)
  params            run(16) + nid(4)                 -> utf-8 value
  param_index       u64 exp + nid(4) + h8(value) + run(16)   (equality filters)
  tags              run(16) + nid(4)                 -> utf-8 value
  metrics           run(16) + nid(4) + block(4)    -> up to 1,024 packed points (metrics.py)
  latest            run(16) + nid(4)                 -> LatestMetric
  metric_order      u64 exp + nid(4) + sortable value(9) + run(16)  (order/range by metric)
  datasets          u64 exp + h16(name, digest)      -> DatasetRecord
  run_inputs        run(16) + h16(name, digest)      -> InputRecord
"""
from __future__ import annotations

import msgspec

from cairn.engine.store.codec import Codec

SCHEMA_VERSION = 1

# sub-database name -> dupsort
TRACKING_TABLES: dict[str, bool] = {
    "meta": False,
    "names": False,
    "name_ids": False,
    "experiments": False,
    "experiment_names": False,
    "runs": False,
    "exp_runs": False,
    "params": False,
    "param_index": False,
    "tags": False,
    "metrics": False,
    "latest": False,
    "metric_order": False,
    "datasets": False,
    "run_inputs": False,
}


class ExperimentRecord(msgspec.Struct, array_like=True):
    name: str
    artifact_location: str
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = {}
    deleted_time: int | None = None


class RunRecord(msgspec.Struct, array_like=True):
    experiment_id: int
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    deleted_time: int | None = None
    # Set when the run was deleted by deleting its experiment, so that restoring the
    # experiment restores exactly those runs.
    deleted_with_experiment: bool = False


class LatestMetric(msgspec.Struct, array_like=True):
    value: float
    timestamp: int
    step: int
    count: int = 0  # points in the history: where the next one is appended


class DatasetRecord(msgspec.Struct, array_like=True):
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema: str = ""
    profile: str = ""


class InputRecord(msgspec.Struct, array_like=True):
    tags: list[tuple[str, str]] = []


EXPERIMENT = Codec(ExperimentRecord)
RUN = Codec(RunRecord)
LATEST = Codec(LatestMetric)
DATASET = Codec(DatasetRecord)
INPUT = Codec(InputRecord)
