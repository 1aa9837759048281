"""Logged models (engine.loggedmodels.lmdbstore.LoggedModelStore) on a real LMDB environment.

Expected behaviour is MLflow 3's SQL store (sqlalchemy_store.py) unless the store's
docstrings say otherwise. Each test opens its own data directory.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager

import pytest

from cairn import engine
from cairn.engine.errors import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, CairnError
from cairn.engine.loggedmodels.records import ModelMetric, ModelOutput
from cairn.engine.query.pagination import decode_offset


@pytest.fixture
def lm(eng):
    return eng.logged_models




@contextmanager
def expect_error(code: str, *fragments: str):
    with pytest.raises(CairnError) as info:
        yield info
    assert info.value.error_code == code, repr(info.value)
    for fragment in fragments:
        assert fragment in info.value.message, (fragment, info.value.message)


def point(key, value, model_id, ts=1000, step=0, ds=None, digest=None) -> ModelMetric:
    return ModelMetric(
        key=key, value=value, timestamp=ts, step=step, model_id=model_id, dataset_name=ds, dataset_digest=digest
    )


# -- create / get ----------------------------------------------------------------------------
def test_create_defaults_and_get(eng, lm):
    exp = eng.tracking.create_experiment("e1")
    run_id = eng.tracking.create_run(exp).info.run_id
    m = lm.create_logged_model(
        exp, name="clf", source_run_id=run_id, tags={"t": "1"}, params={"alpha": "0.5"}, model_type="Classifier"
    )
    info = m.info
    assert re.fullmatch(r"m-[0-9a-f]{32}", info.model_id)
    assert info.status == "PENDING" and info.name == "clf" and info.experiment_id == exp
    assert info.artifact_uri == f"mlflow-artifacts:/{exp}/models/{info.model_id}/artifacts"
    assert info.source_run_id == run_id and info.model_type == "Classifier"
    assert info.creation_timestamp_ms == info.last_updated_timestamp_ms
    assert lm.get_logged_model(info.model_id) == m
    assert {t.key: t.value for t in m.info.tags} == {"t": "1"}
    assert {p.key: p.value for p in m.data.params} == {"alpha": "0.5"}


def test_generated_name_and_invalid_names(lm):
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", lm.create_logged_model("0").info.name)
    for bad in ("a/b", "a.b", "a:b", "50%", "it's", 'q"'):
        with expect_error(INVALID_PARAMETER_VALUE, "Invalid model name"):
            lm.create_logged_model("0", name=bad)


def test_create_needs_an_active_experiment(eng, lm):
    with expect_error(RESOURCE_DOES_NOT_EXIST, "No Experiment"):
        lm.create_logged_model("424242")
    exp = eng.tracking.create_experiment("gone")
    eng.tracking.delete_experiment(exp)
    with expect_error(INVALID_PARAMETER_VALUE, "active"):
        lm.create_logged_model(exp)
    with expect_error(INVALID_PARAMETER_VALUE, "run ID"):
        lm.create_logged_model("0", source_run_id="not-a-run")


def test_unknown_and_malformed_ids_do_not_exist(lm):
    for model_id in ("m-" + "0" * 32, "m-xyz", "", "0" * 32):
        with expect_error(RESOURCE_DOES_NOT_EXIST, "not found"):
            lm.get_logged_model(model_id)
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        lm.finalize_logged_model("m-" + "1" * 32, "READY")
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        lm.set_logged_model_tags("m-" + "1" * 32, {"a": "b"})


# -- finalize / tags / params / delete --------------------------------------------------------
def test_finalize(lm, distinct_clock):
    m = lm.create_logged_model("0")
    ready = lm.finalize_logged_model(m.model_id, "READY")
    assert ready.info.status == "READY"
    assert ready.info.last_updated_timestamp_ms > m.info.last_updated_timestamp_ms
    assert lm.finalize_logged_model(m.model_id, "FAILED").info.status == "FAILED"
    with expect_error(INVALID_PARAMETER_VALUE, "READY or FAILED"):
        lm.finalize_logged_model(m.model_id, "PENDING")


def test_tags_set_overwrite_delete(lm):
    mid = lm.create_logged_model("0", tags={"a": "1"}).model_id
    lm.set_logged_model_tags(mid, {"a": "2", "b": "3"})
    assert {t.key: t.value for t in lm.get_logged_model(mid).info.tags} == {"a": "2", "b": "3"}
    lm.delete_logged_model_tag(mid, "a")
    assert {t.key: t.value for t in lm.get_logged_model(mid).info.tags} == {"b": "3"}
    with expect_error(RESOURCE_DOES_NOT_EXIST, "No tag with key 'a'"):
        lm.delete_logged_model_tag(mid, "a")
    with expect_error(INVALID_PARAMETER_VALUE, "tag key"):
        lm.set_logged_model_tags(mid, {"": "x"})


def test_params_are_write_once(lm):
    mid = lm.create_logged_model("0", params={"a": "1"}).model_id
    lm.log_logged_model_params(mid, {"a": "1", "b": "2"})  # same value again: no-op
    with expect_error(INVALID_PARAMETER_VALUE, "key='a'", "value='1'", "'9'"):
        lm.log_logged_model_params(mid, {"a": "9", "c": "3"})
    # The refused call left nothing behind, not even its valid part.
    assert {p.key: p.value for p in lm.get_logged_model(mid).data.params} == {"a": "1", "b": "2"}
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        lm.log_logged_model_params("m-" + "2" * 32, {})


def test_long_param_values_are_kept(lm):
    """Autologging hands log_model an estimator's untruncated get_params()."""
    value = "x" * 20_000
    mid = lm.create_logged_model("0", params={"steps": value}).model_id
    assert lm.get_logged_model(mid).data.params[0].value == value
    with expect_error(INVALID_PARAMETER_VALUE, "maximum length"):
        lm.log_logged_model_params(mid, {"huge": "x" * 70_000})


