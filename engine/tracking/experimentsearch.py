"""search_experiments: MLflow's experiment filter and order semantics. Experiments are few
(hundreds, not millions), so they are filtered and sorted in memory."""
from __future__ import annotations

import math

from cairn.engine.query.pagination import Page, check_max_results, decode_offset, page_of
from cairn.engine.query.searchfilter import parse_experiment_filter, parse_experiment_order_by
from cairn.engine.tracking.contract import MAX_RESULTS_DEFAULT
from cairn.engine.tracking.entities import Experiment, LifecycleStage, ViewType

MAX_RESULTS_EXPERIMENTS = 50_000


def _field(exp: Experiment, entity: str, key: str):
    if entity == "tag":
        return exp.tags_dict.get(key)
    if key == "experiment_id":
        return int(exp.experiment_id)
    return getattr(exp, key)


def search_experiments(
    experiments: list[Experiment], view_type, max_results, filter_string, order_by, page_token
) -> Page[Experiment]:
    view = ViewType.parse(view_type)
    limit = check_max_results(max_results, MAX_RESULTS_EXPERIMENTS, default=MAX_RESULTS_DEFAULT)
    offset = decode_offset(page_token)
    comps = parse_experiment_filter(filter_string)
    orders = parse_experiment_order_by(list(order_by) if order_by else None)
    out = []
    for e in experiments:
        deleted = e.lifecycle_stage == LifecycleStage.DELETED
        if view == ViewType.ACTIVE_ONLY and deleted or view == ViewType.DELETED_ONLY and not deleted:
            continue
        if all(c.test(_field(e, c.entity, c.key)) for c in comps):
            out.append(e)
    # As MLflow's SQL store: the default order is creation_time DESC, experiment_id ASC;
    # after explicit keys the tie-breaker is experiment_id DESC.
    out.sort(key=lambda e: int(e.experiment_id), reverse=bool(orders))
    if not orders:
        out.sort(key=lambda e: e.creation_time, reverse=True)
    for o in reversed(orders):
        present = [e for e in out if _sortable(_field(e, o.entity, o.key))]
        missing = [e for e in out if not _sortable(_field(e, o.entity, o.key))]
        present.sort(key=lambda e: _field(e, o.entity, o.key), reverse=not o.ascending)
        out = present + missing
    items, token = page_of(out, offset, limit)
    return Page(items, token)


def _sortable(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))
