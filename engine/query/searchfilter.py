"""MLflow's search grammar for runs and experiments: filter strings and order_by clauses.

A small scanner-driven recursive-descent parser, so the server needs neither sqlparse
nor mlflow at runtime. The reference is `mlflow/utils/search_utils.py` (SearchUtils,
SearchExperimentsUtils) together with the checks MLflow's SQL store adds on top of it
(`_get_sqlalchemy_filter_clauses`): we reject at parse time what MLflow's parser lets
through but its store then refuses (e.g. `metrics.x LIKE 1`, `attributes.status > 'a'`).

Grammar (keywords case-insensitive, entity prefixes case-sensitive as in MLflow):

    filter     := comparison (AND comparison)*
    comparison := identifier op value | identifier IS [NOT] NULL
                | identifier [NOT] IN '(' string (',' string)* [','] ')'
    identifier := entity '.' key | attribute
    key        := [\\w.]+ | `...` | "..." | '...'
    value      := '...' | "..." | number
    order_by   := identifier [ASC | DESC]

Quoted text is taken verbatim between its quotes, as MLflow does: `'it''s'` means the
five characters it''s, not it's. Error positions are 0-based character offsets.
"""
from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, NoReturn

import msgspec

from cairn.engine.errors import invalid

__all__ = [
    "Comparison",
    "OrderKey",
    "like_matcher",
    "parse_experiment_filter",
    "parse_experiment_order_by",
    "parse_order_by",
    "parse_search_filter",
]


class Comparison(msgspec.Struct, frozen=True, dict=True):
    """One `entity.key op value` clause. entity: metric, param, tag, attribute, dataset;
    attribute keys are canonical (created -> start_time, "run name" -> run_name).
    value: float for metrics, int or float for times, str, a tuple for IN / NOT IN, None
    for IS [NOT] NULL; experiment_id values are ints (MLflow compares that column as an
    integer, so '007' is 7). `dict=True` only gives the cached matcher somewhere to live:
    equality, hashing and encoding still see the four fields alone."""

    entity: str
    key: str
    op: str
    value: float | int | str | tuple[str | int, ...] | None

    @functools.cached_property
    def test(self) -> Callable[[Any], bool]:
        """`c.test(actual)`: whether `actual` (None when the entity lacks the key)
        satisfies this clause.

        SQL semantics: None never matches, not even `!=` / `NOT IN`; only IS NULL does.
        NaN compares like a Python float, which is exactly what MLflow's SQL store does
        (it stores NaN as is_nan=1 and lets NaN satisfy `!=` and nothing else).

        A cached closure rather than a method: test() runs once per candidate row, and
        this skips a Python frame and a descriptor lookup per call (about 3x faster).
        """
        return _compile_check(self.op, self.value)


class OrderKey(msgspec.Struct, frozen=True):
    entity: str
    key: str
    ascending: bool


# -- evaluation ---------------------------------------------------------------------
_ORDERING = {"=": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
             "<": operator.lt, "<=": operator.le}


def _is_null(actual: Any) -> bool:
    return actual is None


def _is_not_null(actual: Any) -> bool:
    return actual is not None


def like_matcher(pattern: str, ignore_case: bool = False) -> Callable[[str], bool]:
    """A predicate for SQL `LIKE` (`ILIKE` with ignore_case): `%` is any run of
    characters, `_` exactly one, everything else literal. No escape character, as in
    MLflow on SQLite; `%` also spans newlines, as SQL's does."""
    if not ignore_case and "_" not in pattern:
        # Most real patterns are 'prefix%', '%suffix' or '%part%': string methods
        # beat the regex engine by several times for these.
        inner = pattern.strip("%")
        if "%" not in inner:
            lead, trail = pattern.startswith("%"), pattern.endswith("%")
            if lead and trail:
                return lambda s: inner in s
            if lead:
                return lambda s: s.endswith(inner)
            if trail:
                return lambda s: s.startswith(inner)
            return lambda s: s == inner
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    fullmatch = re.compile(body, flags).fullmatch
    return lambda s: fullmatch(s) is not None


