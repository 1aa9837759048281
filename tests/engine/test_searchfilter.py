"""The search grammar: parse tables, errors, LIKE semantics, round trips, and a
differential check against MLflow's own parser and SQL store on the same data."""
from __future__ import annotations

import itertools
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.engine.errors import INVALID_PARAMETER_VALUE, CairnError
from cairn.engine.query.searchfilter import (
    Comparison,
    OrderKey,
    like_matcher,
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_order_by,
    parse_search_filter,
)

C = Comparison

VALID_RUN_FILTERS = [
    (None, []), ("", []), ("   ", []),
    ("metrics.acc > 0.9", [C("metric", "acc", ">", 0.9)]),
    ("metric.acc>=1", [C("metric", "acc", ">=", 1.0)]),
    ("metrics.acc < -1", [C("metric", "acc", "<", -1.0)]),
    ("metrics.acc <= 1e3", [C("metric", "acc", "<=", 1000.0)]),
    ("metrics.acc != 1.5E-3", [C("metric", "acc", "!=", 0.0015)]),
    ("metrics.acc = .5", [C("metric", "acc", "=", 0.5)]),
    ("metrics.acc = 5.", [C("metric", "acc", "=", 5.0)]),
    ("metrics.`m 1` > 2", [C("metric", "m 1", ">", 2.0)]),
    ('metrics."my metric" > 2', [C("metric", "my metric", ">", 2.0)]),
    ("metrics.a.b > 1", [C("metric", "a.b", ">", 1.0)]),
    ("metrics.1a > 1", [C("metric", "1a", ">", 1.0)]),
    ("metrics.`a-b/c:d` > 1", [C("metric", "a-b/c:d", ">", 1.0)]),
    ("`metrics`.a > 1", [C("metric", "a", ">", 1.0)]),
    ("params.lr = '0.1'", [C("param", "lr", "=", "0.1")]),
    ('param.lr != "0.1"', [C("param", "lr", "!=", "0.1")]),
    ("parameters.`a b` LIKE '%x_'", [C("param", "a b", "LIKE", "%x_")]),
    ("params.'a b' = 'x'", [C("param", "a b", "=", "x")]),
    ("params.p ilike 'A%'", [C("param", "p", "ILIKE", "A%")]),
    ("params.p = ''", [C("param", "p", "=", "")]),
    ("params.p = 'it''s'", [C("param", "p", "=", "it''s")]),  # verbatim, as MLflow
    ("params.p = 'a\\'b'", [C("param", "p", "=", "a\\'b")]),
    ("params.p IS NULL", [C("param", "p", "IS NULL", None)]),
    ("tags.t is not null", [C("tag", "t", "IS NOT NULL", None)]),
    ("tags.mlflow.runName = 'x'", [C("tag", "mlflow.runName", "=", "x")]),
    ("tag.`mlflow.user` LIKE 'a%'", [C("tag", "mlflow.user", "LIKE", "a%")]),
    ("attributes.status = 'FINISHED'", [C("attribute", "status", "=", "FINISHED")]),
    ("attribute.user_id != 'bob'", [C("attribute", "user_id", "!=", "bob")]),
    ("attr.artifact_uri LIKE 's3://%'", [C("attribute", "artifact_uri", "LIKE", "s3://%")]),
    ("run.run_name ILIKE 'a%'", [C("attribute", "run_name", "ILIKE", "a%")]),
    ("attributes.`run name` = 'x'", [C("attribute", "run_name", "=", "x")]),
    ('attributes."Run Name" = \'x\'', [C("attribute", "run_name", "=", "x")]),
    ("status = 'RUNNING'", [C("attribute", "status", "=", "RUNNING")]),
    ('"run name" = \'x\'', [C("attribute", "run_name", "=", "x")]),
    ("start_time > 10", [C("attribute", "start_time", ">", 10)]),
    ("attributes.created >= 10.5", [C("attribute", "start_time", ">=", 10.5)]),
    ("attributes.Created < 3", [C("attribute", "start_time", "<", 3)]),
    ("attributes.end_time = 0", [C("attribute", "end_time", "=", 0)]),
    ("attributes.lifecycle_stage = 'active'", [C("attribute", "lifecycle_stage", "=", "active")]),
    ("attributes.run_id IN ('a', 'b')", [C("attribute", "run_id", "IN", ("a", "b"))]),
    ("attributes.run_id in ( 'a' )", [C("attribute", "run_id", "IN", ("a",))]),
    ('attributes.run_id NOT  IN ("a", \'b\',)', [C("attribute", "run_id", "NOT IN", ("a", "b"))]),
    ("attributes.run_id LIKE 'ab%'", [C("attribute", "run_id", "LIKE", "ab%")]),
    ("datasets.name = 'train'", [C("dataset", "name", "=", "train")]),
    ("dataset.digest IN ('d1','d2')", [C("dataset", "digest", "IN", ("d1", "d2"))]),
    ("datasets.context not in ('eval')", [C("dataset", "context", "NOT IN", ("eval",))]),
    (
        "metrics.acc > 0.9 AND params.lr = '0.1' and tags.t != 'x' AnD status = 'FAILED'",
        [C("metric", "acc", ">", 0.9), C("param", "lr", "=", "0.1"), C("tag", "t", "!=", "x"),
         C("attribute", "status", "=", "FAILED")],
    ),
    ("params.p='x'AND params.q='y'", [C("param", "p", "=", "x"), C("param", "q", "=", "y")]),
    ("\n metrics.m\t>\n1 \n", [C("metric", "m", ">", 1.0)]),
]