def test_delete_is_soft_and_hides_the_model(lm):
    mid = lm.create_logged_model("0", name="doomed").model_id
    lm.delete_logged_model(mid)
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        lm.get_logged_model(mid)
    assert lm.get_logged_model(mid, allow_deleted=True).info.name == "doomed"
    assert lm.search_logged_models(["0"]).items == []
    # As MLflow's SQL store: writes to a deleted model are still accepted.
    lm.set_logged_model_tags(mid, {"after": "delete"})
    lm.delete_logged_model(mid)


# -- metrics linked to models -----------------------------------------------------------------
def test_metric_links(eng, lm):
    run_id = eng.tracking.create_run("0").info.run_id
    mid = lm.create_logged_model("0", source_run_id=run_id).model_id
    other = lm.create_logged_model("0").model_id
    lm.log_model_metrics(
        run_id,
        [
            point("acc", 0.5, mid, ts=10, step=0, ds="train", digest="d1"),
            point("acc", 0.7, mid, ts=20, step=1, ds="train", digest="d1"),
            point("loss", float("nan"), mid, ts=20),
            point("acc", 0.9, other, ts=5),
            ModelMetric(key="unlinked", value=1.0, timestamp=1),  # no model: skipped
        ],
    )
    # A point logged again keeps its first value (MLflow's primary key).
    lm.log_model_metrics(run_id, [point("acc", 0.1, mid, ts=10, step=0)])
    got = lm.get_logged_model(mid).data.metrics
    acc = [(m.value, m.timestamp, m.step, m.dataset_name, m.dataset_digest) for m in got if m.key == "acc"]
    assert acc == [(0.5, 10, 0, "train", "d1"), (0.7, 20, 1, "train", "d1")]
    assert all(m.run_id == run_id and m.model_id == mid for m in got)
    (loss,) = [m for m in got if m.key == "loss"]
    assert math.isnan(loss.value) and loss.dataset_name is None
    assert [m.value for m in lm.get_logged_model(other).data.metrics] == [0.9]


def test_metric_link_checks(eng, lm):
    run_id = eng.tracking.create_run("0").info.run_id
    mid = lm.create_logged_model("0").model_id
    with expect_error(RESOURCE_DOES_NOT_EXIST, "not found"):
        lm.log_model_metrics(run_id, [point("a", 1.0, mid), point("a", 1.0, "m-" + "3" * 32)])
    assert lm.get_logged_model(mid).data.metrics == []  # all or nothing
    with expect_error(INVALID_PARAMETER_VALUE, "double"):
        lm.log_model_metrics(run_id, [point("a", "high", mid)])
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Run"):
        lm.log_model_metrics("f" * 32, [point("a", 1.0, mid)])
    eng.tracking.delete_run(run_id)
    with expect_error(INVALID_PARAMETER_VALUE, "active"):
        lm.log_model_metrics(run_id, [point("a", 1.0, mid)])