def _compile_check(op: str, value: Any) -> Callable[[Any], bool]:
    if op == "IS NULL":
        return _is_null
    if op == "IS NOT NULL":
        return _is_not_null
    if op == "IN" or op == "NOT IN":
        members = frozenset(value)
        if op == "IN":
            return lambda a: a is not None and a in members
        return lambda a: a is not None and a not in members
    if op == "LIKE" or op == "ILIKE":
        match = like_matcher(value, ignore_case=op == "ILIKE")
        return lambda a: a is not None and match(a)
    compare = _ORDERING[op]
    return lambda a: a is not None and compare(a, value)


# -- grammar tables -----------------------------------------------------------------

_NUMERIC_OPS = ("=", "!=", ">", ">=", "<", "<=")
_TEXT_OPS = ("=", "!=", "LIKE", "ILIKE")
_NULLABLE_TEXT_OPS = _TEXT_OPS + ("IS NULL", "IS NOT NULL")
_LIST_TEXT_OPS = _TEXT_OPS + ("IN", "NOT IN")

# What a value must look like: "float" metrics, "number" int-or-float run times, "int"
# experiment times (MLflow's SQL store refuses floats there), "string", and
# "experiment_id" (quoted, yet parsed to an int: MLflow's SQL store compares the INTEGER
# column, so '007' names experiment 7; test() therefore wants int(experiment_id)).
_FLOAT, _NUMBER, _INT, _STRING, _EXPERIMENT_ID = "float", "number", "int", "string", "experiment_id"


class _Field(NamedTuple):
    entity: str
    key: str
    ops: tuple[str, ...]
    kind: str


def _attr(key: str, ops: tuple[str, ...], kind: str) -> _Field:
    return _Field("attribute", key, ops, kind)


_RUN_TIME = (_NUMERIC_OPS, _NUMBER)
_RUN_TEXT = (_TEXT_OPS, _STRING)
# Name as written -> field. Aliases map to the canonical name, with MLflow's exact
# spellings ("created"/"Created", "run name"/"Run name"/"Run Name"). lifecycle_stage
# is Cairn's addition (the store contract lists it); MLflow itself refuses it.
_RUN_ORDER_ATTRIBUTES = {
    "run_id": _attr("run_id", _LIST_TEXT_OPS, _STRING),
    "run_name": _attr("run_name", *_RUN_TEXT),
    "status": _attr("status", *_RUN_TEXT),
    "user_id": _attr("user_id", *_RUN_TEXT),
    "artifact_uri": _attr("artifact_uri", *_RUN_TEXT),
    "lifecycle_stage": _attr("lifecycle_stage", *_RUN_TEXT),
    "start_time": _attr("start_time", *_RUN_TIME),
    "created": _attr("start_time", *_RUN_TIME),
    "Created": _attr("start_time", *_RUN_TIME),
    "end_time": _attr("end_time", *_RUN_TIME),
}
# MLflow accepts the "run name" aliases in filters but not in order_by.
_RUN_FILTER_ATTRIBUTES = {
    **_RUN_ORDER_ATTRIBUTES,
    **{alias: _attr("run_name", *_RUN_TEXT) for alias in ("run name", "Run name", "Run Name")},
}
_EXPERIMENT_ATTRIBUTES = {
    "name": _attr("name", _TEXT_OPS, _STRING),
    "experiment_id": _attr("experiment_id", ("=", "!=", "IN", "NOT IN"), _EXPERIMENT_ID),
    "creation_time": _attr("creation_time", _NUMERIC_OPS, _INT),
    "last_update_time": _attr("last_update_time", _NUMERIC_OPS, _INT),
}


class _Grammar(NamedTuple):
    subject: str  # "runs" or "experiments", for messages
    entities: dict[str, str]  # prefix as written -> canonical entity
    keyed: dict[str, tuple[tuple[str, ...], str]]  # entity -> (ops, kind) for free keys
    filter_attributes: dict[str, _Field]
    order_attributes: dict[str, _Field]
    order_entities: frozenset[str]
    dataset_keys: frozenset[str]
    unique_order_keys: bool  # MLflow's SQL store rejects duplicate run order_by fields


