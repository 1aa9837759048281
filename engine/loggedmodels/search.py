"""search_logged_models: MLflow's logged-model filter, dataset and order semantics.

The filter grammar is search_runs' (searchfilter.py: the same scanner, parser and error
messages) with the entity table of `mlflow/utils/search_logged_model_utils.py`: only the
prefixes metrics., params., tags. and attributes. (plural, lowercase), params and tags
compared as strings with IN / NOT IN too, no IS NULL, and the logged-model attributes.
Order-by is not a string clause but MLflow's structured entry {field_name, ascending,
dataset_name, dataset_digest}, parsed here.

Logged models are few next to runs (one or a handful per training run), so candidates
are every model of the experiments, walked newest first from `exp_logged_models`, then
filtered and sorted in memory (in the default order over one experiment the walk stops
as soon as the page is full); comparisons read only the fields they name and only the
returned page is assembled in full.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cairn.engine.errors import invalid
from cairn.engine.loggedmodels.records import MODEL, MODEL_METRIC, LoggedModel, LoggedModelRecord, model_id_of
from cairn.engine.query.pagination import Page, check_max_results, decode_offset, encode_offset
from cairn.engine.query.searchfilter import (
    _EXPERIMENT_ID,
    _FLOAT,
    _NUMBER,
    _NUMERIC_OPS,
    _STRING,
    Comparison,
    _Field,
    _Grammar,
    _parse_filter,
)
from cairn.engine.store.keys import u64
from cairn.engine.tracking.entities import LifecycleStage
from cairn.engine.tracking.validation import check_experiment_id

MAX_RESULTS_DEFAULT = 100  # MLflow's SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT
MAX_RESULTS_LIMIT = 50_000

_STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")


def _attr(key: str, ops: tuple[str, ...], kind: str) -> _Field:
    return _Field("attribute", key, ops, kind)


_TEXT = (_STRING_OPS, _STRING)
_TIME = (_NUMERIC_OPS, _NUMBER)
# Columns of MLflow's logged_models table, with its aliases (SqlLoggedModel.ALIASES).
ATTRIBUTES: dict[str, _Field] = {
    "model_id": _attr("model_id", *_TEXT),
    "name": _attr("name", *_TEXT),
    "status": _attr("status", *_TEXT),
    "model_type": _attr("model_type", *_TEXT),
    "source_run_id": _attr("source_run_id", *_TEXT),
    "artifact_location": _attr("artifact_location", *_TEXT),
    "status_message": _attr("status_message", *_TEXT),
    "experiment_id": _attr("experiment_id", ("=", "!=", "IN", "NOT IN"), _EXPERIMENT_ID),
    "creation_timestamp_ms": _attr("creation_timestamp_ms", *_TIME),
    "creation_timestamp": _attr("creation_timestamp_ms", *_TIME),
    "creation_time": _attr("creation_timestamp_ms", *_TIME),
    "last_updated_timestamp_ms": _attr("last_updated_timestamp_ms", *_TIME),
    "last_updated_timestamp": _attr("last_updated_timestamp_ms", *_TIME),
}

_LOGGED_MODELS = _Grammar(
    subject="logged models",
    entities={"metrics": "metric", "params": "param", "tags": "tag", "attributes": "attribute"},
    keyed={
        "metric": (_NUMERIC_OPS, _FLOAT),
        "param": _TEXT,
        "tag": _TEXT,
    },
    filter_attributes=ATTRIBUTES,
    order_attributes=ATTRIBUTES,
    order_entities=frozenset({"attribute", "metric"}),
    dataset_keys=frozenset(),
    unique_order_keys=False,
)


def parse_logged_model_filter(filter_string: str | None) -> list[Comparison]:
    """Parse a search_logged_models filter. None or blank -> []."""
    return _parse_filter(filter_string, _LOGGED_MODELS)


class ModelOrder:
    """One parsed order_by entry."""

    __slots__ = ("ascending", "dataset_digest", "dataset_name", "entity", "key")

    def __init__(self, entity: str, key: str, ascending: bool, dataset_name, dataset_digest):
        self.entity = entity
        self.key = key
        self.ascending = ascending
        self.dataset_name = dataset_name
        self.dataset_digest = dataset_digest


def parse_logged_model_order_by(order_by: Sequence[Mapping] | None) -> list[ModelOrder]:
    """MLflow's structured order_by: a bare field is an attribute (aliases allowed),
    "metrics.<key>" a metric (backticks around the key are dropped); other entities
    are refused, as MLflow's SQL store refuses them."""
    out = []
    for entry in order_by or ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("field_name"), str):
            raise invalid(f"Invalid order_by entry {entry!r}: expected {{'field_name': ..., 'ascending': ...}}")
        field = entry["field_name"].strip()
        ascending = entry.get("ascending", True)
        ascending = True if ascending is None else bool(ascending)
        ds_name, ds_digest = entry.get("dataset_name") or None, entry.get("dataset_digest") or None
        if ds_digest and not ds_name:
            raise invalid(f"Invalid order_by entry for {field!r}: dataset_digest needs dataset_name")
        if "." not in field:
            attr = ATTRIBUTES.get(field)
            if attr is None:
                raise invalid(f"Invalid order by field name: {field}")
            if ds_name:
                raise invalid(f"Invalid order_by entry for {field!r}: datasets apply to metrics only")
            out.append(ModelOrder("attribute", attr.key, ascending, None, None))
            continue
        entity, key = field.split(".", 1)
        if entity != "metrics":
            raise invalid(f"Invalid order by field name: {field}. Only metrics are supported.")
        key = key.strip("`")
        if not key:
            raise invalid(f"Invalid order by field name: {field}")
        out.append(ModelOrder("metric", key, ascending, ds_name, ds_digest))
    return out


