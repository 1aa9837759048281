"""What a registered ONNX model takes and gives: its tensors, the table columns behind
them, and how a table maps onto the tensors (the layout).

Layouts:
- "matrix": one 2-D float input whose columns are `columns`, in order (a numeric
  scikit-learn model converted with skl2onnx; the input is named "X").
- "columns": one [-1, 1] input per column, named like it (a mixed-type pipeline:
  float32 for numeric columns, string for text columns).
- "tensor": raw named tensors, as the ONNX graph declares them (e.g. an ONNX file
  exported from PyTorch); `columns` is empty.

The signature is stored with every model version (msgpack, via msgspec) and checked on
every request; `to_mlflow_signature` writes the MLmodel `signature:` section MLflow reads.
"""
from __future__ import annotations

import json
from typing import Any

import msgspec

MATRIX, COLUMNS, TENSOR = "matrix", "columns", "tensor"
LAYOUTS = (MATRIX, COLUMNS, TENSOR)

# ONNX TensorProto element type -> numpy-style name (TensorSpec.type).
_ONNX_ELEM_TYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
    14: "complex64", 15: "complex128", 16: "bfloat16",
}
# MLflow column type -> the numpy-style tensor type a column of it becomes.
_COLUMN_TO_TENSOR = {
    "double": "float64", "float": "float32", "long": "int64", "integer": "int32",
    "string": "string", "boolean": "bool", "binary": "string", "datetime": "string",
}


class TensorSpec(msgspec.Struct):
    """One named tensor: numpy-style element type ("float32", "int64", "string", "bool",
    ...) and shape, -1 for a dynamic dimension. Non-tensor ONNX values (the sequence of
    maps a ZipMap gives) have type "sequence" or "map" and an empty shape."""

    name: str
    type: str
    shape: list[int]


class ColumnSpec(msgspec.Struct):
    """One table column with its MLflow type: "double", "float", "long", "integer",
    "string", "boolean"."""

    name: str
    type: str


class OnnxSignature(msgspec.Struct):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    columns: list[ColumnSpec] = []
    layout: str = TENSOR

    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


def column_type(dtype: Any) -> str:
    """MLflow's column type for a numpy or pandas dtype (as mlflow.types infers it)."""
    kind, size = getattr(dtype, "kind", "O"), getattr(dtype, "itemsize", 8)
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "integer" if size <= 4 and not (kind == "u" and size == 4) else "long"
    if kind == "f":
        return "float" if size <= 4 else "double"
    if kind == "M":
        return "datetime"
    if kind == "S":
        return "binary"
    return "string"


def tensor_type_of_column(col_type: str) -> str:
    return _COLUMN_TO_TENSOR.get(col_type, "string")


def is_numeric_type(type_name: str) -> bool:
    """True for numpy-style tensor types that hold numbers (bool counts: it casts)."""
    return type_name.startswith(("float", "int", "uint", "bfloat")) or type_name == "bool"


# -- from an ONNX graph --------------------------------------------------------------


def signature_from_onnx(onnx_bytes: bytes) -> OnnxSignature:
    """The graph's inputs and outputs as TensorSpecs; layout "tensor". Initializers that
    old exporters also list as graph inputs are left out (they are not fed)."""
    import onnx

    from cairn.engine.models.errors import ModelFormatError

    try:
        model = onnx.load_model_from_string(bytes(onnx_bytes))
    except Exception as exc:
        raise ModelFormatError(f"Not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [_value_spec(v) for v in graph.input if v.name not in initializers]
    outputs = [_value_spec(v) for v in graph.output]
    return OnnxSignature(inputs=inputs, outputs=outputs, layout=TENSOR)


def _value_spec(value) -> TensorSpec:
    t = value.type
    which = t.WhichOneof("value")
    if which == "tensor_type":
        elem = _ONNX_ELEM_TYPES.get(t.tensor_type.elem_type, f"onnx:{t.tensor_type.elem_type}")
        shape = [
            d.dim_value if d.HasField("dim_value") else -1 for d in t.tensor_type.shape.dim
        ]
        return TensorSpec(value.name, elem, shape)
    if which == "sequence_type":
        return TensorSpec(value.name, "sequence", [])
    if which == "map_type":
        return TensorSpec(value.name, "map", [])
    return TensorSpec(value.name, which or "unknown", [])


# -- MLflow's schema JSON ------------------------------------------------------------


def to_mlflow_signature(sig: OnnxSignature) -> dict[str, Any]:
    """MLflow's MLmodel `signature:` section: inputs and outputs as JSON strings in
    mlflow.types.Schema's format. Inputs are column-based when the signature has
    columns, else tensor-based; tensors are named only when there are several (MLflow
    requires all-or-none names, and an unnamed single tensor accepts a bare array)."""
    if sig.columns:
        inputs = [{"type": c.type, "name": c.name, "required": True} for c in sig.columns]
    else:
        inputs = tensor_schema(sig.inputs)
    return {
        "inputs": json.dumps(inputs),
        "outputs": json.dumps(tensor_schema(sig.outputs)) if sig.outputs else None,
        "params": None,
    }


def tensor_schema(specs: list[TensorSpec]) -> list[dict[str, Any]]:
    named = len(specs) > 1
    out = []
    for spec in specs:
        if spec.type in ("sequence", "map") or spec.type.startswith("onnx:"):
            continue  # no MLflow tensor type for these
        entry: dict[str, Any] = {"type": "tensor"}
        if named:
            entry["name"] = spec.name
        entry["tensor-spec"] = {"dtype": _mlflow_dtype(spec.type), "shape": list(spec.shape)}
        out.append(entry)
    return out


def _mlflow_dtype(type_name: str) -> str:
    # MLflow's TensorSpec dtype is numpy's dtype name; text tensors are object arrays.
    return "object" if type_name == "string" else type_name


def mlflow_schema_of(data: Any) -> list[dict[str, Any]]:
    """MLflow's schema (as a list) for sample data or a model output, as
    mlflow.models.infer_signature writes it: a DataFrame gives one column spec per
    column, a Series or a 1-D output of a DataFrame-fed model an unnamed column, an
    array one tensor spec with a dynamic batch dimension."""
    import numpy as np

    if _is_dataframe(data):
        return [
            {"type": column_type(dtype), "name": str(col), "required": True}
            for col, dtype in data.dtypes.items()
        ]
    if type(data).__module__.startswith("pandas") and hasattr(data, "dtype"):  # Series
        return [{"type": column_type(data.dtype), "required": True}]
    arr = data if hasattr(data, "dtype") and hasattr(data, "shape") else np.asarray(data)
    dtype = "object" if arr.dtype.kind in "OUS" else str(arr.dtype)
    return [{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": [-1, *arr.shape[1:]]}}]


def mlflow_output_columns(output: Any) -> list[dict[str, Any]]:
    """The unnamed column spec MLflow writes for a 1-D output of a DataFrame-fed model
    (e.g. `[{"type": "long", "required": true}]`); tensor spec for anything wider."""
    shape = getattr(output, "shape", None)
    if shape is not None and len(shape) == 1:
        return [{"type": column_type(output.dtype), "required": True}]
    return mlflow_schema_of(output)


def _is_dataframe(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "dtypes") and hasattr(
        data, "columns"
    )


__all__ = [
    "COLUMNS",
    "MATRIX",
    "TENSOR",
    "ColumnSpec",
    "OnnxSignature",
    "TensorSpec",
    "column_type",
    "mlflow_schema_of",
    "signature_from_onnx",
    "to_mlflow_signature",
]