@pytest.mark.parametrize("text, expected", VALID_RUN_FILTERS)
def test_valid_run_filters(text, expected):
    assert parse_search_filter(text) == expected


def test_value_types():
    # Equality cannot tell 3 from 3.0: metrics are floats, times keep the literal's type.
    values = parse_search_filter("metrics.m = 3 AND start_time = 3 AND start_time = 3.0")
    assert [type(c.value) for c in values] == [float, int, float]


INVALID_RUN_FILTERS = [
    ("metrics.acc >> 1", "at position 12: expected a comparison operator, got '>>'"),
    ("metrics.acc == 1", "use '='"), ("metrics.acc <> 1", "use '!='"),
    ("metrics.acc > 1 OR params.a = 'b'", "at position 16: OR is not supported; join clauses with AND"),
    ("metrics.acc > 1 metrics.b > 2", "at position 16: expected AND between comparisons, got 'metrics.b'"),
    ("params.a = 'x' AND", "expected a comparison after AND"),
    ("AND params.a = 'x'", "at position 0: expected a comparison, got 'AND'"),
    ("params.a = 'x' AND AND params.b = 'y'", "expected a comparison, got 'AND'"),
    ("metrics.acc > 1; metrics.b > 2", "expected AND between comparisons, got ';'"),
    ("(metrics.acc > 1)", "parentheses are not supported"),
    ("METRICS.acc > 1", "case-sensitive: use 'metrics'"),
    ("metricz.acc > 1", "invalid entity type 'metricz'"),
    ('"metrics".a > 1', "entity prefixes are unquoted"), ("metrics.a-b > 1", "write metrics.`a-b`"),
    ("metrics. a > 1", "expected a key after 'metrics.'"), ("metrics.`` > 1", "empty key"),
    ("metrics.`a`b > 1", "after quoted key"), ("metrics > 1", "'metrics' needs a key"),
    ("metrics.acc", "position 11: expected a comparison operator, got end of filter"),
    ("metrics.acc = 'a'", "metric 'acc' needs a numeric value, got 'a'"),
    ("metrics.acc = x", "metric 'acc' needs a numeric value, got 'x'"),
    ("metrics.acc > - 1", "needs a numeric value, got '-'"),
    ("metrics.acc > +1", "needs a numeric value, got '+'"),
    ("metrics.acc > 1_000", "invalid number"), ("metrics.acc > 0x10", "invalid number"),
    ("metrics.acc > 1.2.3", "invalid number"),
    ("metrics.acc LIKE '1'", "operator LIKE is not supported for metric 'acc'"),
    ("metrics.acc IS NULL", "operator IS NULL is not supported for metric 'acc'"),
    ("metrics.acc IN (1, 2)", "operator IN is not supported for metric"),
    ("params.a = b", "param 'a' needs a quoted string value"),
    ("params.a = 1", "param 'a' needs a quoted string value (e.g. '1'), got 1"),
    ("params.a > '1'", "operator > is not supported for param 'a'"),
    ("params.a IN ('1')", "operator IN is not supported for param 'a'"),
    ("params.a = 'x", "position 11: unterminated quoted string"),
    ("params.a = ('x')", "a list of values needs IN or NOT IN"),
    ("params.a = 'x' 'y'", "expected AND between comparisons, got \"'y'\""),
    ("tags.t NOT LIKE 'a'", "NOT LIKE is not supported"),
    ("tags.t RLIKE 'a'", "RLIKE is not supported"), ("tags.t NOT 'a'", "expected IN after NOT"),
    ("tags.t IS 'a'", "expected NULL or NOT NULL after IS"),
    ("tags.t IS NOT 'a'", "expected NULL after IS NOT"), ("'tags.t' = 'a'", "got a quoted string"),
    ("attributes.status > 'a'", "operator > is not supported for attribute 'status'"),
    ("attributes.status IN ('a')", "operator IN is not supported for attribute 'status'"),
    ("attributes.start_time = '1'", "attribute 'start_time' needs a numeric value"),
    ("attributes.start_time LIKE '1%'", "operator LIKE is not supported"),
    ("attributes.name = 'x'", "invalid attribute 'name' for runs"),
    ("attributes.CREATED > 1", "invalid attribute 'CREATED'"),
    ("attributes.run_id IN ()", "needs a non-empty list of quoted strings, got an empty list"),
    ("attributes.run_id IN ('a', 1)", "needs a non-empty list of quoted strings, got '1'"),
    ("attributes.run_id IN ('a' 'b')", "expected ',' or ')' in the IN list"),
    ("attributes.run_id IN 'a'", "IN needs a parenthesized list"),
    ("attributes.run_id IN ('a'", "expected ',' or ')'"), ("datasets.foo = 'a'", "invalid dataset key 'foo'"),
    ("datasets.name > 'a'", "operator > is not supported for dataset 'name'"),
    ("1 = 1", "expected an identifier"), ("= 'a'", "expected an identifier"),
]


