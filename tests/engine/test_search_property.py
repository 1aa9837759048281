"""search_runs against a plain-Python reference, over random runs, filters and orders.

The reference here is written from MLflow's SQL store (sqlalchemy_store.py:
`_get_sqlalchemy_filter_clauses`, `_get_orderby_clauses`, `_update_latest_metric_if_necessary`),
and reads only what the test itself logged; it never calls the engine's search code:

- a clause on a key the run lacks never matches, not even `!=`; only IS NULL does;
- metrics compare on the latest value: the point with the greatest (step, timestamp,
  value), NaN counting as 0; a NaN latest value satisfies `!=` and nothing else;
- LIKE is case-sensitive SQL LIKE (`%` any run, `_` one character, no escape), ILIKE
  ignores (ASCII) case;
- a `datasets.*` clause matches when any one of the run's inputs matches it;
- order: for each key, real values (ascending or descending), then NaN, then missing;
  ties, and the default order: start_time DESC, then run_id ASC.
(MLflow stores +-inf as +-1.797e308; the filter literals stay far from there, where that
would show.)

Every query pages through all of its pages (max_results 1..40) and the concatenation
must equal the reference list exactly, order included. The planner in engine/tracking/runsearch.py
chooses among a metric-order index walk, a default-order walk and candidates from an
index (run_id IN, param equality, metric range) or a full sort, by selectivity; the
populations and queries here are shaped so that every plan is taken.

Two tests: one store per module with a seeded population of ~120 runs and many queries,
and one where hypothesis draws a small population too (a fresh store per example).
"""
from __future__ import annotations

import functools
import math
import operator
import random
import tempfile
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from cairn import engine
from cairn.engine.tracking.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag

RUN_NAME_TAG = "mlflow.runName"
CONTEXT_TAG = "mlflow.data.context"
NAN, INF = float("nan"), float("inf")

# -- what the populations are made of ----------------------------------------------
# Small pools, so that values tie, keys go missing and filters hit something.
START_TIMES = [1_000, 1_000, 2_000, 3_000, 3_000, 3_000, 5_000]
END_TIMES = [None, 4_000, 6_000, 6_000]
USERS = ["alice", "bob", ""]
RUN_NAMES = ["alpha", "Alpha", "beta", "al_pha", "run%1", "gamma-2", "b"]
METRIC_KEYS = ["a", "b", "m x"]
METRIC_VALUES = [0.0, -0.0, 1.0, 1.0, 1.5, -2.0, 3.0, 100.0, -0.001, 2.5, NAN, INF, -INF]
STEPS = [-1, 0, 0, 1, 2, 5]
TIMESTAMPS = [0, 10, 20, 20, 30]
PARAM_KEYS = ["p", "q", "p s"]
PARAM_VALUES = [
    "1", "1", "1", "abc", "abc", "10", "9", "01", "1.0", "-2", "abc", "ABC", "aBc", "a_c", "a%c", "abc_d", "50%", "x y",
]
TAG_KEYS = ["t", "team x"]
TAG_VALUES = ["red", "Red", "blue", "re_d", "r%d", "10", "2", ""]
DATASETS = [("train", "d1"), ("train", "d2"), ("eval", "d3"), ("Eval_set", "d4")]
CONTEXTS = ["training", "eval", "Training", None]

