"""search_runs: MLflow's filter and order semantics, answered from LMDB indexes.

Plans, cheapest first:
- order by one metric (the common "best runs" query): walk the `metric_order` index of
  that key in order and stop once the page is full; runs without the metric follow;
- no order_by: walk `exp_runs`, already in MLflow's default order (start_time DESC,
  run_id ASC), and stop once the page is full;
- anything else: take candidates from the most selective index the filter allows
  (run_id IN, a param equality, a metric range), else every run of the experiments,
  then evaluate and sort in memory.
Every candidate is checked against the whole filter, so an index only ever narrows.
Comparisons read just the fields they name; only the runs of the returned page are
decoded in full.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from cairn.engine.errors import invalid
from cairn.engine.query.pagination import Page, check_max_results, decode_offset, encode_offset
from cairn.engine.query.searchfilter import Comparison, OrderKey, parse_order_by, parse_search_filter
from cairn.engine.store.keys import (
    SORTABLE_F64_WIDTH,
    param_hash,
    prefix_end,
    read_sortable_f64,
    run_key,
    sortable_f64,
    u32,
    u64,
)
from cairn.engine.tracking.contract import MAX_RESULTS_DEFAULT, MAX_RESULTS_SEARCH_RUNS
from cairn.engine.tracking.entities import LifecycleStage, Run, ViewType
from cairn.engine.tracking.records import DATASET, INPUT, LATEST, RUN, RunRecord
from cairn.engine.tracking.validation import check_experiment_id

_ORDER_PREFIX = 12  # exp(8) + nid(4)
_NAN_CLASS = b"\x01"
_NUM_CLASS = b"\x00"


class _RunView:
    """One candidate run, reading each field at most once and only when asked."""

    __slots__ = ("ctx", "run_b", "_rec", "_cache")

    def __init__(self, ctx: "_Context", run_b: bytes, rec: RunRecord | None = None):
        self.ctx = ctx
        self.run_b = run_b
        self._rec = rec
        self._cache: dict = {}

    @property
    def rec(self) -> RunRecord:
        if self._rec is None:
            self._rec = RUN.decode(self.ctx.txn.get(self.run_b, db=self.ctx.dbs["runs"]))
        return self._rec

    def value(self, entity: str, key: str):
        ck = (entity, key)
        if ck in self._cache:
            return self._cache[ck]
        v = self.ctx.read_value(self, entity, key)
        self._cache[ck] = v
        return v


class _Context:
    def __init__(self, store, txn):
        self.store = store
        self.txn = txn
        self.dbs = store.env.dbs
        self._nids: dict[str, int | None] = {}
        self._tables = {"metric": self.dbs["latest"], "param": self.dbs["params"], "tag": self.dbs["tags"]}

    def nid(self, name: str) -> int | None:
        if name not in self._nids:
            self._nids[name] = self.store.names.lookup(self.txn, name)
        return self._nids[name]

    def read_value(self, view: _RunView, entity: str, key: str):
        if entity == "attribute":
            return _attribute(view, key)
        if entity == "dataset":
            return self._datasets(view)
        nid = self._nids[key] if key in self._nids else self.nid(key)
        if nid is None:
            return None
        raw = self.txn.get(view.run_b + u32(nid), db=self._tables[entity])
        if raw is None:
            return None
        return LATEST.decode(raw).value if entity == "metric" else raw.decode()

    def _datasets(self, view: _RunView) -> list[dict[str, str | None]]:
        out = []
        exp = u64(view.rec.experiment_id)
        for h, raw in self.store._scan_run(self.txn, "run_inputs", view.run_b):
            ds = DATASET.decode(self.txn.get(exp + h, db=self.dbs["datasets"]))
            tags = dict(INPUT.decode(raw).tags)
            out.append({"name": ds.name, "digest": ds.digest, "context": tags.get("mlflow.data.context")})
        return out


_RUN_ATTRIBUTES = frozenset(
    ("run_name", "status", "start_time", "end_time", "user_id", "artifact_uri", "lifecycle_stage")
)


def _attribute(view: _RunView, key: str):
    if key in ("run_id", "run_uuid"):
        return view.run_b.hex()
    if key in _RUN_ATTRIBUTES:  # RunRecord fields of the same names
        return getattr(view.rec, key)
    raise invalid(f"Invalid attribute key '{key}' specified")


def _matches(view: _RunView, comps: list[Comparison]) -> bool:
    for c in comps:
        if c.entity == "dataset":
            if not any(c.test(d[c.key]) for d in view.value("dataset", "")):
                return False
        elif not c.test(view.value(c.entity, c.key)):
            return False
    return True


def _visible(rec: RunRecord, view_type: int) -> bool:
    if view_type == ViewType.ALL:
        return True
    deleted = rec.lifecycle_stage == LifecycleStage.DELETED
    return deleted if view_type == ViewType.DELETED_ONLY else not deleted


def search_runs(store, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token) -> Page[Run]:
    view_type = ViewType.parse(run_view_type)
    limit = check_max_results(max_results, MAX_RESULTS_SEARCH_RUNS, default=MAX_RESULTS_DEFAULT)
    offset = decode_offset(page_token)
    if isinstance(experiment_ids, (str, int)):
        experiment_ids = [experiment_ids]
    exps = sorted({check_experiment_id(e) for e in experiment_ids})
    comps = parse_search_filter(filter_string)
    orders = parse_order_by(list(order_by) if order_by else None)
    want = offset + limit + 1  # one more than the page tells whether another page follows
    with store.env.read() as txn:
        ctx = _Context(store, txn)
        total = txn.stat(ctx.dbs["exp_runs"])["entries"]
        walk = _walk_plan(ctx, exps, orders, comps)
        # A walk in index order stops after `want` matches, visiting about
        # want * runs / candidates runs; sorting an index's candidates visits each once.
        # So candidates are only worth collecting while they stay under sqrt(want * runs).
        cap = math.isqrt(want * total) + 1 if walk is not None else None
        candidates = _index_candidates(ctx, exps, comps, cap)
        if walk is not None and (candidates is None or candidates is _TOO_MANY):
            found = _take(walk, comps, view_type, want)
        else:
            if candidates is _TOO_MANY:
                candidates = _index_candidates(ctx, exps, comps, None)
            found = _sorted_all(ctx, exps, comps, view_type, orders, candidates)
        page = found[offset : offset + limit]
        runs = [store.assemble_run(txn, v.run_b, v.rec) for v in page]
    token = encode_offset(offset + limit) if len(found) > offset + limit else None
    return Page(runs, token)


def _walk_plan(ctx: _Context, exps: list[int], orders: list[OrderKey], comps) -> Iterator[_RunView] | None:
    """A lazy walk in the requested order, where an index gives that order."""
    if len(exps) != 1:
        return None
    if not orders:
        return _default_walk(ctx, exps[0])
    if len(orders) == 1 and orders[0].entity == "metric":
        return _metric_walk(ctx, exps[0], orders[0], comps)
    return None


def _take(views: Iterator[_RunView], comps, view_type: int, want: int) -> list[_RunView]:
    out = []
    for v in views:
        if _matches(v, comps) and _visible(v.rec, view_type):
            out.append(v)
            if len(out) >= want:
                break
    return out


def _prefix_keys(txn, db, prefix: bytes, reverse: bool = False) -> Iterator[bytes]:
    with txn.cursor(db=db) as cur:
        if not reverse:
            if not cur.set_range(prefix):
                return
            for k in cur.iternext(values=False):
                if not k.startswith(prefix):
                    return
                yield k
        else:
            end = prefix_end(prefix)
            if end is None or not cur.set_range(end):
                if not cur.last():
                    return
            else:
                if not cur.prev():
                    return
            for k in cur.iterprev(values=False):
                if not k.startswith(prefix):
                    return
                yield k


def _default_walk(ctx: _Context, exp: int) -> Iterator[_RunView]:
    """Runs of one experiment in start_time DESC, run_id ASC order."""
    for k in _prefix_keys(ctx.txn, ctx.dbs["exp_runs"], u64(exp)):
        yield _RunView(ctx, k[16:32])


def _metric_walk(ctx: _Context, exp: int, order: OrderKey, comps=()) -> Iterator[_RunView]:
    """Runs ordered by one metric's latest value, numbers first (ties by start_time DESC,
    run_id ASC), then NaN, then runs without the metric, as MLflow's SQL store.

    The value comes from the index key, so a filter on the same metric costs nothing,
    and a bound on it in the walk's direction (`metrics.acc > 0.5` walking DESC) ends the
    walk where it is crossed: NaN and missing values can't satisfy such a bound either."""
    nid = ctx.nid(order.key)
    seen: set[bytes] = set()
    if nid is not None:
        base = u64(exp) + u32(nid)
        crossed = _bound_crossed(order, comps)
        for view, value in _value_groups(ctx, base + _NUM_CLASS, not order.ascending, seen):
            if crossed is not None and crossed(value):
                return
            view._cache[("metric", order.key)] = value
            yield view
        if crossed is not None:
            return
        for view, _nan in _value_groups(ctx, base + _NAN_CLASS, False, seen):
            view._cache[("metric", order.key)] = math.nan
            yield view
    for view in _default_walk(ctx, exp):
        if view.run_b not in seen:
            yield view