_RUNS = _Grammar(
    subject="runs",
    entities={
        "metric": "metric", "metrics": "metric",
        "param": "param", "params": "param", "parameter": "param", "parameters": "param",
        "tag": "tag", "tags": "tag",
        "attribute": "attribute", "attributes": "attribute", "attr": "attribute",
        "run": "attribute",
        "dataset": "dataset", "datasets": "dataset",
    },
    keyed={
        "metric": (_NUMERIC_OPS, _FLOAT),
        "param": (_NULLABLE_TEXT_OPS, _STRING),
        "tag": (_NULLABLE_TEXT_OPS, _STRING),
        "dataset": (_LIST_TEXT_OPS, _STRING),
    },
    filter_attributes=_RUN_FILTER_ATTRIBUTES,
    order_attributes=_RUN_ORDER_ATTRIBUTES,
    order_entities=frozenset({"metric", "param", "tag", "attribute"}),
    dataset_keys=frozenset({"name", "digest", "context"}),
    unique_order_keys=True,
)

# MLflow's experiment grammar: these prefixes ("attributes" since MLflow 3.18).
_EXPERIMENTS = _Grammar(
    subject="experiments",
    entities={"attribute": "attribute", "attributes": "attribute", "tag": "tag", "tags": "tag"},
    keyed={"tag": (_NULLABLE_TEXT_OPS, _STRING)},
    filter_attributes=_EXPERIMENT_ATTRIBUTES,
    order_attributes=_EXPERIMENT_ATTRIBUTES,
    order_entities=frozenset({"attribute"}),
    dataset_keys=frozenset(),
    unique_order_keys=False,
)


# -- scanner ------------------------------------------------------------------------

# The same quoted-token shapes sqlparse lexes, so the same strings end where MLflow
# thinks they end ('' and \' do not close a single-quoted string).
_QUOTED = {
    "'": re.compile(r"'(?:''|\\'|[^'])*'"),
    '"': re.compile(r'"(?:""|\\"|[^"])*"'),
    "`": re.compile(r"`(?:``|[^`])*`"),
}
_WS = re.compile(r"\s*")
_WORD = re.compile(r"[^\W\d]\w*")
_OPERATOR = re.compile(r"[<>=!]+")
_NUMERAL = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD_OR_DOT = re.compile(r"[\w.]")
# An unquoted key runs to whitespace, an operator, a quote or punctuation; inside that
# run only word characters and dots are legal (sqlparse's Name tokens plus dots).
_KEY_RUN = re.compile(r"""[^\s=!<>'"`(),;]+""")
_PLAIN_KEY = re.compile(r"[\w.]+")
_TOKEN_FOR_MESSAGE = re.compile(r"""'[^']*'?|"[^"]*"?|`[^`]*`?|[\w.]+|[<>=!]+|.""", re.DOTALL)


class _Scanner:
    """A cursor over one filter or order_by string that knows how to complain."""

    def __init__(self, text: str, what: str):
        self.text = text
        self.what = what  # "filter" or "order_by clause"
        self.pos = 0

    def fail(self, pos: int, message: str) -> NoReturn:
        raise invalid(f"Invalid {self.what} {self.text!r} at position {pos}: {message}")

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def word(self) -> str:
        """Consume and return a bare word, or "" without moving."""
        m = _WORD.match(self.text, self.pos)
        if not m:
            return ""
        self.pos = m.end()
        return m.group()

    def describe(self, pos: int | None = None) -> str:
        """The token at `pos`, quoted for a message."""
        pos = self.pos if pos is None else pos
        if pos >= len(self.text):
            return f"end of {self.what}"
        token = _TOKEN_FOR_MESSAGE.match(self.text, pos).group()
        if token.isspace():
            return "whitespace"
        return repr(token if len(token) <= 40 else token[:40] + "...")

    def quoted(self) -> str:
        """Consume a quoted token at the cursor and return its text between the quotes."""
        start = self.pos
        m = _QUOTED[self.text[start]].match(self.text, start)
        if not m:
            self.fail(start, "unterminated quoted string")
        self.pos = m.end()
        return m.group()[1:-1]


# -- parser -------------------------------------------------------------------------


def _resolve_entity(sc: _Scanner, grammar: _Grammar, name: str, pos: int) -> str:
    entity = grammar.entities.get(name)
    if entity is None:
        valid = ", ".join(sorted(grammar.entities))
        hint = ""
        if name.lower() in grammar.entities:
            hint = f" (entity prefixes are case-sensitive: use '{name.lower()}')"
        sc.fail(pos, f"invalid entity type '{name}' for {grammar.subject}{hint}; valid are {valid}")
    return entity


