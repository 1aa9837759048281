"""Running a registered ONNX model: an ONNX Runtime session plus the signature that says
how tables become its input tensors.

`feeds(data)` turns request data (a DataFrame, a dict of columns, records, a 2-D list or
array, or named tensors) into the session's inputs per the signature's layout, and
rejects what does not fit with a CairnError (HTTP 400) that names the column and the
type it needs, with MLflow's codes: BAD_REQUEST for values that cannot be read as the
column's type and rows of the wrong width (MLflow fails to convert them), and
INVALID_PARAMETER_VALUE for a missing column or input of the wrong shape (its schema
enforcement). Numeric data is converted with whole-array
numpy operations; only records need a Python pass per row (to pull each column out).
`table_feeds(columns, rows)` takes a table already split into column names and rows
(what MLflow's dataframe_split and CSV bodies hold). Both live on `FeedBuilder`, which
needs only the signature: serving parses a request before it picks a session.
`run(feeds)` runs the session; `predict(data)` gives what MLflow's pyfunc gives
(`pyfunc_output`): the labels of a classifier, a 1-D array for a single-target regressor.

Sessions follow the serving rules (DESIGN.md): one intra-op thread, no spinning, ORT's
own logging at severity 3+, and `providers` reports what really loaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cairn.engine.errors import bad_request, invalid
from cairn.engine.models.signature import (
    COLUMNS,
    MATRIX,
    TENSOR,
    OnnxSignature,
    TensorSpec,
    signature_from_onnx,
)

_NUMPY_TYPES = {
    "float32": np.float32, "float64": np.float64, "float16": np.float16,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "bool": np.bool_, "string": object,
}
_SKLEARN_OUTPUTS = ("label", "predictions")


def session_options(intra_op_threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class FeedBuilder:
    """Request data -> the session's inputs for one signature, without a session: serving
    parses a request before it knows which session (of an endpoint's versions) runs it."""

    def __init__(self, signature: OnnxSignature):
        self.signature = signature

    def feeds(self, data: Any) -> dict[str, np.ndarray]:
        layout = self.signature.layout
        if layout == MATRIX:
            return self._matrix_feeds(data)
        if layout == COLUMNS:
            return self._column_feeds(data)
        return self._tensor_feeds(data)

    def table_feeds(self, columns: list[str] | None, rows: list) -> dict[str, np.ndarray]:
        """A table sent as column names plus rows (MLflow's dataframe_split, a CSV body;
        `columns` None: rows in the model's column order). When the columns are the
        model's, in order, a numeric model's rows become its input in one numpy
        conversion; otherwise columns are picked by name (extra ones ignored, as feeds()
        does) with one transposition, never a Python pass per cell."""
        sig = self.signature
        if sig.layout == MATRIX:
            spec = sig.inputs[0]
            if columns is None or columns == [c.name for c in sig.columns]:
                try:
                    arr = np.array(rows, dtype=_np_type(spec))
                except (TypeError, ValueError):  # text or a ragged row: the slow path names it
                    arr = None
                if arr is not None and arr.ndim == 2 and arr.shape[1] == len(sig.columns):
                    return {spec.name: arr}
        if columns is None or (
            sig.layout == TENSOR and len(sig.inputs) == 1 and sig.inputs[0].name not in columns
        ):
            return self.feeds(rows)  # positional: one table is the whole input
        width = len(columns)
        if isinstance(rows, np.ndarray):  # already one array (a CSV of numbers)
            if rows.ndim != 2 or rows.shape[1] != width:
                raise bad_request(f"A table with {width} columns needs rows of {width} values, got shape {list(rows.shape)}")
            return self.feeds({c: rows[:, i] for i, c in enumerate(columns)})
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple)) or len(row) != width:
                got = f"{len(row)} values" if isinstance(row, (list, tuple)) else _shown(row)
                raise bad_request(f"Row {i} has {got}, the table has {width} columns")
        if not rows:
            return self.feeds({c: [] for c in columns})
        return self.feeds(dict(zip(columns, zip(*rows))))

    def _matrix_feeds(self, data: Any) -> dict[str, np.ndarray]:
        spec = self.signature.inputs[0]
        names = [c.name for c in self.signature.columns]
        np_type = _np_type(spec)
        if _is_dataframe(data):
            have = [str(c) for c in data.columns]
            _check_present(names, have)
            if have == names:  # the usual case: no column selection (a copy) needed
                frame = data
            elif all(isinstance(c, str) for c in data.columns):
                frame = data[names]
            else:
                frame = data.rename(columns=str)[names]
            try:
                return {spec.name: frame.to_numpy(dtype=np_type)}
            except (TypeError, ValueError):  # a text column, or None among numbers
                return {spec.name: _stack(names, {n: frame[n].to_numpy() for n in names}, spec.type)}
        if _is_records(data):
            try:  # one pass over the rows, one numpy conversion
                return {spec.name: np.array([[r[n] for n in names] for r in data], dtype=np_type)}
            except (KeyError, TypeError, ValueError):
                pass  # a missing key, a None or a text cell: per column, to name it
            return {spec.name: _stack(names, _columns_of(data, names), spec.type)}
        if isinstance(data, dict):
            cols = _columns_of(data, names)
            try:  # one numpy conversion for all columns
                return {spec.name: np.ascontiguousarray(np.array([cols[n] for n in names], dtype=np_type).T)}
            except (TypeError, ValueError):
                return {spec.name: _stack(names, cols, spec.type)}
        arr = _as_array(data)
        if arr.dtype.kind in "US" and not isinstance(data, np.ndarray):
            arr = _as_array(data, dtype=object)  # a list mixing numbers and text: keep each cell's type
        if arr.ndim == 1 and len(names) == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise invalid(
                f"Input for {spec.name!r} must be a 2-D array with {len(names)} columns "
                f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}), got shape {list(arr.shape)}"
            )
        if arr.dtype == np_type:
            return {spec.name: arr}
        try:
            return {spec.name: arr.astype(np_type)}
        except (TypeError, ValueError):
            return {spec.name: _stack(names, {n: arr[:, i] for i, n in enumerate(names)}, spec.type)}

    def _column_feeds(self, data: Any) -> dict[str, np.ndarray]:
        names = [c.name for c in self.signature.columns]
        if _is_dataframe(data):
            _check_present(names, [str(c) for c in data.columns])
            frame = data.rename(columns=str) if not all(isinstance(c, str) for c in data.columns) else data
            cols = {n: frame[n].to_numpy() for n in names}
        elif isinstance(data, dict) or _is_records(data):
            cols = _columns_of(data, names)
        else:
            arr = _as_array(data, dtype=object)
            if arr.ndim != 2 or arr.shape[1] != len(names):
                raise invalid(
                    f"Input must have {len(names)} columns ({', '.join(names[:10])}), got shape {list(arr.shape)}"
                )
            cols = {n: arr[:, i] for i, n in enumerate(names)}
        out = {}
        for spec, name in zip(self.signature.inputs, names):
            out[spec.name] = _cast(name, cols[name], spec.type).reshape(-1, 1)
        return out

    def _tensor_feeds(self, data: Any) -> dict[str, np.ndarray]:
        specs = self.signature.inputs
        if _is_dataframe(data):
            if len(specs) == 1 and specs[0].name not in map(str, data.columns):
                data = {specs[0].name: data.to_numpy()}
            else:
                data = {str(c): data[c].to_numpy() for c in data.columns}
        elif not isinstance(data, dict):
            if len(specs) != 1:
                raise invalid(
                    f"This model takes {len(specs)} named inputs ({', '.join(s.name for s in specs)}): "
                    "send a dict of tensors"
                )
            data = {specs[0].name: data}
        out = {}
        for spec in specs:
            if spec.name not in data:
                raise invalid(f"Missing input {spec.name!r} ({spec.type} {spec.shape})")
            value = _cast(spec.name, data[spec.name], spec.type, keep_shape=True)
            _check_shape(spec, value)
            out[spec.name] = value
        return out