@pytest.mark.parametrize("text, fragment", INVALID_RUN_FILTERS)
def test_invalid_run_filters(text, fragment):
    with pytest.raises(CairnError) as info:
        parse_search_filter(text)
    assert info.value.error_code == INVALID_PARAMETER_VALUE
    assert info.value.http_status == 400
    assert fragment in info.value.message
    assert repr(text) in info.value.message  # the message quotes the whole filter


def test_error_position_points_at_offending_token():
    text = "metrics.a > 1 AND params.b = 2"
    with pytest.raises(CairnError) as info:
        parse_search_filter(text)
    pos = int(re.search(r"at position (\d+)", info.value.message).group(1))
    assert text[pos:] == "2"


def test_non_string_filter_rejected():
    with pytest.raises(CairnError):
        parse_search_filter(42)  # type: ignore[arg-type]


VALID_EXPERIMENT_FILTERS = [
    (None, []), ("name = 'x'", [C("attribute", "name", "=", "x")]),
    ("attribute.name LIKE 'x%'", [C("attribute", "name", "LIKE", "x%")]),
    ("attributes.name = 'x'", [C("attribute", "name", "=", "x")]),  # MLflow 3.18 takes the plural too
    ("`name` ILIKE 'X%'", [C("attribute", "name", "ILIKE", "X%")]),
    ("creation_time > 5", [C("attribute", "creation_time", ">", 5)]),
    ("last_update_time <= 5", [C("attribute", "last_update_time", "<=", 5)]),
    ("experiment_id = '7'", [C("attribute", "experiment_id", "=", 7)]),  # an INTEGER column
    ("experiment_id IN ('1', \"007\")", [C("attribute", "experiment_id", "IN", (1, 7))]),
    ("tags.owner = 'ann'", [C("tag", "owner", "=", "ann")]),
    ("tag.`a b` != 'x'", [C("tag", "a b", "!=", "x")]),
    ("tags.t IS NULL and name != 'Default'", [C("tag", "t", "IS NULL", None), C("attribute", "name", "!=", "Default")]),
]


@pytest.mark.parametrize("text, expected", VALID_EXPERIMENT_FILTERS)
def test_valid_experiment_filters(text, expected):
    assert parse_experiment_filter(text) == expected


INVALID_EXPERIMENT_FILTERS = [
    ("metrics.m > 1", "invalid entity type 'metrics' for experiments"),
    ("params.p = 'x'", "invalid entity type 'params'"),
    ("lifecycle_stage = 'active'", "invalid attribute 'lifecycle_stage' for experiments"),
    ("name IS NULL", "operator IS NULL is not supported for attribute 'name'"),
    ("name IN ('a')", "operator IN is not supported for attribute 'name'"),
    ("creation_time > 1.5", "needs an integer"), ("creation_time > '1'", "needs a numeric value"),
    ("experiment_id = 1", "needs a quoted string value"),
    ("experiment_id = 'abc'", "experiment ids are integers"),
    ("experiment_id IN ('1', 'x')", "experiment ids are integers"),
    ("experiment_id LIKE '1%'", "operator LIKE is not supported"),
    ("tags.t > 'a'", "operator > is not supported for tag 't'"),
    ("name = 'a' OR name = 'b'", "OR is not supported"),
]


@pytest.mark.parametrize("text, fragment", INVALID_EXPERIMENT_FILTERS)
def test_invalid_experiment_filters(text, fragment):
    with pytest.raises(CairnError) as info:
        parse_experiment_filter(text)
    assert info.value.error_code == INVALID_PARAMETER_VALUE
    assert fragment in info.value.message


# -- evaluation ----------------------------------------------------------------------

LIKE_CASES = [
    ("abc", "abc", True), ("abc", "abcd", False), ("abc", "ABC", False), ("a%", "abc", True),
    ("a%", "a", True), ("a%", "ba", False), ("%c", "abc", True), ("%b%", "abc", True),
    ("%b%", "ac", False), ("%", "", True), ("", "", True), ("", "a", False),
    ("a_c", "abc", True), ("a_c", "ac", False), ("a_c", "abbc", False), ("_", "é", True),
    ("a%c", "a\nc", True),  # SQL's % spans newlines
    ("abc", "abc\n", False),  # no `$`-before-newline slack
    ("a.c", "abc", False),  # regex metacharacters are literal
    ("a.c", "a.c", True), ("a+", "aa", False), ("a+", "a+", True), ("f(x)%", "f(x) = 1", True),
    ("f(x)%", "fx", False), ("[ab]", "a", False), ("[ab]", "[ab]", True),
    ("a*b?", "a*b?", True), ("a*b?", "aab", False), ("^a$", "^a$", True),
    ("a\\%", "a\\xyz", True),  # backslash is not an escape character
    ("%.%", "v1.2", True), ("%.%", "v12", False), ("_%_", "ab", True), ("_%_", "a", False),
]