def _read_key(sc: _Scanner, prefix: str) -> tuple[str, int]:
    """The key after `prefix.`; returns (key, position)."""
    pos = sc.pos
    if sc.peek() in _QUOTED:
        key = sc.quoted()
        if _WORD_OR_DOT.match(sc.peek()):
            sc.fail(sc.pos, f"unexpected {sc.describe()} after quoted key; quote the whole key")
    else:
        m = _KEY_RUN.match(sc.text, pos)
        if not m:
            sc.fail(pos, f"expected a key after '{prefix}.', got {sc.describe()}")
        key = m.group()
        if not _PLAIN_KEY.fullmatch(key):
            sc.fail(pos, f"key '{key}' has characters that need quoting: write {prefix}.`{key}`")
        sc.pos = m.end()
    if not key:
        sc.fail(pos, "empty key")
    return key, pos


def _parse_identifier(sc: _Scanner, grammar: _Grammar, for_order: bool) -> _Field:
    attributes = grammar.order_attributes if for_order else grammar.filter_attributes
    start = sc.pos
    c = sc.peek()
    if c == "`" or c == '"':
        name = sc.quoted()
        bare = sc.peek() != "."
        if not bare and c == '"':
            sc.fail(start, f"invalid entity type '{sc.text[start:sc.pos]}': entity prefixes "
                           "are unquoted (or backticked)")
    elif _WORD.match(sc.text, start):
        name = sc.word()
        bare = sc.peek() != "."
        if bare and name.upper() in ("AND", "OR"):
            sc.fail(start, f"expected a comparison, got {name!r}")
    elif c == "(":
        sc.fail(start, "parentheses are not supported; join clauses with AND")
    elif c == "'":
        sc.fail(start, "expected an identifier such as metrics.<key>, got a quoted string; "
                       "quote keys with backticks, e.g. params.`my key`")
    else:
        sc.fail(start, f"expected an identifier such as metrics.<key>, got {sc.describe()}")

    if bare:
        # No prefix: MLflow reads a lone name as an attribute (`status = 'FAILED'`).
        if name in grammar.entities and name not in attributes:
            sc.fail(start, f"'{name}' needs a key: write {name}.<key>")
        entity, key, key_pos = "attribute", name, start
    else:
        entity = _resolve_entity(sc, grammar, name, start)
        sc.pos += 1  # the dot
        key, key_pos = _read_key(sc, name)

    if for_order and entity not in grammar.order_entities:
        sc.fail(start, f"{grammar.subject} cannot be ordered by {entity} fields; "
                       f"valid prefixes are {', '.join(sorted(grammar.order_entities))}")
    if entity == "attribute":
        field = attributes.get(key)
        if field is None:
            valid = ", ".join(sorted({f.key for f in attributes.values()}))
            sc.fail(key_pos, f"invalid attribute '{key}' for {grammar.subject}; valid are {valid}")
        return field
    if entity == "dataset" and key not in grammar.dataset_keys:
        valid = ", ".join(sorted(grammar.dataset_keys))
        sc.fail(key_pos, f"invalid dataset key '{key}'; valid are {valid}")
    ops, kind = grammar.keyed[entity]
    return _Field(entity, key, ops, kind)


def _parse_operator(sc: _Scanner) -> tuple[str, int]:
    pos = sc.pos
    m = _OPERATOR.match(sc.text, pos)
    if m:
        op = m.group()
        sc.pos = m.end()
        if op in _ORDERING:
            return op, pos
        hint = {"==": "; use '='", "<>": "; use '!='"}.get(op, "")
        sc.fail(pos, f"expected a comparison operator, got {op!r}{hint}")
    word = sc.word().upper()
    if word in ("LIKE", "ILIKE", "IN"):
        return word, pos
    if word in ("NOT", "IS"):
        sc.skip_ws()
        second_pos = sc.pos
        second = sc.word().upper()
        if word == "NOT":
            if second == "IN":
                return "NOT IN", pos
            if second in ("LIKE", "ILIKE"):
                sc.fail(pos, f"NOT {second} is not supported; use != or a positive pattern")
            sc.fail(second_pos, f"expected IN after NOT, got {sc.describe(second_pos)}")
        if second == "NULL":
            return "IS NULL", pos
        if second == "NOT":
            sc.skip_ws()
            third_pos = sc.pos
            if sc.word().upper() == "NULL":
                return "IS NOT NULL", pos
            sc.fail(third_pos, f"expected NULL after IS NOT, got {sc.describe(third_pos)}")
        sc.fail(second_pos, f"expected NULL or NOT NULL after IS, got {sc.describe(second_pos)}")
    if word in ("RLIKE", "REGEXP"):
        sc.fail(pos, f"{word} is not supported; use LIKE or ILIKE")
    sc.fail(pos, f"expected a comparison operator, got {sc.describe(pos)}")