# What the filters compare with: the pools above plus values nothing has.
METRIC_LITERALS = ["0", "-0.0", "1", "1.0", "1.5", "-2", "3e0", "100", "-0.001", "2.5", ".5", "1e9", "-1e9"]
PARAM_PATTERNS = ["a%", "%c", "a_c", "%B%", "1%", "_", "%", "__", "a%c", "%\\_%", "%_%", "abc", "A%", "%%", "x_y"]
TAG_PATTERNS = ["r%", "%d", "re_d", "R%", "%E%", "_", "%", "", "r_d", "1%"]
NAME_VALUES = RUN_NAMES + ["ALPHA", "gamma"]
NAME_PATTERNS = ["a%", "A%", "%a", "al_pha", "run%", "%\\%%", "_", "%-%", "%"]
STATUS_VALUES = list(RunStatus.ALL) + ["finished", "DONE"]
STATUS_PATTERNS = ["F%", "%ED", "%NN%", "_UNNING", "f%", "%", "KILLED"]
START_LITERALS = ["999", "1000", "1000.0", "1000.5", "2000", "2500", "3000", "3e3", "5000", "6000"]
END_LITERALS = ["3999", "4000", "5000", "6000", "6000.0"]
DATASET_VALUES = {
    "name": ["train", "eval", "Eval_set", "TRAIN", "nope"],
    "digest": ["d1", "d2", "d3", "d4", "D1", "d9"],
    "context": ["training", "eval", "Training", "none"],
}
DATASET_PATTERNS = {
    "name": ["tr%", "%val%", "E%", "%_set", "_val", "TR%", "%"],
    "digest": ["d_", "d%", "D%", "%3"],
    "context": ["train%", "T%", "%al", "e_al", "%"],
}

NUMERIC_OPS = ["=", "!=", ">", ">=", "<", "<="]
TEXT_OPS = ["=", "!=", "LIKE", "ILIKE"]
NULLABLE_OPS = TEXT_OPS + ["IS NULL", "IS NOT NULL"]
LIST_OPS = TEXT_OPS + ["IN", "NOT IN"]


# -- the population, as the test logged it ------------------------------------------
@dataclass
class RefRun:
    run_id: str
    experiment_id: str
    start_time: int
    run_name: str
    user_id: str
    status: str = "RUNNING"
    end_time: int | None = None
    deleted: bool = False
    points: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: list[dict[str, str | None]] = field(default_factory=list)

    def latest(self, key: str) -> float | None:
        """The value of the point with the greatest (step, timestamp, value), NaN as 0."""
        pts = self.points.get(key)
        if not pts:
            return None
        return max(pts, key=lambda p: (p[0], p[1], 0.0 if math.isnan(p[2]) else p[2]))[2]

    def value(self, entity: str, key: str):
        if entity == "metric":
            return self.latest(key)
        if entity == "param":
            return self.params.get(key)
        if entity == "tag":
            return self.tags.get(key)
        assert entity == "attribute", entity
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "user_id": self.user_id,
            "lifecycle_stage": "deleted" if self.deleted else "active",
        }[key]


@dataclass(repr=False)
class Population:
    experiment_ids: list[str]
    runs: list[RefRun]

    def __repr__(self) -> str:  # hypothesis prints the fixture's value on failure
        return f"Population({len(self.runs)} runs over experiments {self.experiment_ids})"

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]


def _zero_or_nan(x: float) -> bool:
    return math.isnan(x) or x == 0.0


def _metric_points(rng: random.Random) -> list[tuple[int, int, float]]:
    """1-3 points (rarely 20), with repeated steps and timestamps. Never two points whose
    (step, timestamp) tie while one is NaN and the other 0: MLflow stores NaN as 0, so
    which of those is the latest would depend on arrival order."""
    n = 20 if rng.random() < 0.04 else rng.choice([1, 1, 2, 3])
    pts: list[tuple[int, int, float]] = []
    while len(pts) < n:
        step, ts, value = rng.choice(STEPS), rng.choice(TIMESTAMPS), rng.choice(METRIC_VALUES)
        if any(
            (s, t) == (step, ts) and math.isnan(v) != math.isnan(value) and _zero_or_nan(v) and _zero_or_nan(value)
            for s, t, v in pts
        ):
            ts = max(t for _s, t, _v in pts) + 1  # a fresh timestamp cannot tie
        pts.append((step, ts, value))
    return pts