@pytest.mark.parametrize("pattern, actual, expected", LIKE_CASES)
def test_like(pattern, actual, expected):
    assert C("param", "p", "LIKE", pattern).test(actual) is expected
    assert like_matcher(pattern)(actual) is expected


@pytest.mark.parametrize(
    "pattern, actual, expected",
    [("ABC", "abc", True), ("a%", "ABC", True), ("%É%", "café", True), ("a.c", "A.C", True),
     ("a.c", "AbC", False), ("_B_", "abc", True), ("x", "y", False)],
)
def test_ilike(pattern, actual, expected):
    assert C("param", "p", "ILIKE", pattern).test(actual) is expected


def test_like_matches_regex_translation_on_random_inputs():
    # The string-method fast paths must agree with the general regex route.
    alphabet = "ab%_.\n"

    @given(st.text(alphabet, max_size=6), st.text(alphabet, max_size=8))
    @settings(max_examples=400, deadline=None)
    def check(pattern, actual):
        body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
        expected = re.fullmatch(body, actual, re.DOTALL) is not None
        assert like_matcher(pattern)(actual) is expected

    check()


def test_none_never_matches_except_is_null():
    for text in ["metrics.m != 1", "metrics.m < 1", "params.p != 'x'", "params.p LIKE '%'",
                 "attributes.run_id NOT IN ('a')", "attributes.end_time > 0"]:
        [c] = parse_search_filter(text)
        assert c.test(None) is False, text
    [null] = parse_search_filter("tags.t IS NULL")
    [not_null] = parse_search_filter("tags.t IS NOT NULL")
    assert null.test(None) and not null.test("") and not_null.test("") and not not_null.test(None)


def test_nan_metric_matches_only_not_equal():
    # MLflow's SQL store: a NaN latest metric satisfies != and nothing else.
    nan = float("nan")
    results = {op: C("metric", "m", op, 0.0).test(nan) for op in ("=", "!=", ">", ">=", "<", "<=")}
    assert results == {"=": False, "!=": True, ">": False, ">=": False, "<": False, "<=": False}


def test_numeric_and_membership():
    assert C("metric", "m", ">", 1.0).test(math.inf) and C("metric", "m", "<=", 2.0).test(2.0)
    assert not C("metric", "m", "<", 2.0).test(2.0) and C("attribute", "start_time", ">=", 10).test(10)
    isin, notin = C("attribute", "run_id", "IN", ("a", "b")), C("attribute", "run_id", "NOT IN", ("a", "b"))
    assert isin.test("b") and not isin.test("c") and notin.test("c") and not notin.test("a")
    assert C("param", "p", "=", "x").test("x") and not C("param", "p", "=", "x").test("X")
    assert C("attribute", "experiment_id", "IN", (1, 7)).test(7)


def test_comparison_is_a_plain_value():
    import msgspec

    c = parse_search_filter("params.p LIKE 'a%'")[0]
    c.test("abc")  # populate the cached matcher; it must not leak into value semantics
    assert c == C("param", "p", "LIKE", "a%") and hash(c) == hash(C("param", "p", "LIKE", "a%"))
    assert msgspec.json.decode(msgspec.json.encode(c), type=Comparison) == c
    assert msgspec.json.encode(c) == b'{"entity":"param","key":"p","op":"LIKE","value":"a%"}'


# -- order_by ------------------------------------------------------------------------

K = OrderKey


@pytest.mark.parametrize("clauses, expected", [
    (None, []), ([], []),
    (["metrics.`m 1` DESC"], [K("metric", "m 1", False)]),
    (['metrics."m 1" desc'], [K("metric", "m 1", False)]),
    (["attributes.start_time"], [K("attribute", "start_time", True)]),
    (["params.x ASC"], [K("param", "x", True)]), (["tags.t"], [K("tag", "t", True)]),
    (["start_time DESC", "metrics.a.b"], [K("attribute", "start_time", False), K("metric", "a.b", True)]),
    (["attribute.created asc"], [K("attribute", "start_time", True)]),
    ([" run.status  DESC "], [K("attribute", "status", False)]),
    (["tags.`a b` ASC", "params.`a b`"], [K("tag", "a b", True), K("param", "a b", True)]),
])
def test_order_by(clauses, expected):
    assert parse_order_by(clauses) == expected