class OnnxPredictor(FeedBuilder):
    """An ONNX Runtime session for one model. `providers` None: CPU only (serving picks
    CUDA itself and checks `providers` to see whether it really loaded)."""

    def __init__(
        self,
        onnx_bytes_or_path: bytes | str | Path,
        signature: OnnxSignature | None = None,
        providers: list | None = None,
        intra_op_threads: int = 1,
    ):
        import onnxruntime as ort

        if isinstance(onnx_bytes_or_path, (str, Path)):
            data = Path(onnx_bytes_or_path).read_bytes()
        else:
            data = bytes(onnx_bytes_or_path)
        self.signature = signature if signature is not None else signature_from_onnx(data)
        try:
            self.session = ort.InferenceSession(
                data, session_options(intra_op_threads), providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise invalid(f"ONNX Runtime cannot load the model: {_first_line(exc)}") from None
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self._output_names = [o.name for o in self.session.get_outputs()]
        sig = self.signature
        if sig.layout == MATRIX and (len(sig.inputs) != 1 or not sig.columns):
            raise invalid("A matrix-layout signature needs one input and its columns")
        if sig.layout == COLUMNS and len(sig.inputs) != len(sig.columns):
            raise invalid("A columns-layout signature needs one input per column")
        self._input_types = {t.name: t for t in sig.inputs}

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    # -- running -----------------------------------------------------------------------

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        names = output_names or self._output_names
        try:
            values = self.session.run(names, feeds)
        except Exception as exc:
            raise invalid(f"The model could not run on this input: {_first_line(exc)}") from None
        return dict(zip(names, values))

    def predict(self, data: Any) -> Any:
        """MLflow pyfunc's answer (see pyfunc_output)."""
        return pyfunc_output(self.run(self.feeds(data)), self.signature)


def pyfunc_output(outputs: dict[str, np.ndarray], signature: OnnxSignature) -> Any:
    """What MLflow's pyfunc gives for a session's outputs (in the session's order):
    classifier labels; a regressor's predictions, 1-D for one target; for a raw tensor
    model its output, or the dict of outputs when it has several."""
    first = next(iter(outputs))
    if signature.layout != TENSOR or (len(outputs) <= 2 and first in _SKLEARN_OUTPUTS):
        value = outputs[first]
        if value.ndim == 2 and value.shape[1] == 1:
            value = value.reshape(-1)
        return value
    if len(outputs) == 1:
        return outputs[first]
    return outputs


# -- conversions ---------------------------------------------------------------------


def _np_type(spec: TensorSpec):
    try:
        return _NUMPY_TYPES[spec.type]
    except KeyError:
        raise invalid(f"Input {spec.name!r} has type {spec.type}, which Cairn cannot feed") from None


def _cast(name: str, values: Any, type_name: str, keep_shape: bool = False) -> np.ndarray:
    """One column (or tensor) as the numpy type the model needs; CairnError naming it."""
    target = _NUMPY_TYPES.get(type_name)
    if target is None:
        raise invalid(f"Input {name!r} has type {type_name}, which Cairn cannot feed")
    if isinstance(values, np.ndarray):
        arr = values
    else:  # text stays object: numpy would turn None/NaN among strings into "nan"
        arr = _as_array(values, dtype=object if target is object else None)
        if arr.dtype.kind in "US":  # numbers and text mixed: numpy made them all text
            arr = _as_array(values, dtype=object)
    if not keep_shape and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if not keep_shape and arr.ndim != 1:
        raise invalid(f"Column {name!r} must be a list of values, got shape {list(arr.shape)}")
    if target is object:
        return _text(name, arr)
    if arr.dtype == target:
        return arr
    if arr.dtype.kind in "biuf":
        return arr.astype(target)
    if arr.dtype.kind == "O":
        bad = next((x for x in arr.ravel() if x is not None and not _is_number(x)), None)
        if bad is None:
            try:
                return np.where(arr == None, np.nan, arr).astype(target)
            except (TypeError, ValueError, OverflowError):
                bad = next(x for x in arr.ravel() if x is not None)
    else:
        bad = arr.ravel()[0] if arr.size else None
    raise bad_request(f"Column {name!r} must hold {_type_words(type_name)}, got {_shown(bad)}")


def _text(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype.kind != "O":
        raise bad_request(f"Column {name!r} must hold strings, got {_shown(arr.ravel()[0] if arr.size else None)}")
    bad = next((x for x in arr.ravel() if not isinstance(x, str)), _NOTHING)
    if bad is not _NOTHING:
        raise bad_request(f"Column {name!r} must hold strings, got {_shown(bad)}")
    return arr


_NOTHING = object()


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "a missing value"
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.number, np.bool_)) and not isinstance(x, str)


