"""search_registered_models and search_model_versions: MLflow's registry grammar.

The parser is search_runs' (searchfilter.py: the same scanner and error messages) with
the entity tables of MLflow's SearchModelUtils / SearchModelVersionUtils: prefixes
`attribute.`, `tag.` and `tags.` (bare names are attributes), tags compared with
= != LIKE ILIKE, clauses joined by AND. As MLflow's SQL store, `name` also takes IN /
NOT IN, and a duplicate order_by key is an error. Cairn adds `current_stage` and
`status` for versions, and `creation_timestamp` as a model order key.

`name` matches the display name or the full name: `name = 'iris'`, `'default.iris'` and
`'main.default.iris'` all find main.default.iris (= and IN compare canonical names, !=
and NOT IN exclude them), and LIKE patterns match either spelling. Stage values are
case-insensitive, as everywhere else. The `mlflow.prompt.is_prompt` tag follows MLflow:
a model without it matches `!= 'true'` and `= 'false'` (the MLflow client sends the
first to hide prompts).

Models and versions are few (thousands), so a search decodes every record in one
snapshot, filters and sorts in memory, and assembles only the returned page.
"""
from __future__ import annotations

from collections.abc import Callable

from cairn.engine.errors import CairnError
from cairn.engine.query.pagination import Page, check_max_results, decode_offset, page_of
from cairn.engine.query.searchfilter import (
    _INT,
    _NUMERIC_OPS,
    _STRING,
    _TEXT_OPS,
    Comparison,
    OrderKey,
    _Field,
    _Grammar,
    _parse_filter,
    _parse_order,
)
from cairn.engine.registry.contract import (
    SEARCH_MAX_RESULTS_DEFAULT,
    SEARCH_MODEL_VERSIONS_MAX,
    SEARCH_REGISTERED_MODELS_MAX,
)
from cairn.engine.registry.entities import Stage
from cairn.engine.registry.names import FullName, parse_model_name
from cairn.engine.registry.records import (
    MODEL_VERSION,
    REGISTERED_MODEL,
    ModelVersionRecord,
    RegisteredModelRecord,
)
from cairn.engine.store.keys import read_u32, read_u64

SEARCH_MODEL_VERSIONS_DEFAULT = 10_000  # MLflow's SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT
IS_PROMPT_TAG = "mlflow.prompt.is_prompt"

_LIST_OPS = _TEXT_OPS + ("IN", "NOT IN")
_EQUALITY_OPS = ("=", "!=", "IN", "NOT IN")


def _attr(key: str, ops: tuple[str, ...], kind: str = _STRING) -> _Field:
    return _Field("attribute", key, ops, kind)


_ENTITIES = {"attribute": "attribute", "tag": "tag", "tags": "tag"}
_TIMES = {
    "creation_timestamp": _attr("creation_timestamp", _NUMERIC_OPS, _INT),
    "last_updated_timestamp": _attr("last_updated_timestamp", _NUMERIC_OPS, _INT),
}

_REGISTERED_MODELS = _Grammar(
    subject="registered models",
    entities=_ENTITIES,
    keyed={"tag": (_TEXT_OPS, _STRING)},
    filter_attributes={"name": _attr("name", _LIST_OPS)},
    # MLflow's "timestamp" is the last update time.
    order_attributes={"name": _attr("name", _LIST_OPS), "timestamp": _TIMES["last_updated_timestamp"], **_TIMES},
    order_entities=frozenset({"attribute"}),
    dataset_keys=frozenset(),
    unique_order_keys=True,
)

_MODEL_VERSIONS = _Grammar(
    subject="model versions",
    entities=_ENTITIES,
    keyed={"tag": (_TEXT_OPS, _STRING)},
    filter_attributes={
        "name": _attr("name", _LIST_OPS),
        "version_number": _attr("version_number", _NUMERIC_OPS, _INT),
        "run_id": _attr("run_id", _LIST_OPS),
        "source_path": _attr("source_path", _TEXT_OPS),
        "current_stage": _attr("current_stage", _EQUALITY_OPS),
        "status": _attr("status", _EQUALITY_OPS),
    },
    order_attributes={
        "name": _attr("name", _LIST_OPS),
        "version_number": _attr("version_number", _NUMERIC_OPS, _INT),
        **_TIMES,
    },
    order_entities=frozenset({"attribute"}),
    dataset_keys=frozenset(),
    unique_order_keys=True,
)