@pytest.mark.parametrize("parse, clauses, fragment", [
    (parse_order_by, [""], "empty clause"),
    (parse_order_by, ["metrics.m up"], "expected ASC or DESC, got 'up'"),
    (parse_order_by, ["metrics.m DESC ASC"], "unexpected 'ASC' after DESC"),
    (parse_order_by, ["metrics.m DESC, params.a"], "unexpected ','"),
    (parse_order_by, ["metrics.m DESC NULLS LAST"], "unexpected 'NULLS'"),
    (parse_order_by, ["datasets.name"], "runs cannot be ordered by dataset fields"),
    (parse_order_by, ["attributes.`run name`"], "invalid attribute 'run name'"),
    (parse_order_by, ["name"], "invalid attribute 'name' for runs"),
    (parse_order_by, ["metrics.m", "metrics.m DESC"], "metric 'm' appears twice"),
    (parse_order_by, ["start_time", "attributes.created DESC"], "attribute 'start_time' appears twice"),
    (parse_order_by, ["Metrics.m"], "case-sensitive"),
    (parse_order_by, "metrics.m", "expected a list of clauses"),
    (parse_order_by, [3], "expected a string"),
    (parse_experiment_order_by, ["tags.t"], "experiments cannot be ordered by tag fields"),
    (parse_experiment_order_by, ["start_time"], "invalid attribute 'start_time' for experiments"),
    (parse_experiment_order_by, ["metrics.m"], "invalid entity type 'metrics'"),
])
def test_order_by_errors(parse, clauses, fragment):
    with pytest.raises(CairnError) as info:
        parse(clauses)
    assert info.value.error_code == INVALID_PARAMETER_VALUE
    assert fragment in info.value.message


def test_experiment_order_by():
    assert parse_experiment_order_by(["name", "creation_time DESC", "attribute.experiment_id asc"]) == [
        K("attribute", "name", True), K("attribute", "creation_time", False),
        K("attribute", "experiment_id", True)]


# -- round trip: random ASTs rendered with random spelling parse back to themselves ----

_KEY_CHARS = "abcXYZ019_.-/: é`\"'\\"
_VALUE_CHARS = "abcXY01 %_.+*()[]?^$\\'\"\né"
_PLAIN = re.compile(r"[\w.]+")
_SPACE = st.sampled_from(["", " ", "  ", "\t", "\n "])
_GAP = st.sampled_from([" ", "  ", "\t", "\n", " \n "])  # where a word boundary is needed


def _quote_key(draw, key: str, quotes: str = "`\"'") -> str:
    usable = [q for q in quotes if q not in key and not (q != "`" and key.endswith("\\"))]
    if _PLAIN.fullmatch(key) and draw(st.booleans()):
        return key
    if not usable:
        return ""  # unrenderable, rejected by the caller
    q = draw(st.sampled_from(usable))
    return f"{q}{key}{q}"


def _quote_value(draw, value: str) -> str:
    usable = [q for q in "'\"" if q not in value]
    if not usable or value.endswith("\\"):
        return ""  # neither MLflow nor we can spell it: quoted text is verbatim
    q = draw(st.sampled_from(usable))
    return f"{q}{value}{q}"


def _number(draw, integral: bool) -> tuple[str, float | int]:
    if integral:
        n = draw(st.integers(-(10**15), 10**15))
        return str(n), n
    x = draw(st.floats(allow_nan=False, allow_infinity=False, width=64))
    return repr(x), x


@st.composite
def run_clause(draw):
    kind = draw(st.sampled_from(["metric", "param", "tag", "text_attr", "id_attr", "time", "dataset"]))
    sp = lambda: draw(_SPACE)
    gap = lambda: draw(_GAP)
    if kind in ("metric", "param", "tag"):
        prefix = draw(st.sampled_from({
            "metric": ["metric", "metrics"],
            "param": ["param", "params", "parameter", "parameters"],
            "tag": ["tag", "tags"]}[kind]))
        key = draw(st.text(_KEY_CHARS, min_size=1, max_size=8))
        quoted = _quote_key(draw, key)
        if not quoted:
            return None
        ident, entity, canonical = f"{prefix}.{quoted}", kind, key
    elif kind == "dataset":
        canonical = draw(st.sampled_from(["name", "digest", "context"]))
        ident = f"{draw(st.sampled_from(['dataset', 'datasets']))}.{canonical}"
        entity = "dataset"
    else:
        names = {
            "text_attr": ["status", "user_id", "artifact_uri", "run_name", "lifecycle_stage",
                          "`run name`", '"Run Name"', "`Run name`"],
            "id_attr": ["run_id"],
            "time": ["start_time", "end_time", "created", "Created", "`start_time`"],
        }[kind]
        name = draw(st.sampled_from(names))
        prefix = draw(st.sampled_from(["", "attribute.", "attributes.", "attr.", "run."]))
        ident, entity = prefix + name, "attribute"
        canonical = {"created": "start_time", "Created": "start_time"}.get(
            name.strip('`"'), name.strip('`"'))
        canonical = "run_name" if canonical.lower() == "run name" else canonical

    if kind in ("metric", "time"):
        op = draw(st.sampled_from(["=", "!=", ">", ">=", "<", "<="]))
        text, value = _number(draw, integral=draw(st.booleans()))
        if kind == "metric":
            value = float(value)
        return f"{ident}{sp()}{op}{sp()}{text}", Comparison(entity, canonical, op, value), False
    ops = ["=", "!=", "LIKE", "ILIKE"]
    ops += {"param": ["IS NULL", "IS NOT NULL"], "tag": ["IS NULL", "IS NOT NULL"],
            "id_attr": ["IN", "NOT IN"], "dataset": ["IN", "NOT IN"]}.get(kind, [])
    op = draw(st.sampled_from(ops))
    spelled = " ".join(draw(st.sampled_from([w, w.lower(), w.title()])) for w in op.split())
    if op in ("IS NULL", "IS NOT NULL"):
        return f"{ident}{gap()}{spelled}", Comparison(entity, canonical, op, None), False
    if op in ("IN", "NOT IN"):
        values = draw(st.lists(st.text(_VALUE_CHARS, max_size=6), min_size=1, max_size=4))
        quoted = [_quote_value(draw, v) for v in values]
        if not all(quoted):
            return None
        items = f"{sp()},{sp()}".join(quoted) + draw(st.sampled_from(["", ",", " , "]))
        text = f"{ident}{gap()}{spelled}{sp()}({sp()}{items}{sp()})"
        return text, Comparison(entity, canonical, op, tuple(values)), True
    value = draw(st.text(_VALUE_CHARS, max_size=8))
    quoted = _quote_value(draw, value)
    if not quoted:
        return None
    left, right = (gap(), gap()) if op.isalpha() else (sp(), sp())
    return f"{ident}{left}{spelled}{right}{quoted}", Comparison(entity, canonical, op, value), True


