"""MLflow's scoring protocol without pandas: request bodies -> ONNX feeds, outputs ->
`{"predictions": ...}`.

Requests (as `mlflow models serve` takes them, mlflow/pyfunc/scoring_server):
- `application/json`: an object with exactly one of `dataframe_split` ({columns, data},
  optional index), `dataframe_records` (a list of row objects), `instances` or `inputs`
  (a list of rows, row objects or values, or an object of columns / named tensors), and
  optionally `params` (passed through; ONNX models take none) and Databricks'
  `client_request_id` (kept for payload logging).
- `text/csv`: a header row of column names, then rows; cells typed per the signature
  (an empty cell is a missing value, as pandas reads it).

Bodies are decoded with msgspec and turned into feeds by engine.models.predictor.FeedBuilder,
which checks them against the signature; numbers become arrays in one numpy conversion
of the whole list. Every failure is a ScoringError carrying MLflow's error JSON
(`{"error_code", "message"}`) and status, with MLflow's codes: BAD_REQUEST 400 for a
body that is not the protocol and for values that cannot be read as their column's type
(the message names the column and the type it needs), INVALID_PARAMETER_VALUE 400 for a
missing column or an input of the wrong shape, 415 for other content types.

Responses follow MLflow's pyfunc serving for the same model: labels for a classifier,
1-D values for a single-target regressor, a raw tensor model's single output as nested
lists or a dict of its outputs. MLflow writes non-finite floats as the bare tokens NaN,
Infinity and -Infinity (Python's json with allow_nan); msgspec cannot, so the rare
response holding one is written by the json module instead.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
import numpy as np

from cairn.app.serving.asgi import error_body
from cairn.engine.errors import BAD_REQUEST, CairnError
from cairn.engine.models.predictor import FeedBuilder, pyfunc_output
from cairn.engine.models.signature import TENSOR, OnnxSignature

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS = "dataframe_split", "dataframe_records", "instances", "inputs"
FORMATS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)
PARAMS = "params"
CLIENT_REQUEST_ID = "client_request_id"
_ALLOWED_KEYS = frozenset((*FORMATS, PARAMS, CLIENT_REQUEST_ID))
_SPLIT_KEYS = frozenset(("columns", "data", "index"))
REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    f"{{{', '.join(repr(f) for f in FORMATS)}}}"
)
_TRUE, _FALSE = frozenset(("true", "1")), frozenset(("false", "0"))


class ScoringError(Exception):
    """A request the protocol or the model refuses: an HTTP status plus MLflow's error
    JSON."""

    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> bytes:
        return error_body(self.error_code, self.message)

    def __repr__(self) -> str:
        return f"ScoringError({self.status} {self.error_code}: {self.message})"


class ParsedRequest(NamedTuple):
    feeds: dict[str, np.ndarray]
    rows: int
    params: dict[str, Any] | None = None
    client_request_id: str | None = None


def _bad(message: str) -> ScoringError:
    return ScoringError(400, BAD_REQUEST, message)


def _no_rows() -> ScoringError:
    return _bad("The input has no rows")


# -- requests ------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, checked as MLflow checks it: UTF-8 is
    the only charset and charset the only parameter; JSON and CSV only (else 415)."""
    if not content_type:
        raise ScoringError(
            415, BAD_REQUEST,
            f"Missing Content-Type: use {CONTENT_TYPE_JSON} or {CONTENT_TYPE_CSV}",
        )
    mime, *pairs = (part.strip() for part in content_type.split(";"))
    mime = mime.lower()
    if mime not in (CONTENT_TYPE_JSON, CONTENT_TYPE_CSV):
        raise ScoringError(
            415, BAD_REQUEST,
            "This predictor only supports the following content types: "
            f"{CONTENT_TYPE_JSON}, {CONTENT_TYPE_CSV}. Got {content_type!r}.",
        )
    for pair in pairs:
        if not pair:
            continue
        key, _, value = pair.partition("=")
        key = key.strip().lower()
        if key != "charset":
            raise ScoringError(415, BAD_REQUEST, f"Unrecognized content type parameter: {key}")
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ScoringError(415, BAD_REQUEST, "The scoring server only supports UTF-8")
    return mime


