"""The tracking store (engine.tracking.LmdbTrackingStore) on a real LMDB environment.

Every test opens its own data directory with `engine.open` and closes it afterwards; no
mocks except a controlled clock where a test needs distinct (or equal) milliseconds.
Expected values are MLflow's (SQL store and abstract store) unless the store contract
(engine/tracking/contract.py) says otherwise.
"""
from __future__ import annotations

import itertools
import math
import re
import threading
import time
from contextlib import contextmanager

import pytest

from cairn import engine
from cairn.engine.errors import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    CairnError,
)
from cairn.engine.store.keys import u32, u64
from cairn.engine.tracking.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LifecycleStage,
    Metric,
    Param,
    RunStatus,
    RunTag,
)
from cairn.engine.tracking.records import LATEST

RUN_NAME_TAG = "mlflow.runName"


# -- fixtures and helpers -----------------------------------------------------------------
@pytest.fixture
def store(eng):
    return eng.tracking




@pytest.fixture
def frozen_clock(monkeypatch):
    """The wall clock stands still: every write happens in the same millisecond."""
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000 * 1_000_000)


@contextmanager
def expect_error(code: str, *fragments: str):
    with pytest.raises(CairnError) as info:
        yield info
    assert info.value.error_code == code, repr(info.value)
    for fragment in fragments:
        assert fragment in info.value.message, (fragment, info.value.message)


def new_run(store, exp: str = "0", **kw) -> str:
    return store.create_run(exp, **kw).info.run_id


def params_of(store, run_id: str) -> dict[str, str]:
    return store.get_run(run_id).data.params_dict


def tags_of(store, run_id: str) -> dict[str, str]:
    return store.get_run(run_id).data.tags_dict


def latest_of(store, run_id: str) -> dict[str, tuple[float, int, int]]:
    return {m.key: (m.value, m.timestamp, m.step) for m in store.get_run(run_id).data.metrics}


def history(store, run_id: str, key: str) -> list[tuple[int, int, float]]:
    """(timestamp, step, value) rows, in the order the store returns them."""
    page = store.get_metric_history(run_id, key)
    assert page.next_page_token is None
    assert all(m.key == key for m in page.items)
    return [(m.timestamp, m.step, m.value) for m in page.items]


def raw_point_count(eng, run_id: str, key: str) -> tuple[int, int]:
    """(points stored in history blocks, count recorded in the latest-value row)."""
    s = eng.tracking
    with eng.env.read() as txn:
        nid = s.names.lookup(txn, key)
        prefix = bytes.fromhex(run_id) + u32(nid)
        rows = 0
        with txn.cursor(db=eng.env.dbs["metrics"]) as cur:
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    rows += len(v) // 24
        latest = LATEST.decode(txn.get(prefix, db=eng.env.dbs["latest"]))
    return rows, latest.count


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ================================================================ experiments
def test_default_experiment_exists(store):
    exp = store.get_experiment("0")
    assert exp.experiment_id == "0"
    assert exp.name == "Default"
    assert exp.lifecycle_stage == LifecycleStage.ACTIVE
    assert exp.artifact_location == "mlflow-artifacts:/0"
    by_name = store.get_experiment_by_name("Default")
    assert by_name is not None and by_name.experiment_id == "0"


def test_create_and_get_experiment(store):
    before = int(time.time() * 1000)
    a = store.create_experiment("alpha", tags={"team": "vision", "owner": "ann"})
    b = store.create_experiment("beta", artifact_location="s3://bucket/beta")
    after = int(time.time() * 1000)
    assert (a, b) == ("1", "2")
    exp = store.get_experiment(a)
    assert exp.name == "alpha"
    assert exp.artifact_location == "mlflow-artifacts:/1"
    assert exp.lifecycle_stage == LifecycleStage.ACTIVE
    assert exp.tags_dict == {"team": "vision", "owner": "ann"}
    assert before <= exp.creation_time == exp.last_update_time <= after
    assert store.get_experiment(b).artifact_location == "s3://bucket/beta"
    assert store.get_experiment_by_name("beta").experiment_id == "2"
    assert store.get_experiment_by_name("gamma") is None


def test_experiment_name_is_unique_deleted_included(store):
    store.create_experiment("dup")
    with expect_error(RESOURCE_ALREADY_EXISTS, "dup"):
        store.create_experiment("dup")
    gone = store.create_experiment("gone")
    store.delete_experiment(gone)
    with expect_error(RESOURCE_ALREADY_EXISTS, "gone"):
        store.create_experiment("gone")
    # the deleted one is still found by name
    found = store.get_experiment_by_name("gone")
    assert found.experiment_id == gone and found.lifecycle_stage == LifecycleStage.DELETED
    # a failed create consumes no id
    assert store.create_experiment("next") == str(int(gone) + 1)


@pytest.mark.parametrize("bad", ["", "   ", None, "x" * 501])
def test_experiment_name_invalid(store, bad):
    with expect_error(INVALID_PARAMETER_VALUE):
        store.create_experiment(bad)


def test_get_experiment_unknown_and_malformed(store):
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.get_experiment("12345")
    with expect_error(INVALID_PARAMETER_VALUE):
        store.get_experiment("abc")
    with expect_error(INVALID_PARAMETER_VALUE):
        store.get_experiment("-1")


