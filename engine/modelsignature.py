"""Model signatures: the ONNX graph's tensors and, for tabular models, the columns."""
from __future__ import annotations

import msgspec


class TensorSpec(msgspec.Struct):
    name: str
    type: str
    shape: list[int]


class ColumnSpec(msgspec.Struct):
    name: str
    type: str


class OnnxSignature(msgspec.Struct):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    columns: list[ColumnSpec] = []
    layout: str = "tensor"