@st.composite
def run_filter(draw):
    clauses = [c for c in draw(st.lists(run_clause(), min_size=1, max_size=4)) if c]
    if not clauses:
        return None
    # Each clause says whether it ends in a quote or parenthesis; after a number or a
    # word, AND needs whitespace before it.
    parts = [clauses[0][0]]
    for previous, current in itertools.pairwise(clauses):
        before = draw(_SPACE) if previous[2] else draw(_GAP)
        joiner = draw(st.sampled_from(["AND", "and", "And", "aNd"]))
        parts.append(f"{before}{joiner}{draw(_GAP)}{current[0]}")
    text = draw(_SPACE) + "".join(parts) + draw(_SPACE)
    return text, [c[1] for c in clauses]


@given(run_filter())
@settings(max_examples=600, deadline=None)
def test_round_trip_run_filters(case):
    if case is None:
        return
    text, expected = case
    assert parse_search_filter(text) == expected, text


@given(st.lists(st.tuples(st.sampled_from(["metrics", "params", "tags"]),
                          st.text(_KEY_CHARS, min_size=1, max_size=8),
                          st.sampled_from(["", " ASC", " desc", "  Desc"])), max_size=4), st.data())
@settings(max_examples=200, deadline=None)
def test_round_trip_order_by(items, data):
    entity = {"metrics": "metric", "params": "param", "tags": "tag"}
    clauses, expected, seen = [], [], set()
    for prefix, key, direction in items:
        quoted = _quote_key(data.draw, key, quotes="`\"")
        if not quoted or (prefix, key) in seen:
            continue
        seen.add((prefix, key))
        clauses.append(f"{prefix}.{quoted}{direction}")
        expected.append(OrderKey(entity[prefix], key, "desc" not in direction.lower()))
    assert parse_order_by(clauses) == expected, clauses


# -- differential: MLflow's parser and SQL store, on the same data -------------------
#
# "MLflow accepts" means its SQL store runs the search without raising: its parser alone
# lets through clauses (metrics.x LIKE 1) that the store then refuses, and we refuse
# those at parse time. When both accept, the parsed clauses must agree and the runs (or
# experiments) selected by MLflow's SQL must be exactly those our Comparison.test picks.

RUN_CORPUS = [
    "metrics.acc > 0.6", "metrics.acc >= 0.5 AND metrics.acc <= 0.9", "metrics.acc = 0.5",
    "metrics.acc != 0.5",
    "metrics.loss != 1.5",  # a NaN latest metric satisfies !=
    "metrics.loss = 0",  # MLflow stores NaN as 0 + is_nan; it must not match
    "metrics.loss < 100", "metrics.big > 1e300", "metrics.neg < -2", "metrics.`m 1` = 2",
    'metrics."m 1" >= 2 and params.opt = "adam"', "metrics.acc > 1E-3", "params.lr = '0.1'",
    "params.lr != '0.1'", "params.opt LIKE 'ad%'", "params.opt ILIKE 'AD%'",
    "params.opt LIKE '_DAM'", "params.`a b` = 'x y'", "params.lr IS NULL",
    "params.opt IS NOT NULL", "tags.team = 'nlp'",
    "tags.note = 'it''s'",  # quoted text is verbatim in both: matches nothing
    "tags.note LIKE 'it%'", "tags.`mlflow.runName` = 'alpha'", "tags.mlflow.runName LIKE 'b%'",
    "tags.team IS NULL", "attributes.status = 'FAILED'", "status != 'RUNNING'",
    "attributes.run_name = 'alpha'", "attributes.`run name` LIKE '%.run'",
    "run.run_name LIKE 'Gamma%'", "attributes.user_id ILIKE 'A%'",
    "attributes.start_time >= 100", "attributes.created < 100", "attributes.end_time > 100",
    "attributes.end_time != 0",  # the RUNNING run has no end_time
    "attributes.run_id IN ('{alpha}', '{gamma}')", "attributes.run_id NOT IN ('{alpha}')",
    "attributes.run_id = '{beta}'", "datasets.name = 'train-ds'", "datasets.digest IN ('d2')",
    "datasets.context = 'training'", "datasets.context != 'training'",
    "datasets.name LIKE '%ds' AND datasets.context = 'eval'", "dataset.name NOT IN ('eval-ds')",
    # both refuse (more come from INVALID_RUN_FILTERS)
    'metrics.acc LIKE 1', "params.lr > '1'", 'params.lr = 1', "params.lr IN ('1')",
    'metrics.acc > 1 OR metrics.loss > 2', "params.p = 'x", 'metrics.acc > 1; metrics.loss > 2',
]