def test_rename_experiment(store):
    a = store.create_experiment("a")
    store.create_experiment("b")
    store.rename_experiment(a, "a2")
    assert store.get_experiment(a).name == "a2"
    assert store.get_experiment_by_name("a") is None
    assert store.get_experiment_by_name("a2").experiment_id == a
    # the freed name can be taken again
    c = store.create_experiment("a")
    assert store.get_experiment_by_name("a").experiment_id == c
    with expect_error(RESOURCE_ALREADY_EXISTS, "b"):
        store.rename_experiment(a, "b")
    assert store.get_experiment(a).name == "a2"
    assert store.get_experiment_by_name("b").experiment_id != a
    store.rename_experiment(a, "a2")  # same name: no-op
    assert store.get_experiment(a).name == "a2"
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.rename_experiment("999", "zzz")
    store.delete_experiment(a)
    with expect_error(INVALID_PARAMETER_VALUE):
        store.rename_experiment(a, "renamed-while-deleted")
    assert store.get_experiment(a).name == "a2"
    assert store.get_experiment_by_name("renamed-while-deleted") is None


def test_rename_updates_last_update_time(store, distinct_clock):
    a = store.create_experiment("t")
    created = store.get_experiment(a)
    store.rename_experiment(a, "t2")
    renamed = store.get_experiment(a)
    assert renamed.creation_time == created.creation_time
    assert renamed.last_update_time > created.last_update_time


def test_experiment_tags(store):
    a = store.create_experiment("tags", tags={"k1": "v1"})
    store.set_experiment_tag(a, "k2", "v2")
    store.set_experiment_tag(a, "k1", "v1b")  # last write wins
    assert store.get_experiment(a).tags_dict == {"k1": "v1b", "k2": "v2"}
    store.delete_experiment_tag(a, "k1")
    assert store.get_experiment(a).tags_dict == {"k2": "v2"}
    with expect_error(RESOURCE_DOES_NOT_EXIST, "k1"):
        store.delete_experiment_tag(a, "k1")
    with expect_error(INVALID_PARAMETER_VALUE):
        store.set_experiment_tag(a, "bad*key", "v")
    store.delete_experiment(a)
    with expect_error(INVALID_PARAMETER_VALUE):
        store.set_experiment_tag(a, "k3", "v3")
    assert store.get_experiment(a).tags_dict == {"k2": "v2"}


def test_delete_and_restore_experiment_cascades_to_runs(store, distinct_clock):
    exp = store.create_experiment("cascade")
    r1, r2, early = (new_run(store, exp) for _ in range(3))
    other = new_run(store, "0")
    store.delete_run(early)  # deleted before the experiment: must stay deleted
    store.delete_experiment(exp)

    e = store.get_experiment(exp)
    assert e.lifecycle_stage == LifecycleStage.DELETED
    for rid in (r1, r2, early):
        assert store.get_run(rid).info.lifecycle_stage == LifecycleStage.DELETED
    assert store.get_run(other).info.lifecycle_stage == LifecycleStage.ACTIVE
    with expect_error(INVALID_PARAMETER_VALUE):
        store.create_run(exp)
    with expect_error(INVALID_PARAMETER_VALUE):
        store.log_param(r1, "p", "1")
    with expect_error(INVALID_PARAMETER_VALUE):
        store.delete_experiment(exp)  # already deleted

    store.restore_experiment(exp)
    assert store.get_experiment(exp).lifecycle_stage == LifecycleStage.ACTIVE
    assert store.get_run(r1).info.lifecycle_stage == LifecycleStage.ACTIVE
    assert store.get_run(r2).info.lifecycle_stage == LifecycleStage.ACTIVE
    assert store.get_run(early).info.lifecycle_stage == LifecycleStage.DELETED
    with expect_error(INVALID_PARAMETER_VALUE):
        store.restore_experiment(exp)  # not deleted
    # usable again
    store.log_param(r1, "p", "1")
    assert params_of(store, r1) == {"p": "1"}
    assert store.get_run(new_run(store, exp)).info.experiment_id == exp


def test_run_deleted_in_same_millisecond_as_experiment_stays_deleted(store, frozen_clock):
    exp = store.create_experiment("same-ms")
    early = new_run(store, exp)
    store.delete_run(early)
    store.delete_experiment(exp)
    store.restore_experiment(exp)
    assert store.get_run(early).info.lifecycle_stage == LifecycleStage.DELETED


def test_cannot_delete_default_experiment(store):
    with expect_error(INVALID_PARAMETER_VALUE, "default experiment"):
        store.delete_experiment("0")
    with expect_error(INVALID_PARAMETER_VALUE):
        store.delete_experiment(0)
    assert store.get_experiment("0").lifecycle_stage == LifecycleStage.ACTIVE


def test_cannot_delete_default_experiment_by_alias(store):
    try:
        store.delete_experiment("00")
    except CairnError as exc:
        assert exc.error_code == INVALID_PARAMETER_VALUE
    assert store.get_experiment("0").lifecycle_stage == LifecycleStage.ACTIVE


def test_create_run_in_unknown_experiment(store):
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.create_run("4242")


# ================================================================ runs
def test_create_run_fields(store):
    exp = store.create_experiment("runs")
    run = store.create_run(exp, user_id="ann", start_time=1234, tags={"a": "b"}, run_name="first")
    info = run.info
    assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)
    assert info.run_uuid == info.run_id
    assert info.experiment_id == exp
    assert info.user_id == "ann"
    assert info.status == RunStatus.RUNNING
    assert info.start_time == 1234
    assert info.end_time is None
    assert info.lifecycle_stage == LifecycleStage.ACTIVE
    assert info.run_name == "first"
    assert info.artifact_uri == f"mlflow-artifacts:/{exp}/{info.run_id}/artifacts"
    assert run.data.tags_dict == {"a": "b", RUN_NAME_TAG: "first"}
    assert run.data.params == [] and run.data.metrics == []
    assert run.inputs.dataset_inputs == []
    # the store returns what it stored
    again = store.get_run(info.run_id)
    assert again.info == info and again.data.tags_dict == run.data.tags_dict


