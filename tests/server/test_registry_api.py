"""The model registry's REST API against a real `cairn server`: registered models,
versions, tags, aliases, stages, search and paging through the official mlflow client,
Cairn's lineage and transitions reads, Unity Catalog-shaped catalogs and schemas, and
raw HTTP for the wire shapes and the errors a client never provokes.

Versions here come from runs with no model files: they finish FAILED_REGISTRATION,
which nothing in this file depends on (the client is told not to wait for READY). The
READY path, with real scikit-learn models, is test_registry_models.py."""
from __future__ import annotations

import uuid

import httpx
import mlflow
import pytest
from mlflow.exceptions import MlflowException

API = "/api/2.0/mlflow"
# Stages are deprecated in the mlflow client (FutureWarning), still part of its API.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def unique(prefix: str = "reg") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def run_id(mlflow_client) -> str:
    exp = mlflow_client.create_experiment(unique("registry"))
    run = mlflow_client.create_run(exp)
    mlflow_client.log_param(run.info.run_id, "C", "0.5")
    mlflow_client.log_metric(run.info.run_id, "acc", 0.93)
    return run.info.run_id


def new_version(client, name: str, run_id: str, **kw):
    # await_creation_for=0: these sources hold no model, so the version never gets READY.
    return client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id, await_creation_for=0, **kw)


def error_of(call) -> MlflowException:
    with pytest.raises(MlflowException) as err:
        call()
    return err.value


def raw_error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code, body
    assert "Traceback" not in body["message"]
    return body["message"]


# -- registered models ----------------------------------------------------------------
def test_create_get_update_delete(mlflow_client):
    name = unique()
    rm = mlflow_client.create_registered_model(name, tags={"team": "vision"}, description="first")
    assert rm.name == name and rm.description == "first" and rm.tags == {"team": "vision"}
    assert rm.creation_timestamp > 0

    got = mlflow_client.get_registered_model(name)
    assert got.name == name and got.tags == {"team": "vision"} and got.latest_versions == []
    updated = mlflow_client.update_registered_model(name, description="second")
    assert updated.description == "second"
    assert mlflow_client.get_registered_model(name).description == "second"

    err = error_of(lambda: mlflow_client.create_registered_model(name))
    assert err.error_code == "RESOURCE_ALREADY_EXISTS"

    mlflow_client.delete_registered_model(name)
    err = error_of(lambda: mlflow_client.get_registered_model(name))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST" and name in err.message
    err = error_of(lambda: mlflow_client.delete_registered_model(name))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_rename_keeps_versions_and_aliases(mlflow_client, run_id):
    old, new, taken = unique(), unique(), unique()
    mlflow_client.create_registered_model(old)
    mlflow_client.create_registered_model(taken)
    new_version(mlflow_client, old, run_id)
    mlflow_client.set_registered_model_alias(old, "champion", "1")

    mlflow_client.rename_registered_model(old, new)  # the client returns nothing
    assert mlflow_client.get_registered_model(new).name == new
    assert mlflow_client.get_model_version(new, "1").name == new
    assert mlflow_client.get_model_version_by_alias(new, "champion").version == "1"
    assert error_of(lambda: mlflow_client.get_registered_model(old)).error_code == "RESOURCE_DOES_NOT_EXIST"
    err = error_of(lambda: mlflow_client.rename_registered_model(new, taken))
    assert err.error_code == "RESOURCE_ALREADY_EXISTS"