# -- run outputs and model inputs -------------------------------------------------------------
def test_run_outputs_and_inputs(eng, lm):
    run_id = eng.tracking.create_run("0").info.run_id
    a = lm.create_logged_model("0").model_id
    b = lm.create_logged_model("0").model_id
    assert lm.run_outputs(run_id) == []
    lm.log_outputs(run_id, [ModelOutput(a, 3), ModelOutput(b)])
    lm.log_outputs(run_id, [ModelOutput(a, 4)])
    assert sorted(lm.run_outputs(run_id), key=lambda o: o.model_id) == sorted(
        [ModelOutput(a, 4), ModelOutput(b, 0)], key=lambda o: o.model_id
    )
    lm.log_model_inputs(run_id, [b])
    assert [i.model_id for i in lm.run_model_inputs(run_id)] == [b]
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        lm.log_outputs(run_id, [ModelOutput("m-" + "4" * 32)])
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Run"):
        lm.log_outputs("e" * 32, [ModelOutput(a)])


# -- search -----------------------------------------------------------------------------------
@pytest.fixture
def population(eng, lm, distinct_clock):
    """Four models in a fresh experiment, created in order m0..m3, with metrics."""
    exp = eng.tracking.create_experiment("search")
    run_id = eng.tracking.create_run(exp).info.run_id
    specs = [
        ("alpha", {"lr": "0.1"}, {"team": "a"}, "Classifier", [("acc", 0.8, "train"), ("acc", 0.6, "test")]),
        ("beta", {"lr": "0.2"}, {"team": "b"}, "Regressor", [("acc", 0.9, "train")]),
        ("gamma", {"lr": "0.1"}, {"team": "a"}, None, [("acc", 0.7, "test")]),
        ("delta", {}, {}, None, []),
    ]
    ids = []
    for i, (name, params, tags, mtype, metrics) in enumerate(specs):
        mid = lm.create_logged_model(exp, name=name, params=params, tags=tags, model_type=mtype, source_run_id=run_id).model_id
        ids.append(mid)
        if metrics:
            lm.log_model_metrics(run_id, [point(k, v, mid, ts=100 + j, ds=ds) for j, (k, v, ds) in enumerate(metrics)])
    lm.finalize_logged_model(ids[1], "READY")
    return exp, ids


def names(page) -> list[str]:
    return [m.info.name for m in page.items]


def test_search_default_order_is_newest_first(lm, population):
    exp, _ids = population
    assert names(lm.search_logged_models([exp])) == ["delta", "gamma", "beta", "alpha"]


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("name = 'beta'", ["beta"]),
        ("attributes.name != 'beta'", ["delta", "gamma", "alpha"]),
        ("name LIKE '%a'", ["delta", "gamma", "beta", "alpha"]),
        ("name ILIKE 'AL%'", ["alpha"]),
        ("name IN ('alpha', 'gamma')", ["gamma", "alpha"]),
        ("name NOT IN ('alpha', 'gamma')", ["delta", "beta"]),
        ("status = 'READY'", ["beta"]),
        ("status = 'PENDING'", ["delta", "gamma", "alpha"]),
        ("model_type = 'Classifier'", ["alpha"]),
        ("model_type != 'Classifier'", ["beta"]),  # NULL never matches, as in SQL
        ("params.lr = '0.1'", ["gamma", "alpha"]),
        ("params.lr IN ('0.2')", ["beta"]),
        ("tags.team = 'a' AND params.lr = '0.1'", ["gamma", "alpha"]),
        ("metrics.acc > 0.75", ["beta", "alpha"]),  # any point matches
        ("metrics.acc < 0.65", ["alpha"]),
        ("metrics.acc >= 0.7 AND tags.team = 'a'", ["gamma", "alpha"]),
        ("metrics.missing > 0", []),
    ],
)
def test_search_filters(lm, population, filter_string, expected):
    exp, _ids = population
    assert names(lm.search_logged_models([exp], filter_string=filter_string)) == expected


