"""MLflow's `MLmodel` file and input examples, read and written as MLflow 3 does.

`MLModel` holds the keys Cairn reads (flavors, signature, run id, ...) and keeps every
other key as it found it, so a read-modify-write (adding the `onnx` flavor at
registration) changes only what it means to. YAML goes through PyYAML's safe loader and
dumper only: an MLmodel file never constructs Python objects.

Input examples: `input_example.json` in any format MLflow has written (pandas split or
values orient, records, `{"inputs": ...}` tensors, plain lists, the serving formats), read
back as rows `OnnxPredictor.feeds` accepts; written in MLflow 3's format
(mlflow.models.utils._Example) with its `saved_input_example_info`.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import msgspec
import yaml

from cairn.engine.models.errors import ModelFormatError
from cairn.engine.models.modeldir import ModelDir, as_model_dir

MLMODEL_FILE = "MLmodel"
INPUT_EXAMPLE_FILE = "input_example.json"
SERVING_INPUT_FILE = "serving_input_example.json"
ONNX_FLAVOR = "onnx"
PYFUNC_FLAVOR = "python_function"
SKLEARN_FLAVOR = "sklearn"
# mlflow.onnx.ONNX_EXECUTION_PROVIDERS: what mlflow.onnx.save_model writes by default.
ONNX_EXECUTION_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]
# What a pyfunc flavor's `env` points at (mlflow.pyfunc.add_to_model).
PYFUNC_ENV = {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}

_KNOWN = ("flavors", "signature", "run_id", "model_uuid", "artifact_path",
          "saved_input_example_info", "metadata")


class MLModel(msgspec.Struct, kw_only=True):
    """One MLmodel file. `signature` is MLflow's section as written: {"inputs": json
    str, "outputs": json str | None, "params": json str | None}. `extra` holds every
    other top-level key (utc_time_created, mlflow_version, model_id, ...)."""

    flavors: dict[str, Any] = {}
    signature: dict[str, Any] | None = None
    run_id: str | None = None
    model_uuid: str | None = None
    artifact_path: str | None = None
    saved_input_example_info: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    extra: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        """As mlflow.models.Model.to_dict: null run_id / artifact_path are left out."""
        out = dict(self.extra)
        out["flavors"] = self.flavors
        out["model_uuid"] = self.model_uuid
        if self.run_id is not None:
            out["run_id"] = self.run_id
        if self.artifact_path is not None:
            out["artifact_path"] = self.artifact_path
        if self.signature is not None:
            out["signature"] = self.signature
        if self.saved_input_example_info is not None:
            out["saved_input_example_info"] = self.saved_input_example_info
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out

    def dump(self) -> str:
        return yaml.safe_dump(self.to_dict(), default_flow_style=False)

    def flavor(self, name: str) -> dict[str, Any] | None:
        conf = self.flavors.get(name)
        return conf if isinstance(conf, dict) else None


def new_mlmodel(*, run_id: str | None = None, artifact_path: str | None = None) -> MLModel:
    """An empty MLmodel with a fresh model_uuid and creation time, as MLflow starts one."""
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return MLModel(
        run_id=run_id,
        artifact_path=artifact_path,
        model_uuid=uuid.uuid4().hex,
        extra={"utc_time_created": created},
    )


def read_mlmodel(data: str | bytes) -> MLModel:
    """Parse an MLmodel file. ModelFormatError when it is not YAML or has no flavors."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFormatError("MLmodel is not UTF-8 text") from None
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ModelFormatError(f"MLmodel is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ModelFormatError("MLmodel is not a YAML mapping")
    flavors = doc.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise ModelFormatError("MLmodel lists no flavors")
    signature = doc.get("signature")
    info = doc.get("saved_input_example_info")
    metadata = doc.get("metadata")
    return MLModel(
        flavors=dict(flavors),
        signature=dict(signature) if isinstance(signature, dict) else None,
        run_id=_opt_str(doc.get("run_id")),
        model_uuid=_opt_str(doc.get("model_uuid")),
        artifact_path=_opt_str(doc.get("artifact_path")),
        saved_input_example_info=dict(info) if isinstance(info, dict) else None,
        metadata=dict(metadata) if isinstance(metadata, dict) else None,
        extra={k: v for k, v in doc.items() if k not in _KNOWN},
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def onnx_flavor(onnx_path: str = "model.onnx", onnx_version: str | None = None) -> dict[str, Any]:
    """The `onnx` flavor as mlflow.onnx.save_model writes it (MLflow 3)."""
    if onnx_version is None:
        try:
            import onnx

            onnx_version = onnx.__version__
        except ImportError:  # pragma: no cover - onnx is a dependency
            onnx_version = "unknown"
    return {
        "code": None,
        "data": onnx_path,
        "onnx_session_options": None,
        "onnx_version": onnx_version,
        "providers": list(ONNX_EXECUTION_PROVIDERS),
    }


def add_onnx_flavor(
    mlmodel: MLModel, onnx_path: str = "model.onnx", onnx_version: str | None = None
) -> MLModel:
    """Add (or replace) the `onnx` flavor beside the existing ones; python_function and
    the original flavor stay as they are, so MLflow clients load what they logged."""
    flavors = dict(mlmodel.flavors)
    flavors[ONNX_FLAVOR] = onnx_flavor(onnx_path, onnx_version)
    mlmodel.flavors = dict(sorted(flavors.items()))
    return mlmodel


# -- input examples: reading ---------------------------------------------------------


def read_input_example(model_dir: ModelDir | str, mlmodel: MLModel | None = None):
    """The model's input example as rows OnnxPredictor.feeds accepts: a list of records
    (dicts) when column names are known, a list of lists for a bare matrix, a dict of
    name -> list for named tensors; None when the directory has no example."""
    model_dir = as_model_dir(model_dir)
    info = (mlmodel.saved_input_example_info if mlmodel else None) or {}
    path = str(info.get("artifact_path") or INPUT_EXAMPLE_FILE)
    try:
        raw = model_dir.read(path)
    except KeyError:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and info.get("params") and "inputs" in doc:
        doc = doc["inputs"]  # an example saved with params: {"inputs": data, "params": {...}}
    if info.get("type") == "dataframe" or (isinstance(doc, dict) and set(doc) == {"data"}):
        return _rows_from_split(doc, path)
    return parse_rows(doc, path)


def parse_rows(doc: Any, where: str = "input example"):
    """Rows from any of MLflow's JSON input shapes (example files and scoring bodies)."""
    if isinstance(doc, dict):
        if "inputs" in doc and ("params" in doc or len(doc) == 1):
            return parse_rows(doc["inputs"], where)
        if "dataframe_split" in doc:
            return _rows_from_split(doc["dataframe_split"], where)
        if "dataframe_records" in doc:
            return parse_rows(doc["dataframe_records"], where)
        if "instances" in doc:
            return parse_rows(doc["instances"], where)
        if "columns" in doc and "data" in doc:
            return _rows_from_split(doc, where)
        if all(isinstance(v, list) for v in doc.values()):
            return {str(k): v for k, v in doc.items()}  # named columns or tensors
        return [doc]  # one record (MLflow's json_object example of scalars)
    if isinstance(doc, list):
        return doc
    raise ModelFormatError(f"{where} holds a {type(doc).__name__}, not rows")


def _rows_from_split(doc: Any, where: str):
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ModelFormatError(f"{where}: a pandas split example needs a 'data' list")
    data = doc["data"]
    columns = doc.get("columns")
    if columns is None:
        return data  # pandas "values" orient: default column labels
    columns = [str(c) for c in columns]
    out = []
    for row in data:
        if not isinstance(row, list) or len(row) != len(columns):
            raise ModelFormatError(f"{where}: a row does not have {len(columns)} values")
        out.append(dict(zip(columns, row)))
    return out


# -- input examples: writing ---------------------------------------------------------


def write_input_example(sample: Any) -> tuple[bytes, dict[str, Any]]:
    """`input_example.json` bytes and the MLmodel's saved_input_example_info for a sample
    (DataFrame, ndarray, dict of arrays, list), as mlflow.models.utils._Example writes
    them. The info names serving_input_example.json: write `serving_input_example`'s
    bytes there too."""
    example, serving, info = _example(sample)
    del serving
    return json.dumps(example, default=_json_default).encode(), info


def serving_input_example(sample: Any) -> bytes:
    """`serving_input_example.json`: the sample as a scoring request body."""
    _, serving, _ = _example(sample)
    return json.dumps(serving, default=_json_default, indent=2).encode()


def _example(sample: Any) -> tuple[Any, Any, dict[str, Any]]:
    import numpy as np

    info: dict[str, Any] = {"artifact_path": INPUT_EXAMPLE_FILE}
    if _is_dataframe(sample):
        columns = [c for c in sample.columns]
        split: dict[str, Any] = {}
        if columns != list(range(len(columns))):
            split["columns"] = [str(c) for c in columns]
        split["data"] = [[_cell(v) for v in row] for row in sample.itertuples(index=False, name=None)]
        info.update(type="dataframe", pandas_orient="split" if "columns" in split else "values")
        example, serving = split, {"dataframe_split": split}
    elif isinstance(sample, np.ndarray):
        example = _array_list(sample)
        info["type"] = "ndarray"
        serving = {"inputs": example}
    elif isinstance(sample, dict) and sample and all(isinstance(v, np.ndarray) for v in sample.values()):
        example = {str(k): _array_list(v) for k, v in sample.items()}
        info["type"] = "ndarray"
        serving = {"inputs": example}
    elif isinstance(sample, (dict, list)):
        example = _plain(sample)
        info["type"] = "json_object"
        serving = {"inputs": example}
    else:
        raise ModelFormatError(
            f"An input example must be a DataFrame, ndarray, dict or list, not {type(sample).__name__}"
        )
    info["serving_input_path"] = SERVING_INPUT_FILE
    return example, serving, info


def _array_list(a) -> list:
    import numpy as np

    if a.dtype.kind in "fc":
        a = np.where(np.isnan(a), None, a.astype(object))
    return a.tolist()


def _cell(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            return str(v)
        if isinstance(v, float) and math.isnan(v):
            return None
    if v.__class__.__name__ in ("NAType", "NaTType"):
        return None
    return v


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return _cell(value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _is_dataframe(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns") and hasattr(
        data, "itertuples"
    )


__all__ = [
    "MLModel",
    "add_onnx_flavor",
    "new_mlmodel",
    "onnx_flavor",
    "parse_rows",
    "read_input_example",
    "read_mlmodel",
    "serving_input_example",
    "write_input_example",
]