def _describe_field(field: _Field) -> str:
    return f"{field.entity} '{field.key}'"


def _parse_list(sc: _Scanner, field: _Field, op: str) -> tuple[str | int, ...]:
    if sc.peek() != "(":
        sc.fail(sc.pos, f"{op} needs a parenthesized list of quoted strings such as "
                        f"('a', 'b'), got {sc.describe()}")
    sc.pos += 1
    items: list[str | int] = []
    while True:
        sc.skip_ws()
        if sc.peek() == ")" and items:  # after a trailing comma, as Python tuples allow
            break
        item_pos = sc.pos
        if sc.peek() not in ("'", '"'):
            what = "an empty list" if sc.peek() == ")" else sc.describe()
            sc.fail(item_pos, f"{op} needs a non-empty list of quoted strings, got {what}")
        items.append(_string_value(sc, field, sc.quoted(), item_pos))
        sc.skip_ws()
        if sc.peek() == ",":
            sc.pos += 1
            continue
        if sc.peek() == ")":
            break
        sc.fail(sc.pos, f"expected ',' or ')' in the {op} list, got {sc.describe()}")
    sc.pos += 1
    return tuple(items)


def _string_value(sc: _Scanner, field: _Field, text: str, pos: int) -> str | int:
    if field.kind == _EXPERIMENT_ID:
        try:
            return int(text)
        except ValueError:
            sc.fail(pos, f"invalid experiment id {text!r}: experiment ids are integers")
    return text


def _parse_value(sc: _Scanner, field: _Field, op: str) -> Any:
    if op == "IN" or op == "NOT IN":
        return _parse_list(sc, field, op)
    pos = sc.pos
    c = sc.peek()
    if c == "(":
        sc.fail(pos, f"a list of values needs IN or NOT IN, not {op!r}")
    if c == "'" or c == '"':
        text = sc.quoted()
        if field.kind in (_FLOAT, _NUMBER, _INT):
            sc.fail(pos, f"{_describe_field(field)} needs a numeric value, got {sc.text[pos:sc.pos]}")
        return _string_value(sc, field, text, pos)
    m = _NUMERAL.match(sc.text, pos)
    if m is None:
        if field.kind in (_STRING, _EXPERIMENT_ID):
            expected = "a quoted string value (e.g. 'my-value')"
        else:
            expected = "a numeric value"
        sc.fail(pos, f"{_describe_field(field)} needs {expected}, got {sc.describe()}")
    if _WORD_OR_DOT.match(sc.text, m.end()):
        sc.fail(pos, f"invalid number {sc.describe()}")
    sc.pos = m.end()
    token = m.group()
    if field.kind in (_STRING, _EXPERIMENT_ID):
        sc.fail(pos, f"{_describe_field(field)} needs a quoted string value "
                     f"(e.g. '{token}'), got {token}")
    is_int = not any(ch in token for ch in ".eE")
    if field.kind == _FLOAT:
        return float(token)
    if field.kind == _INT and not is_int:
        sc.fail(pos, f"{_describe_field(field)} needs an integer (milliseconds), got {token}")
    return int(token) if is_int else float(token)


def _parse_comparison(sc: _Scanner, grammar: _Grammar) -> Comparison:
    field = _parse_identifier(sc, grammar, for_order=False)
    sc.skip_ws()
    if sc.at_end():
        sc.fail(sc.pos, f"expected a comparison operator, got end of {sc.what}")
    op, op_pos = _parse_operator(sc)
    if op not in field.ops:
        sc.fail(op_pos, f"operator {op} is not supported for {_describe_field(field)}; "
                        f"use one of {', '.join(field.ops)}")
    if op == "IS NULL" or op == "IS NOT NULL":
        return Comparison(field.entity, field.key, op, None)
    sc.skip_ws()
    return Comparison(field.entity, field.key, op, _parse_value(sc, field, op))