def test_create_run_defaults(store):
    before = int(time.time() * 1000)
    run = store.create_run("0")
    after = int(time.time() * 1000)
    assert before <= run.info.start_time <= after
    assert run.info.user_id == ""
    name = run.info.run_name
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", name), name
    assert run.data.tags_dict == {RUN_NAME_TAG: name}
    ids = {new_run(store) for _ in range(20)} | {run.info.run_id}
    assert len(ids) == 21


def test_run_artifact_uri_follows_experiment_location(store):
    exp = store.create_experiment("loc", artifact_location="file:///data/art/")
    run = store.create_run(exp)
    assert run.info.artifact_uri == f"file:///data/art/{run.info.run_id}/artifacts"


def test_run_name_from_tag_and_conflict(store):
    by_tag = store.create_run("0", tags={RUN_NAME_TAG: "from-tag"})
    assert by_tag.info.run_name == "from-tag"
    assert by_tag.data.tags_dict[RUN_NAME_TAG] == "from-tag"
    both = store.create_run("0", tags=[RunTag(RUN_NAME_TAG, "same")], run_name="same")
    assert both.info.run_name == "same"
    with expect_error(INVALID_PARAMETER_VALUE, "run_name", "mlflow.runName"):
        store.create_run("0", tags={RUN_NAME_TAG: "x"}, run_name="y")


def test_create_run_bad_start_time(store):
    for bad in (-1, "123", 1.5, True):
        with expect_error(INVALID_PARAMETER_VALUE):
            store.create_run("0", start_time=bad)


def test_update_run_info(store):
    rid = new_run(store, run_name="before")
    info = store.update_run_info(rid, RunStatus.FINISHED, 99_999, None)
    assert (info.status, info.end_time, info.run_name) == ("FINISHED", 99_999, "before")
    info = store.update_run_info(rid, None, None, "after")
    assert (info.status, info.end_time, info.run_name) == ("FINISHED", 99_999, "after")
    run = store.get_run(rid)
    assert run.info.run_name == "after"
    assert run.info.status == "FINISHED" and run.info.end_time == 99_999
    assert run.data.tags_dict[RUN_NAME_TAG] == "after"
    for status in RunStatus.ALL:
        assert store.update_run_info(rid, status, None, None).status == status
    with expect_error(INVALID_PARAMETER_VALUE, "BOGUS"):
        store.update_run_info(rid, "BOGUS", None, None)
    with expect_error(INVALID_PARAMETER_VALUE):
        store.update_run_info(rid, None, -5, None)
    assert store.get_run(rid).info.status == "KILLED"
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.update_run_info("0" * 32, "FINISHED", None, None)


def test_delete_restore_run_and_writes_to_deleted_run(store):
    rid = new_run(store)
    store.log_param(rid, "kept", "1")
    store.delete_run(rid)
    run = store.get_run(rid)  # still readable
    assert run.info.lifecycle_stage == LifecycleStage.DELETED
    assert run.data.params_dict == {"kept": "1"}
    writes = [
        lambda: store.log_param(rid, "p", "1"),
        lambda: store.set_tag(rid, "t", "1"),
        lambda: store.delete_tag(rid, RUN_NAME_TAG),
        lambda: store.log_metric(rid, Metric("m", 1.0, 1, 0)),
        lambda: store.log_metric(rid, Metric("m", 1.0, 1, 0), wait=True),
        lambda: store.log_batch(rid, metrics=[Metric("m", 1.0, 1, 0)]),
        lambda: store.log_batch(rid, metrics=[Metric("m", 1.0, 1, 0)], wait=False),
        lambda: store.log_batch(rid, params=[Param("p", "1")]),
        lambda: store.update_run_info(rid, "FINISHED", 5, None),
        lambda: store.log_inputs(rid, [DatasetInput(dataset=Dataset(name="d", digest="1"))]),
    ]
    for write in writes:
        with expect_error(INVALID_PARAMETER_VALUE, "deleted"):
            write()
    store.flush()
    run = store.get_run(rid)
    assert run.data.params_dict == {"kept": "1"}
    assert "t" not in run.data.tags_dict and RUN_NAME_TAG in run.data.tags_dict
    assert run.data.metrics == []
    assert run.info.status == "RUNNING"
    assert store.get_metric_history(rid, "m").items == []

    store.restore_run(rid)
    assert store.get_run(rid).info.lifecycle_stage == LifecycleStage.ACTIVE
    store.log_metric(rid, Metric("m", 2.0, 3, 4))
    store.log_param(rid, "p", "1")
    store.flush()
    assert latest_of(store, rid) == {"m": (2.0, 3, 4)}
    assert params_of(store, rid) == {"kept": "1", "p": "1"}


def test_get_run_unknown_and_malformed(store):
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.get_run("0123456789abcdef0123456789abcdef")
    for bad in ("xyz", "0" * 31, "0" * 33, "0123456789ABCDEF0123456789ABCDEF", "g" * 32, None, ""):
        with expect_error(INVALID_PARAMETER_VALUE):
            store.get_run(bad)
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.delete_run("f" * 32)
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.log_param("f" * 32, "p", "v")
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.log_metric("f" * 32, Metric("m", 1.0, 1, 1))
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        store.get_metric_history("f" * 32, "m")


# ================================================================ params and tags
def test_params_are_write_once(store):
    rid = new_run(store)
    store.log_param(rid, "lr", "0.1")
    store.log_param(rid, "lr", "0.1")  # same value: no-op
    with expect_error(INVALID_PARAMETER_VALUE, "lr", "0.1", "0.2"):
        store.log_param(rid, "lr", "0.2")
    with expect_error(INVALID_PARAMETER_VALUE, "lr", "0.1", "0.3"):
        store.log_batch(rid, params=[Param("lr", "0.3")])
    assert params_of(store, rid) == {"lr": "0.1"}