def parse_request(content_type: str | None, body: bytes, signature: OnnxSignature,
                  fill: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None) -> ParsedRequest:
    """The feeds (checked against `signature`), row count and params of one request.
    `fill` (a served version logged from a training set: FeatureFiller.fill) adds the
    looked-up features to the rows before they become feeds."""
    mime = media_type(content_type)
    if not body.strip():
        raise _bad("The request body is empty")
    builder = FeedBuilder(signature)
    params = request_id = None
    try:
        if fill is not None:
            records, params, request_id = _json_rows(mime, body)
            feeds = builder.feeds(fill(records))
        elif mime == CONTENT_TYPE_CSV:
            feeds = _csv_feeds(body, builder)
        else:
            doc = _decode_json(body)
            params, request_id = _extras(doc)
            feeds = _json_feeds(doc, builder)
    except CairnError as exc:  # the signature refused the data; the message names the column
        raise ScoringError(exc.http_status, exc.error_code, exc.message) from None
    return ParsedRequest(feeds, _rows(feeds, signature), params, request_id)


def parse_rows(content_type: str | None, body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """A request's rows as row objects, and its client_request_id: what a feature
    serving endpoint reads (its keys), in any of the JSON table formats."""
    mime = media_type(content_type)
    if not body.strip():
        raise _bad("The request body is empty")
    records, _, request_id = _json_rows(mime, body)
    return records, request_id


def _json_rows(mime: str, body: bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
    if mime == CONTENT_TYPE_CSV:
        raise _bad("Features are looked up by key: send JSON (dataframe_records or dataframe_split)")
    doc = _decode_json(body)
    params, request_id = _extras(doc)
    return _as_records(doc), params, request_id


def _decode_json(body: bytes) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        # MLflow reads bodies with Python's json, which also takes the NaN, Infinity and
        # -Infinity tokens json.dumps writes for missing or infinite values; msgspec does
        # not, so a body it refuses gets a second reading (only then: it is slower).
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise _bad(f"Invalid input. Ensure that input is a valid JSON formatted string. Error: {exc}") from None
    if not isinstance(doc, dict):
        kind = "a list" if isinstance(doc, list) else f"a {type(doc).__name__}"
        raise _bad(f"{REQUIRED_INPUT_FORMAT}. Received {kind}.")
    unknown = [k for k in doc if k not in _ALLOWED_KEYS]
    formats = [k for k in doc if k in FORMATS]
    if unknown or len(formats) != 1:
        why = f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}" if unknown else (
            f"{len(formats)} input fields" if formats else "no input field"
        )
        raise _bad(f"{REQUIRED_INPUT_FORMAT} (and optionally 'params'). Received {why}: {list(doc)}")
    return doc


