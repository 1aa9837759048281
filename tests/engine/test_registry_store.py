"""The model registry store (engine.registry.LmdbRegistryStore) on a real LMDB environment.

Expected behaviour is the RegistryStore spec (engine/registry/contract.py), which follows
MLflow's SQL registry store except where it says otherwise. Search: test_registrysearch.py.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest

from cairn import engine
from cairn.engine.errors import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    CairnError,
)
from cairn.engine.models.signature import ColumnSpec, OnnxSignature, TensorSpec
from cairn.engine.registry.names import (
    FullName,
    check_settable_alias,
    display_name,
    parse_model_name,
    parse_schema_name,
)
from cairn.engine.tracking.entities import Dataset, DatasetInput, InputTag, Metric, Param


@pytest.fixture
def reg(eng):
    # The store alone: without this the registration pipeline would finish versions
    # (and record their status transitions) behind the tests' back.
    eng.registrar.close()
    return eng.registry


@contextmanager
def expect_error(code: str, *fragments: str):
    with pytest.raises(CairnError) as info:
        yield info
    assert info.value.error_code == code, repr(info.value)
    for fragment in fragments:
        assert fragment in info.value.message, (fragment, info.value.message)


def make_run(eng) -> str:
    return eng.tracking.create_run("0").info.run_id


# -- names -----------------------------------------------------------------------------------
def test_parse_model_name_forms():
    assert parse_model_name("iris") == FullName("main", "default", "iris")
    assert parse_model_name("team.iris") == FullName("main", "team", "iris")
    assert parse_model_name("prod.team.iris-2_b") == FullName("prod", "team", "iris-2_b")
    assert display_name(FullName("main", "default", "iris")) == "iris"
    assert display_name("main.default.iris") == "iris"
    assert display_name("team.iris") == "main.team.iris"
    assert parse_schema_name("team") == ("main", "team")
    assert parse_schema_name("prod.team") == ("prod", "team")


@pytest.mark.parametrize(
    "name, fragments",
    [
        ("", ["empty"]),
        ("   ", ["empty"]),
        (None, ["empty"]),
        ("a.b.c.d", ["'a.b.c.d'", "4 dot-separated parts", "at most 3"]),
        ("my model", ["'my model'", "model part", "a space"]),
        ("team/iris", ["'team/iris'", "'/'"]),
        ("main..iris", ["'main..iris'", "schema part is empty"]),
        (".iris", ["schema part is empty"]),
        ("iris.", ["model part is empty"]),
        ("cat.sch:x.iris", ["'cat.sch:x.iris'", "schema part 'sch:x'", "':'"]),
        ("x" * 256, ["256 characters", "at most 255"]),
        (".".join(["x" * 200] * 3), ["full name", "at most 500"]),
    ],
)
def test_invalid_model_names(reg, name, fragments):
    with expect_error(INVALID_PARAMETER_VALUE, *fragments):
        parse_model_name(name)
    with expect_error(INVALID_PARAMETER_VALUE, *fragments):
        reg.create_registered_model(name)


def test_model_in_missing_catalog_or_schema(reg):
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Schema with name=main.team not found"):
        reg.create_registered_model("team.iris")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Catalog with name=prod not found"):
        reg.create_registered_model("prod.team.iris")
    reg.create_catalog("prod")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Schema with name=prod.team not found"):
        reg.create_registered_model("prod.team.iris")
    reg.create_schema("prod.team")
    m = reg.create_registered_model("prod.team.iris")
    assert m.name == m.full_name == "prod.team.iris"


# -- catalogs and schemas --------------------------------------------------------------------
def test_catalogs(reg):
    assert [c.name for c in reg.list_catalogs()] == ["main"]
    c = reg.create_catalog("prod", comment="production", user_id="ana")
    assert (c.name, c.comment, c.owner) == ("prod", "production", "ana")
    reg.create_catalog("dev")
    assert [c.name for c in reg.list_catalogs()] == ["dev", "main", "prod"]
    with expect_error(RESOURCE_ALREADY_EXISTS, "Catalog (name=prod) already exists."):
        reg.create_catalog("prod")
    with expect_error(INVALID_PARAMETER_VALUE, "'a.b'"):
        reg.create_catalog("a.b")
    updated = reg.update_catalog("prod", "the real one")
    assert updated.comment == "the real one" and updated.updated_at >= c.updated_at
    assert reg.get_catalog("prod") == updated
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Catalog with name=nope not found"):
        reg.get_catalog("nope")
    reg.create_schema("prod.team")
    with expect_error(INVALID_STATE, "'prod' is not empty"):
        reg.delete_catalog("prod")
    reg.delete_schema("prod.team")
    reg.delete_catalog("prod")
    assert [c.name for c in reg.list_catalogs()] == ["dev", "main"]
    with expect_error(INVALID_PARAMETER_VALUE, "'main' cannot be deleted"):
        reg.delete_catalog("main")
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        reg.delete_catalog("prod")


def test_schemas(reg):
    assert [s.full_name for s in reg.list_schemas("main")] == ["main.default"]
    s = reg.create_schema("team", comment="c", user_id="bo")  # one part: in main
    assert (s.name, s.catalog_name, s.full_name, s.owner) == ("team", "main", "main.team", "bo")
    with expect_error(RESOURCE_ALREADY_EXISTS, "Schema (name=main.team) already exists."):
        reg.create_schema("main.team")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Catalog with name=prod not found"):
        reg.create_schema("prod.team")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Catalog with name=prod not found"):
        reg.list_schemas("prod")
    reg.create_catalog("prod")
    reg.create_schema("prod.b")
    reg.create_schema("prod.a")
    assert [s.full_name for s in reg.list_schemas("prod")] == ["prod.a", "prod.b"]
    assert [s.full_name for s in reg.list_schemas("main")] == ["main.default", "main.team"]
    assert reg.update_schema("main.team", "new").comment == "new"
    assert reg.get_schema("team").comment == "new"
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Schema with name=main.nope not found"):
        reg.get_schema("main.nope")
    reg.create_registered_model("team.iris")
    with expect_error(INVALID_STATE, "'main.team' is not empty"):
        reg.delete_schema("main.team")
    reg.delete_registered_model("team.iris")
    reg.delete_schema("main.team")
    with expect_error(INVALID_PARAMETER_VALUE, "'main.default' cannot be deleted"):
        reg.delete_schema("main.default")
    with expect_error(INVALID_PARAMETER_VALUE, "3 dot-separated parts"):
        reg.create_schema("a.b.c")


# -- registered models -----------------------------------------------------------------------
def test_create_get_update_model(reg, distinct_clock):
    m = reg.create_registered_model("iris", tags={"team": "ml"}, description="flowers", user_id="ana")
    assert (m.name, m.full_name, m.description, m.user_id) == ("iris", "main.default.iris", "flowers", "ana")
    assert m.tags_dict == {"team": "ml"} and m.latest_versions == [] and m.aliases == []
    assert m.creation_timestamp == m.last_updated_timestamp
    for spelling in ("iris", "default.iris", "main.default.iris"):
        assert reg.get_registered_model(spelling) == m
    with expect_error(RESOURCE_ALREADY_EXISTS, "Registered Model (name=main.default.iris) already exists."):
        reg.create_registered_model("main.default.iris")
    updated = reg.update_registered_model("iris", "better flowers")
    assert updated.description == "better flowers"
    assert updated.last_updated_timestamp > m.last_updated_timestamp
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Registered Model with name=rose not found"):
        reg.get_registered_model("rose")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Registered Model with name=rose not found"):
        reg.update_registered_model("rose", "x")


def test_model_tags(reg):
    reg.create_registered_model("iris", tags={"a": "1"})
    reg.set_registered_model_tag("iris", "b", "2")
    reg.set_registered_model_tag("iris", "a", "3")
    assert reg.get_registered_model("iris").tags_dict == {"a": "3", "b": "2"}
    reg.delete_registered_model_tag("iris", "a")
    reg.delete_registered_model_tag("iris", "never-set")  # a no-op, as MLflow
    assert reg.get_registered_model("iris").tags_dict == {"b": "2"}
    with expect_error(INVALID_PARAMETER_VALUE, "'key'"):
        reg.set_registered_model_tag("iris", "", "x")
    with expect_error(INVALID_PARAMETER_VALUE, "exceeds the maximum length of 100000"):
        reg.set_registered_model_tag("iris", "big", "x" * 100_001)
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        reg.set_registered_model_tag("rose", "a", "1")


def test_rename_within_and_across_schemas(eng, reg, distinct_clock):
    run_id = make_run(eng)
    reg.create_registered_model("iris", tags={"t": "1"})
    reg.create_model_version("iris", f"runs:/{run_id}/model")
    reg.create_model_version("iris", f"runs:/{run_id}/model")
    reg.set_registered_model_alias("iris", "champion", 2)
    reg.transition_model_version_stage("iris", 1, "Production")
    renamed = reg.rename_registered_model("iris", "iris2")
    assert renamed.name == "iris2" and renamed.tags_dict == {"t": "1"}
    assert [(a.alias, a.version) for a in renamed.aliases] == [("champion", "2")]
    with expect_error(RESOURCE_DOES_NOT_EXIST, "name=iris not found"):
        reg.get_registered_model("iris")
    reg.create_schema("team")
    moved = reg.rename_registered_model("iris2", "team.iris")
    assert moved.name == moved.full_name == "main.team.iris"
    mv = reg.get_model_version("team.iris", 2)
    assert (mv.name, mv.aliases, mv.run_id) == ("main.team.iris", ["champion"], run_id)
    assert [t.version for t in reg.list_transitions("team.iris")] == ["2", "1"]
    assert reg.versions_of_run(run_id) == [("main.team.iris", "1"), ("main.team.iris", "2")]
    # the old name is free again; the new one keeps counting its own versions
    reg.create_registered_model("iris")
    assert reg.create_model_version("iris", "x").version == "1"
    assert reg.create_model_version("team.iris", "x").version == "3"
    with expect_error(RESOURCE_ALREADY_EXISTS, "Registered Model (name=iris) already exists."):
        reg.rename_registered_model("team.iris", "iris")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Schema with name=main.nope not found"):
        reg.rename_registered_model("team.iris", "nope.iris")
    with expect_error(INVALID_PARAMETER_VALUE, "new_name"):
        reg.rename_registered_model("team.iris", "")
    assert reg.rename_registered_model("team.iris", "main.team.iris").name == "main.team.iris"


def test_delete_model_removes_everything(eng, reg):
    run_id = make_run(eng)
    reg.create_registered_model("iris")
    reg.create_model_version("iris", f"runs:/{run_id}/m")
    reg.create_model_version("iris", f"runs:/{run_id}/m")
    reg.set_registered_model_alias("iris", "a", 1)
    reg.transition_model_version_stage("iris", 2, "Staging")
    reg.delete_registered_model("iris")
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        reg.get_registered_model("iris")
    assert reg.versions_of_run(run_id) == []
    assert reg.search_model_versions().items == []
    with eng.env.read() as txn:
        for table in ("registered_models", "model_names", "model_versions", "model_transitions",
                      "run_model_versions"):
            with txn.cursor(db=eng.env.dbs[table]) as cur:
                assert list(cur) == [], table
    # a new model with the same name starts over (hard delete, as MLflow)
    reg.create_registered_model("iris")
    assert reg.create_model_version("iris", "x").version == "1"
    assert reg.list_transitions("iris") == []
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        reg.delete_registered_model("rose")


# -- versions --------------------------------------------------------------------------------
def test_versions_numbered_and_never_reused(reg, distinct_clock):
    reg.create_registered_model("iris")
    created = [reg.create_model_version("iris", "s", user_id="ana", description="d", tags={"k": "v"})
               for _ in range(3)]
    assert [v.version for v in created] == ["1", "2", "3"]
    v1 = created[0]
    assert (v1.status, v1.current_stage, v1.user_id, v1.description, v1.tags_dict) == (
        "PENDING_REGISTRATION", "None", "ana", "d", {"k": "v"})
    reg.delete_model_version("iris", 3)
    assert reg.create_model_version("iris", "s").version == "4"
    for v in ("1", "2", "4"):
        reg.delete_model_version("iris", v)
    assert reg.create_model_version("iris", "s").version == "5"
    assert reg.get_registered_model("iris").last_updated_timestamp > v1.creation_timestamp
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Model Version (name=iris, version=3) not found"):
        reg.get_model_version("iris", "3")
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        reg.delete_model_version("iris", 3)
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Registered Model with name=rose not found"):
        reg.create_model_version("rose", "s")


def test_version_arguments(reg):
    reg.create_registered_model("iris")
    reg.create_model_version("iris", "s")
    assert reg.get_model_version("iris", 1) == reg.get_model_version("iris", "1")
    with expect_error(INVALID_PARAMETER_VALUE, "Parameter 'version' must be an integer, got 'one'."):
        reg.get_model_version("iris", "one")
    with expect_error(INVALID_PARAMETER_VALUE):
        reg.get_model_version("iris", True)
    for missing in (0, -1, 2, 1 << 40):
        with expect_error(RESOURCE_DOES_NOT_EXIST):
            reg.get_model_version("iris", missing)
    with expect_error(INVALID_PARAMETER_VALUE, "'source'"):
        reg.create_model_version("iris", "")
    updated = reg.update_model_version("iris", "1", "described")
    assert updated.description == "described"


def test_version_tags(reg):
    reg.create_registered_model("iris")
    reg.create_model_version("iris", "s", tags={"a": "1"})
    reg.set_model_version_tag("iris", 1, "b", "2")
    reg.delete_model_version_tag("iris", 1, "a")
    reg.delete_model_version_tag("iris", 1, "missing")
    assert reg.get_model_version("iris", 1).tags_dict == {"b": "2"}
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        reg.set_model_version_tag("iris", 2, "b", "2")


def test_run_id_from_sources(eng, reg):
    tr = eng.tracking
    run_id = make_run(eng)
    other = make_run(eng)
    reg.create_registered_model("iris")
    assert reg.create_model_version("iris", f"runs:/{run_id}/model").run_id == run_id
    assert reg.create_model_version("iris", f"runs:/{run_id}/model", run_id=other).run_id == other
    with expect_error(INVALID_PARAMETER_VALUE, "runs:/nothex/model"):
        reg.create_model_version("iris", "runs:/nothex/model")
    lm = eng.logged_models.create_logged_model("0", name="clf", source_run_id=run_id)
    mv = reg.create_model_version("iris", f"models:/{lm.model_id}")
    assert (mv.run_id, mv.model_id) == (run_id, lm.model_id)
    mv = reg.create_model_version("iris", "mlflow-artifacts:/0/x", model_id=lm.model_id)
    assert (mv.run_id, mv.model_id) == (run_id, lm.model_id)
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Logged model with ID 'm-"):
        reg.create_model_version("iris", "models:/m-" + "0" * 32)
    plain = reg.create_model_version("iris", "file:///tmp/model.onnx")
    assert plain.run_id == "" and plain.model_id == ""
    assert tr.get_run(run_id)  # the run is untouched
    assert [v for _, v in reg.versions_of_run(run_id)] == ["1", "3", "4"]
    assert [v for _, v in reg.versions_of_run(other)] == ["2"]


def test_derived_from_other_versions(eng, reg):
    run_id = make_run(eng)
    reg.create_registered_model("iris")
    reg.create_model_version("iris", f"runs:/{run_id}/m")
    reg.create_model_version("iris", "s")
    reg.set_registered_model_alias("iris", "champion", 1)
    reg.transition_model_version_stage("iris", 2, "production")
    reg.create_schema("team")
    reg.create_registered_model("team.copy")
    by_number = reg.create_model_version("team.copy", "models:/iris/1")
    assert by_number.run_id == run_id  # inherited from the version it was made from
    assert reg.get_lineage("team.copy", 1).derived_from == "models:/main.default.iris/1"
    reg.create_model_version("team.copy", "models:/iris@champion")
    reg.create_model_version("team.copy", "models:/main.default.iris/Production")
    reg.create_model_version("team.copy", "models:/default.iris/latest")
    reg.create_model_version("iris", "models:/iris@latest")  # its own model: 3 is not there yet
    reg.set_registered_model_alias("iris", "champion", 2)  # resolved at creation: no effect
    derived = [reg.get_lineage("team.copy", n).derived_from for n in (2, 3, 4)]
    assert derived == ["models:/main.default.iris/1", "models:/main.default.iris/2", "models:/main.default.iris/2"]
    assert reg.get_lineage("iris", 3).derived_from == "models:/main.default.iris/2"
    with expect_error(INVALID_PARAMETER_VALUE, "alias nope not found"):  # MLflow's code for a missing alias
        reg.create_model_version("team.copy", "models:/iris@nope")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "version=9"):
        reg.create_model_version("team.copy", "models:/iris/9")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "matches 'Staging'"):
        reg.create_model_version("team.copy", "models:/iris/Staging")
    with expect_error(INVALID_PARAMETER_VALUE, "Invalid model URI"):
        reg.create_model_version("team.copy", "models:/iris")
    # the failed creations left nothing: no version, no counter moved
    assert reg.create_model_version("team.copy", "s").version == "5"


# -- stages and transitions ------------------------------------------------------------------
def test_transitions_and_archive_existing(reg):
    reg.create_registered_model("iris")
    for _ in range(3):
        reg.create_model_version("iris", "s")
    mv = reg.transition_model_version_stage("iris", 1, "production", user_id="ana", comment="go")
    assert mv.current_stage == "Production"
    reg.transition_model_version_stage("iris", 2, "PRODUCTION")
    reg.transition_model_version_stage("iris", 3, "Production", archive_existing_versions=True, user_id="bo")
    stages = {v: reg.get_model_version("iris", v).current_stage for v in (1, 2, 3)}
    assert stages == {1: "Archived", 2: "Archived", 3: "Production"}
    log = [(t.version, t.kind, t.from_stage, t.to_stage, t.user_id, t.comment) for t in reg.list_transitions("iris")]
    assert log == [
        ("1", "stage", "None", "Production", "ana", "go"),
        ("2", "stage", "None", "Production", "", ""),
        ("1", "stage", "Production", "Archived", "bo", ""),
        ("2", "stage", "Production", "Archived", "bo", ""),
        ("3", "stage", "None", "Production", "bo", ""),
    ]
    assert [t.to_stage for t in reg.list_transitions("iris", "1")] == ["Production", "Archived"]
    times = [t.timestamp for t in reg.list_transitions("iris")]
    assert times == sorted(times)
    with expect_error(INVALID_PARAMETER_VALUE, "Invalid Model Version stage: Live"):
        reg.transition_model_version_stage("iris", 1, "Live")
    with expect_error(INVALID_PARAMETER_VALUE, "'Archived' is not an Active stage"):
        reg.transition_model_version_stage("iris", 1, "Archived", archive_existing_versions=True)
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        reg.list_transitions("iris", 7)
    reg.delete_model_version("iris", 1)
    assert [t.version for t in reg.list_transitions("iris")] == ["2", "2", "3"]


def test_latest_versions(reg):
    reg.create_registered_model("iris")
    for _ in range(5):
        reg.create_model_version("iris", "s")
    reg.transition_model_version_stage("iris", 1, "Production")
    reg.transition_model_version_stage("iris", 2, "Production")
    reg.transition_model_version_stage("iris", 3, "Staging")
    reg.transition_model_version_stage("iris", 4, "Archived")
    latest = reg.get_latest_versions("iris")
    assert [(v.current_stage, v.version) for v in latest] == [
        ("None", "5"), ("Staging", "3"), ("Production", "2"), ("Archived", "4")]
    assert [v.version for v in reg.get_latest_versions("iris", ["production", "staging"])] == ["3", "2"]
    assert reg.get_registered_model("iris").latest_versions == latest
    with expect_error(INVALID_PARAMETER_VALUE, "Invalid Model Version stage: prod"):
        reg.get_latest_versions("iris", ["prod"])
    reg.create_registered_model("empty")
    assert reg.get_latest_versions("empty") == []


# -- aliases ---------------------------------------------------------------------------------
def test_aliases(reg):
    reg.create_registered_model("iris")
    for _ in range(3):
        reg.create_model_version("iris", "s")
    reg.set_registered_model_alias("iris", "champion", "1", user_id="ana")
    reg.set_registered_model_alias("iris", "challenger", 2)
    assert reg.get_model_version_by_alias("iris", "champion").version == "1"
    reg.set_registered_model_alias("iris", "champion", 2)  # moves it
    mv = reg.get_model_version_by_alias("iris", "champion")
    assert mv.version == "2" and mv.aliases == ["champion", "challenger"]
    assert reg.get_model_version("iris", 1).aliases == []
    assert [(a.alias, a.version) for a in reg.get_registered_model("iris").aliases] == [
        ("champion", "2"), ("challenger", "2")]
    assert reg.get_model_version_by_alias("iris", "latest").version == "3"
    assert reg.get_model_version_by_alias("iris", "LATEST").version == "3"
    reg.delete_registered_model_alias("iris", "challenger", user_id="bo")
    with expect_error(INVALID_PARAMETER_VALUE, "Registered model alias challenger not found."):
        reg.get_model_version_by_alias("iris", "challenger")
    reg.delete_registered_model_alias("iris", "challenger")  # not set: nothing happens, as in MLflow
    with expect_error(RESOURCE_DOES_NOT_EXIST, "version=9"):
        reg.set_registered_model_alias("iris", "x", 9)
    log = [(t.kind, t.version, t.alias, t.user_id) for t in reg.list_transitions("iris")]
    assert log == [("alias_set", "1", "champion", "ana"), ("alias_set", "2", "challenger", ""),
                   ("alias_set", "2", "champion", ""), ("alias_deleted", "2", "challenger", "bo")]
    reg.delete_model_version("iris", 2)  # takes its aliases along
    assert reg.get_registered_model("iris").aliases == []
    with expect_error(INVALID_PARAMETER_VALUE, "alias champion not found"):
        reg.get_model_version_by_alias("iris", "champion")
    reg.create_registered_model("empty")
    with expect_error(RESOURCE_DOES_NOT_EXIST, "Latest version not found for model empty."):
        reg.get_model_version_by_alias("empty", "latest")


@pytest.mark.parametrize(
    "alias, fragment",
    [("latest", "'latest' alias name (case insensitive) is reserved."),
     ("Latest", "is reserved"),
     ("v1", "Version alias name 'v1' is reserved."),
     ("V12", "is reserved"),
     ("", "cannot be empty"),
     ("a b", "Invalid alias name: 'a b'"),
     ("a.b", "Invalid alias name: 'a.b'"),
     ("x" * 256, "maximum length of 255")],
)
def test_reserved_and_invalid_aliases(reg, alias, fragment):
    reg.create_registered_model("iris")
    reg.create_model_version("iris", "s")
    with expect_error(INVALID_PARAMETER_VALUE, fragment):
        reg.set_registered_model_alias("iris", alias, 1)
    assert check_settable_alias("v1x") == "v1x" and check_settable_alias("version1") == "version1"


# -- registration ----------------------------------------------------------------------------
def test_finish_registration_and_pending(reg, distinct_clock):
    reg.create_registered_model("iris")
    reg.create_schema("team")
    reg.create_registered_model("team.b")
    reg.create_model_version("iris", "s1")
    reg.create_model_version("team.b", "s2")
    reg.create_model_version("iris", "s3")
    assert reg.pending_versions() == [("main.default.iris", "1"), ("main.team.b", "1"), ("main.default.iris", "2")]
    assert reg.get_model_version_download_uri("iris", 1) == "s1"
    sig = OnnxSignature(inputs=[TensorSpec("x", "float", [-1, 4])], outputs=[TensorSpec("y", "int64", [-1])],
                        columns=[ColumnSpec("a", "double")], layout="columns")
    run_id = "ab" * 16
    mv = reg.finish_registration("iris", 1, status="READY", storage_location="registry/abc", signature=sig,
                                 run_id=run_id, model_id="m-" + "1" * 32)
    assert (mv.status, mv.storage_location, mv.signature, mv.run_id) == ("READY", "registry/abc", sig, run_id)
    assert reg.get_model_version("iris", 1).signature == sig
    assert reg.get_model_version_download_uri("iris", 1) == "mlflow-artifacts:/registry/abc"
    assert reg.versions_of_run(run_id) == [("main.default.iris", "1")]
    failed = reg.finish_registration("team.b", "1", status="FAILED_REGISTRATION", status_message="no onnx")
    assert (failed.status, failed.status_message) == ("FAILED_REGISTRATION", "no onnx")
    assert reg.get_model_version_download_uri("team.b", 1) == "s2"
    assert reg.pending_versions() == [("main.default.iris", "2")]
    with expect_error(INVALID_STATE, "is not pending registration"):
        reg.finish_registration("iris", 1, status="READY")
    with expect_error(INVALID_PARAMETER_VALUE, "Invalid registration status"):
        reg.finish_registration("iris", 2, status="DONE")
    with expect_error(INVALID_PARAMETER_VALUE, "Invalid model signature"):
        reg.finish_registration("iris", 2, status="READY", signature={"inputs": 3})
    status_log = [(t.version, t.kind, t.from_stage, t.to_stage, t.comment) for t in reg.list_transitions("iris")]
    assert status_log == [("1", "status", "PENDING_REGISTRATION", "READY", "")]
    # a run id the caller gave wins over the one the source revealed
    reg.create_model_version("iris", "s", run_id="cd" * 16)
    mv = reg.finish_registration("iris", 3, status="READY", run_id=run_id)
    assert mv.run_id == "cd" * 16


def test_on_pending_called_after_commit(reg):
    seen = []

    def hook(full_name, version):
        seen.append((full_name, version, reg.get_model_version(full_name, version).status))

    reg.on_pending = hook
    reg.create_schema("team")
    reg.create_registered_model("team.iris")
    reg.create_model_version("team.iris", "s")
    assert seen == [("main.team.iris", "1", "PENDING_REGISTRATION")]

    def broken(full_name, version):
        raise RuntimeError("pipeline down")

    reg.on_pending = broken
    assert reg.create_model_version("team.iris", "s").version == "2"  # committed all the same
    assert reg.pending_versions() == [("main.team.iris", "1"), ("main.team.iris", "2")]
    reg.on_pending = None
    with pytest.raises(CairnError):
        reg.create_model_version("team.nope", "s")
    assert len(seen) == 1


# -- lineage ---------------------------------------------------------------------------------
def test_lineage_from_a_real_run(eng, reg):
    tr = eng.tracking
    exp = tr.create_experiment("training")
    run = tr.create_run(exp, run_name="bright-owl", tags={
        "mlflow.source.name": "train.py", "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": "abc123", "mlflow.source.git.repoURL": "https://git/x"})
    run_id = run.info.run_id
    tr.log_batch(run_id, metrics=[Metric("acc", 0.5, 1, 0), Metric("acc", 0.9, 2, 1)],
                 params=[Param("alpha", "0.1")])
    tr.log_inputs(run_id, [DatasetInput(dataset=Dataset(name="iris", digest="d1", source_type="local",
                                                        source="/data/iris.csv"),
                                        tags=[InputTag("mlflow.data.context", "train")])])
    lm = eng.logged_models.create_logged_model(exp, name="clf", source_run_id=run_id)
    reg.create_registered_model("iris")
    reg.create_model_version("iris", f"models:/{lm.model_id}")
    lin = reg.get_lineage("iris", "1")
    assert (lin.name, lin.version, lin.run_id, lin.run_name, lin.run_deleted) == (
        "iris", "1", run_id, "bright-owl", False)
    assert (lin.experiment_id, lin.experiment_name, lin.model_id) == (exp, "training", lm.model_id)
    assert (lin.source_name, lin.source_type, lin.git_commit, lin.git_repo) == (
        "train.py", "LOCAL", "abc123", "https://git/x")
    assert lin.params == {"alpha": "0.1"} and lin.metrics == {"acc": 0.9}
    assert [(d.name, d.digest, d.source_type, d.source, d.context) for d in lin.datasets] == [
        ("iris", "d1", "local", "/data/iris.csv", "train")]
    tr.delete_run(run_id)
    lin = reg.get_lineage("iris", 1)
    assert lin.run_deleted and lin.run_id == run_id
    reg.create_model_version("iris", "file:///m.onnx", run_id="ef" * 16)  # a run this store never had
    lin = reg.get_lineage("iris", 2)
    assert (lin.run_id, lin.run_name, lin.run_deleted, lin.datasets) == ("ef" * 16, "", False, [])
    with expect_error(RESOURCE_DOES_NOT_EXIST):
        reg.get_lineage("iris", 3)


# -- durability ------------------------------------------------------------------------------
def test_persists_across_reopen(tmp_path):
    path = tmp_path / "data"
    e = engine.open(path)
    e.registrar.close()  # versions stay pending: the store alone is under test
    r = e.registry
    r.create_catalog("prod", comment="c")
    r.create_schema("prod.team")
    r.create_registered_model("prod.team.iris", tags={"t": "1"})
    for _ in range(3):
        r.create_model_version("prod.team.iris", "s")
    r.delete_model_version("prod.team.iris", 3)
    r.set_registered_model_alias("prod.team.iris", "champion", 2)
    r.transition_model_version_stage("prod.team.iris", 1, "Staging")
    before = r.get_registered_model("prod.team.iris")
    e.close()
    e = engine.open(path)
    try:
        r = e.registry
        assert r.get_registered_model("prod.team.iris") == before
        assert r.get_catalog("prod").comment == "c"
        assert [c.name for c in r.list_catalogs()] == ["main", "prod"]
        assert len(r.list_transitions("prod.team.iris")) == 2
        assert r.pending_versions() == [("prod.team.iris", "1"), ("prod.team.iris", "2")]
        assert r.create_model_version("prod.team.iris", "s").version == "4"
        assert r.create_registered_model("other").name == "other"
    finally:
        e.close()


def test_failed_write_leaves_nothing(eng, reg):
    reg.create_registered_model("iris")
    reg.create_registered_model("rose")
    reg.create_model_version("iris", "s")
    reg.set_registered_model_alias("iris", "champion", 1)
    with eng.env.read() as txn:
        before = {t: list(txn.cursor(db=eng.env.dbs[t])) for t in
                  ("registered_models", "model_names", "model_versions", "model_transitions", "meta")}
    failing = [
        lambda: reg.rename_registered_model("iris", "rose"),
        lambda: reg.create_model_version("iris", "models:/rose@missing"),  # after the number was taken
        lambda: reg.transition_model_version_stage("iris", 2, "Staging", archive_existing_versions=True),
        lambda: reg.set_registered_model_alias("iris", "x", 2),
        lambda: reg.delete_registered_model_alias("ghost", "x"),
        lambda: reg.delete_schema("main.default"),
    ]
    for attempt in failing:
        with pytest.raises(CairnError):
            attempt()
    reg.delete_registered_model_alias("iris", "x")  # not set: changes nothing either
    with eng.env.read() as txn:
        after = {t: list(txn.cursor(db=eng.env.dbs[t])) for t in before}
    assert after == before