def test_param_values_as_given(store):
    rid = new_run(store)
    store.log_batch(rid, params=[Param("empty", ""), Param("long", "x" * 6000), Param("uni", "αβγ ✓")])
    assert params_of(store, rid) == {"empty": "", "long": "x" * 6000, "uni": "αβγ ✓"}
    with expect_error(INVALID_PARAMETER_VALUE, "6000"):
        store.log_param(rid, "too_long", "x" * 6001)
    assert "too_long" not in params_of(store, rid)


@pytest.mark.parametrize("wait", [True, False])
def test_log_batch_duplicate_param_is_all_or_nothing(store, wait):
    rid = new_run(store)
    with expect_error(INVALID_PARAMETER_VALUE, "k"):
        store.log_batch(
            rid,
            metrics=[Metric("m", 1.0, 10, 0)],
            params=[Param("a", "1"), Param("k", "1"), Param("k", "2")],
            tags=[RunTag("t", "x")],
            wait=wait,
        )
    store.flush()
    run = store.get_run(rid)
    assert run.data.params == []
    assert run.data.tags_dict == {RUN_NAME_TAG: run.info.run_name}
    assert run.data.metrics == []
    # the same key twice with the same value is accepted
    store.log_batch(rid, params=[Param("k", "1"), Param("k", "1")], wait=wait)
    assert params_of(store, rid) == {"k": "1"}


@pytest.mark.parametrize("wait", [True, False])
def test_log_batch_conflict_with_stored_param_is_all_or_nothing(store, wait):
    rid = new_run(store)
    store.log_param(rid, "a", "1")
    with expect_error(INVALID_PARAMETER_VALUE, "a", "1", "9"):
        store.log_batch(
            rid,
            metrics=[Metric("m", 1.0, 10, 0)],
            params=[Param("b", "2"), Param("a", "9")],
            tags=[RunTag("t", "x"), RunTag(RUN_NAME_TAG, "renamed")],
            wait=wait,
        )
    store.flush()
    run = store.get_run(rid)
    assert run.data.params_dict == {"a": "1"}
    assert "t" not in run.data.tags_dict
    assert run.info.run_name != "renamed" and run.data.tags_dict[RUN_NAME_TAG] == run.info.run_name
    assert run.data.metrics == []
    assert store.get_metric_history(rid, "m").items == []


def test_tags_last_write_wins_and_delete(store):
    rid = new_run(store, run_name="n")
    store.set_tag(rid, "t", "1")
    store.set_tag(rid, "t", "2")
    store.log_batch(rid, tags=[RunTag("u", "a"), RunTag("u", "b")])
    assert tags_of(store, rid) == {RUN_NAME_TAG: "n", "t": "2", "u": "b"}
    store.delete_tag(rid, "t")
    assert tags_of(store, rid) == {RUN_NAME_TAG: "n", "u": "b"}
    with expect_error(RESOURCE_DOES_NOT_EXIST, "t"):
        store.delete_tag(rid, "t")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "never-seen-key"):
        store.delete_tag(rid, "never-seen-key")
    store.set_tag(rid, "t", "3")  # a deleted tag can be set again
    assert tags_of(store, rid)["t"] == "3"
    store.set_tag(rid, "empty", "")
    assert tags_of(store, rid)["empty"] == ""


def test_setting_run_name_tag_renames_run(store):
    rid = new_run(store, run_name="old")
    store.set_tag(rid, RUN_NAME_TAG, "new")
    run = store.get_run(rid)
    assert run.info.run_name == "new"
    assert run.data.tags_dict[RUN_NAME_TAG] == "new"
    store.log_batch(rid, tags=[RunTag(RUN_NAME_TAG, "newer")])
    assert store.get_run(rid).info.run_name == "newer"


# ================================================================ metrics
def test_nan_and_infinities_stored_as_given(store):
    rid = new_run(store)
    store.log_metric(rid, Metric("nan", math.nan, 1, 0))
    store.log_metric(rid, Metric("pinf", math.inf, 1, 0))
    store.log_batch(rid, metrics=[Metric("ninf", -math.inf, 1, 0), Metric("zero", -0.0, 1, 0)])
    store.flush()
    latest = latest_of(store, rid)
    assert math.isnan(latest["nan"][0])
    assert latest["pinf"] == (math.inf, 1, 0)
    assert latest["ninf"] == (-math.inf, 1, 0)
    assert latest["zero"] == (0.0, 1, 0)
    (nan_row,) = history(store, rid, "nan")
    assert math.isnan(nan_row[2]) and nan_row[:2] == (1, 0)
    assert history(store, rid, "pinf") == [(1, 0, math.inf)]
    assert history(store, rid, "ninf") == [(1, 0, -math.inf)]


LATEST_POINTS = [  # (value, timestamp, step)
    (1.0, 100, 5),
    (9.0, 200, 3),  # later timestamp but smaller step
    (2.0, 100, 5),  # same step and timestamp, greater value: the latest
    (100.0, 50, 5),  # same step, older timestamp
]