def _extras(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    params = doc.get(PARAMS)
    if params is not None and not isinstance(params, dict):
        raise _bad(f"'params' must be a JSON object of parameter names to values, got {type(params).__name__}")
    request_id = doc.get(CLIENT_REQUEST_ID)
    if request_id is not None and not isinstance(request_id, str):
        raise _bad("'client_request_id' must be a string")
    return params, request_id


def _json_feeds(doc: dict[str, Any], builder: FeedBuilder) -> dict[str, np.ndarray]:
    if DF_SPLIT in doc:
        return _split_feeds(doc[DF_SPLIT], builder)
    if DF_RECORDS in doc:
        records = doc[DF_RECORDS]
        if not isinstance(records, list) or (records and not isinstance(records[0], dict)):
            raise _bad(f"Dataframe records format must be a list of records. Got {_kind(records)}.")
        if not records:
            raise _no_rows()
        return _records_feeds(records, builder, DF_RECORDS)
    key = INSTANCES if INSTANCES in doc else INPUTS
    data = doc[key]
    if isinstance(data, list) and not data:
        raise _no_rows()
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return _records_feeds(data, builder, key)
    if isinstance(data, list) and builder.signature.layout != TENSOR:
        return builder.table_feeds(None, data)  # rows in the model's column order
    return builder.feeds(data)  # an object of columns or named tensors, or one tensor


def _as_records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Any table-shaped body as row objects (what feature lookup fills)."""
    if DF_SPLIT in doc:
        split = doc[DF_SPLIT]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
                or not isinstance(split.get("data"), list):
            raise _bad("dataframe_split needs 'columns' and 'data' lists when features are looked up")
        columns = [str(c) for c in split["columns"]]
        rows = split["data"]
        if not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
            raise _bad(f"Every dataframe_split row must have {len(columns)} values ({', '.join(columns)})")
        records = [dict(zip(columns, r)) for r in rows]
    else:
        key = next(k for k in FORMATS if k in doc)
        data = doc[key]
        if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):  # columns
            lengths = {len(v) for v in data.values()}
            if len(lengths) > 1:
                raise _bad(f"'{key}' columns have different lengths")
            records = [dict(zip(data, values)) for values in zip(*data.values())]
        elif isinstance(data, list) and all(type(r) is dict for r in data):
            records = data
        else:
            raise _bad(f"'{key}' must be row objects or named columns when features are looked up")
    if not records:
        raise _no_rows()
    return records


def _split_feeds(split: Any, builder: FeedBuilder) -> dict[str, np.ndarray]:
    if not isinstance(split, dict):
        raise _bad(f"Dataframe split format must be a dictionary. Got {_kind(split)}.")
    if "data" not in split or not split.keys() <= _SPLIT_KEYS:
        raise _bad(
            "Dataframe split format must have 'data' field and optionally 'columns' and "
            f"'index' fields. Got {sorted(split)}."
        )
    data, columns = split["data"], split.get("columns")
    if not isinstance(data, list):
        raise _bad(f"'dataframe_split.data' must be a list of rows. Got {_kind(data)}.")
    if not data:
        raise _no_rows()
    if columns is not None:
        if not isinstance(columns, list):
            raise _bad(f"'dataframe_split.columns' must be a list of names. Got {_kind(columns)}.")
        columns = [c if isinstance(c, str) else str(c) for c in columns]
        if len(columns) == 1 and data and not isinstance(data[0], list):
            return builder.feeds({columns[0]: data})  # one column given as a flat list
    return builder.table_feeds(columns, data)


def _records_feeds(records: list, builder: FeedBuilder, key: str) -> dict[str, np.ndarray]:
    if not all(type(r) is dict for r in records):
        raise _bad(f"'{key}' mixes row objects with other values")
    sig = builder.signature
    if sig.layout == TENSOR:  # one object per instance: stack each named tensor
        return builder.feeds({s.name: [r[s.name] for r in records] for s in sig.inputs if s.name in records[0]})
    return builder.feeds(records)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dictionary"
    return f"type {type(value).__name__}"


def _rows(feeds: dict[str, np.ndarray], signature: OnnxSignature) -> int:
    """Rows in the request. For tables every column must have them all (a 400 naming the
    short one, as MLflow's "length of values ... are not the same"), and at least one."""
    lengths = {name: (value.shape[0] if value.ndim else 1) for name, value in feeds.items()}
    if not lengths:
        return 0
    rows = next(iter(lengths.values()))
    if signature.layout != TENSOR:
        odd = next((n for n, k in lengths.items() if k != rows), None)
        if odd is not None:
            raise ScoringError(
                400, BAD_REQUEST,
                f"Column {odd!r} has {lengths[odd]} values, other columns have {rows}",
            )
        if rows == 0:
            raise _no_rows()
    return rows


# -- CSV -------------------------------------------------------------------------------


def _csv_feeds(body: bytes, builder: FeedBuilder) -> dict[str, np.ndarray]:
    try:
        text = body.decode("utf-8-sig")  # tolerate the BOM spreadsheets write
    except UnicodeDecodeError as exc:
        raise _bad(f"Invalid input. Ensure that input is a valid UTF-8 encoded string. Error: {exc}") from None
    fast = _numeric_csv(text, builder.signature)
    if fast is not None:
        return builder.table_feeds(*fast)
    try:
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        rows = [r for r in reader if r]  # blank lines are skipped, as pandas does
    except csv.Error as exc:
        raise _bad(f"Failed to parse input as CSV: {exc}") from None
    if not header:
        raise _bad("The CSV body has no header row")
    width = len(header)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise _bad(f"CSV row {i + 1} has {len(row)} fields, the header has {width}")
    cells = np.array(rows, dtype=str).reshape(len(rows), width)
    sig = builder.signature
    if sig.layout == TENSOR:
        specs = sig.inputs
        if len(specs) == 1 and specs[0].name not in header:  # the whole table is the tensor
            return builder.feeds(_typed(specs[0].name, cells, specs[0].type))
        named = {s.name: s for s in specs}
        return builder.feeds({
            name: _tensor_column(_typed(name, cells[:, i], named[name].type), named[name].shape)
            for i, name in enumerate(header) if name in named
        })
    column_types = [sig.inputs[0].type] * len(sig.columns) if len(sig.inputs) == 1 else [s.type for s in sig.inputs]
    types = {c.name: t for c, t in zip(sig.columns, column_types)}
    # Only the model's columns are converted: the index column to_csv() writes is left out.
    return builder.feeds({
        name: _typed(name, cells[:, i], types[name]) for i, name in enumerate(header) if name in types
    })


_LIST_OF_ROWS = list[list[float]]


def _numeric_csv(text: str, sig: OnnxSignature) -> tuple[list[str], np.ndarray] | None:
    """(header, float64 rows) for a table of plain numbers feeding float inputs only, or
    None (the csv module then reads it). Bracketing each line makes such a body JSON,
    which msgspec parses in C: 64 rows x 20 columns take ~0.1 ms this way against ~2 ms
    through the csv module and numpy's text-to-float. Anything else (quotes, empty
    cells, nan, text, int or bool inputs, ragged rows) fails the decode or the checks."""
    if '"' in text or not all(t.type.startswith("float") for t in sig.inputs):
        return None
    first, _, data = text.partition("\n")
    header = next(csv.reader([first]), None)
    data = data.strip().replace("\r\n", "\n")
    if not header or not data:
        return None
    try:
        rows = msgspec.json.decode(f"[[{data.replace(chr(10), '],[')}]]", type=_LIST_OF_ROWS)
        table = np.array(rows, dtype=np.float64)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None
    if table.ndim != 2 or table.shape[1] != len(header):
        return None
    return header, table


def _tensor_column(values: np.ndarray, shape: list[int]) -> np.ndarray:
    return values.reshape(-1, 1) if len(shape) == 2 else values


def _typed(name: str, cells: np.ndarray, type_name: str) -> np.ndarray:
    """CSV cells (text) as the column's type; an empty cell is a missing value."""
    empty = cells == ""
    if type_name == "string":
        out = cells.astype(object)
        out[empty] = None
        return out
    if type_name == "bool":
        lowered = np.char.lower(np.char.strip(cells))
        truth = np.isin(lowered, list(_TRUE))
        bad = ~(truth | np.isin(lowered, list(_FALSE)))
        if bad.any():
            raise ScoringError(400, BAD_REQUEST, _wrong(name, "booleans", cells[bad][0]))
        return truth
    is_float = type_name.startswith("float")
    try:
        return (np.where(empty, "nan", cells) if is_float else cells).astype(type_name)
    except (TypeError, ValueError, OverflowError):
        pass
    words = f"numbers ({type_name})" if is_float else f"integers ({type_name})"
    for cell in cells.ravel():  # only on failure: find the cell to name
        try:
            if cell or not is_float:
                np.array(cell).astype(type_name)
        except (TypeError, ValueError, OverflowError):
            raise ScoringError(400, BAD_REQUEST, _wrong(name, words, cell)) from None
    raise ScoringError(400, BAD_REQUEST, f"Column {name!r} cannot be read as {type_name}")


def _wrong(name: str, words: str, cell: str) -> str:
    got = repr(cell) if cell else "a missing value"
    return f"Column {name!r} must hold {words}, got {got}"


# -- responses -----------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(value).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_jsonable)


def format_response(
    outputs: dict[str, np.ndarray], signature: OnnxSignature, slice_: slice | None = None
) -> bytes:
    """`{"predictions": ...}` for a session's outputs (rows `slice_` of a batch)."""
    if slice_ is not None:
        outputs = {name: value[slice_] for name, value in outputs.items()}
    pred = pyfunc_output(outputs, signature)
    values = pred.values() if isinstance(pred, dict) else (pred,)
    if all(isinstance(v, np.ndarray) for v in values) and any(
        v.dtype.kind in "fc" and not np.isfinite(v).all() for v in values
    ):  # NaN or infinity: MLflow's json writes the bare tokens, msgspec cannot
        doc = {k: _jsonable(v) for k, v in pred.items()} if isinstance(pred, dict) else _jsonable(pred)
        return json.dumps({"predictions": doc}).encode()
    body = {k: _jsonable(v) for k, v in pred.items()} if isinstance(pred, dict) else pred
    return _encoder.encode({"predictions": body})


__all__ = [
    "CONTENT_TYPE_CSV",
    "CONTENT_TYPE_JSON",
    "FORMATS",
    "ParsedRequest",
    "ScoringError",
    "error_body",
    "format_response",
    "media_type",
    "parse_request",
    "parse_rows",
]
