"""Logged models' storage: the sub-databases and their records, the entities MLflow 3's
REST API returns (service.proto's LoggedModel), model ids and keys, and name checks.
The store (lmdbstore.py) and the search (search.py) both read these.

A logged model is created PENDING when a client starts `log_model`, its files are
uploaded under its own artifact location, and the client finalizes it READY (or FAILED).
Metrics logged with a `model_id` are linked to the model as well as recorded on the run;
a run lists the models it produced (`outputs`) and consumed (model `inputs`).

Storage (keys fixed width, big-endian; `model` is the 16 raw bytes of the 32 hex digits
after "m-", `nid` an interned key name, names.py):
  logged_models         model(16)                               -> LoggedModelRecord
  exp_logged_models     u64 exp + desc creation(8) + model(16)   (default search order)
  logged_model_metrics  model(16) + nid(4) + ts(8) + step(8) + run(16) -> ModelMetricRecord
  run_model_outputs     run(16) + model(16)                     -> ModelOutputRecord
  run_model_inputs      run(16) + model(16)                     -> b""
Tags and params live inside the model record: a model has tens of them, they are always
read with it, and the record is rewritten only on the rare tag or param change.
"""
from __future__ import annotations

import re

import msgspec

from cairn.engine.errors import check_no_control, invalid, not_found
from cairn.engine.store.codec import Codec

# sub-database name -> dupsort; the engine merges this into its table list.
LOGGED_MODEL_TABLES: dict[str, bool] = {
    "logged_models": False,
    "exp_logged_models": False,
    "logged_model_metrics": False,
    "run_model_outputs": False,
    "run_model_inputs": False,
}

MAX_MODEL_NAME_LENGTH = 500
# MLflow's SQL store keeps model tag and param values in TEXT columns; MySQL's TEXT
# holds 65,535 bytes. Autologging passes an estimator's untruncated get_params(), so a
# tight limit here would fail a whole log_model call.
MAX_MODEL_VALUE_LENGTH = 65_535
MAX_DATASET_NAME_LENGTH = 500
MAX_DATASET_DIGEST_LENGTH = 36
_MODEL_ID = re.compile(r"^m-([0-9a-f]{32})$")
_BAD_NAME_CHARS = ("/", ":", ".", "%", '"', "'")


class LoggedModelStatus:
    PENDING, READY, FAILED = "PENDING", "READY", "FAILED"
    FINAL = ("READY", "FAILED")


# -- records ------------------------------------------------------------------------
class LoggedModelRecord(msgspec.Struct, array_like=True):
    experiment_id: int
    name: str
    artifact_location: str
    creation_time: int
    last_updated_time: int
    status: str
    lifecycle_stage: str
    model_type: str | None = None
    source_run_id: str | None = None
    status_message: str | None = None
    tags: dict[str, str] = {}
    params: dict[str, str] = {}


class ModelMetricRecord(msgspec.Struct, array_like=True):
    value: float
    dataset_name: str | None = None
    dataset_digest: str | None = None


class ModelOutputRecord(msgspec.Struct, array_like=True):
    step: int = 0


MODEL = Codec(LoggedModelRecord)
MODEL_METRIC = Codec(ModelMetricRecord)
MODEL_OUTPUT = Codec(ModelOutputRecord)


# -- entities (shaped like service.proto's LoggedModel; status is the short name) ----
class LoggedModelTag(msgspec.Struct, frozen=True):
    key: str
    value: str


class LoggedModelParameter(msgspec.Struct, frozen=True):
    key: str
    value: str


class ModelMetric(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A metric point linked to a model (service.proto's Metric with its MLflow 3 fields)."""

    key: str
    value: float
    timestamp: int
    step: int = 0
    model_id: str | None = None
    run_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class LoggedModelInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    model_id: str
    experiment_id: str
    name: str
    creation_timestamp_ms: int
    last_updated_timestamp_ms: int
    artifact_uri: str
    status: str  # LoggedModelStatus: PENDING, READY or FAILED
    model_type: str | None = None
    source_run_id: str | None = None
    status_message: str | None = None
    tags: list[LoggedModelTag] = []


class LoggedModelData(msgspec.Struct, kw_only=True, omit_defaults=True):
    params: list[LoggedModelParameter] = []
    metrics: list[ModelMetric] = []


class LoggedModel(msgspec.Struct, kw_only=True):
    info: LoggedModelInfo
    data: LoggedModelData

    @property
    def model_id(self) -> str:
        return self.info.model_id


class ModelOutput(msgspec.Struct, frozen=True):
    """A model a run produced (service.proto's ModelOutput)."""

    model_id: str
    step: int = 0


class ModelInput(msgspec.Struct, frozen=True):
    """A model a run consumed (service.proto's ModelInput)."""

    model_id: str


# -- keys and checks -----------------------------------------------------------------
def model_key(model_id: object) -> bytes:
    """The 16-byte key of a model id; RESOURCE_DOES_NOT_EXIST for anything that is not
    one, since to a client a malformed id is just an id that names no model."""
    m = _MODEL_ID.match(model_id) if isinstance(model_id, str) else None
    if m is None:
        raise not_found(f"Logged model with ID '{model_id}' not found.")
    return bytes.fromhex(m.group(1))


def model_id_of(key: bytes, offset: int = 0) -> str:
    return "m-" + key[offset : offset + 16].hex()


def check_model_name(name: object) -> str:
    if not isinstance(name, str) or not name or any(c in name for c in _BAD_NAME_CHARS):
        raise invalid(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
            f"and cannot contain the following characters: {_BAD_NAME_CHARS}"
        )
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise invalid(f"Model name exceeds the maximum length of {MAX_MODEL_NAME_LENGTH} characters")
    return check_no_control(name, "model name")


def artifact_prefix(model_id: str, rec: LoggedModelRecord) -> str:
    """Where a model's files live in the artifact store's key space: the path after
    'mlflow-artifacts:/' (what the artifact proxy sees), or '<exp>/models/<id>/artifacts'
    for models of experiments with a foreign artifact location (as runs do)."""
    scheme = "mlflow-artifacts:"
    if rec.artifact_location.startswith(scheme):
        return rec.artifact_location[len(scheme):].strip("/")
    return f"{rec.experiment_id}/models/{model_id}/artifacts"