def build_population(store, rng: random.Random, n_runs: int, n_exps: int, label: str) -> Population:
    """Log `n_runs` random runs over `n_exps` new experiments through the public API and
    return what was logged."""
    exps = [store.create_experiment(f"{label}-{i}") for i in range(n_exps)]
    runs = []
    for _ in range(n_runs):
        ref = RefRun(
            run_id="",
            experiment_id=rng.choice(exps),
            start_time=rng.choice(START_TIMES),
            run_name=rng.choice(RUN_NAMES),
            user_id=rng.choice(USERS),
        )
        run = store.create_run(ref.experiment_id, user_id=ref.user_id, start_time=ref.start_time, run_name=ref.run_name)
        ref.run_id = rid = run.info.run_id
        ref.tags[RUN_NAME_TAG] = ref.run_name

        ref.params = {k: rng.choice(PARAM_VALUES) for k in PARAM_KEYS if rng.random() < 0.6}
        tags = {k: rng.choice(TAG_VALUES) for k in TAG_KEYS if rng.random() < 0.6}
        ref.tags.update(tags)
        batches: list[list[Metric]] = [[], []]
        buffered: list[Metric] = []  # logged one by one through the async buffer
        for key in METRIC_KEYS:
            if rng.random() < 0.35:
                continue
            pts = ref.points[key] = _metric_points(rng)
            how = rng.random()
            for step, ts, value in pts:
                m = Metric(key, value, ts, step)
                if len(pts) >= 16:
                    batches[0].append(m)  # one big group: the vectorised latest-point path
                elif how < 0.25:
                    buffered.append(m)
                else:
                    batches[rng.random() < 0.5].append(m)
        store.log_batch(
            rid,
            metrics=batches[0],
            params=[Param(k, v) for k, v in ref.params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if batches[1]:
            store.log_batch(rid, metrics=batches[1])
        for m in buffered:
            store.log_metric(rid, m)
        if tags and rng.random() < 0.15:
            gone = rng.choice(sorted(tags))
            store.delete_tag(rid, gone)
            del ref.tags[gone]

        if rng.random() < 0.4:
            chosen = rng.sample(DATASETS, rng.choice([1, 1, 2]))
            inputs = []
            for name, digest in chosen:
                context = rng.choice(CONTEXTS)
                ref.inputs.append({"name": name, "digest": digest, "context": context})
                tags_ = [InputTag(CONTEXT_TAG, context)] if context is not None else []
                inputs.append(DatasetInput(dataset=Dataset(name=name, digest=digest, source_type="local"), tags=tags_))
            store.log_inputs(rid, inputs)

        status = rng.choice(list(RunStatus.ALL))
        end_time = rng.choice(END_TIMES)
        if status != "RUNNING" or end_time is not None:
            store.update_run_info(rid, status, end_time, None)
            ref.status, ref.end_time = status, end_time
        if rng.random() < 0.15:
            new_name = rng.choice(RUN_NAMES)
            store.update_run_info(rid, None, None, new_name)
            ref.run_name = ref.tags[RUN_NAME_TAG] = new_name
        if rng.random() < 0.18:
            store.delete_run(rid)
            ref.deleted = True
            if rng.random() < 0.2:
                store.restore_run(rid)
                ref.deleted = False
        runs.append(ref)
    store.flush()
    return Population(exps, runs)


# -- the reference ------------------------------------------------------------------
@dataclass(frozen=True)
class Clause:
    entity: str  # metric, param, tag, attribute, dataset
    key: str
    op: str
    value: object  # float for metrics, int/float for times, str, tuple for IN, None


@dataclass(frozen=True)
class Query:
    experiment_ids: tuple[str, ...]
    filter_string: str | None
    clauses: tuple[Clause, ...]
    order_by: tuple[str, ...]
    orders: tuple[tuple[str, str, bool], ...]  # (entity, key, ascending)
    view_type: int | str
    max_results: int


def sql_like(s: str, pattern: str) -> bool:
    """SQL LIKE by dynamic programming: '%' any run of characters, '_' exactly one."""

    @functools.cache
    def match(i: int, j: int) -> bool:
        if j == len(pattern):
            return i == len(s)
        if pattern[j] == "%":
            return match(i, j + 1) or (i < len(s) and match(i + 1, j))
        return i < len(s) and (pattern[j] == "_" or pattern[j] == s[i]) and match(i + 1, j + 1)

    return match(0, 0)


_COMPARE = {
    "=": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


def clause_holds(c: Clause, actual) -> bool:
    """One clause on one present-or-missing (None) value, as MLflow's SQL store."""
    if c.op == "IS NULL":
        return actual is None
    if actual is None:
        return False  # SQL: a missing row satisfies nothing but IS NULL
    if c.op == "IS NOT NULL":
        return True
    if isinstance(actual, float) and math.isnan(actual):
        return c.op == "!="  # stored as 0 with is_nan; only != lets it through
    if c.op == "IN":
        return actual in c.value
    if c.op == "NOT IN":
        return actual not in c.value
    if c.op == "LIKE":
        return sql_like(actual, c.value)
    if c.op == "ILIKE":
        return sql_like(actual.lower(), c.value.lower())
    return _COMPARE[c.op](actual, c.value)


def run_matches(run: RefRun, c: Clause) -> bool:
    if c.entity == "dataset":
        return any(clause_holds(c, inp[c.key]) for inp in run.inputs)
    return clause_holds(c, run.value(c.entity, c.key))


def _visible(run: RefRun, view_type) -> bool:
    view = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}.get(view_type, view_type)
    return view == 3 or run.deleted == (view == 2)


def _rank(x) -> int:
    if x is None:
        return 2
    if isinstance(x, float) and math.isnan(x):
        return 1
    return 0


def reference(pop: Population, q: Query) -> list[str]:
    exps = set(q.experiment_ids)
    hits = [
        r for r in pop.runs
        if r.experiment_id in exps and _visible(r, q.view_type) and all(run_matches(r, c) for c in q.clauses)
    ]

    def cmp(x: RefRun, y: RefRun) -> int:
        for entity, key, ascending in q.orders:
            a, b = x.value(entity, key), y.value(entity, key)
            ra, rb = _rank(a), _rank(b)
            if ra != rb:
                return -1 if ra < rb else 1  # NaN, then missing, last in both directions
            if ra == 0 and a != b:
                less = -1 if a < b else 1
                return less if ascending else -less
        if x.start_time != y.start_time:
            return -1 if x.start_time > y.start_time else 1
        return -1 if x.run_id < y.run_id else int(x.run_id > y.run_id)

    return [r.run_id for r in sorted(hits, key=functools.cmp_to_key(cmp))]


# -- random queries -----------------------------------------------------------------
def _word(draw, word: str) -> str:
    return draw(st.sampled_from([word, word.lower()])) if word[0].isalpha() else word


def _key(draw, prefixes: list[str], key: str) -> str:
    prefix = draw(st.sampled_from(prefixes))
    if " " in key:
        quoted = draw(st.sampled_from([f"`{key}`", f'"{key}"']))
    else:
        quoted = draw(st.sampled_from([key, key, f"`{key}`", f'"{key}"']))
    return f"{prefix}.{quoted}"


def _string(draw, value: str) -> str:
    q = draw(st.sampled_from(["'", "'", '"']))
    return f"{q}{value}{q}"


def _text_value(draw, op: str, values: list[str], patterns: list[str]):
    if op in ("IN", "NOT IN"):
        return tuple(draw(st.lists(st.sampled_from(values), min_size=1, max_size=3)))
    if op in ("LIKE", "ILIKE"):
        return draw(st.sampled_from(patterns + values))
    return draw(st.sampled_from(values))


def _render(draw, ident: str, op: str, value, numeric_literal: str | None = None) -> str:
    spelled = " ".join(_word(draw, w) for w in op.split())
    if op in ("IS NULL", "IS NOT NULL"):
        return f"{ident} {spelled}"
    if op in ("IN", "NOT IN"):
        trailing = draw(st.sampled_from(["", "", ","]))
        items = ", ".join(_string(draw, v) for v in value)
        return f"{ident} {spelled} ({items}{trailing})"
    text = numeric_literal if numeric_literal is not None else _string(draw, value)
    space = draw(st.sampled_from([" ", " ", ""])) if not spelled[0].isalpha() else " "
    return f"{ident}{space}{spelled}{space}{text}"


@st.composite
def clauses(draw, pop: Population) -> tuple[str, Clause]:
    kind = draw(st.sampled_from(["metric"] * 4 + ["param"] * 3 + ["tag"] * 2 + ["attribute"] * 3 + ["dataset"] * 2))
    if kind == "metric":
        key = draw(st.sampled_from(METRIC_KEYS + ["zz", "p"]))  # "p" is a name, but no metric
        op = draw(st.sampled_from(NUMERIC_OPS))
        lit = draw(st.sampled_from(METRIC_LITERALS))
        ident = _key(draw, ["metrics", "metric"], key)
        return _render(draw, ident, op, None, lit), Clause("metric", key, op, float(lit))
    if kind in ("param", "tag"):
        keys, values, patterns = (
            (PARAM_KEYS, PARAM_VALUES, PARAM_PATTERNS) if kind == "param"
            else (TAG_KEYS + [RUN_NAME_TAG], TAG_VALUES + RUN_NAMES, TAG_PATTERNS + NAME_PATTERNS)
        )
        key = draw(st.sampled_from(keys + ["zz"]))
        op = draw(st.sampled_from(NULLABLE_OPS))
        value = None if "NULL" in op else _text_value(draw, op, values + ["zzz"], patterns)
        prefixes = ["params", "param", "parameters"] if kind == "param" else ["tags", "tag"]
        return _render(draw, _key(draw, prefixes, key), op, value), Clause(kind, key, op, value)
    if kind == "dataset":
        key = draw(st.sampled_from(["name", "name", "digest", "context", "context"]))
        op = draw(st.sampled_from(LIST_OPS))
        value = _text_value(draw, op, DATASET_VALUES[key], DATASET_PATTERNS[key])
        ident = f"{draw(st.sampled_from(['datasets', 'dataset']))}.{key}"
        return _render(draw, ident, op, value), Clause("dataset", key, op, value)

    attr = draw(st.sampled_from([
        "status", "run_name", "start_time", "start_time", "end_time", "run_id", "run_id", "user_id", "lifecycle_stage",
    ]))
    prefix = draw(st.sampled_from(["attributes.", "attributes.", "attribute.", "attr.", "run.", ""]))
    if attr in ("start_time", "end_time"):
        aliases = ["start_time", "start_time", "created", "Created"] if attr == "start_time" else [attr]
        spelled = draw(st.sampled_from(aliases))
        op = draw(st.sampled_from(NUMERIC_OPS))
        lit = draw(st.sampled_from(START_LITERALS if attr == "start_time" else END_LITERALS))
        number = float(lit) if any(ch in lit for ch in ".eE") else int(lit)
        return _render(draw, prefix + spelled, op, None, lit), Clause("attribute", attr, op, number)
    if attr == "run_id":
        op = draw(st.sampled_from(["=", "!=", "IN", "IN", "NOT IN", "LIKE"]))
        real = pop.run_ids or ["0" * 32]
        others = ["0" * 32, "not-a-run-id", real[0].upper()]
        if op == "LIKE":
            value = draw(st.sampled_from(real))[: draw(st.integers(0, 3))] + "%"
        elif op in ("IN", "NOT IN"):
            value = tuple(draw(st.lists(st.sampled_from(real), min_size=1, max_size=6)))
            value += tuple(draw(st.lists(st.sampled_from(others), max_size=1)))
        else:
            value = draw(st.sampled_from(real + others[:1]))
        return _render(draw, prefix + "run_id", op, value), Clause("attribute", "run_id", op, value)
    values, patterns = {
        "status": (STATUS_VALUES, STATUS_PATTERNS),
        "run_name": (NAME_VALUES, NAME_PATTERNS),
        "user_id": (USERS + ["carol"], ["a%", "%o%", "_", "%"]),
        "lifecycle_stage": (["active", "deleted", "Active"], ["act%", "%d", "A%"]),
    }[attr]
    op = draw(st.sampled_from(TEXT_OPS))
    value = _text_value(draw, op, values, patterns)
    return _render(draw, prefix + attr, op, value), Clause("attribute", attr, op, value)


ORDER_FIELDS = [
    ("metric", "a"), ("metric", "b"), ("metric", "m x"), ("metric", "zz"),
    ("param", "p"), ("param", "q"), ("param", "p s"),
    ("tag", "t"), ("tag", "team x"), ("tag", RUN_NAME_TAG),
    ("attribute", "start_time"), ("attribute", "run_name"), ("attribute", "status"),
    ("attribute", "end_time"), ("attribute", "user_id"), ("attribute", "run_id"),
    ("attribute", "lifecycle_stage"),
]
_ORDER_PREFIXES = {
    "metric": ["metrics", "metric"], "param": ["params", "param"], "tag": ["tags", "tag"],
    "attribute": ["attributes", "attribute", "attr"],
}


def _order_clause(draw, entity: str, key: str) -> tuple[str, tuple[str, str, bool]]:
    if entity == "attribute" and draw(st.booleans()):
        ident = draw(st.sampled_from(["created", "Created", key] if key == "start_time" else [key]))
    else:
        ident = _key(draw, _ORDER_PREFIXES[entity], key)
    direction = draw(st.sampled_from(["", " ASC", " DESC", " desc", " asc"]))
    return ident + direction, (entity, key, "DESC" not in direction.upper())


@st.composite
def queries(draw, pop: Population) -> Query:
    n = draw(st.integers(0, 3))
    drawn = [draw(clauses(pop)) for _ in range(n)]
    if drawn:
        joiner = draw(st.sampled_from([" AND ", " and ", "  AND  "]))
        filter_string = joiner.join(text for text, _ in drawn)
    else:
        filter_string = draw(st.sampled_from([None, "", "  "]))

    shape = draw(st.sampled_from(["none", "none", "metric", "metric", "one", "two"]))
    if shape == "none":
        fields = []
    elif shape == "metric":
        fields = [draw(st.sampled_from(ORDER_FIELDS[:4]))]
    else:
        fields = draw(st.lists(st.sampled_from(ORDER_FIELDS), min_size=int(shape == "two") + 1,
                               max_size=int(shape == "two") + 1, unique=True))
    rendered = [_order_clause(draw, e, k) for e, k in fields]

    exps = pop.experiment_ids
    experiment_ids = tuple(draw(st.sampled_from(
        [exps[:1], exps[:1], exps[-1:], exps, list(reversed(exps)), exps[:1] * 2, exps[:1] + ["0"]]
    )))
    return Query(
        experiment_ids=experiment_ids,
        filter_string=filter_string,
        clauses=tuple(c for _, c in drawn),
        order_by=tuple(text for text, _ in rendered),
        orders=tuple(o for _, o in rendered),
        view_type=draw(st.sampled_from([1, 1, 1, 2, 3, 3, "ALL", "DELETED_ONLY"])),
        max_results=draw(st.one_of(st.integers(1, 40), st.sampled_from([1, 2, 3, 5, 40]))),
    )


# -- running a query and comparing --------------------------------------------------
def search_all_pages(store, q: Query, limit: int) -> list[str]:
    """Every page of one search, concatenated; checks the paging contract on the way."""
    ids: list[str] = []
    token = None
    while True:
        page = store.search_runs(
            list(q.experiment_ids), q.filter_string, q.view_type, q.max_results,
            list(q.order_by) or None, token,
        )
        assert len(page.items) <= q.max_results
        ids.extend(r.info.run_id for r in page.items)
        if page.next_page_token is None:
            # Offset pages: only the last may be short, and it is never an empty page
            # after a full one (no token is handed out when nothing follows).
            assert page.items or token is None, "an empty page followed a page token"
            return ids
        assert len(page.items) == q.max_results, "a page with a next_page_token was short"
        assert len(ids) <= limit, "page tokens never end"
        token = page.next_page_token


def _describe(pop: Population, run_id: str, q: Query) -> str:
    run = next((r for r in pop.runs if r.run_id == run_id), None)
    if run is None:
        return f"{run_id}: not a run of this population"
    keys = {(c.entity, c.key) for c in q.clauses} | {(e, k) for e, k, _ in q.orders}
    shown = {f"{e}.{k}": (run.inputs if e == "dataset" else run.value(e, k)) for e, k in sorted(keys)}
    return (f"{run_id}: exp={run.experiment_id} start={run.start_time} deleted={run.deleted} "
            f"{shown}")


def check_query(store, pop: Population, q: Query) -> None:
    note(f"filter={q.filter_string!r} order_by={list(q.order_by)} view={q.view_type!r} "
         f"max_results={q.max_results} experiments={list(q.experiment_ids)}")
    expected = reference(pop, q)
    got = search_all_pages(store, q, limit=len(pop.runs) + q.max_results)
    if got != expected:
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        lines = [
            f"search_runs disagrees with the reference at position {first} "
            + f"(got {len(got)} runs, expected {len(expected)})",
            f"  filter={q.filter_string!r} order_by={list(q.order_by)} view={q.view_type!r} "
            + f"max_results={q.max_results} experiments={list(q.experiment_ids)}",
            f"  missing: {[_describe(pop, i, q) for i in expected if i not in got]}",
            f"  unexpected: {[_describe(pop, i, q) for i in got if i not in expected]}",
            "  expected order around there:",
            *[f"    {_describe(pop, i, q)}" for i in expected[max(0, first - 2): first + 3]],
            "  got order around there:",
            *[f"    {_describe(pop, i, q)}" for i in got[max(0, first - 2): first + 3]],
        ]
        pytest.fail("\n".join(lines))


# -- the tests ----------------------------------------------------------------------
_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One store with ~120 runs over two experiments, shared by every example."""
    eng = engine.open(tmp_path_factory.mktemp("search_property") / "data")
    pop = build_population(eng.tracking, random.Random(20240611), n_runs=120, n_exps=2, label="prop")
    yield eng.tracking, pop
    eng.close()


def test_population_reads_back_as_logged(seeded):
    """The reference's model of the data (latest metric, params, tags, inputs, info) is
    what the store holds; otherwise a search mismatch could be the model's fault."""
    store, pop = seeded
    assert len(pop.runs) == 120
    assert any(r.deleted for r in pop.runs) and any(math.isnan(r.latest("a") or 0.0) for r in pop.runs)
    for ref in pop.runs:
        run = store.get_run(ref.run_id)
        info = run.info
        assert (info.experiment_id, info.start_time, info.end_time, info.status, info.run_name, info.user_id) == (
            ref.experiment_id, ref.start_time, ref.end_time, ref.status, ref.run_name, ref.user_id)
        assert info.lifecycle_stage == ("deleted" if ref.deleted else "active")
        assert run.data.params_dict == ref.params
        assert run.data.tags_dict == ref.tags
        latest = {k: ref.latest(k) for k in ref.points}
        got = run.data.metrics_dict
        assert got.keys() == latest.keys()
        for k, v in latest.items():
            assert (math.isnan(v) and math.isnan(got[k])) or got[k] == v, (ref.run_id, k, ref.points[k], got[k])
        inputs = sorted((d.dataset.name, d.dataset.digest, {t.key: t.value for t in d.tags}.get(CONTEXT_TAG))
                        for d in run.inputs.dataset_inputs)
        assert inputs == sorted((i["name"], i["digest"], i["context"]) for i in ref.inputs)


@settings(max_examples=300, **_SETTINGS)
@given(data=st.data())
def test_search_runs_matches_reference(seeded, data):
    store, pop = seeded
    check_query(store, pop, data.draw(queries(pop), label="query"))


@settings(max_examples=40, **_SETTINGS)
@given(rng=st.randoms(use_true_random=False), n_runs=st.integers(0, 24), n_exps=st.integers(1, 2), data=st.data())
def test_search_runs_matches_reference_on_drawn_population(rng, n_runs, n_exps, data):
    with tempfile.TemporaryDirectory(prefix="cairn-search-prop-") as tmp:
        eng = engine.open(tmp)
        try:
            pop = build_population(eng.tracking, rng, n_runs=n_runs, n_exps=n_exps, label="drawn")
            for i in range(4):
                check_query(eng.tracking, pop, data.draw(queries(pop), label=f"query {i}"))
        finally:
            eng.close()