def _parse_datasets(datasets) -> list[tuple[str, str | None]]:
    out = []
    for d in datasets or ():
        name = d.get("dataset_name") if isinstance(d, Mapping) else None
        if not name:
            raise invalid("`dataset_name` in the `datasets` clause must be specified.")
        out.append((name, d.get("dataset_digest") or None))
    return out


def _on_datasets(name: str | None, digest: str | None, wanted: list[tuple[str, str | None]]) -> bool:
    return any(name == n and (d is None or digest == d) for n, d in wanted)


class _ModelView:
    """One candidate model; metric points are read per key, once, when first asked."""

    __slots__ = ("_points", "key", "rec")

    def __init__(self, key: bytes, rec: LoggedModelRecord):
        self.key = key
        self.rec = rec
        self._points: dict[str, list[tuple[int, int, bytes, float, str | None, str | None]]] = {}

    def attribute(self, name: str):
        rec = self.rec
        if name == "model_id":
            return model_id_of(self.key)
        if name == "experiment_id":
            return rec.experiment_id
        if name == "creation_timestamp_ms":
            return rec.creation_time
        if name == "last_updated_timestamp_ms":
            return rec.last_updated_time
        return getattr(rec, name)  # name, status, model_type, source_run_id, ...


class _Search:
    def __init__(self, store, txn, datasets: list[tuple[str, str | None]]):
        self.store = store
        self.txn = txn
        self.datasets = datasets
        self.db = store.env.dbs["logged_model_metrics"]

    def points(self, view: _ModelView, key: str):
        """(ts, step, run, value, dataset name, digest) of every point of one key."""
        pts = view._points.get(key)
        if pts is None:
            nid = self.store.names.lookup(self.txn, key)
            pts = []
            if nid is not None:
                prefix = view.key + nid.to_bytes(4, "big")
                with self.txn.cursor(db=self.db) as cur:
                    if cur.set_range(prefix):
                        for k, v in cur:
                            if not k.startswith(prefix):
                                break
                            rec = MODEL_METRIC.decode(v)
                            ts = int.from_bytes(k[20:28], "big") - (1 << 63)
                            step = int.from_bytes(k[28:36], "big") - (1 << 63)
                            pts.append((ts, step, k[36:52], rec.value, rec.dataset_name, rec.dataset_digest))
            view._points[key] = pts
        return pts

    def matches(self, view: _ModelView, comps: list[Comparison]) -> bool:
        for c in comps:
            if c.entity == "attribute":
                if not c.test(view.attribute(c.key)):
                    return False
            elif c.entity == "param":
                if not c.test(view.rec.params.get(c.key)):
                    return False
            elif c.entity == "tag":
                if not c.test(view.rec.tags.get(c.key)):
                    return False
            else:  # metric: any point (on the requested datasets) satisfies the clause
                pts = self.points(view, c.key)
                if not any(
                    c.test(p[3]) for p in pts if not self.datasets or _on_datasets(p[4], p[5], self.datasets)
                ):
                    return False
        if self.datasets and not any(c.entity == "metric" for c in comps):
            return self._has_dataset_metric(view)
        return True

    def _has_dataset_metric(self, view: _ModelView) -> bool:
        prefix = view.key
        with self.txn.cursor(db=self.db) as cur:
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    rec = MODEL_METRIC.decode(v)
                    if _on_datasets(rec.dataset_name, rec.dataset_digest, self.datasets):
                        return True
        return False

    def sort_value(self, view: _ModelView, order: ModelOrder):
        if order.entity == "attribute":
            return view.attribute(order.key)
        wanted = [(order.dataset_name, order.dataset_digest)] if order.dataset_name else None
        latest = None
        for p in self.points(view, order.key):
            if wanted and not _on_datasets(p[4], p[5], wanted):
                continue
            # MLflow's latest point: timestamp DESC, step DESC, run_id ASC.
            rank = (p[0], p[1], _inverted(p[2]))
            if latest is None or rank > latest[0]:
                latest = (rank, p[3])
        return None if latest is None else latest[1]