@pytest.mark.parametrize("mode", ["log_metric", "log_metric_flush_each", "one_batch", "wait"])
def test_latest_is_greatest_step_timestamp_value_whatever_the_order(store, mode):
    for perm in itertools.permutations(LATEST_POINTS):
        rid = new_run(store)
        if mode == "one_batch":
            store.log_batch(rid, metrics=[Metric("m", v, t, s) for v, t, s in perm])
        for v, t, s in perm:
            if mode == "log_metric":
                store.log_metric(rid, Metric("m", v, t, s))
            elif mode == "log_metric_flush_each":
                store.log_metric(rid, Metric("m", v, t, s))
                store.flush()
            elif mode == "wait":
                store.log_metric(rid, Metric("m", v, t, s), wait=True)
        store.flush()
        assert latest_of(store, rid) == {"m": (2.0, 100, 5)}, perm
        assert len(history(store, rid, "m")) == 4


def test_latest_with_nan_tie_does_not_depend_on_arrival_order(store):
    for first, second, expected in [(math.nan, 5.0, 5.0), (5.0, math.nan, 5.0), (-1.0, math.nan, math.nan)]:
        rid = new_run(store)
        store.log_metric(rid, Metric("m", first, 10, 3))
        store.flush()
        store.log_metric(rid, Metric("m", second, 10, 3))
        store.flush()
        ((value, ts, step),) = latest_of(store, rid).values()
        assert (ts, step) == (10, 3)
        assert same_float(value, expected), (first, second, value)


def test_concurrent_loggers_lose_nothing(store):
    rid = new_run(store)
    shared = new_run(store)
    errors = []

    def work(t: int) -> None:
        try:
            for i in range(1500):
                store.log_metric(rid, Metric(f"k{t}", float(i), i, i))
                store.log_metric(shared, Metric("all", float(t * 10_000 + i), i, t))
                if i % 500 == 0:
                    store.log_param(rid, f"p{t}_{i}", str(i))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    store.flush()
    for t in range(4):
        assert [m.value for m in store.get_metric_history(rid, f"k{t}").items] == [float(i) for i in range(1500)]
    assert len(store.get_metric_history(shared, "all").items) == 6000
    assert store.get_run(shared).data.metrics == [Metric("all", 31_499.0, 1499, 3)]
    assert params_of(store, rid) == {f"p{t}_{i}": str(i) for t in range(4) for i in (0, 500, 1000)}


def test_identical_points_are_stored_once(eng, store):
    rid = new_run(store)
    p = Metric("m", 0.5, 10, 1)
    store.log_metric(rid, p)
    store.log_metric(rid, p)
    store.flush()
    store.log_batch(rid, metrics=[p, p])
    store.log_metric(rid, Metric("m", math.nan, 10, 1))
    store.log_metric(rid, Metric("m", math.nan, 10, 1))
    store.log_metric(rid, Metric("m", 0.75, 10, 1))  # differs in value only: kept
    store.log_metric(rid, Metric("m", 0.5, 11, 1))  # differs in timestamp only: kept
    store.log_metric(rid, Metric("m", 0.5, 10, 2))  # differs in step only: kept
    store.flush()
    rows = history(store, rid, "m")
    assert rows[:2] == [(10, 1, 0.5), (10, 1, 0.75)]
    assert rows[2][:2] == (10, 1) and math.isnan(rows[2][2])
    assert rows[3:] == [(10, 2, 0.5), (11, 1, 0.5)]
    assert store.get_run(rid).data.metrics == [Metric("m", 0.5, 10, 2)]
    stored, count = raw_point_count(eng, rid, "m")
    assert stored == count == 9  # every arrival is appended; duplicates vanish on read


def test_history_order_is_timestamp_step_value(store):
    rid = new_run(store)
    points = [  # (value, timestamp, step)
        (5.0, 3, 1),
        (4.0, 1, 5),
        (2.0, 1, 2),
        (1.0, 1, 2),
        (0.0, 2, 0),
        (-1.0, 1, -3),
        (math.inf, 1, 2),
    ]
    store.log_batch(rid, metrics=[Metric("m", v, t, s) for v, t, s in points])
    assert history(store, rid, "m") == [
        (1, -3, -1.0),
        (1, 2, 1.0),
        (1, 2, 2.0),
        (1, 2, math.inf),
        (1, 5, 4.0),
        (2, 0, 0.0),
        (3, 1, 5.0),
    ]
    assert latest_of(store, rid) == {"m": (4.0, 1, 5)}


def test_history_of_unknown_key_is_empty_and_keys_do_not_mix(store):
    a, b = new_run(store), new_run(store)
    store.log_metric(a, Metric("loss", 1.0, 1, 1))
    store.log_metric(a, Metric("loss2", 2.0, 1, 1))
    store.log_metric(b, Metric("loss", 3.0, 1, 1))
    store.flush()
    assert history(store, a, "loss") == [(1, 1, 1.0)]
    assert history(store, a, "loss2") == [(1, 1, 2.0)]
    assert history(store, b, "loss") == [(1, 1, 3.0)]
    assert history(store, b, "loss2") == []
    assert history(store, a, "never-logged") == []


def test_history_pagination(store):
    rid = new_run(store)
    store.log_batch(rid, metrics=[Metric("m", float(i), 1000 + i, i) for i in range(25)])
    full = store.get_metric_history(rid, "m").items
    assert [m.step for m in full] == list(range(25))
    pages, token = [], None
    while True:
        page = store.get_metric_history(rid, "m", max_results=10, page_token=token)
        pages.append(page.items)
        token = page.next_page_token
        if token is None:
            break
        assert isinstance(token, str)
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [m for p in pages for m in p] == full
    # an exact multiple ends without a dangling token
    first = store.get_metric_history(rid, "m", max_results=5)
    assert first.items == full[:5] and first.next_page_token is not None
    page, token, seen = first, first.next_page_token, list(first.items)
    while token is not None:
        page = store.get_metric_history(rid, "m", max_results=5, page_token=token)
        seen += page.items
        token = page.next_page_token
    assert seen == full and len(page.items) == 5
    one = store.get_metric_history(rid, "m", max_results=25)
    assert one.items == full and one.next_page_token is None
    for bad in (0, -1, 25_001, "10"):
        with expect_error(INVALID_PARAMETER_VALUE):
            store.get_metric_history(rid, "m", max_results=bad)
    with expect_error(INVALID_PARAMETER_VALUE):
        store.get_metric_history(rid, "m", max_results=5, page_token="not-a-token!")