# Where we knowingly differ: {filter: (we accept, MLflow accepts)}.
RUN_DEVIATIONS = {
    # Stricter: MLflow's token soup tolerates these; we ask for well-formed input.
    "metrics.acc > 1 metrics.b > 2": (False, True), "params.a = 'x' AND": (False, True),
    "AND params.a = 'x'": (False, True), "params.a = 'x' AND AND params.b = 'y'": (False, True),
    "metrics.`` > 1": (False, True), "metrics. a > 1": (False, True),  # MLflow: key ' a'
    "attributes.run_id IN ('a' 'b')": (False, True),  # MLflow: Python literal ('ab',)
    # Looser: harmless supersets.
    "   ": (True, False), "metrics.acc > 1e+3": (True, False), "metrics.acc > .5e1": (True, False),
    "metrics.123 > 1": (True, False),
    "attributes.lifecycle_stage = 'active'": (True, False),  # the store contract lists it
}

EXPERIMENT_CORPUS = [
    "name = 'exp-a'", "name LIKE 'exp%'", "name ILIKE 'EXP%'", "`name` LIKE '%C'",
    "attribute.name != 'Default'", "tags.owner = 'ann'", "tags.owner != 'ann'",
    "tag.stage IS NULL", "tags.stage IS NOT NULL AND name LIKE 'exp-%'", "creation_time > 0",
    "creation_time < 0", "last_update_time >= 0", "experiment_id = '0'",
    "experiment_id IN ('0', '{a}')", "experiment_id NOT IN ('0')", "experiment_id != '{b}'",
]