def _inverted(b: bytes) -> bytes:
    return bytes(255 - x for x in b)


def _sort_one(views: list[_ModelView], order: ModelOrder, search: _Search) -> list[_ModelView]:
    """Stable sort by one key; missing (and NaN) values last in both directions."""
    present, nans, missing = [], [], []
    values = {}
    for v in views:
        x = search.sort_value(v, order)
        if x is None:
            missing.append(v)
        elif isinstance(x, float) and math.isnan(x):
            nans.append(v)
        else:
            values[id(v)] = x
            present.append(v)
    present.sort(key=lambda v: values[id(v)], reverse=not order.ascending)
    return present + nans + missing


def search_logged_models(
    store, experiment_ids, filter_string, datasets, max_results, order_by, page_token
) -> Page[LoggedModel]:
    if isinstance(experiment_ids, (str, int)):
        experiment_ids = [experiment_ids]
    exps = sorted({check_experiment_id(e) for e in experiment_ids or ()})
    if not exps:
        raise invalid("search_logged_models needs at least one experiment id in 'experiment_ids'")
    limit = check_max_results(max_results or None, MAX_RESULTS_LIMIT, default=MAX_RESULTS_DEFAULT)
    offset = decode_offset(page_token)
    comps = parse_logged_model_filter(filter_string)
    orders = parse_logged_model_order_by(order_by)
    wanted = _parse_datasets(datasets)
    models_db = store.env.dbs["logged_models"]
    # In the default order one experiment's index is already sorted (creation DESC,
    # model key ASC), so the walk stops once the page and one more match are found:
    # runs:/ resolution pages through a busy experiment's models this way.
    want = offset + limit + 1 if len(exps) == 1 and not orders else None
    with store.env.read() as txn:
        search = _Search(store, txn, wanted)
        views: list[_ModelView] = []
        for exp in exps:
            prefix = u64(exp)
            with txn.cursor(db=store.env.dbs["exp_logged_models"]) as cur:
                if not cur.set_range(prefix):
                    continue
                for k in cur.iternext(values=False):
                    if not k.startswith(prefix) or len(views) == want:
                        break
                    rec = MODEL.decode(txn.get(k[16:32], db=models_db))
                    if rec.lifecycle_stage == LifecycleStage.DELETED:
                        continue
                    view = _ModelView(k[16:32], rec)
                    if search.matches(view, comps):
                        views.append(view)
        if want is None:
            # Stable sorts from the last key to the first; ties fall back to the default
            # order (creation DESC, model_id ASC) unless a key already names those fields.
            views.sort(key=lambda v: v.key)
            views.sort(key=lambda v: v.rec.creation_time, reverse=True)
            for order in reversed(orders):
                views = _sort_one(views, order, search)
        page = views[offset : offset + limit]
        models = [store.entity(v.key, v.rec, store.model_metrics(txn, v.key)) for v in page]
    token = encode_offset(offset + limit) if len(views) > offset + limit else None
    return Page(models, token)