def test_history_across_block_boundary_in_one_batch(eng, store):
    rid = new_run(store)
    other = new_run(store)
    expected = []
    for chunk in range(3):  # 1000 + 1000 + 500 points: blocks of 1,024 filled across commits
        n = 500 if chunk == 2 else 1000
        base = chunk * 1000
        batch = [Metric("m", base + i + 0.25, 10_000 + base + i, base + i) for i in range(n)]
        store.log_batch(rid, metrics=batch)
        store.log_batch(other, metrics=[Metric("m", -1.0, 1, chunk)])
        expected += [(m.timestamp, m.step, m.value) for m in batch]
    assert history(store, rid, "m") == expected
    assert len(expected) == 2500
    assert latest_of(store, rid) == {"m": (2499.25, 12_499, 2499)}
    assert history(store, other, "m") == [(1, 0, -1.0), (1, 1, -1.0), (1, 2, -1.0)]
    assert raw_point_count(eng, rid, "m") == (2500, 2500)


def test_history_across_block_boundary_over_many_flushes(eng, store):
    rid = new_run(store)
    n = 3 * 1024 + 7
    # reverse arrival order inside each chunk: read-time sort must put them back
    expected = []
    for lo, hi in [(0, 1000), (1000, 1023), (1023, 1025), (1025, 2048), (2048, n)]:
        for i in reversed(range(lo, hi)):
            store.log_metric(rid, Metric("m", i * 0.5, 5_000 + i, i))
        store.flush()
        expected += [(5_000 + i, i, i * 0.5) for i in range(lo, hi)]
        assert history(store, rid, "m") == expected
    # re-log a point that sits in the first block: deduplicated across blocks
    store.log_metric(rid, Metric("m", 0.0, 5_000, 0))
    store.flush()
    assert history(store, rid, "m") == expected
    assert raw_point_count(eng, rid, "m") == (n + 1, n + 1)
    assert latest_of(store, rid) == {"m": ((n - 1) * 0.5, 5_000 + n - 1, n - 1)}


def test_log_metric_async_then_flush_is_visible(store):
    rid = new_run(store)
    for i in range(300):
        store.log_metric(rid, Metric("acc", i / 300, 1_000 + i, i))
    store.log_batch(rid, metrics=[Metric("loss", 3.0, 5, 1)], wait=False)
    store.flush()
    assert len(history(store, rid, "acc")) == 300
    assert history(store, rid, "loss") == [(5, 1, 3.0)]
    assert latest_of(store, rid) == {"acc": (299 / 300, 1_299, 299), "loss": (3.0, 5, 1)}


def test_metric_timestamp_and_step_forms(store):
    rid = new_run(store)
    store.log_batch(rid, metrics=[Metric("m", 1, 5.0, 2.0), Metric("m", 2, 6, -4)])
    assert history(store, rid, "m") == [(5, 2, 1.0), (6, -4, 2.0)]
    for bad_ts in (-1, 1.5, "5", True):
        with expect_error(INVALID_PARAMETER_VALUE, "timestamp"):
            store.log_metric(rid, Metric("m", 1.0, bad_ts, 0))
    for bad_step in (0.5, "1", False):
        with expect_error(INVALID_PARAMETER_VALUE, "step"):
            store.log_metric(rid, Metric("m", 1.0, 1, bad_step))


# ================================================================ log_batch limits and keys
def test_log_batch_limits(store):
    rid = new_run(store)
    with expect_error(INVALID_PARAMETER_VALUE, "1000", "1001"):
        store.log_batch(rid, metrics=[Metric("m", 1.0, 1, i) for i in range(1001)])
    with expect_error(INVALID_PARAMETER_VALUE, "100", "101"):
        store.log_batch(rid, params=[Param(f"p{i}", "v") for i in range(101)])
    with expect_error(INVALID_PARAMETER_VALUE, "100", "101"):
        store.log_batch(rid, tags=[RunTag(f"t{i}", "v") for i in range(101)])
    with expect_error(INVALID_PARAMETER_VALUE, "1001"):
        store.log_batch(
            rid,
            metrics=[Metric("m", 1.0, 1, i) for i in range(1000)],
            params=[Param("p", "v")],
        )
    store.flush()
    run = store.get_run(rid)
    assert run.data.metrics == [] and run.data.params == []
    assert set(run.data.tags_dict) == {RUN_NAME_TAG}
    # exactly at the limits is accepted
    store.log_batch(rid, metrics=[Metric("m", 1.0, 1, i) for i in range(1000)])
    store.log_batch(
        rid,
        params=[Param(f"p{i}", "v") for i in range(100)],
        tags=[RunTag(f"t{i}", "v") for i in range(100)],
    )
    run = store.get_run(rid)
    assert len(run.data.params) == 100 and len(run.data.tags) == 101
    assert len(history(store, rid, "m")) == 1000