def _parse_filter(filter_string: str | None, grammar: _Grammar) -> list[Comparison]:
    # MLflow errors on a whitespace-only filter; treating it as "no filter" is kinder
    # and cannot change a result anyone relies on.
    if filter_string is None:
        return []
    if not isinstance(filter_string, str):
        raise invalid(f"Invalid filter {filter_string!r}: expected a string")
    if not filter_string.strip():
        return []
    sc = _Scanner(filter_string, "filter")
    comparisons = []
    while True:
        sc.skip_ws()
        comparisons.append(_parse_comparison(sc, grammar))
        sc.skip_ws()
        if sc.at_end():
            return comparisons
        joiner_pos = sc.pos
        joiner = sc.word().upper()
        if joiner == "OR":
            sc.fail(joiner_pos, "OR is not supported; join clauses with AND")
        if joiner != "AND":
            sc.fail(joiner_pos, f"expected AND between comparisons, got {sc.describe(joiner_pos)}")
        sc.skip_ws()
        if sc.at_end():
            sc.fail(joiner_pos, "expected a comparison after AND, got end of filter")


def _parse_order(order_by: Sequence[str] | None, grammar: _Grammar) -> list[OrderKey]:
    if not order_by:
        return []
    if isinstance(order_by, str):
        # A bare string would otherwise be read character by character.
        raise invalid(f"Invalid order_by {order_by!r}: expected a list of clauses")
    keys: list[OrderKey] = []
    seen: set[tuple[str, str]] = set()
    for clause in order_by:
        if not isinstance(clause, str):
            raise invalid(f"Invalid order_by clause {clause!r}: expected a string")
        sc = _Scanner(clause, "order_by clause")
        sc.skip_ws()
        if sc.at_end():
            sc.fail(0, "empty clause; expected <entity>.<key> [ASC|DESC]")
        start = sc.pos
        field = _parse_identifier(sc, grammar, for_order=True)
        sc.skip_ws()
        ascending = True
        if not sc.at_end():
            direction_pos = sc.pos
            direction = sc.word().upper()
            if direction not in ("ASC", "DESC"):
                sc.fail(direction_pos, f"expected ASC or DESC, got {sc.describe(direction_pos)}")
            ascending = direction == "ASC"
            sc.skip_ws()
            if not sc.at_end():
                sc.fail(sc.pos, f"unexpected {sc.describe()} after {direction}; "
                                "give one key per order_by clause")
        if grammar.unique_order_keys and (field.entity, field.key) in seen:
            sc.fail(start, f"{field.entity} '{field.key}' appears twice in order_by")
        seen.add((field.entity, field.key))
        keys.append(OrderKey(field.entity, field.key, ascending))
    return keys


# -- public API ---------------------------------------------------------------------


def parse_search_filter(filter_string: str | None) -> list[Comparison]:
    """Parse a search_runs filter. None or blank -> []. Raises INVALID_PARAMETER_VALUE
    naming the offending token and its offset."""
    return _parse_filter(filter_string, _RUNS)


def parse_order_by(order_by: Sequence[str] | None) -> list[OrderKey]:
    """Parse search_runs order_by clauses ("metrics.`m 1` DESC", "start_time").
    None or [] -> []; the caller applies MLflow's tie-breakers (start_time DESC unless
    start_time was given, then run_id ASC). Repeating a key is an error, as in MLflow."""
    return _parse_order(order_by, _RUNS)


def parse_experiment_filter(filter_string: str | None) -> list[Comparison]:
    """Parse a search_experiments filter (name, experiment_id, creation_time,
    last_update_time, tags.<key>). None or blank -> []."""
    return _parse_filter(filter_string, _EXPERIMENTS)


def parse_experiment_order_by(order_by: Sequence[str] | None) -> list[OrderKey]:
    """Parse search_experiments order_by (attributes only, as MLflow's SQL store).
    None or [] -> []; the caller applies the default (creation_time DESC,
    experiment_id ASC) or, after explicit keys, the experiment_id tie-breaker."""
    return _parse_order(order_by, _EXPERIMENTS)