def _bound_crossed(order: OrderKey, comps) -> Callable[[float], bool] | None:
    """A test telling when a walk over `order`'s metric has passed every value the
    filter's numeric bounds on that metric allow, or None when there is no such bound."""
    tests = []
    for c in comps:
        if c.entity != "metric" or c.key != order.key or _is_nan(c.value):
            continue
        x = float(c.value)
        if order.ascending:
            if c.op in ("<", "<=", "="):
                tests.append((lambda v, x=x: v >= x) if c.op == "<" else (lambda v, x=x: v > x))
        elif c.op in (">", ">=", "="):
            tests.append((lambda v, x=x: v <= x) if c.op == ">" else (lambda v, x=x: v < x))
    if not tests:
        return None
    return lambda v: any(t(v) for t in tests)


def _value_groups(ctx: _Context, prefix: bytes, reverse: bool, seen: set[bytes]) -> Iterator[tuple[_RunView, float]]:
    """(run, value) in index order, runs with equal values in the default tie order."""
    group: list[_RunView] = []
    group_key = None
    group_value = 0.0
    lo, hi = _ORDER_PREFIX, _ORDER_PREFIX + SORTABLE_F64_WIDTH
    for k in _prefix_keys(ctx.txn, ctx.dbs["metric_order"], prefix, reverse):
        vkey = k[lo:hi]
        if vkey != group_key:
            for v in _tie_sorted(group):
                yield v, group_value
            group, group_key, group_value = [], vkey, read_sortable_f64(k, lo)
        run_b = k[hi:]
        seen.add(run_b)
        group.append(_RunView(ctx, run_b))
    for v in _tie_sorted(group):
        yield v, group_value


