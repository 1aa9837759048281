"""Input rules for tracking data, as MLflow's `mlflow/utils/validation.py` states them.

Each check raises `errors.invalid` with a message naming the offending field and value.
Key checks are memoised: the same few keys are logged millions of times.
"""
from __future__ import annotations

import math
import numbers
import posixpath
import re

from cairn.engine.errors import check_no_control, invalid
from cairn.engine.tracking.contract import (
    MAX_ENTITIES_PER_BATCH,
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VALUE_LENGTH,
)

_KEY_CHARS = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_valid_keys: set[str] = set()
# LMDB keys are at most 511 bytes; interned names are keys of the `names` table.
_MAX_KEY_BYTES = 500


def check_key(key: object, what: str) -> str:
    """A metric, param or tag key: MLflow's characters, no path tricks, <= 250 chars."""
    if key in _valid_keys:
        return key  # type: ignore[return-value]
    if not isinstance(key, str) or key == "":
        raise invalid(f"Missing value for parameter '{what}': a non-empty string is required")
    if not _KEY_CHARS.match(key):
        raise invalid(
            f"Invalid value {key!r} for parameter '{what}' supplied: Names may only contain "
            "alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) "
            "and slashes (/)."
        )
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise invalid(
            f"Invalid value {key!r} for parameter '{what}' supplied: Names may be treated as "
            "files in certain cases, and must not resolve to other names when treated as "
            f"such. This name would resolve to {norm!r}"
        )
    if len(key) > MAX_KEY_LENGTH or len(key.encode()) > _MAX_KEY_BYTES:
        raise invalid(f"'{what}' exceeds the maximum length of {MAX_KEY_LENGTH} characters: {key[:60]!r}...")
    if len(_valid_keys) < 100_000:
        _valid_keys.add(key)
    return key


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise invalid(f"Invalid run ID {run_id!r}: expected 32 lowercase hex characters")
    return run_id


def check_experiment_id(experiment_id: object) -> int:
    s = str(experiment_id)
    # Canonical ASCII digits only: "00" or a full-width "０" must not alias experiment 0.
    if not (s.isascii() and s.isdigit()) or len(s) > 18 or s != str(int(s)):
        raise invalid(f"Invalid experiment ID {experiment_id!r}: expected a non-negative integer")
    return int(s)


def check_experiment_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid("Invalid experiment name: must be a non-empty string")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH or len(name.encode()) > _MAX_KEY_BYTES:
        raise invalid(
            f"Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters"
        )
    return check_no_control(name, "experiment name")


def check_param_value(key: str, value: object) -> str:
    value = str(value)
    if len(value) > MAX_PARAM_VALUE_LENGTH:
        raise invalid(
            f"Param value for key '{key}' exceeds the maximum length of {MAX_PARAM_VALUE_LENGTH} "
            f"characters ({len(value)} given)"
        )
    return value


def check_tag_value(key: str, value: object, limit: int = MAX_TAG_VALUE_LENGTH) -> str:
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    if len(value) > limit:
        raise invalid(
            f"Tag value for key '{key}' exceeds the maximum length of {limit} characters "
            f"({len(value)} given)"
        )
    return value


def check_metric(key: str, value: object, timestamp: object, step: object) -> tuple[float, int, int]:
    """(value, timestamp, step) as stored; NaN and +-inf pass through unchanged."""
    # Exact-type fast path: the abstract numbers.* checks below cost microseconds, and
    # this runs once per logged point.
    tv = type(value)
    if (tv is float or (tv is int and -_F64_INT < value < _F64_INT)) and type(timestamp) is int and type(step) is int:
        if 0 <= timestamp < _I64 and -_I64 <= step < _I64:
            return float(value), timestamp, step
    return _check_metric_slow(key, value, timestamp, step)


_I64 = 1 << 63
_F64_INT = 1 << 1000  # ints beyond this may not convert to a float


def _check_metric_slow(key: str, value: object, timestamp: object, step: object) -> tuple[float, int, int]:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise invalid(
            f"Invalid value {value!r} for parameter 'value' supplied: metric '{key}' "
            "must be a valid double (64-bit floating point)"
        )
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral) or timestamp < 0:
        if isinstance(timestamp, float) and timestamp.is_integer() and timestamp >= 0:
            timestamp = int(timestamp)
        else:
            raise invalid(
                f"Invalid value {timestamp!r} for parameter 'timestamp' supplied: metric '{key}' "
                "timestamp must be a nonnegative long (64-bit integer)"
            )
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        else:
            raise invalid(
                f"Invalid value {step!r} for parameter 'step' supplied: metric '{key}' "
                "step must be a valid long (64-bit integer)"
            )
    if not -_I64 <= step < _I64 or timestamp >= _I64:
        raise invalid(f"Metric '{key}': step or timestamp out of the 64-bit range")
    try:
        return float(value), int(timestamp), int(step)
    except OverflowError:
        raise invalid(f"Metric '{key}': value {value!r} is beyond the range of a double") from None


def check_batch_sizes(n_metrics: int, n_params: int, n_tags: int) -> None:
    if n_metrics > MAX_METRICS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics. "
            f"Got {n_metrics} metrics. Please split up metrics across multiple requests and try again."
        )
    if n_params > MAX_PARAMS_TAGS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} params. "
            f"Got {n_params} params. Please split up params across multiple requests and try again."
        )
    if n_tags > MAX_PARAMS_TAGS_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} tags. "
            f"Got {n_tags} tags. Please split up tags across multiple requests and try again."
        )
    total = n_metrics + n_params + n_tags
    if total > MAX_ENTITIES_PER_BATCH:
        raise invalid(
            f"A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} metrics, "
            f"params, and tags in total. Got {total}."
        )


def is_nan(x: float) -> bool:
    return math.isnan(x)