def test_tags_on_models_and_versions(mlflow_client, run_id):
    name = unique()
    mlflow_client.create_registered_model(name)
    mlflow_client.set_registered_model_tag(name, "owner", "ana")
    mlflow_client.set_registered_model_tag(name, "owner", "bo")
    mlflow_client.set_registered_model_tag(name, "empty", "")
    assert mlflow_client.get_registered_model(name).tags == {"owner": "bo", "empty": ""}
    mlflow_client.delete_registered_model_tag(name, "owner")
    mlflow_client.delete_registered_model_tag(name, "never-set")  # a no-op, as MLflow
    assert mlflow_client.get_registered_model(name).tags == {"empty": ""}

    mv = new_version(mlflow_client, name, run_id, tags={"given": "at-create"})
    assert mv.tags == {"given": "at-create"}
    mlflow_client.set_model_version_tag(name, mv.version, "validated", "yes")
    assert mlflow_client.get_model_version(name, mv.version).tags == {"given": "at-create", "validated": "yes"}
    mlflow_client.delete_model_version_tag(name, mv.version, "given")
    assert mlflow_client.get_model_version(name, mv.version).tags == {"validated": "yes"}
    err = error_of(lambda: mlflow_client.set_model_version_tag(name, "99", "k", "v"))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_search_registered_models_filters_orders_and_pages(mlflow_client):
    prefix = unique("search")
    names = [f"{prefix}-{c}" for c in "abcde"]
    for i, n in enumerate(names):
        mlflow_client.create_registered_model(n, tags={"parity": "even" if i % 2 == 0 else "odd"})

    def search(**kw):
        return [m.name for m in mlflow_client.search_registered_models(**kw)]

    assert search(filter_string=f"name LIKE '{prefix}-%'") == names
    assert search(filter_string=f"name = '{names[2]}'") == [names[2]]
    assert search(filter_string=f"name ILIKE '{prefix.upper()}-%' AND tags.parity = 'odd'") == [names[1], names[3]]
    assert search(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"]) == names[::-1]

    seen, token = [], None
    while True:
        page = mlflow_client.search_registered_models(
            filter_string=f"name LIKE '{prefix}-%'", max_results=2, page_token=token
        )
        assert len(page) <= 2
        seen += [m.name for m in page]
        token = page.token
        if not token:
            break
    assert seen == names
    # The fluent API pages through everything itself.
    assert [m.name for m in mlflow.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")] == names

    err = error_of(lambda: mlflow_client.search_registered_models(filter_string="nonsense ~ 1"))
    assert err.error_code == "INVALID_PARAMETER_VALUE"


# -- versions -------------------------------------------------------------------------
def test_versions_are_numbered_and_never_reused(mlflow_client, run_id):
    name = unique()
    mlflow_client.create_registered_model(name)
    versions = [new_version(mlflow_client, name, run_id, description=f"v{i}") for i in (1, 2, 3)]
    assert [v.version for v in versions] == ["1", "2", "3"]
    assert versions[0].run_id == run_id and versions[0].source == f"runs:/{run_id}/model"
    assert versions[0].current_stage == "None" and versions[0].description == "v1"

    mlflow_client.delete_model_version(name, "3")
    assert error_of(lambda: mlflow_client.get_model_version(name, "3")).error_code == "RESOURCE_DOES_NOT_EXIST"
    assert new_version(mlflow_client, name, run_id).version == "4"

    updated = mlflow_client.update_model_version(name, "2", description="better")
    assert updated.description == "better"
    assert mlflow_client.get_model_version(name, "2").description == "better"
    assert mlflow_client.get_registered_model(name).latest_versions[0].version == "4"

    err = error_of(lambda: new_version(mlflow_client, unique("missing"), run_id))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_search_model_versions(mlflow_client, run_id):
    name, other = unique(), unique()
    for n in (name, other):
        mlflow_client.create_registered_model(n)
    for _ in range(3):
        new_version(mlflow_client, name, run_id)
    new_version(mlflow_client, other, run_id)

    def search(filter_string, **kw):
        return [(m.name, m.version) for m in mlflow_client.search_model_versions(filter_string, **kw)]

    assert search(f"name = '{name}'") == [(name, "3"), (name, "2"), (name, "1")]
    assert search(f"name = '{name}' AND version_number >= 2") == [(name, "3"), (name, "2")]
    assert sorted(search(f"run_id = '{run_id}'")) == sorted([(name, v) for v in "123"] + [(other, "1")])
    assert search(f"name = '{name}'", order_by=["version_number ASC"]) == [(name, "1"), (name, "2"), (name, "3")]

    first = mlflow_client.search_model_versions(f"name = '{name}'", max_results=2)
    rest = mlflow_client.search_model_versions(f"name = '{name}'", max_results=2, page_token=first.token)
    assert [m.version for m in first] == ["3", "2"] and [m.version for m in rest] == ["1"] and not rest.token


def test_aliases(mlflow_client, run_id):
    name = unique()
    mlflow_client.create_registered_model(name)
    for _ in range(3):
        new_version(mlflow_client, name, run_id)

    mlflow_client.set_registered_model_alias(name, "champion", "1")
    mlflow_client.set_registered_model_alias(name, "challenger", "2")
    assert mlflow_client.get_model_version_by_alias(name, "champion").version == "1"
    assert mlflow_client.get_model_version(name, "1").aliases == ["champion"]

    mlflow_client.set_registered_model_alias(name, "champion", "2")  # moves it
    assert mlflow_client.get_model_version_by_alias(name, "champion").version == "2"
    assert sorted(mlflow_client.get_model_version(name, "2").aliases) == ["challenger", "champion"]
    assert mlflow_client.get_model_version(name, "1").aliases == []
    assert mlflow_client.get_registered_model(name).aliases == {"champion": "2", "challenger": "2"}

    mlflow_client.delete_registered_model_alias(name, "challenger")
    err = error_of(lambda: mlflow_client.get_model_version_by_alias(name, "challenger"))
    assert err.error_code == "INVALID_PARAMETER_VALUE"  # MLflow's code for an alias not set; clients branch on it
    assert "Registered model alias challenger not found" in err.message
    mlflow_client.delete_registered_model_alias(name, "challenger")  # not set: nothing happens, as in MLflow
    # Deleting a version deletes its aliases.
    mlflow_client.delete_model_version(name, "2")
    assert mlflow_client.get_registered_model(name).aliases == {}

    for bad in ("latest", "v3", "no spaces"):
        err = error_of(lambda bad=bad: mlflow_client.set_registered_model_alias(name, bad, "1"))
        assert err.error_code == "INVALID_PARAMETER_VALUE", bad
    err = error_of(lambda: mlflow_client.set_registered_model_alias(name, "ghost", "42"))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_stages_and_latest_versions(mlflow_client, run_id):
    name = unique()
    mlflow_client.create_registered_model(name)
    for _ in range(4):
        new_version(mlflow_client, name, run_id)

    assert mlflow_client.transition_model_version_stage(name, "1", "Staging").current_stage == "Staging"
    assert mlflow_client.transition_model_version_stage(name, "2", "production").current_stage == "Production"
    assert mlflow_client.transition_model_version_stage(name, "3", "Production").current_stage == "Production"
    # archive_existing_versions: the other Production versions move to Archived.
    mv = mlflow_client.transition_model_version_stage(name, "4", "Production", archive_existing_versions=True)
    assert mv.current_stage == "Production"
    stages = {v: mlflow_client.get_model_version(name, v).current_stage for v in "1234"}
    assert stages == {"1": "Staging", "2": "Archived", "3": "Archived", "4": "Production"}

    latest = mlflow_client.get_latest_versions(name, stages=["Production"])
    assert [(v.version, v.current_stage) for v in latest] == [("4", "Production")]
    by_stage = {v.current_stage: v.version for v in mlflow_client.get_latest_versions(name)}
    assert by_stage == {"Staging": "1", "Production": "4", "Archived": "3"}
    assert {v.current_stage: v.version for v in mlflow_client.get_registered_model(name).latest_versions} == by_stage

    err = error_of(lambda: mlflow_client.transition_model_version_stage(name, "1", "Shipped"))
    assert err.error_code == "INVALID_PARAMETER_VALUE" and "Shipped" in err.message
    err = error_of(lambda: mlflow_client.get_latest_versions(name, stages=["Shipped"]))
    assert err.error_code == "INVALID_PARAMETER_VALUE"


def test_transitions_endpoint(server_url, mlflow_client, run_id):
    name = unique()
    mlflow_client.create_registered_model(name)
    new_version(mlflow_client, name, run_id)
    new_version(mlflow_client, name, run_id)
    mlflow_client.transition_model_version_stage(name, "1", "Staging")
    mlflow_client.set_registered_model_alias(name, "champion", "1")
    mlflow_client.transition_model_version_stage(name, "2", "Production")

    url = f"{server_url}{API}/model-versions/transitions"
    mine = httpx.get(url, params={"name": name, "version": "1"}).json()["transitions"]
    stage = [t for t in mine if t["kind"] == "stage"]
    assert [(t["from_stage"], t["to_stage"]) for t in stage] == [("None", "Staging")]
    assert [t["alias"] for t in mine if t["kind"] == "alias_set"] == ["champion"]
    assert all(t["version"] == "1" and t["timestamp"] > 0 for t in mine)
    everything = httpx.get(url, params={"name": name}).json()["transitions"]
    assert {t["version"] for t in everything} == {"1", "2"}
    assert [t["timestamp"] for t in everything] == sorted(t["timestamp"] for t in everything)
    raw_error(httpx.get(url, params={"name": unique("ghost")}), 404, "RESOURCE_DOES_NOT_EXIST")
    raw_error(httpx.get(url), 400, "INVALID_PARAMETER_VALUE")


def test_lineage_endpoint(server_url, mlflow_client, run_id):
    name = unique()
    mlflow_client.create_registered_model(name)
    new_version(mlflow_client, name, run_id)
    run = mlflow_client.get_run(run_id)
    url = f"{server_url}{API}/model-versions/lineage"
    lineage = httpx.get(url, params={"name": name, "version": "1"}).json()["lineage"]
    assert lineage["name"] == name and lineage["version"] == "1"
    assert lineage["run_id"] == run_id and lineage["experiment_id"] == run.info.experiment_id
    assert lineage["params"] == {"C": "0.5"} and lineage["metrics"] == {"acc": 0.93}
    assert lineage["source"] == f"runs:/{run_id}/model"
    raw_error(httpx.get(url, params={"name": name, "version": "7"}), 404, "RESOURCE_DOES_NOT_EXIST")
    raw_error(httpx.get(url, params={"name": name, "version": "abc"}), 400, "INVALID_PARAMETER_VALUE")


# -- catalogs, schemas and three-level names --------------------------------------------
def test_catalogs_and_schemas(server_url, mlflow_client, run_id):
    uc = f"{server_url}/api/2.1/unity-catalog"
    cat = unique("cat").replace("-", "_")
    created = httpx.post(f"{uc}/catalogs", json={"name": cat, "comment": "team catalog"})
    assert created.status_code == 200, created.text
    assert created.json()["name"] == cat and created.json()["comment"] == "team catalog"
    listed = [c["name"] for c in httpx.get(f"{uc}/catalogs").json()["catalogs"]]
    assert "main" in listed and cat in listed and listed == sorted(listed)
    assert httpx.get(f"{uc}/catalogs/{cat}").json()["comment"] == "team catalog"
    assert httpx.patch(f"{uc}/catalogs/{cat}", json={"comment": "new"}).json()["comment"] == "new"
    raw_error(httpx.post(f"{uc}/catalogs", json={"name": cat}), 400, "RESOURCE_ALREADY_EXISTS")
    raw_error(httpx.patch(f"{uc}/catalogs/{cat}", json={"new_name": "other"}), 400, "INVALID_PARAMETER_VALUE")

    schema = httpx.post(f"{uc}/schemas", json={"name": "sch", "catalog_name": cat, "comment": "s"})
    assert schema.status_code == 200, schema.text
    assert schema.json()["full_name"] == f"{cat}.sch" and schema.json()["catalog_name"] == cat
    assert [s["name"] for s in httpx.get(f"{uc}/schemas", params={"catalog_name": cat}).json()["schemas"]] == ["sch"]
    assert httpx.get(f"{uc}/schemas/{cat}.sch").json()["comment"] == "s"
    assert httpx.patch(f"{uc}/schemas/{cat}.sch", json={"comment": "t"}).json()["comment"] == "t"
    assert "default" in [s["name"] for s in httpx.get(f"{uc}/schemas", params={"catalog_name": "main"}).json()["schemas"]]
    raw_error(httpx.get(f"{uc}/schemas", params={"catalog_name": unique("nocat")}), 404, "RESOURCE_DOES_NOT_EXIST")
    raw_error(httpx.get(f"{uc}/schemas"), 400, "INVALID_PARAMETER_VALUE")
    raw_error(httpx.post(f"{uc}/schemas", json={"name": "x", "catalog_name": unique("nocat")}), 404,
              "RESOURCE_DOES_NOT_EXIST")

    # A three-level name lives in that schema; a name in a missing schema is refused.
    full = f"{cat}.sch.model"
    assert mlflow_client.create_registered_model(full).name == full
    assert new_version(mlflow_client, full, run_id).version == "1"
    mlflow_client.set_registered_model_alias(full, "champion", "1")
    assert mlflow_client.get_model_version_by_alias(full, "champion").name == full
    assert [m.name for m in mlflow_client.search_registered_models(filter_string=f"name = '{full}'")] == [full]
    err = error_of(lambda: mlflow_client.create_registered_model(f"{cat}.nosuch.model"))
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"
    # A model in main.default answers to its bare name and to its full name.
    bare = unique()
    mlflow_client.create_registered_model(bare)
    got = httpx.get(f"{server_url}{API}/registered-models/get", params={"name": f"main.default.{bare}"}).json()
    assert got["registered_model"]["name"] == bare and got["registered_model"]["full_name"] == f"main.default.{bare}"

    # Only empty namespaces are deleted; main and main.default never.
    raw_error(httpx.delete(f"{uc}/schemas/{cat}.sch"), 400, "INVALID_STATE")
    raw_error(httpx.delete(f"{uc}/catalogs/{cat}"), 400, "INVALID_STATE")
    mlflow_client.delete_registered_model(full)
    assert httpx.delete(f"{uc}/schemas/{cat}.sch").json() == {}
    assert httpx.delete(f"{uc}/catalogs/{cat}").json() == {}
    raw_error(httpx.get(f"{uc}/catalogs/{cat}"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert httpx.delete(f"{uc}/catalogs/main").status_code == 400
    assert httpx.delete(f"{uc}/schemas/main.default").status_code == 400


@pytest.mark.parametrize(
    "bad", ["", "   ", "a.b.c.d", "has space", "a/b", "x:y", "café!", "a..b", "x" * 256]
)
def test_bad_model_names_are_clear_400s(server_url, bad):
    resp = httpx.post(f"{server_url}{API}/registered-models/create", json={"name": bad})
    message = raw_error(resp, 400, "INVALID_PARAMETER_VALUE")
    if bad.strip():
        assert bad[:50] in message  # the message names the name


# -- raw HTTP: shapes and errors -----------------------------------------------------------
def test_wire_shapes(server_url, mlflow_client, run_id):
    name = unique()
    base = f"{server_url}{API}"
    rm = httpx.post(f"{base}/registered-models/create",
                    json={"name": name, "tags": [{"key": "k", "value": "v"}]}).json()["registered_model"]
    assert rm["name"] == name and rm["tags"] == [{"key": "k", "value": "v"}]
    assert isinstance(rm["creation_timestamp"], int)

    created = httpx.post(f"{base}/model-versions/create",
                         json={"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id,
                               "tags": [{"key": "a", "value": "1"}]})
    mv = created.json()["model_version"]
    assert mv["version"] == "1" and mv["current_stage"] == "None" and mv["tags"] == [{"key": "a", "value": "1"}]
    assert mv["status"] in ("PENDING_REGISTRATION", "READY", "FAILED_REGISTRATION")
    httpx.post(f"{base}/registered-models/alias", json={"name": name, "alias": "prod", "version": "1"})

    got = httpx.get(f"{base}/registered-models/get", params={"name": name}).json()["registered_model"]
    assert got["aliases"] == [{"alias": "prod", "version": "1"}]
    assert [v["version"] for v in got["latest_versions"]] == ["1"]
    assert got["latest_versions"][0]["current_stage"] == "None"
    by_alias = httpx.get(f"{base}/registered-models/alias", params={"name": name, "alias": "prod"}).json()
    assert by_alias["model_version"]["aliases"] == ["prod"]

    # get-latest-versions by GET with a repeated query parameter, and by POST.
    for _ in range(2):
        httpx.post(f"{base}/model-versions/create", json={"name": name, "source": f"runs:/{run_id}/model"})
    httpx.post(f"{base}/model-versions/transition-stage",
               json={"name": name, "version": "2", "stage": "Staging", "archive_existing_versions": False})
    httpx.post(f"{base}/model-versions/transition-stage",
               json={"name": name, "version": "3", "stage": "Production", "archive_existing_versions": False})
    got = httpx.get(f"{base}/registered-models/get-latest-versions",
                    params=[("name", name), ("stages", "Staging"), ("stages", "Production")]).json()
    assert [(v["version"], v["current_stage"]) for v in got["model_versions"]] == [("2", "Staging"), ("3", "Production")]
    posted = httpx.post(f"{base}/registered-models/get-latest-versions", json={"name": name, "stages": ["staging"]})
    assert [v["version"] for v in posted.json()["model_versions"]] == ["2"]

    page = httpx.get(f"{base}/model-versions/search",
                     params=[("filter", f"name='{name}'"), ("max_results", "2"), ("order_by", "version_number ASC")])
    body = page.json()
    assert [v["version"] for v in body["model_versions"]] == ["1", "2"] and body["next_page_token"]
    listed = httpx.get(f"{base}/registered-models/search", params={"filter": f"name='{name}'"}).json()
    assert [m["name"] for m in listed["registered_models"]] == [name] and "next_page_token" not in listed
    uri = httpx.get(f"{base}/model-versions/get-download-uri", params={"name": name, "version": "1"}).json()
    assert isinstance(uri["artifact_uri"], str) and uri["artifact_uri"]

    # DELETE carries its message as JSON (the client) or, for curl, in the query string.
    assert httpx.request("DELETE", f"{base}/model-versions/delete-tag",
                         json={"name": name, "version": "1", "key": "a"}).json() == {}
    assert httpx.delete(f"{base}/registered-models/alias", params={"name": name, "alias": "prod"}).json() == {}
    assert httpx.request("DELETE", f"{base}/model-versions/delete", json={"name": name, "version": "3"}).json() == {}
    assert httpx.delete(f"{base}/registered-models/delete", params={"name": name}).json() == {}
    raw_error(httpx.get(f"{base}/registered-models/get", params={"name": name}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_errors_are_mlflow_shaped(server_url, mlflow_client, run_id):
    base = f"{server_url}{API}"
    name = unique()
    mlflow_client.create_registered_model(name)
    new_version(mlflow_client, name, run_id)

    msg = raw_error(httpx.post(f"{base}/registered-models/create", json={}), 400, "INVALID_PARAMETER_VALUE")
    assert "Missing value for required parameter 'name'" in msg
    msg = raw_error(httpx.post(f"{base}/model-versions/create", json={"name": name}), 400, "INVALID_PARAMETER_VALUE")
    assert "Missing value for required parameter 'source'" in msg
    msg = raw_error(httpx.post(f"{base}/registered-models/rename", json={"name": name}), 400, "INVALID_PARAMETER_VALUE")
    assert "'new_name'" in msg
    msg = raw_error(httpx.get(f"{base}/registered-models/get"), 400, "INVALID_PARAMETER_VALUE")
    assert "'name'" in msg
    msg = raw_error(httpx.request("DELETE", f"{base}/registered-models/delete", json={}), 400,
                    "INVALID_PARAMETER_VALUE")
    assert "'name'" in msg

    for version in ("abc", "1.5", "-1", " "):
        resp = httpx.get(f"{base}/model-versions/get", params={"name": name, "version": version})
        raw_error(resp, 400, "INVALID_PARAMETER_VALUE")
    msg = raw_error(httpx.get(f"{base}/model-versions/get", params={"name": name, "version": "abc"}), 400,
                    "INVALID_PARAMETER_VALUE")
    assert "'version'" in msg and "abc" in msg
    raw_error(httpx.post(f"{base}/registered-models/alias", json={"name": name, "alias": "a", "version": "x"}),
              400, "INVALID_PARAMETER_VALUE")
    msg = raw_error(httpx.post(f"{base}/model-versions/transition-stage",
                               json={"name": name, "version": "1", "stage": "Shipped"}), 400, "INVALID_PARAMETER_VALUE")
    assert "Shipped" in msg
    raw_error(httpx.post(f"{base}/model-versions/transition-stage", json={"name": name, "version": "1"}),
              400, "INVALID_PARAMETER_VALUE")

    ghost = unique("ghost")
    assert ghost in raw_error(httpx.get(f"{base}/registered-models/get", params={"name": ghost}), 404,
                              "RESOURCE_DOES_NOT_EXIST")
    raw_error(httpx.get(f"{base}/model-versions/get", params={"name": name, "version": "9"}), 404,
              "RESOURCE_DOES_NOT_EXIST")
    raw_error(httpx.get(f"{base}/model-versions/get-download-uri", params={"name": ghost, "version": "1"}), 404,
              "RESOURCE_DOES_NOT_EXIST")
    raw_error(httpx.post(f"{base}/registered-models/create", json={"name": name}), 400, "RESOURCE_ALREADY_EXISTS")
    bad_json = httpx.post(f"{base}/registered-models/create", content=b"{not json")
    assert bad_json.status_code == 400 and bad_json.json()["error_code"] == "BAD_REQUEST"  # as every route
    raw_error(httpx.get(f"{base}/registered-models/search", params={"max_results": "many"}), 400,
              "INVALID_PARAMETER_VALUE")
    raw_error(httpx.get(f"{base}/registered-models/search", params={"max_results": "5000"}), 400,
              "INVALID_PARAMETER_VALUE")
    raw_error(httpx.get(f"{base}/model-versions/search", params={"filter": "version_number LIKE 'x'"}), 400,
              "INVALID_PARAMETER_VALUE")


def test_uploads_and_deletes_under_registry_are_refused(server_url):
    proxy = f"{server_url}/api/2.0/mlflow-artifacts/artifacts"
    for path in ("registry/abc/MLmodel", "registry", "./registry/x/model.onnx", "registry%2Fabc%2Fmodel.pkl"):
        msg = raw_error(httpx.put(f"{proxy}/{path}", content=b"tampered"), 403, "PERMISSION_DENIED")
        assert "immutable" in msg
        raw_error(httpx.delete(f"{proxy}/{path}"), 403, "PERMISSION_DENIED")
    # Reads stay allowed (nothing is there: a plain 404, not a refusal).
    raw_error(httpx.get(f"{proxy}/registry/nothing-here/MLmodel"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert httpx.get(proxy, params={"path": "registry/nothing-here"}).status_code == 200
    # A path that merely starts with the same letters is an ordinary artifact.
    assert httpx.put(f"{proxy}/registry-notes/{unique()}.txt", content=b"fine").status_code == 200