def _tie_sorted(group: list[_RunView]) -> list[_RunView]:
    if len(group) > 1:
        group.sort(key=lambda v: (-v.rec.start_time, v.run_b))
    return group


# ---------------------------------------------------------------------- general plan
_TOO_MANY: list[bytes] = []  # sentinel: more candidates than the cap


def _index_candidates(ctx: _Context, exps: list[int], comps: list[Comparison], cap: int | None):
    """Run keys from the most selective index the filter permits; None when no index
    applies; `_TOO_MANY` when there are more than `cap` (then a walk is cheaper)."""
    for c in comps:
        if c.entity == "attribute" and c.key == "run_id" and c.op in ("=", "IN"):
            ids = [c.value] if c.op == "=" else list(c.value)
            return [run_key(i) for i in ids if _is_run_id(i)]
    keys: Iterator[bytes] | None = None
    for c in comps:
        if c.entity == "param" and c.op == "=":
            nid = ctx.nid(c.key)
            if nid is None:
                return []
            h = param_hash(c.value)
            db = ctx.dbs["param_index"]
            keys = (k for e in exps for k in _prefix_keys(ctx.txn, db, u64(e) + u32(nid) + h))
            break
    if keys is None:
        for c in comps:
            if c.entity == "metric" and c.op in ("=", ">", ">=", "<", "<=") and not _is_nan(c.value):
                nid = ctx.nid(c.key)
                if nid is None:
                    return []
                keys = (k for e in exps for k in _metric_range(ctx, e, nid, c.op, float(c.value)))
                break
    if keys is None:
        return None
    out = []
    for k in keys:
        out.append(k[-16:])
        if cap is not None and len(out) > cap:
            return _TOO_MANY
    return out


def _metric_range(ctx: _Context, exp: int, nid: int, op: str, x: float) -> Iterator[bytes]:
    base = u64(exp) + u32(nid)
    bound = base + sortable_f64(x)
    width = len(base) + SORTABLE_F64_WIDTH
    with ctx.txn.cursor(db=ctx.dbs["metric_order"]) as cur:
        if op in ("=", ">", ">="):
            if not cur.set_range(bound):
                return
            for k in cur.iternext(values=False):
                if not k.startswith(base + _NUM_CLASS):
                    return
                if op == "=" and k[:width] != bound:
                    return
                if op == ">" and k[:width] == bound:
                    continue
                yield k
        else:
            if not cur.set_range(base + _NUM_CLASS):
                return
            for k in cur.iternext(values=False):
                if not k.startswith(base + _NUM_CLASS) or k[:width] > bound:
                    return
                if op == "<" and k[:width] == bound:
                    return
                yield k


def _is_run_id(s) -> bool:
    return isinstance(s, str) and len(s) == 32 and all(ch in "0123456789abcdef" for ch in s)


def _is_nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _sorted_all(
    ctx: _Context, exps: list[int], comps, view_type: int, orders: list[OrderKey], candidates: list[bytes] | None
) -> list[_RunView]:
    runs_db = ctx.dbs["runs"]
    views: list[_RunView] = []
    if candidates is None:
        for e in exps:
            views.extend(_default_walk(ctx, e))
    else:
        wanted = set(exps)
        for run_b in dict.fromkeys(candidates):
            raw = ctx.txn.get(run_b, db=runs_db)
            if raw is not None:
                rec = RUN.decode(raw)
                if rec.experiment_id in wanted:
                    views.append(_RunView(ctx, run_b, rec))
    views = [v for v in views if _visible(v.rec, view_type) and _matches(v, comps)]
    # Stable sorts from the last key to the first: ties fall back to the default order.
    views.sort(key=lambda v: v.run_b)
    views.sort(key=lambda v: v.rec.start_time, reverse=True)
    for order in reversed(orders):
        views = _sort_one(views, order)
    return views


def _sort_one(views: list[_RunView], order: OrderKey) -> list[_RunView]:
    """Sort by one key; NaN and then missing values last in both directions (MLflow)."""
    present, nans, missing = [], [], []
    for v in views:
        x = v.value(order.entity, order.key)
        if x is None:
            missing.append(v)
        elif isinstance(x, float) and math.isnan(x):
            nans.append(v)
        else:
            present.append(v)
    present.sort(key=lambda v: v.value(order.entity, order.key), reverse=not order.ascending)
    return present + nans + missing

