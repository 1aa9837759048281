"""search_registered_models / search_model_versions (engine.registry.search) on a real
store: MLflow's registry grammar, Cairn's name forms, ordering, paging and errors."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from cairn.engine.errors import INVALID_PARAMETER_VALUE, CairnError
from cairn.engine.query.pagination import decode_offset


@contextmanager
def expect_invalid(*fragments: str):
    with pytest.raises(CairnError) as info:
        yield
    assert info.value.error_code == INVALID_PARAMETER_VALUE, repr(info.value)
    for fragment in fragments:
        assert fragment in info.value.message, (fragment, info.value.message)


@pytest.fixture
def reg(eng, distinct_clock):
    """iris (3 versions), rose (1), main.team.tulip (2), a prompt; times increase in
    that order, and rose is updated last."""
    eng.registrar.close()  # the store alone: statuses change only when the test says
    r = eng.registry
    r.create_schema("team")
    r.create_registered_model("iris", tags={"task": "classify", "owner": "ana"})
    r.create_registered_model("rose", tags={"task": "regress"})
    r.create_registered_model("team.tulip", tags={"owner": "Bo"})
    r.create_registered_model("my-prompt", tags={"mlflow.prompt.is_prompt": "true"})
    run_a, run_b = "a" * 32, "b" * 32
    r.create_model_version("iris", "runs:/" + run_a + "/model", tags={"flavor": "sklearn"})
    r.create_model_version("iris", "runs:/" + run_b + "/model")
    r.create_model_version("iris", "file:///models/iris.onnx", tags={"flavor": "onnx"})
    r.create_model_version("team.tulip", "runs:/" + run_a + "/tulip")
    r.create_model_version("team.tulip", "mlflow-artifacts:/0/x")
    r.create_model_version("rose", "runs:/" + run_b + "/rose")
    r.transition_model_version_stage("iris", 2, "Production")
    r.finish_registration("iris", 1, status="READY")
    r.update_registered_model("rose", "latest change")
    return r


def model_names(page) -> list[str]:
    return [m.name for m in page.items]


def versions(page) -> list[tuple[str, str]]:
    return [(v.name, v.version) for v in page.items]


# -- registered models -----------------------------------------------------------------------
def test_models_default_order_and_latest_versions(reg):
    page = reg.search_registered_models()
    assert model_names(page) == ["iris", "main.team.tulip", "my-prompt", "rose"]
    assert page.next_page_token is None
    iris = page.items[0]
    assert [(v.version, v.current_stage) for v in iris.latest_versions] == [("3", "None"), ("2", "Production")]


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("name = 'iris'", ["iris"]),
        ("name = 'default.iris'", ["iris"]),
        ("name = 'main.default.iris'", ["iris"]),
        ("name = 'team.tulip'", ["main.team.tulip"]),
        ("name = 'main.team.tulip'", ["main.team.tulip"]),
        ("name = 'tulip'", []),
        ("name != 'main.default.iris'", ["main.team.tulip", "my-prompt", "rose"]),
        ("name LIKE 'main.default.%'", ["iris", "my-prompt", "rose"]),
        ("name LIKE '%tulip'", ["main.team.tulip"]),
        ("name LIKE 'I%'", []),
        ("name ILIKE 'I%'", ["iris"]),
        ("name IN ('iris', 'main.default.rose')", ["iris", "rose"]),
        ("name NOT IN ('iris', 'rose')", ["main.team.tulip", "my-prompt"]),
        ("tags.task = 'classify'", ["iris"]),
        ("tag.task != 'classify'", ["rose"]),
        ("tags.owner ILIKE 'b%'", ["main.team.tulip"]),
        ("tags.owner LIKE '%' AND name LIKE '%i%'", ["iris", "main.team.tulip"]),
        ("tags.`task` = 'classify' AND tags.owner = 'ana'", ["iris"]),
        ("attribute.name = 'rose'", ["rose"]),
        # MLflow's client hides prompts with this filter; models without the tag match it
        ("tags.`mlflow.prompt.is_prompt` != 'true'", ["iris", "main.team.tulip", "rose"]),
        ("tags.`mlflow.prompt.is_prompt` = 'false'", ["iris", "main.team.tulip", "rose"]),
        ("tags.`mlflow.prompt.is_prompt` = 'true'", ["my-prompt"]),
        ("", ["iris", "main.team.tulip", "my-prompt", "rose"]),
    ],
)
def test_model_filters(reg, filter_string, expected):
    assert model_names(reg.search_registered_models(filter_string)) == expected


def test_model_order_by(reg):
    assert model_names(reg.search_registered_models(order_by=["name DESC"])) == [
        "rose", "my-prompt", "main.team.tulip", "iris"]
    # MLflow's "timestamp" is the last update: rose changed last, then versions touched their models
    by_update = model_names(reg.search_registered_models(order_by=["timestamp DESC"]))
    assert by_update[0] == "rose"
    assert by_update == model_names(reg.search_registered_models(order_by=["last_updated_timestamp DESC"]))
    assert model_names(reg.search_registered_models(order_by=["creation_timestamp ASC"])) == [
        "iris", "rose", "main.team.tulip", "my-prompt"]
    assert model_names(reg.search_registered_models(order_by=["creation_timestamp DESC"])) == [
        "my-prompt", "main.team.tulip", "rose", "iris"]


def test_model_paging(reg):
    first = reg.search_registered_models(max_results=3)
    assert model_names(first) == ["iris", "main.team.tulip", "my-prompt"]
    assert decode_offset(first.next_page_token) == 3
    second = reg.search_registered_models(max_results=3, page_token=first.next_page_token)
    assert model_names(second) == ["rose"] and second.next_page_token is None
    exact = reg.search_registered_models(max_results=4)
    assert exact.next_page_token is None


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        ({"filter_string": "description = 'x'"}, ["invalid attribute 'description'", "valid are name"]),
        ({"filter_string": "metrics.acc > 1"}, ["invalid entity type 'metrics'"]),
        ({"filter_string": "tags.a IN ('x')"}, ["operator IN is not supported for tag 'a'"]),
        ({"filter_string": "name = 'a' OR name = 'b'"}, ["OR is not supported"]),
        ({"filter_string": "name = iris"}, ["needs a quoted string value"]),
        ({"order_by": ["tags.a"]}, ["cannot be ordered by tag fields"]),
        ({"order_by": ["version_number"]}, ["invalid attribute 'version_number'"]),
        ({"order_by": ["name", "name DESC"]}, ["appears twice in order_by"]),
        ({"order_by": ["timestamp", "last_updated_timestamp"]}, ["appears twice in order_by"]),
        ({"order_by": ["name UP"]}, ["expected ASC or DESC"]),
        ({"max_results": 1001}, ["max_results", "at most 1000"]),
        ({"max_results": 0}, ["max_results"]),
        ({"page_token": "garbage"}, ["Invalid page token"]),
    ],
)
def test_model_search_errors(reg, kwargs, fragments):
    with expect_invalid(*fragments):
        reg.search_registered_models(**kwargs)


# -- model versions --------------------------------------------------------------------------
def test_versions_default_order(reg):
    page = reg.search_model_versions()
    assert versions(page) == [
        ("iris", "3"), ("iris", "2"), ("iris", "1"),
        ("main.team.tulip", "2"), ("main.team.tulip", "1"),
        ("rose", "1"),
    ]
    assert page.items[0].full_name == "main.default.iris"


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("name = 'iris'", [("iris", "3"), ("iris", "2"), ("iris", "1")]),
        ("name = 'main.team.tulip' AND version_number = 2", [("main.team.tulip", "2")]),
        ("name = 'iris' AND version_number >= 2", [("iris", "3"), ("iris", "2")]),
        ("name = 'iris' AND version_number != 2", [("iris", "3"), ("iris", "1")]),
        ("name IN ('rose', 'team.tulip') AND version_number < 2", [("main.team.tulip", "1"), ("rose", "1")]),
        (f"run_id = '{'a' * 32}'", [("iris", "1"), ("main.team.tulip", "1")]),
        (f"run_id IN ('{'b' * 32}')", [("iris", "2"), ("rose", "1")]),
        # versions without a run are SQL NULL: they match neither = nor !=
        (f"run_id != '{'a' * 32}'", [("iris", "2"), ("rose", "1")]),
        ("source_path LIKE 'runs:/%/rose'", [("rose", "1")]),
        ("source_path = 'file:///models/iris.onnx'", [("iris", "3")]),
        ("tags.flavor = 'onnx'", [("iris", "3")]),
        ("tags.flavor LIKE '%'", [("iris", "3"), ("iris", "1")]),
        ("current_stage = 'production'", [("iris", "2")]),
        ("current_stage != 'None' ", [("iris", "2")]),
        ("current_stage IN ('Staging', 'PRODUCTION')", [("iris", "2")]),
        ("status = 'READY'", [("iris", "1")]),
        ("status != 'PENDING_REGISTRATION'", [("iris", "1")]),
        ("name LIKE '%tul%' AND status = 'PENDING_REGISTRATION'", [("main.team.tulip", "2"), ("main.team.tulip", "1")]),
    ],
)
def test_version_filters(reg, filter_string, expected):
    assert versions(reg.search_model_versions(filter_string)) == expected


def test_version_order_and_paging(reg):
    assert versions(reg.search_model_versions("name = 'iris'", order_by=["version_number ASC"])) == [
        ("iris", "1"), ("iris", "2"), ("iris", "3")]
    by_creation = versions(reg.search_model_versions(order_by=["creation_timestamp DESC"]))
    assert by_creation[0] == ("rose", "1") and by_creation[-1] == ("iris", "1")
    by_update = versions(reg.search_model_versions(order_by=["last_updated_timestamp DESC"]))
    assert by_update[:2] == [("iris", "1"), ("iris", "2")]  # finished, then transitioned
    assert versions(reg.search_model_versions(order_by=["name DESC"]))[:2] == [("rose", "1"), ("main.team.tulip", "2")]
    pages, token = [], None
    while True:
        page = reg.search_model_versions(max_results=4, page_token=token)
        pages.append(versions(page))
        token = page.next_page_token
        if token is None:
            break
    assert [len(p) for p in pages] == [4, 2]
    assert sum(pages, []) == versions(reg.search_model_versions())


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        ({"filter_string": "version_number = '1'"}, ["needs a numeric value"]),
        ({"filter_string": "source_path IN ('a')"}, ["operator IN is not supported for attribute 'source_path'"]),
        ({"filter_string": "current_stage LIKE 'P%'"}, ["operator LIKE is not supported"]),
        ({"filter_string": "creation_timestamp > 1"}, ["invalid attribute 'creation_timestamp'"]),
        ({"filter_string": "params.a = 'x'"}, ["invalid entity type 'params'"]),
        ({"filter_string": "tags.flavor IN ('x')"}, ["operator IN is not supported for tag"]),
        ({"order_by": ["run_id"]}, ["invalid attribute 'run_id'"]),
        ({"order_by": ["version_number", "version_number DESC"]}, ["appears twice"]),
        ({"max_results": 200_001}, ["at most 200000"]),
    ],
)
def test_version_search_errors(reg, kwargs, fragments):
    with expect_invalid(*fragments):
        reg.search_model_versions(**kwargs)


def test_search_sees_renames_and_deletes(reg):
    reg.rename_registered_model("iris", "team.iris")
    assert versions(reg.search_model_versions("name = 'team.iris'")) == [
        ("main.team.iris", "3"), ("main.team.iris", "2"), ("main.team.iris", "1")]
    assert versions(reg.search_model_versions("name = 'iris'")) == []
    reg.delete_model_version("team.iris", 2)
    reg.delete_registered_model("rose")
    assert versions(reg.search_model_versions()) == [
        ("main.team.iris", "3"), ("main.team.iris", "1"), ("main.team.tulip", "2"), ("main.team.tulip", "1")]
    assert model_names(reg.search_registered_models()) == ["main.team.iris", "main.team.tulip", "my-prompt"]