BAD_KEYS = ["a/../b", "../x", "bad*char", "", "k" * 251, "/abs", "a//b", "./a", None]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=lambda k: repr(k)[:20])
def test_invalid_keys_rejected(store, bad):
    rid = new_run(store)
    good_m, good_p, good_t = Metric("ok", 1.0, 1, 1), Param("ok", "1"), RunTag("ok", "1")
    attempts = [
        lambda: store.log_param(rid, bad, "v"),
        lambda: store.set_tag(rid, bad, "v"),
        lambda: store.log_metric(rid, Metric(bad, 1.0, 1, 1)),
        lambda: store.log_metric(rid, Metric(bad, 1.0, 1, 1), wait=True),
        lambda: store.log_batch(rid, metrics=[good_m, Metric(bad, 1.0, 1, 1)], params=[good_p], tags=[good_t]),
        lambda: store.log_batch(rid, metrics=[good_m], params=[good_p, Param(bad, "v")], tags=[good_t]),
        lambda: store.log_batch(rid, metrics=[good_m], params=[good_p], tags=[good_t, RunTag(bad, "v")]),
        lambda: store.log_batch(rid, metrics=[good_m, Metric(bad, 1.0, 1, 1)], wait=False),
        lambda: store.create_run("0", tags={bad: "v"}),
        lambda: store.create_experiment("bad-key-experiment", tags={bad: "v"}),
        lambda: store.set_experiment_tag("0", bad, "v"),
    ]
    for attempt in attempts:
        with expect_error(INVALID_PARAMETER_VALUE):
            attempt()
    store.flush()
    run = store.get_run(rid)
    assert run.data.params == [] and run.data.metrics == []
    assert set(run.data.tags_dict) == {RUN_NAME_TAG}
    assert store.get_experiment("0").tags == []
    assert store.get_experiment_by_name("bad-key-experiment") is None


def test_valid_key_characters(store):
    rid = new_run(store)
    keys = ["a", "a/b", "a.b-c_d", "with space", "co:lon", "k" * 250, "a..b", "a/.b"]
    store.log_batch(rid, params=[Param(k, "v") for k in keys], metrics=[Metric(k, 1.0, 1, 1) for k in keys])
    run = store.get_run(rid)
    assert run.data.params_dict == {k: "v" for k in keys}
    assert run.data.metrics_dict == {k: 1.0 for k in keys}


@pytest.mark.parametrize("value", ["1.0", None, True, False, b"1", [1.0], complex(1, 0)], ids=repr)
def test_metric_value_must_be_a_number(store, value):
    rid = new_run(store)
    for attempt in (
        lambda: store.log_metric(rid, Metric("m", value, 1, 1)),
        lambda: store.log_metric(rid, Metric("m", value, 1, 1), wait=True),
        lambda: store.log_batch(rid, metrics=[Metric("m", 1.0, 1, 0), Metric("m", value, 1, 1)]),
        lambda: store.log_batch(rid, metrics=[Metric("m", 1.0, 1, 0), Metric("m", value, 1, 1)], wait=False),
    ):
        with expect_error(INVALID_PARAMETER_VALUE, "value"):
            attempt()
    store.flush()
    assert store.get_run(rid).data.metrics == []
    assert store.get_metric_history(rid, "m").items == []


def test_integer_metric_values_are_stored_as_floats(store):
    rid = new_run(store)
    store.log_metric(rid, Metric("m", 3, 1, 1), wait=True)
    (m,) = store.get_metric_history(rid, "m").items
    assert m.value == 3.0 and isinstance(m.value, float)


# ================================================================ inputs
def _ds(name="train", digest="abc123", source="s3://x", **kw) -> Dataset:
    return Dataset(name=name, digest=digest, source_type="s3", source=source, schema="{}", profile="{}", **kw)


def test_log_inputs(eng, store):
    exp = store.create_experiment("data")
    r1, r2 = new_run(store, exp), new_run(store, exp)
    ctx = [InputTag("mlflow.data.context", "training")]
    store.log_inputs(r1, [DatasetInput(dataset=_ds(), tags=ctx)])
    store.log_inputs(r1, [DatasetInput(dataset=_ds(), tags=ctx)])  # same input again: one entry
    store.log_inputs(r2, [DatasetInput(dataset=_ds(source="s3://other"), tags=[InputTag("mlflow.data.context", "eval")])])
    store.log_inputs(r2, [DatasetInput(dataset=_ds(name="test", digest="ffff"))])

    (di,) = store.get_run(r1).inputs.dataset_inputs
    assert di.dataset == _ds()
    assert di.tags == ctx
    inputs = {d.dataset.name: d for d in store.get_run(r2).inputs.dataset_inputs}
    assert set(inputs) == {"train", "test"}
    # a dataset is kept once per experiment by (name, digest): the first record stays
    assert inputs["train"].dataset.source == "s3://x"
    assert inputs["train"].tags == [InputTag("mlflow.data.context", "eval")]
    assert inputs["test"].tags == []
    with eng.env.read() as txn, txn.cursor(db=eng.env.dbs["datasets"]) as cur:
        prefix = u64(int(exp))
        keys = [k for k in cur.iternext(values=False) if k.startswith(prefix)]
    assert len(keys) == 2
    # another experiment keeps its own copy
    r3 = new_run(store, "0")
    store.log_inputs(r3, [DatasetInput(dataset=_ds(source="s3://zero"))])
    assert store.get_run(r3).inputs.dataset_inputs[0].dataset.source == "s3://zero"


def test_log_inputs_validation(store):
    rid = new_run(store)
    for bad in (_ds(name=""), _ds(digest=""), _ds(digest="d" * 37), _ds(name="n" * 501)):
        with expect_error(INVALID_PARAMETER_VALUE):
            store.log_inputs(rid, [DatasetInput(dataset=_ds(name="fine")), DatasetInput(dataset=bad)])
    assert store.get_run(rid).inputs.dataset_inputs == []