def _type_words(type_name: str) -> str:
    if type_name.startswith("float"):
        return f"numbers ({type_name})"
    if type_name.startswith(("int", "uint")):
        return f"integers ({type_name})"
    if type_name == "bool":
        return "booleans"
    return type_name


def _stack(names: list[str], cols: dict[str, Any], type_name: str) -> np.ndarray:
    """Columns cast one by one into a 2-D array: the first bad column raises, by name."""
    return np.column_stack([_cast(n, cols[n], type_name) for n in names])


def _check_present(names: list[str], have: list[str]) -> None:
    present = set(have)
    missing = [n for n in names if n not in present]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:10])
        raise invalid(f"Missing column{'s' if len(missing) > 1 else ''} {shown} (the model takes {len(names)} columns)")


def _columns_of(data: Any, names: list[str]) -> dict[str, Any]:
    """Columns by name from a dict of columns or a list of records (extra keys ignored)."""
    if isinstance(data, dict):
        _check_present(names, [str(k) for k in data])
        by_str = data if all(isinstance(k, str) for k in data) else {str(k): v for k, v in data.items()}
        return {n: by_str[n] for n in names}
    missing = [n for n in names if any(n not in r for r in data)]
    if missing:
        _check_present(names, [n for n in names if n not in missing])
    return {n: [r[n] for r in data] for n in names}


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data
    try:
        return np.asarray(data, dtype=dtype)
    except (TypeError, ValueError):
        try:
            return np.asarray(data, dtype=object)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"Input is not a rectangular table: {exc}") from None


def _check_shape(spec: TensorSpec, value: np.ndarray) -> None:
    if not spec.shape:
        return
    if value.ndim != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, value.shape)
    ):
        raise invalid(f"Input {spec.name!r} must have shape {spec.shape} (-1: any), got {list(value.shape)}")


def _is_dataframe(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns") and hasattr(data, "to_numpy")


def _is_records(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


__all__ = ["FeedBuilder", "OnnxPredictor", "pyfunc_output", "session_options"]