def test_search_attribute_ids_and_times(lm, population):
    exp, ids = population
    assert names(lm.search_logged_models([exp], filter_string=f"model_id = '{ids[2]}'")) == ["gamma"]
    created = lm.get_logged_model(ids[1]).info.creation_timestamp_ms
    assert names(lm.search_logged_models([exp], filter_string=f"creation_time > {created}")) == ["delta", "gamma"]
    assert names(lm.search_logged_models([exp], filter_string=f"creation_timestamp_ms <= {created}")) == [
        "beta",
        "alpha",
    ]
    assert len(lm.search_logged_models([exp], filter_string=f"experiment_id = '{exp}'").items) == 4
    assert names(lm.search_logged_models(["0", exp], filter_string="source_run_id LIKE '%' AND name = 'beta'")) == [
        "beta"
    ]


def test_search_datasets(lm, population):
    exp, _ids = population
    on_test = [{"dataset_name": "test"}]
    assert names(lm.search_logged_models([exp], datasets=on_test)) == ["gamma", "alpha"]
    assert names(lm.search_logged_models([exp], filter_string="metrics.acc > 0.65", datasets=on_test)) == ["gamma"]
    wrong_digest = [{"dataset_name": "test", "dataset_digest": "nope"}]
    assert names(lm.search_logged_models([exp], datasets=wrong_digest)) == []
    with expect_error(INVALID_PARAMETER_VALUE, "dataset_name"):
        lm.search_logged_models([exp], datasets=[{"dataset_digest": "x"}])


def test_search_order_by(lm, population):
    exp, _ids = population

    def order(*entries):
        return names(lm.search_logged_models([exp], order_by=list(entries)))

    assert order({"field_name": "name"}) == ["alpha", "beta", "delta", "gamma"]
    assert order({"field_name": "name", "ascending": False}) == ["gamma", "delta", "beta", "alpha"]
    assert order({"field_name": "creation_time", "ascending": True}) == ["alpha", "beta", "gamma", "delta"]
    # Latest point per model (alpha's latest is 0.6 on test); no metric sorts last.
    assert order({"field_name": "metrics.acc", "ascending": False}) == ["beta", "gamma", "alpha", "delta"]
    assert order({"field_name": "metrics.acc"}) == ["alpha", "gamma", "beta", "delta"]
    by_train = {"field_name": "metrics.acc", "ascending": False, "dataset_name": "train"}
    assert order(by_train) == ["beta", "alpha", "delta", "gamma"]
    assert order({"field_name": "model_type"}) == ["alpha", "beta", "delta", "gamma"]
    with expect_error(INVALID_PARAMETER_VALUE, "Only metrics"):
        lm.search_logged_models([exp], order_by=[{"field_name": "params.lr"}])
    with expect_error(INVALID_PARAMETER_VALUE, "Invalid order by field name"):
        lm.search_logged_models([exp], order_by=[{"field_name": "bogus"}])


def test_search_pages(lm, population):
    exp, _ids = population
    seen, token = [], None
    while True:
        page = lm.search_logged_models([exp], max_results=3, page_token=token)
        seen += names(page)
        token = page.next_page_token
        if token is None:
            break
        assert decode_offset(token) == len(seen)
    assert seen == ["delta", "gamma", "beta", "alpha"]


@pytest.mark.parametrize(
    "filter_string, fragment",
    [
        ("metrics.acc LIKE 'x'", "operator LIKE"),
        ("metric.acc > 1", "invalid entity type 'metric'"),
        ("params.lr > '1'", "operator >"),
        ("bogus = 'x'", "invalid attribute 'bogus'"),
        ("name = 'a' OR name = 'b'", "OR is not supported"),
        ("creation_time > 'x'", "numeric value"),
    ],
)
def test_search_filter_errors(lm, filter_string, fragment):
    with expect_error(INVALID_PARAMETER_VALUE, fragment):
        lm.search_logged_models(["0"], filter_string=filter_string)


def test_search_needs_experiments(lm):
    with expect_error(INVALID_PARAMETER_VALUE, "experiment"):
        lm.search_logged_models([])


def test_models_survive_reopen(tmp_path):
    path = tmp_path / "data"
    with engine.open(path) as e:
        run_id = e.tracking.create_run("0").info.run_id
        mid = e.logged_models.create_logged_model("0", name="kept", source_run_id=run_id).model_id
        e.logged_models.log_model_metrics(run_id, [point("acc", 0.5, mid)])
        e.logged_models.log_outputs(run_id, [ModelOutput(mid, 1)])
    with engine.open(path) as e:
        m = e.logged_models.get_logged_model(mid)
        assert m.info.name == "kept" and [x.key for x in m.data.metrics] == ["acc"]
        assert e.logged_models.run_outputs(run_id) == [ModelOutput(mid, 1)]
