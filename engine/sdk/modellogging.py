"""Writing a scikit-learn model into a run: `cairn.sklearn.log_model` and autologging.

Both go through `write_sklearn_model`, which asks modelpackage for a complete MLflow
model directory (model.pkl, MLmodel with the sklearn, python_function and onnx flavors,
model.onnx, input example, requirements) and stores its files under the run's artifact
path. When skl2onnx cannot convert the model, the model is still logged as sklearn (a
run that trained must not lose its model) and the run tag `cairn.onnx.error` says why,
so the reason is visible before anyone tries to register it.

Given the training data (autologging always has it), the model folder also keeps the
profile of its training inputs and predictions (`cairn_baseline.msgpack`): registration
copies it with the version, and the monitor of an endpoint serving the version measures
drift against it. A profile that cannot be made never costs the model either: the run
tag `cairn.baseline.error` says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cairn.engine.errors import invalid
from cairn.engine.sdk.client import Client
from cairn.engine.tracking.contract import MAX_TAG_VALUE_LENGTH

ONNX_ERROR_TAG = "cairn.onnx.error"
BASELINE_ERROR_TAG = "cairn.baseline.error"
# The rows of X kept as the conversion and verification sample (and input example):
# enough to catch a converter that disagrees with the model, small enough to store.
SAMPLE_ROWS = 20


@dataclass
class ModelInfo:
    """What `log_model` returns, named as mlflow.models.model.ModelInfo's fields."""

    run_id: str
    artifact_path: str
    model_uri: str
    flavors: list[str]
    signature: Any = None  # engine.models.signature.OnnxSignature, None without ONNX
    onnx_error: str | None = None
    registered_model_version: int | None = None
    files: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.artifact_path


def sample_rows(X: Any, n: int = SAMPLE_ROWS) -> Any:
    """The first `n` rows of X, keeping its type (DataFrame, array, sparse, list)."""
    if X is None:
        return None
    if hasattr(X, "iloc"):
        return X.iloc[:n]
    if isinstance(X, dict):  # named columns or tensors
        return {k: v[:n] for k, v in X.items()}
    return X[:n]  # arrays, sparse matrices, lists


def write_sklearn_model(
    client: Client, run_id: str, model: Any, sample: Any, artifact_path: str,
    pickle_format: str = "cloudpickle", training_data: Any = None,
):
    """Package `model` (with `sample` rows for conversion and verification, and the
    profile of `training_data` when given) and store every file under `artifact_path`
    in the run. Returns modelpackage's PackagedModel; tags the run with the conversion
    (or profiling) error when there is one."""
    from cairn.engine.models.package import package_sklearn

    packaged = package_sklearn(
        model, sample, run_id=run_id, artifact_path=artifact_path, pickle_format=pickle_format
    )
    if training_data is not None:
        from cairn.engine.monitoring.profiles import BASELINE_FILE, PROFILE_ENCODE, training_profile

        try:
            packaged.files[BASELINE_FILE] = PROFILE_ENCODE(training_profile(model, training_data))
        except Exception as exc:  # noqa: BLE001 - the model is logged without a baseline, and says why
            client.set_tag(run_id, BASELINE_ERROR_TAG, f"{type(exc).__name__}: {exc}"[:MAX_TAG_VALUE_LENGTH])
    for rel in sorted(packaged.files):
        client.log_bytes(run_id, packaged.files[rel], f"{artifact_path}/{rel}")
    if packaged.onnx_error:
        client.set_tag(run_id, ONNX_ERROR_TAG, packaged.onnx_error[:MAX_TAG_VALUE_LENGTH])
    return packaged


def log_model(
    sk_model: Any,
    name: str = "model",
    input_example: Any = None,
    registered_model_name: str | None = None,
    await_registration_for: int = 300,
    *,
    artifact_path: str | None = None,
    serialization_format: str = "cloudpickle",
    signature: Any = None,
    training_data: Any = None,
) -> ModelInfo:
    """Log a scikit-learn model into the active run (one is started when none is
    active, as MLflow does) under `name`, as mlflow.sklearn.log_model.

    `input_example` (a few rows of what the model takes) is what the ONNX conversion
    types its inputs from and verifies against; without one, rows are synthesized from
    the estimator's n_features_in_ / feature_names_in_ (and stored as the example).
    With `registered_model_name` the model is registered too (created if missing) and
    the call waits for the version. `artifact_path` is MLflow 2's name for `name`;
    `serialization_format` is "cloudpickle", "pickle" or "skops"; `signature` is
    accepted for MLflow's signature and ignored: the signature is inferred from the
    example and the converted ONNX graph. `training_data` (Cairn's): the inputs the
    model was trained on, profiled with its predictions into `cairn_baseline.msgpack`, the
    baseline that monitors of endpoints serving its registered versions compare against."""
    del signature
    from cairn.engine.sdk import fluent

    name = (artifact_path or name or "model").strip("/")
    if not name:
        raise invalid("log_model: `name` must not be empty")
    sample = sample_rows(input_example) if input_example is not None else _synthetic_sample(sk_model)
    client = fluent._client()
    run_id = fluent._run_id()
    packaged = write_sklearn_model(client, run_id, sk_model, sample, name, serialization_format, training_data)
    info = ModelInfo(
        run_id=run_id,
        artifact_path=name,
        model_uri=f"runs:/{run_id}/{name}",
        flavors=_flavors(packaged.files),
        signature=packaged.signature,
        onnx_error=packaged.onnx_error,
        files=sorted(packaged.files),
    )
    if registered_model_name:
        from cairn.engine.sdk.fluent import register_model

        mv = register_model(
            info.model_uri, registered_model_name, await_registration_for=await_registration_for
        )
        info.registered_model_version = int(mv.version)
    return info


def _synthetic_sample(model: Any) -> Any:
    """Rows to convert and verify with when the caller gave no input example, made from
    what the estimator says it takes (n_features_in_, feature_names_in_): the ONNX
    model needs typed inputs, and MLflow's own log_model does not require an example."""
    from cairn.engine.models.sample import synthesize

    table = synthesize(model=model)
    if table is None:
        raise invalid(
            f"log_model: cannot tell what {type(model).__name__} takes (it has no "
            "n_features_in_): pass input_example= with a few rows"
        )
    return table.model_input(float32=False)


def _flavors(files: dict[str, bytes]) -> list[str]:
    """The flavor names the MLmodel file lists (read back, so they cannot drift)."""
    import yaml

    raw = files.get("MLmodel")
    if raw is None:
        return []
    return sorted((yaml.safe_load(raw) or {}).get("flavors", {}))


__all__ = ["BASELINE_ERROR_TAG", "ONNX_ERROR_TAG", "ModelInfo", "log_model", "sample_rows", "write_sklearn_model"]