def _unique(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _accepts(call) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        call()
    except (CairnError, MlflowException):
        return False
    return True


def _mlflow_triples(parsed: list[dict]) -> list[tuple]:
    from mlflow.utils.search_utils import SearchUtils

    out = []
    for d in parsed:
        entity = {"parameter": "param"}.get(d["type"], d["type"])
        value = d["value"]
        if entity == "metric":
            value = float(value)
        if d["key"] == "experiment_id":
            value = tuple(map(int, value)) if isinstance(value, tuple) else int(value)
        out.append((entity, SearchUtils.translate_key_alias(d["key"]), d["comparator"].upper(), value))
    return out


def _ours_match_run(run, comparisons: list[Comparison]) -> bool:
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    def dataset_values(input_, key):
        if key == "context":
            return next((t.value for t in input_.tags if t.key == MLFLOW_DATASET_CONTEXT), None)
        return getattr(input_.dataset, key)

    for c in comparisons:
        if c.entity == "dataset":
            ok = any(c.test(dataset_values(i, c.key)) for i in run.inputs.dataset_inputs)
        else:
            source = {"metric": run.data.metrics, "param": run.data.params, "tag": run.data.tags}
            ok = c.test(source[c.entity].get(c.key) if c.entity in source else getattr(run.info, c.key))
        if not ok:
            return False
    return True


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")
    from mlflow.entities import (
        Dataset,
        DatasetInput,
        ExperimentTag,
        InputTag,
        Metric,
        Param,
        RunTag,
    )
    from mlflow.entities import RunStatus as S
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    root = tmp_path_factory.mktemp("mlflow")
    store = SqlAlchemyStore(f"sqlite:///{root}/db.sqlite", str(root / "artifacts"))
    exp_ids = {
        "a": store.create_experiment("exp-a", tags=[ExperimentTag("owner", "ann")]),
        "b": store.create_experiment("exp-b", tags=[ExperimentTag("owner", "bob"), ExperimentTag("stage", "p")]),
        "c": store.create_experiment("Exp%C"),
    }
    nan, inf = float("nan"), float("inf")
    runs = [  # id placeholder, name, user, start, end, status, metrics, params, tags, datasets
        ("alpha", "alpha", "ann", 100, 200, S.FINISHED, {"acc": 0.9, "loss": nan, "big": inf, "m 1": 2.0},
         {"lr": "0.01", "opt": "adam", "a b": "x y"}, {"team": "vision", "note": "it's"},
         [("train-ds", "d1", "training")]),
        ("beta", "beta.run", "bob", 300, None, None, {"acc": 0.5, "loss": 1.5, "neg": -3.0},
         {"lr": "0.1", "opt": "ADAM"}, {"team": "nlp"}, [("eval-ds", "d2", "eval"), ("train-ds", "d1", None)]),
        ("gamma", "Gamma%", "cy", 50, 60, S.FAILED, {}, {"lr": "1e-3"}, {}, []),
    ]
    ids = {}
    for alias, name, user, start, end, status, metrics, params, tags, datasets in runs:
        run_id = ids[alias] = store.create_run(exp_ids["a"], user, start, [], name).info.run_id
        store.log_batch(run_id, [Metric(k, v, 1, 0) for k, v in metrics.items()],
                        [Param(k, v) for k, v in params.items()], [RunTag(k, v) for k, v in tags.items()])
        store.log_inputs(run_id, [
            DatasetInput(Dataset(n, d, "local", "s"), [InputTag(MLFLOW_DATASET_CONTEXT, c)] if c else [])
            for n, d, c in datasets])
        if status is not None:
            store.update_run_info(run_id, status, end, name)
    return store, exp_ids, ids


@pytest.mark.parametrize("template", _unique(
    RUN_CORPUS + [t for t, _ in VALID_RUN_FILTERS if t] + [t for t, _ in INVALID_RUN_FILTERS]
    + list(RUN_DEVIATIONS)))
def test_run_filter_against_mlflow(mlflow_store, template):
    from mlflow.entities import ViewType
    from mlflow.utils.search_utils import SearchUtils

    store, exp_ids, ids = mlflow_store
    text = template.format(**ids)
    search = lambda: store.search_runs([exp_ids["a"]], text, ViewType.ALL)
    theirs_ok, ours_ok = _accepts(search), _accepts(lambda: parse_search_filter(text))
    assert (ours_ok, theirs_ok) == RUN_DEVIATIONS.get(template, (theirs_ok, theirs_ok)), text
    if not (ours_ok and theirs_ok):
        return
    ours = parse_search_filter(text)
    assert [(c.entity, c.key, c.op, c.value) for c in ours] == _mlflow_triples(
        SearchUtils.parse_search_filter(text))
    everything = store.search_runs([exp_ids["a"]], None, ViewType.ALL)
    expected = {r.info.run_name for r in search()}
    assert {r.info.run_name for r in everything if _ours_match_run(r, ours)} == expected, text


@pytest.mark.parametrize("template", _unique(
    EXPERIMENT_CORPUS + [t for t, _ in VALID_EXPERIMENT_FILTERS if t]
    + [t for t, _ in INVALID_EXPERIMENT_FILTERS]))
def test_experiment_filter_against_mlflow(mlflow_store, template):
    from mlflow.utils.search_utils import SearchExperimentsUtils

    store, exp_ids, _ = mlflow_store
    text = template.format(**exp_ids)
    search = lambda: store.search_experiments(filter_string=text)
    theirs_ok, ours_ok = _accepts(search), _accepts(lambda: parse_experiment_filter(text))
    assert ours_ok == theirs_ok, text
    if not ours_ok:
        return
    ours = parse_experiment_filter(text)
    assert [(c.entity, c.key, c.op, c.value) for c in ours] == _mlflow_triples(
        SearchExperimentsUtils.parse_search_filter(text))

    def actual(exp, c):
        if c.entity == "tag":
            return exp.tags.get(c.key)
        return int(exp.experiment_id) if c.key == "experiment_id" else getattr(exp, c.key)

    expected = {e.name for e in search()}
    mine = {e.name for e in store.search_experiments() if all(c.test(actual(e, c)) for c in ours)}
    assert mine == expected, text


@pytest.mark.parametrize(
    "clause",
    ["metrics.acc DESC", "metrics.`m 1`", 'params."a b" asc', "tags.team", "attributes.created DESC",
     "start_time", "run.status ASC", "attribute.run_name", "metrics.acc up", "name",
     "attributes.`run name`", "datasets.name", "metrics.acc DESC NULLS LAST", "Metrics.acc"],
)
def test_run_order_by_against_mlflow(mlflow_store, clause):
    from mlflow.entities import ViewType
    from mlflow.utils.search_utils import SearchUtils

    store, exp_ids, _ = mlflow_store
    theirs_ok = _accepts(lambda: store.search_runs([exp_ids["a"]], None, ViewType.ALL, order_by=[clause]))
    ours_ok = _accepts(lambda: parse_order_by([clause]))
    assert ours_ok == theirs_ok, clause
    if ours_ok:
        entity, key, ascending = SearchUtils.parse_order_by_for_search_runs(clause)
        entity = {"parameter": "param"}.get(entity, entity)
        assert parse_order_by([clause]) == [
            OrderKey(entity, SearchUtils.translate_key_alias(key), ascending)]


@pytest.mark.parametrize(
    "clause", ["name", "creation_time DESC", "attribute.experiment_id asc", "last_update_time",
               "tags.owner", "start_time", "attributes.name"],
)
def test_experiment_order_by_against_mlflow(mlflow_store, clause):
    store, _, _ = mlflow_store
    theirs_ok = _accepts(lambda: store.search_experiments(order_by=[clause]))
    assert _accepts(lambda: parse_experiment_order_by([clause])) == theirs_ok, clause