# ================================================================ bulk interval
def _bulk(store, run_ids, key, max_results, start=None, end=None):
    return [
        (rid, m.step, m.timestamp, m.value)
        for rid, m in store.get_metric_history_bulk_interval(run_ids, key, max_results, start, end)
    ]


def test_bulk_interval_sampling(store):
    a, b = new_run(store), new_run(store)
    store.log_batch(a, metrics=[Metric("m", float(s), 1000 + s, s) for s in range(100)])
    store.log_batch(b, metrics=[Metric("m", float(-s), 2000 + s, s) for s in range(0, 50, 5)])
    # few steps: everything comes back, ordered by step per run
    small = _bulk(store, [b], "m", 100)
    assert small == [(b, s, 2000 + s, float(-s)) for s in range(0, 50, 5)]

    out = _bulk(store, [a], "m", 10)
    steps = [s for _rid, s, _t, _v in out]
    # MLflow: every (n/max_results)-th step, plus the last one (so max_results + 1 here)
    assert steps == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99]
    assert out[0] == (a, 0, 1000, 0.0) and out[-1] == (a, 99, 1099, 99.0)

    # two runs: the union of steps (0..99) is sampled to {0, 20, 40, 60, 80} + the last (99),
    # and each run's own first and last step (b: 0 and 45) is kept
    both = _bulk(store, [a, b], "m", 5)
    assert [s for rid, s, *_ in both if rid == a] == [0, 20, 40, 45, 60, 80, 99]
    assert [s for rid, s, *_ in both if rid == b] == [0, 20, 40, 45]
    assert [rid for rid, *_ in both] == [a] * 7 + [b] * 4

    # a step range: first and last step in the range, at most max_results (+ the last) sampled
    ranged = _bulk(store, [a], "m", 4, 20, 39)
    assert [s for _r, s, *_ in ranged] == [20, 25, 30, 35, 39]
    with expect_error(INVALID_PARAMETER_VALUE):
        store.get_metric_history_bulk_interval([a], "m", 10, 5, None)
    with expect_error(INVALID_PARAMETER_VALUE):
        store.get_metric_history_bulk_interval([a], "m", 10, 50, 10)
    assert _bulk(store, [a], "never", 10) == []


def test_bulk_interval_matches_mlflow(store):
    abstract_store = pytest.importorskip("mlflow.store.tracking.abstract_store")

    class Oracle:
        get_metric_history = staticmethod(lambda run_id, key: store.get_metric_history(run_id, key).items)
        _evenly_spaced_indices = staticmethod(abstract_store.AbstractStore._evenly_spaced_indices)

    a, b, c = new_run(store), new_run(store), new_run(store)
    store.log_batch(a, metrics=[Metric("m", s * 1.5, 7 * s, s) for s in range(0, 300, 3)])
    store.log_batch(b, metrics=[Metric("m", -s * 1.0, 5 * s, s) for s in range(40, 180, 7)])
    # many values on few steps (the default step 0 case)
    store.log_batch(c, metrics=[Metric("m", float(i), 10_000 + i, i // 50) for i in range(400)])
    cases = [
        ([a], 10, None, None),
        ([a, b], 7, None, None),
        ([a, b], 25, 50, 150),
        ([b], 3, 0, 1000),
        ([a, b, c], 5, None, None),
        ([c], 4, None, None),
        ([a], 1, None, None),
        ([a], 500, None, None),
    ]
    for run_ids, max_results, start, end in cases:
        ours = _bulk(store, run_ids, "m", max_results, start, end)
        theirs = [
            (x.run_id, x.step, x.timestamp, x.value)
            for x in abstract_store.AbstractStore.get_metric_history_bulk_interval(
                Oracle(), run_ids, "m", max_results, start, end
            )
        ]
        assert ours == theirs, (run_ids, max_results, start, end)


# ================================================================ engine.open
def test_engine_open_returns_same_engine_per_path(tmp_path):
    a = engine.open(tmp_path / "d")
    try:
        assert engine.open(tmp_path / "d") is a
        assert engine.open(str(tmp_path / "d" / ".." / "d")) is a
        assert a.tracking.env is a.env
        rid = new_run(a.tracking)
    finally:
        a.close()
        a.close()
    # one holder left: still open and usable
    a.tracking.log_param(rid, "p", "1")
    assert engine.open(tmp_path / "d") is a
    a.close()
    a.close()  # the last holder closed it
    a.close()  # closing more often than opening is harmless
    b = engine.open(tmp_path / "d")
    try:
        assert b is not a
        assert b.tracking.get_run(rid).data.params_dict == {"p": "1"}
    finally:
        b.close()


def test_data_survives_close_and_reopen(tmp_path):
    with engine.open(tmp_path / "d") as e:
        s = e.tracking
        exp = s.create_experiment("persist", tags={"k": "v"})
        rid = new_run(s, exp, run_name="kept")
        s.log_param(rid, "p", "1")
        s.set_tag(rid, "t", "2")
        for i in range(50):
            s.log_metric(rid, Metric("m", float(i), i, i))  # not flushed: close commits them
    with engine.open(tmp_path / "d") as e:
        s = e.tracking
        run = s.get_run(rid)
        assert run.info.run_name == "kept" and run.info.experiment_id == exp
        assert run.data.params_dict == {"p": "1"}
        assert run.data.tags_dict == {"t": "2", RUN_NAME_TAG: "kept"}
        assert run.data.metrics == [Metric("m", 49.0, 49, 49)]
        assert len(s.get_metric_history(rid, "m").items) == 50
        assert s.get_experiment(exp).tags_dict == {"k": "v"}
        assert s.create_experiment("after-reopen") == str(int(exp) + 1)