class _Row:
    """One candidate: a model, or a version with its model."""

    __slots__ = ("full", "mid", "n", "rec", "vrec")

    def __init__(self, mid: int, rec: RegisteredModelRecord, n: int = 0, vrec: ModelVersionRecord | None = None):
        self.mid = mid
        self.rec = rec
        self.full = FullName(rec.catalog, rec.schema, rec.name)
        self.n = n
        self.vrec = vrec

    def attribute(self, key: str):
        v = self.vrec
        if key == "name":
            return self.full.display
        if v is None:
            return self.rec.creation_time if key == "creation_timestamp" else self.rec.last_updated_time
        if key == "version_number":
            return self.n
        if key == "creation_timestamp":
            return v.creation_time
        if key == "last_updated_timestamp":
            return v.last_updated_time
        if key == "source_path":
            return v.source
        if key == "run_id":
            return v.run_id or None  # no run is SQL NULL: matches nothing, not even !=
        return getattr(v, key)  # current_stage, status

    def tags(self) -> dict[str, str]:
        return self.rec.tags if self.vrec is None else self.vrec.tags


def _canonical(name: str) -> FullName | None:
    try:
        return parse_model_name(name)
    except CairnError:
        return None


def _predicate(c: Comparison) -> Callable[[_Row], bool]:
    if c.entity == "tag":
        key, test = c.key, c.test
        if key == IS_PROMPT_TAG:
            value = str(c.value).lower()
            absent = (c.op == "=" and value == "false") or (c.op == "!=" and value == "true")

            def prompt_tag(row: _Row) -> bool:
                actual = row.tags().get(key)
                return absent if actual is None else test(actual)

            return prompt_tag
        return lambda row: test(row.tags().get(key))
    if c.key == "name":
        if c.op in _EQUALITY_OPS:
            values = c.value if isinstance(c.value, tuple) else (c.value,)
            wanted = {f for f in map(_canonical, values) if f is not None}
            if c.op in ("=", "IN"):
                return lambda row: row.full in wanted
            return lambda row: row.full not in wanted
        test = c.test
        return lambda row: test(row.full.display) or test(row.full.full)
    if c.key == "current_stage":
        value = tuple(map(_stage_or_same, c.value)) if isinstance(c.value, tuple) else _stage_or_same(c.value)
        c = Comparison(c.entity, c.key, c.op, value)
    key, test = c.key, c.test
    return lambda row: test(row.attribute(key))


def _stage_or_same(value):
    try:
        return Stage.parse(value)
    except CairnError:
        return value


def _ordered(rows: list[_Row], orders: list[OrderKey], ties: list[OrderKey]) -> list[_Row]:
    """Stable sorts from the last key to the first; `ties` apply after `orders` unless
    `orders` already names their field. Every key here is present on every row."""
    named = {o.key for o in orders}
    keys = orders + [t for t in ties if t.key not in named]
    for o in reversed(keys):
        rows.sort(key=lambda r, k=o.key: r.attribute(k), reverse=not o.ascending)
    return rows


def _models(txn, store) -> dict[int, RegisteredModelRecord]:
    with txn.cursor(db=store.env.dbs["registered_models"]) as cur:
        return {read_u64(k): REGISTERED_MODEL.decode(v) for k, v in cur}


def search_registered_models(store, filter_string, max_results, order_by, page_token) -> Page:
    limit = check_max_results(max_results, SEARCH_REGISTERED_MODELS_MAX, default=SEARCH_MAX_RESULTS_DEFAULT)
    offset = decode_offset(page_token)
    tests = [_predicate(c) for c in _parse_filter(filter_string, _REGISTERED_MODELS)]
    orders = _parse_order(list(order_by) if order_by else None, _REGISTERED_MODELS)
    with store.env.read() as txn:
        rows = [_Row(mid, rec) for mid, rec in _models(txn, store).items()]
        rows = [r for r in rows if all(t(r) for t in tests)]
        rows = _ordered(rows, orders, [OrderKey("attribute", "name", True)])
        page, token = page_of(rows, offset, limit)
        return Page([store.model_entity(txn, r.mid, r.rec) for r in page], token)


def search_model_versions(store, filter_string, max_results, order_by, page_token) -> Page:
    limit = check_max_results(max_results, SEARCH_MODEL_VERSIONS_MAX, default=SEARCH_MODEL_VERSIONS_DEFAULT)
    offset = decode_offset(page_token)
    tests = [_predicate(c) for c in _parse_filter(filter_string, _MODEL_VERSIONS)]
    orders = _parse_order(list(order_by) if order_by else None, _MODEL_VERSIONS)
    with store.env.read() as txn:
        models = _models(txn, store)
        rows = []
        with txn.cursor(db=store.env.dbs["model_versions"]) as cur:
            for k, v in cur:
                row = _Row(read_u64(k), models[read_u64(k)], read_u32(k, 8), MODEL_VERSION.decode(v))
                if all(t(row) for t in tests):
                    rows.append(row)
    ties = [OrderKey("attribute", "name", True), OrderKey("attribute", "version_number", False)]
    rows = _ordered(rows, orders, ties)
    page, token = page_of(rows, offset, limit)
    return Page([store.version_entity(r.full, r.n, r.vrec, r.rec) for r in page], token)
