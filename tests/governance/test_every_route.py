"""Every route of the app, enumerated from its router, against a real `cairn server
--auth`: an anonymous caller is refused (401), a signed-in caller with no grants is
refused (403, or answered as if the object did not exist), and a caller granted what the
route needs is let in. A route with no case here fails the test, so a new route cannot
land without saying who may call it.

Kinds of case: a list of grants (what lets a caller in), ADMIN (only admins),
SIGNED_IN (anyone signed in, by design: creating an experiment, one's own tokens),
SELF (one's own things only: the stranger is refused, the owner needs no grant),
FILTERED (anyone signed in may list, but sees only what it may see), OPEN (health
checks, for load balancers)."""
from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, NamedTuple

import httpx
import numpy as np
import pytest

from cairn import engine

pytestmark = pytest.mark.filterwarnings("ignore")
ADMIN, SIGNED_IN, SELF, FILTERED, OPEN = "admin", "signed_in", "self", "filtered", "open"
_n = itertools.count()


def uniq(prefix: str) -> str:
    return f"{prefix}{next(_n)}"


class Case(NamedTuple):
    request: Callable[[Any, dict], tuple[str, dict]]  # (world, ctx) -> (path, httpx kwargs)
    grants: Any  # a kind above, or (world, ctx) -> [(securable_type, name, [privileges])]
    setup: Callable[[Any], dict] | None = None  # (world) -> ctx, objects this case may destroy
    sees: Callable[[Any, dict], bool] | None = None  # FILTERED: does the answer show the world's object?
    ok: tuple[int, ...] = (200,)


def _exp(w, ctx=None):
    e = (ctx or {}).get("exp", w.exp)
    return [("experiment", e, ["CAN_READ"])]


def _exp_edit(w, ctx=None):
    return [("experiment", (ctx or {}).get("exp", w.exp), ["CAN_EDIT"])]


def _exp_manage(w, ctx=None):
    return [("experiment", (ctx or {}).get("exp", w.exp), ["CAN_MANAGE"])]


def _uc(*privs, kind="registered_model", name=None):
    def grants(w, ctx=None):
        target = (ctx or {}).get("name") or name or {"registered_model": w.model, "table": w.ft,
                                                      "function": w.spec}[kind]
        catalog, schema, _ = target.split(".")
        return [("catalog", catalog, ["USE_CATALOG"]), ("schema", f"{catalog}.{schema}", ["USE_SCHEMA"]),
                (kind, target, list(privs))]
    return grants


def _create_in(priv, extra=()):
    def grants(w, ctx=None):
        return [("catalog", "main", ["USE_CATALOG"]), ("schema", "main.default", ["USE_SCHEMA", priv]),
                *[g for f in extra for g in f(w, ctx)]]
    return grants


def _ep(level):
    return lambda w, ctx=None: [("serving_endpoint", (ctx or {}).get("ep", w.ep), [level])]


def _both(*fs):
    return lambda w, ctx=None: [g for f in fs for g in f(w, ctx)]


def body(**kw):
    return {"json": kw}


def q(**kw):
    return {"params": kw}


# -- setups: fresh objects for cases that change or destroy them ------------------------
def fresh_exp(w):
    return {"exp": w.admin.post("/api/2.0/mlflow/experiments/create", json={"name": uniq("e")}).json()["experiment_id"]}


def fresh_run(w):
    r = w.admin.post("/api/2.0/mlflow/runs/create", json={"experiment_id": w.exp}).json()
    return {"run": r["run"]["info"]["run_id"]}


def deleted(w, ctx):
    assert w.admin.post("/api/2.0/mlflow/experiments/delete", json={"experiment_id": ctx["exp"]}).status_code == 200
    return ctx


def tagged_run(w):
    ctx = fresh_run(w)
    assert w.admin.post("/api/2.0/mlflow/runs/set-tag", json={"run_id": ctx["run"], "key": "t", "value": "v"}
                        ).status_code == 200
    return ctx


def fresh_lm(w):
    r = w.admin.post("/api/2.0/mlflow/logged-models", json={"experiment_id": w.exp, "name": "lm"}).json()
    return {"lm": r["model"]["info"]["model_id"]}


def fresh_model(w):
    name = uniq("rm")
    assert w.admin.post("/api/2.0/mlflow/registered-models/create", json={"name": name}).status_code == 200
    return {"name": f"main.default.{name}", "short": name}


def fresh_version(w):
    ctx = fresh_model(w)
    r = w.admin.post("/api/2.0/mlflow/model-versions/create", json={"name": ctx["short"], "source": "models:/m1/1"})
    assert r.status_code == 200, r.text
    return ctx


def fresh_catalog(w):
    name = uniq("cat")
    assert w.admin.post("/api/2.1/unity-catalog/catalogs/", json={"name": name}).status_code == 200
    return {"catalog": name}


def fresh_schema(w):
    name = uniq("s")
    assert w.admin.post("/api/2.1/unity-catalog/schemas/", json={"name": name, "catalog_name": "main"}
                        ).status_code == 200
    return {"schema": f"main.{name}"}


def fresh_ep(w):
    name = uniq("ep")
    r = w.admin.post("/api/2.0/serving-endpoints/", json={"name": name, "config": {
        "served_entities": [{"entity_name": "m1", "entity_version": "1"}]}})
    assert r.status_code == 200, r.text
    return {"ep": name}


def fresh_table(w):
    name = f"main.default.{uniq('t')}"
    r = w.admin.post("/api/2.0/feature-store/feature-tables/create",
                     json={"name": name, "primary_keys": ["id"], "schema": {"id": "bigint", "x": "double"}})
    assert r.status_code == 200, r.text
    return {"name": name}


def fresh_spec(w):
    name = f"main.default.{uniq('spec')}"
    r = w.admin.post("/api/2.0/feature-store/feature-specs/create",
                     json={"name": name, "features": [{"table_name": w.ft, "lookup_key": "id"}]})
    assert r.status_code == 200, r.text
    return {"name": name}


def monitored(w, ctx):
    assert w.admin.post(f"{MON}/create", json={"endpoint_name": ctx["ep"]}).status_code == 200
    return ctx


def gus_token(w):
    return {"token_id": w.gus.post("/api/2.0/token/create", json={"comment": "t"}).json()["token_info"]["token_id"]}


ROUTE = "/api/2.0/mlflow"
EXP, RUNS, LMS, RMS, MVS = f"{ROUTE}/experiments", f"{ROUTE}/runs", f"{ROUTE}/logged-models", \
    f"{ROUTE}/registered-models", f"{ROUTE}/model-versions"
ART = "/api/2.0/mlflow-artifacts/artifacts"
UC = "/api/2.1/unity-catalog"
EPS = "/api/2.0/serving-endpoints"
FS = "/api/2.0/feature-store"
MON = "/api/2.0/monitors"


def _names(resp, key, field="name"):
    return [x[field] for x in resp.get(key, [])]


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/health"): Case(lambda w, c: ("/health", {}), OPEN),
    ("GET", "/version"): Case(lambda w, c: ("/version", {}), OPEN),
    ("GET", "/api/3.0/mlflow/server-info"): Case(lambda w, c: ("/api/3.0/mlflow/server-info", {}), SIGNED_IN),
    # experiments
    ("POST", f"{EXP}/create"): Case(lambda w, c: (f"{EXP}/create", body(name=uniq("x"))), SIGNED_IN),
    ("POST", f"{EXP}/delete"): Case(lambda w, c: (f"{EXP}/delete", body(experiment_id=c["exp"])), _exp_manage,
                                    fresh_exp),
    ("POST", f"{EXP}/restore"): Case(lambda w, c: (f"{EXP}/restore", body(experiment_id=c["exp"])), _exp_manage,
                                     lambda w: deleted(w, fresh_exp(w))),
    ("POST", f"{EXP}/delete-experiment-tag"): Case(
        lambda w, c: (f"{EXP}/delete-experiment-tag", body(experiment_id=w.exp, key="k")), _exp_edit,
        lambda w: {"t": w.admin.post(f"{EXP}/set-experiment-tag", json={"experiment_id": w.exp, "key": "k",
                                                                        "value": "v"})}),
    ("POST", f"{EXP}/set-experiment-tag"): Case(
        lambda w, c: (f"{EXP}/set-experiment-tag", body(experiment_id=w.exp, key="k", value="v")), _exp_edit),
    ("POST", f"{EXP}/update"): Case(lambda w, c: (f"{EXP}/update", body(experiment_id=c["exp"], new_name=uniq("n"))),
                                    _exp_edit, fresh_exp),
    ("GET", f"{EXP}/get"): Case(lambda w, c: (f"{EXP}/get", q(experiment_id=w.exp)), _exp),
    ("GET", f"{EXP}/get-by-name"): Case(lambda w, c: (f"{EXP}/get-by-name", q(experiment_name="world")), _exp),
    ("GET", f"{EXP}/search"): Case(lambda w, c: (f"{EXP}/search", q(max_results=1000)), _exp,
                                   sees=lambda w, r: w.exp in _names(r, "experiments", "experiment_id")),
    ("POST", f"{EXP}/search"): Case(lambda w, c: (f"{EXP}/search", body(max_results=1000)), _exp,
                                    sees=lambda w, r: w.exp in _names(r, "experiments", "experiment_id")),
    # runs
    ("POST", f"{RUNS}/create"): Case(lambda w, c: (f"{RUNS}/create", body(experiment_id=w.exp)), _exp_edit),
    ("GET", f"{RUNS}/get"): Case(lambda w, c: (f"{RUNS}/get", q(run_id=w.run)), _exp),
    ("POST", f"{RUNS}/delete"): Case(lambda w, c: (f"{RUNS}/delete", body(run_id=c["run"])), _exp_manage, fresh_run),
    ("POST", f"{RUNS}/restore"): Case(lambda w, c: (f"{RUNS}/restore", body(run_id=c["run"])), _exp_manage,
                                      fresh_run),
    ("POST", f"{RUNS}/update"): Case(lambda w, c: (f"{RUNS}/update", body(run_id=w.run, status="RUNNING")),
                                     _exp_edit),
    ("POST", f"{RUNS}/log-metric"): Case(
        lambda w, c: (f"{RUNS}/log-metric", body(run_id=w.run, key="m", value=1.0, timestamp=1, step=next(_n))),
        _exp_edit),
    ("POST", f"{RUNS}/log-parameter"): Case(
        lambda w, c: (f"{RUNS}/log-parameter", body(run_id=w.run, key=uniq("p"), value="1")), _exp_edit),
    ("POST", f"{RUNS}/set-tag"): Case(lambda w, c: (f"{RUNS}/set-tag", body(run_id=w.run, key="t", value="v")),
                                      _exp_edit),
    ("POST", f"{RUNS}/delete-tag"): Case(lambda w, c: (f"{RUNS}/delete-tag", body(run_id=c["run"], key="t")),
                                         _exp_edit, lambda w: tagged_run(w)),
    ("POST", f"{RUNS}/log-batch"): Case(
        lambda w, c: (f"{RUNS}/log-batch", body(run_id=w.run, metrics=[{"key": "b", "value": 1, "timestamp": 1,
                                                                         "step": 0}])), _exp_edit),
    ("POST", f"{RUNS}/log-inputs"): Case(lambda w, c: (f"{RUNS}/log-inputs", body(run_id=w.run)), _exp_edit),
    ("POST", f"{RUNS}/log-model"): Case(
        lambda w, c: (f"{RUNS}/log-model", body(run_id=w.run, model_json='{"artifact_path": "m", "flavors": {}, '
                                                 '"utc_time_created": "x", "run_id": "r"}')), _exp_edit),
    ("POST", f"{RUNS}/search"): Case(lambda w, c: (f"{RUNS}/search", body(experiment_ids=[w.exp])), _exp,
                                     sees=lambda w, r: w.run in [x["info"]["run_id"] for x in r.get("runs", [])]),
    ("POST", f"{RUNS}/outputs"): Case(
        lambda w, c: (f"{RUNS}/outputs", body(run_id=w.run, models=[{"model_id": w.lm, "step": 0}])), _exp_edit),
    ("GET", f"{ROUTE}/metrics/get-history"): Case(
        lambda w, c: (f"{ROUTE}/metrics/get-history", q(run_id=w.run, metric_key="m")), _exp),
    ("GET", f"{ROUTE}/metrics/get-history-bulk-interval"): Case(
        lambda w, c: (f"{ROUTE}/metrics/get-history-bulk-interval", q(run_ids=[w.run], metric_key="m")), _exp),
    # artifacts
    ("GET", f"{ART}/{{artifact_path:path}}"): Case(lambda w, c: (f"{ART}/{w.art}", {}), _exp),
    ("PUT", f"{ART}/{{artifact_path:path}}"): Case(
        lambda w, c: (f"{ART}/{w.exp}/{w.run}/artifacts/{uniq('u')}.txt", {"content": b"hi"}), _exp_edit),
    ("DELETE", f"{ART}/{{artifact_path:path}}"): Case(
        lambda w, c: (f"{ART}/{w.exp}/{w.run}/artifacts/gone.txt", {}), _exp_edit),
    ("GET", ART): Case(lambda w, c: (ART, q(path=f"{w.exp}/{w.run}/artifacts")), _exp),
    ("GET", f"{ROUTE}/artifacts/list"): Case(lambda w, c: (f"{ROUTE}/artifacts/list", q(run_id=w.run)), _exp),
    ("POST", "/api/2.0/mlflow-artifacts/mpu/{action:str}/{artifact_path:path}"): Case(
        lambda w, c: (f"/api/2.0/mlflow-artifacts/mpu/create/{w.art}", body()), SIGNED_IN, ok=(501,)),
    ("GET", "/api/2.0/mlflow-artifacts/presigned/{artifact_path:path}"): Case(
        lambda w, c: (f"/api/2.0/mlflow-artifacts/presigned/{w.art}", {}), SIGNED_IN, ok=(501,)),
    # logged models
    ("POST", LMS): Case(lambda w, c: (LMS, body(experiment_id=w.exp, name="x")), _exp_edit),
    ("GET", f"{LMS}/{{model_id:str}}"): Case(lambda w, c: (f"{LMS}/{w.lm}", {}), _exp),
    ("PATCH", f"{LMS}/{{model_id:str}}"): Case(lambda w, c: (f"{LMS}/{c['lm']}", body(model_id=c["lm"],
                                                                                      status="READY")),
                                               _exp_edit, fresh_lm),
    ("DELETE", f"{LMS}/{{model_id:str}}"): Case(lambda w, c: (f"{LMS}/{c['lm']}", {}), _exp_manage, fresh_lm),
    ("PATCH", f"{LMS}/{{model_id:str}}/tags"): Case(
        lambda w, c: (f"{LMS}/{w.lm}/tags", body(model_id=w.lm, tags=[{"key": "k", "value": "v"}])), _exp_edit),
    ("DELETE", f"{LMS}/{{model_id:str}}/tags/{{tag_key:str}}"): Case(
        lambda w, c: (f"{LMS}/{w.lm}/tags/k", {}), _exp_edit,
        lambda w: {"t": w.admin.patch(f"{LMS}/{w.lm}/tags", json={"tags": [{"key": "k", "value": "v"}]})}),
    ("POST", f"{LMS}/{{model_id:str}}/params"): Case(
        lambda w, c: (f"{LMS}/{w.lm}/params", body(model_id=w.lm, params=[{"key": uniq("p"), "value": "1"}])),
        _exp_edit),
    ("GET", f"{LMS}/{{model_id:str}}/artifacts/directories"): Case(
        lambda w, c: (f"{LMS}/{w.lm}/artifacts/directories", {}), _exp),
    ("POST", f"{LMS}/search"): Case(lambda w, c: (f"{LMS}/search", body(experiment_ids=[w.exp])), _exp,
                                    sees=lambda w, r: w.lm in [m["info"]["model_id"] for m in r.get("models", [])]),
    # registered models
    ("POST", f"{RMS}/create"): Case(lambda w, c: (f"{RMS}/create", body(name=uniq("new"))), _create_in("CREATE_MODEL")),
    ("GET", f"{RMS}/get"): Case(lambda w, c: (f"{RMS}/get", q(name="m1")), _uc("EXECUTE")),
    ("GET", f"{RMS}/search"): Case(lambda w, c: (f"{RMS}/search", {}), _uc("EXECUTE"),
                                   sees=lambda w, r: "m1" in _names(r, "registered_models")),
    ("POST", f"{RMS}/rename"): Case(lambda w, c: (f"{RMS}/rename", body(name=c["short"], new_name=uniq("renamed"))),
                                    _both(_uc("MANAGE"), _create_in("CREATE_MODEL")), fresh_model),
    ("PATCH", f"{RMS}/update"): Case(lambda w, c: (f"{RMS}/update", body(name="m1", description="d")),
                                     _uc("MODIFY")),
    ("DELETE", f"{RMS}/delete"): Case(lambda w, c: (f"{RMS}/delete", body(name=c["short"])), _uc("MANAGE"),
                                      fresh_model),
    ("GET", f"{RMS}/get-latest-versions"): Case(lambda w, c: (f"{RMS}/get-latest-versions", q(name="m1")),
                                                _uc("EXECUTE")),
    ("POST", f"{RMS}/get-latest-versions"): Case(lambda w, c: (f"{RMS}/get-latest-versions", body(name="m1")),
                                                 _uc("EXECUTE")),
    ("POST", f"{RMS}/set-tag"): Case(lambda w, c: (f"{RMS}/set-tag", body(name="m1", key="k", value="v")),
                                     _uc("APPLY_TAG")),
    ("DELETE", f"{RMS}/delete-tag"): Case(lambda w, c: (f"{RMS}/delete-tag", body(name="m1", key="k")),
                                          _uc("APPLY_TAG")),
    ("POST", f"{RMS}/alias"): Case(lambda w, c: (f"{RMS}/alias", body(name="m1", alias="a1", version="1")),
                                   _uc("MODIFY")),
    ("GET", f"{RMS}/alias"): Case(lambda w, c: (f"{RMS}/alias", q(name="m1", alias="champ")), _uc("EXECUTE")),
    ("DELETE", f"{RMS}/alias"): Case(lambda w, c: (f"{RMS}/alias", body(name="m1", alias="a2")), _uc("MODIFY"),
                                     lambda w: {"a": w.admin.post(f"{RMS}/alias", json={"name": "m1", "alias": "a2",
                                                                                        "version": "1"})}),
    # model versions
    ("POST", f"{MVS}/create"): Case(lambda w, c: (f"{MVS}/create", body(name="m1", source="models:/m1/1")),
                                    _uc("MODIFY")),
    ("GET", f"{MVS}/get"): Case(lambda w, c: (f"{MVS}/get", q(name="m1", version="1")), _uc("EXECUTE")),
    ("GET", f"{MVS}/get-download-uri"): Case(lambda w, c: (f"{MVS}/get-download-uri", q(name="m1", version="1")),
                                             _uc("EXECUTE")),
    ("GET", f"{MVS}/lineage"): Case(lambda w, c: (f"{MVS}/lineage", q(name="m1", version="1")), _uc("EXECUTE")),
    ("GET", f"{MVS}/transitions"): Case(lambda w, c: (f"{MVS}/transitions", q(name="m1")), _uc("EXECUTE")),
    ("GET", f"{MVS}/search"): Case(lambda w, c: (f"{MVS}/search", {}), _uc("EXECUTE"),
                                   sees=lambda w, r: "m1" in _names(r, "model_versions")),
    ("PATCH", f"{MVS}/update"): Case(lambda w, c: (f"{MVS}/update", body(name="m1", version="1", description="d")),
                                     _uc("MODIFY")),
    ("POST", f"{MVS}/transition-stage"): Case(
        lambda w, c: (f"{MVS}/transition-stage", body(name="m1", version="1", stage="Staging")), _uc("MODIFY")),
    ("POST", f"{MVS}/set-tag"): Case(lambda w, c: (f"{MVS}/set-tag", body(name="m1", version="1", key="k",
                                                                           value="v")), _uc("APPLY_TAG")),
    ("DELETE", f"{MVS}/delete-tag"): Case(lambda w, c: (f"{MVS}/delete-tag", body(name="m1", version="1", key="k")),
                                          _uc("APPLY_TAG")),
    ("DELETE", f"{MVS}/delete"): Case(lambda w, c: (f"{MVS}/delete", body(name=c["short"], version="1")),
                                      _uc("MANAGE"), fresh_version),
    # Unity Catalog namespaces
    ("GET", f"{UC}/catalogs"): Case(lambda w, c: (f"{UC}/catalogs", {}),
                                    lambda w, c=None: [("catalog", "main", ["USE_CATALOG"])],
                                    sees=lambda w, r: "main" in _names(r, "catalogs")),
    ("POST", f"{UC}/catalogs"): Case(lambda w, c: (f"{UC}/catalogs/", body(name=uniq("c"))), ADMIN),
    ("GET", f"{UC}/catalogs/{{name:str}}"): Case(lambda w, c: (f"{UC}/catalogs/main", {}),
                                                 lambda w, c=None: [("catalog", "main", ["USE_CATALOG"])]),
    ("PATCH", f"{UC}/catalogs/{{name:str}}"): Case(lambda w, c: (f"{UC}/catalogs/{c['catalog']}", body(comment="x")),
                                                   lambda w, c: [("catalog", c["catalog"], ["MANAGE"])],
                                                   fresh_catalog),
    ("DELETE", f"{UC}/catalogs/{{name:str}}"): Case(lambda w, c: (f"{UC}/catalogs/{c['catalog']}", {}),
                                                    lambda w, c: [("catalog", c["catalog"], ["MANAGE"])],
                                                    fresh_catalog),
    ("GET", f"{UC}/schemas"): Case(lambda w, c: (f"{UC}/schemas", q(catalog_name="main")),
                                   lambda w, c=None: [("catalog", "main", ["USE_CATALOG"]),
                                                      ("schema", "main.default", ["USE_SCHEMA"])]),
    ("POST", f"{UC}/schemas"): Case(lambda w, c: (f"{UC}/schemas/", body(name=uniq("s"), catalog_name="main")),
                                    lambda w, c=None: [("catalog", "main", ["USE_CATALOG", "CREATE_SCHEMA"])]),
    ("GET", f"{UC}/schemas/{{full_name:str}}"): Case(
        lambda w, c: (f"{UC}/schemas/main.default", {}),
        lambda w, c=None: [("catalog", "main", ["USE_CATALOG"]), ("schema", "main.default", ["USE_SCHEMA"])]),
    ("PATCH", f"{UC}/schemas/{{full_name:str}}"): Case(
        lambda w, c: (f"{UC}/schemas/{c['schema']}", body(comment="x")),
        lambda w, c: [("catalog", "main", ["USE_CATALOG"]), ("schema", c["schema"], ["MANAGE"])], fresh_schema),
    ("DELETE", f"{UC}/schemas/{{full_name:str}}"): Case(
        lambda w, c: (f"{UC}/schemas/{c['schema']}", {}),
        lambda w, c: [("catalog", "main", ["USE_CATALOG"]), ("schema", c["schema"], ["MANAGE"])], fresh_schema),
    # serving endpoints
    ("GET", EPS): Case(lambda w, c: (EPS, {}), _ep("CAN_VIEW"), sees=lambda w, r: w.ep in _names(r, "endpoints")),
    ("POST", EPS): Case(lambda w, c: (f"{EPS}/", body(name=uniq("ep"), config={"served_entities": [
        {"entity_name": "m1", "entity_version": "1"}]})), _uc("EXECUTE")),
    ("GET", f"{EPS}/{{name:str}}"): Case(lambda w, c: (f"{EPS}/{w.ep}", {}), _ep("CAN_VIEW")),
    ("PUT", f"{EPS}/{{name:str}}/config"): Case(
        lambda w, c: (f"{EPS}/{c['ep']}/config", body(served_entities=[{"entity_name": "m1", "entity_version": "1",
                                                                        "max_batch_rows": 8}])),
        _both(_ep("CAN_MANAGE"), _uc("EXECUTE")), fresh_ep),
    ("PUT", f"{EPS}/{{name:str}}/rate-limits"): Case(
        lambda w, c: (f"{EPS}/{c['ep']}/rate-limits", body(rate_limits=[{"calls": 5, "key": "user"}])),
        _ep("CAN_MANAGE"), fresh_ep),
    ("DELETE", f"{EPS}/{{name:str}}"): Case(lambda w, c: (f"{EPS}/{c['ep']}", {}), _ep("CAN_MANAGE"), fresh_ep),
    ("GET", f"{EPS}/{{name:str}}/payloads"): Case(lambda w, c: (f"{EPS}/{w.ep}/payloads", {}), _ep("CAN_MANAGE")),
    ("POST", "/serving-endpoints/{name}/invocations"): Case(
        lambda w, c: (f"/serving-endpoints/{w.ep}/invocations", body(inputs=[[1.0, 2.0, 3.0]])), _ep("CAN_QUERY")),
    ("GET", "/metrics"): Case(lambda w, c: ("/metrics", {}), ADMIN),
    # monitors: their endpoint's; baselines: their model's
    ("POST", f"{MON}/create"): Case(lambda w, c: (f"{MON}/create", body(endpoint_name=c["ep"])), _ep("CAN_MANAGE"),
                                    fresh_ep),
    ("GET", f"{MON}/get"): Case(lambda w, c: (f"{MON}/get", q(endpoint_name=w.ep)), _ep("CAN_VIEW")),
    ("GET", f"{MON}/list"): Case(lambda w, c: (f"{MON}/list", {}), _ep("CAN_VIEW"),
                                 sees=lambda w, r: w.ep in _names(r, "monitors", "endpoint_name")),
    ("DELETE", f"{MON}/delete"): Case(lambda w, c: (f"{MON}/delete", q(endpoint_name=c["ep"])), _ep("CAN_MANAGE"),
                                      lambda w: monitored(w, fresh_ep(w))),
    ("POST", f"{MON}/refresh"): Case(lambda w, c: (f"{MON}/refresh", body(endpoint_name=w.ep)), _ep("CAN_MANAGE")),
    ("PUT", f"{MON}/alerts"): Case(
        lambda w, c: (f"{MON}/alerts", body(endpoint_name=w.ep, alerts=[{"name": "a", "metric": "psi", "op": ">",
                                                                          "threshold": 0.2}])), _ep("CAN_MANAGE")),
    ("GET", f"{MON}/alerts"): Case(lambda w, c: (f"{MON}/alerts", q(endpoint_name=w.ep)), _ep("CAN_VIEW")),
    ("POST", f"{MON}/labels"): Case(lambda w, c: (f"{MON}/labels", body(endpoint_name=w.ep, labels={"r1": 1.0})),
                                    _ep("CAN_QUERY")),
    ("GET", f"{MON}/metrics"): Case(lambda w, c: (f"{MON}/metrics", q(endpoint_name=w.ep)), _ep("CAN_VIEW")),
    ("POST", f"{MON}/baselines/set"): Case(
        lambda w, c: (f"{MON}/baselines/set", body(name="m1", version="1", columns={"x": [1.0, 2.0]})), _uc("MODIFY")),
    ("GET", f"{MON}/baselines/get"): Case(lambda w, c: (f"{MON}/baselines/get", q(name="m1", version="1")),
                                          _uc("EXECUTE")),
    # feature store
    ("POST", f"{FS}/feature-tables/create"): Case(
        lambda w, c: (f"{FS}/feature-tables/create", body(name=f"main.default.{uniq('ft')}", primary_keys=["id"],
                                                          schema={"id": "bigint", "x": "double"})),
        _create_in("CREATE_TABLE")),
    ("GET", f"{FS}/feature-tables/get"): Case(lambda w, c: (f"{FS}/feature-tables/get", q(name=w.ft)),
                                              _uc("SELECT", kind="table")),
    ("GET", f"{FS}/feature-tables/describe"): Case(lambda w, c: (f"{FS}/feature-tables/describe", q(name=w.ft)),
                                                   _uc("SELECT", kind="table")),
    ("GET", f"{FS}/feature-tables/list"): Case(lambda w, c: (f"{FS}/feature-tables/list", {}),
                                               _uc("SELECT", kind="table"),
                                               sees=lambda w, r: "ft" in _names(r, "feature_tables")),
    ("GET", f"{FS}/feature-tables/read"): Case(lambda w, c: (f"{FS}/feature-tables/read", q(name=w.ft)),
                                               _uc("SELECT", kind="table")),
    ("POST", f"{FS}/online/lookup"): Case(lambda w, c: (f"{FS}/online/lookup", body(name=w.ft, keys=[[1]])),
                                          _uc("SELECT", kind="table")),
    ("POST", f"{FS}/feature-tables/write"): Case(
        lambda w, c: (f"{FS}/feature-tables/write", {"params": {"name": w.ft},
                                                     "json": {"records": [{"id": 2, "x": 2.0}]}}),
        _uc("MODIFY", kind="table")),
    ("POST", f"{FS}/feature-tables/publish"): Case(lambda w, c: (f"{FS}/feature-tables/publish", body(name=w.ft)),
                                                   _uc("MODIFY", kind="table")),
    ("POST", f"{FS}/feature-tables/set-tag"): Case(
        lambda w, c: (f"{FS}/feature-tables/set-tag", body(name=w.ft, key="k", value="v")),
        _uc("APPLY_TAG", kind="table")),
    ("POST", f"{FS}/feature-tables/delete-tag"): Case(
        lambda w, c: (f"{FS}/feature-tables/delete-tag", body(name=w.ft, key="k")), _uc("APPLY_TAG", kind="table"),
        lambda w: {"t": w.admin.post(f"{FS}/feature-tables/set-tag", json={"name": w.ft, "key": "k", "value": "v"})}),
    ("DELETE", f"{FS}/feature-tables/delete"): Case(lambda w, c: (f"{FS}/feature-tables/delete", q(name=c["name"])),
                                                    _uc("MANAGE", kind="table"), fresh_table),
    ("POST", f"{FS}/feature-specs/create"): Case(
        lambda w, c: (f"{FS}/feature-specs/create", body(name=f"main.default.{uniq('sp')}",
                                                         features=[{"table_name": w.ft, "lookup_key": "id"}])),
        _create_in("CREATE_FUNCTION", extra=(_uc("SELECT", kind="table"),))),
    ("GET", f"{FS}/feature-specs/get"): Case(lambda w, c: (f"{FS}/feature-specs/get", q(name=w.spec)),
                                             _uc("EXECUTE", kind="function")),
    ("DELETE", f"{FS}/feature-specs/delete"): Case(lambda w, c: (f"{FS}/feature-specs/delete", q(name=c["name"])),
                                                   _uc("MANAGE", kind="function"), fresh_spec),
    # tokens, users, grants, audit
    ("POST", "/api/2.0/token/create"): Case(lambda w, c: ("/api/2.0/token/create", body(comment="c")), SIGNED_IN),
    ("GET", "/api/2.0/token/list"): Case(lambda w, c: ("/api/2.0/token/list", {}), SIGNED_IN),
    ("POST", "/api/2.0/token/delete"): Case(lambda w, c: ("/api/2.0/token/delete", body(token_id=c["token_id"])),
                                            SELF, gus_token),
    ("GET", f"{UC}/permissions/{{securable_type:str}}/{{full_name:path}}"): Case(
        lambda w, c: (f"{UC}/permissions/registered_model/{w.model}", {}), _uc("EXECUTE")),
    ("PATCH", f"{UC}/permissions/{{securable_type:str}}/{{full_name:path}}"): Case(
        lambda w, c: (f"{UC}/permissions/registered_model/{w.model}",
                      body(changes=[{"principal": "users", "add": ["EXECUTE"], "remove": ["EXECUTE"]}])),
        _uc("MANAGE")),
    ("GET", f"{UC}/effective-permissions/{{securable_type:str}}/{{full_name:path}}"): Case(
        lambda w, c: (f"{UC}/effective-permissions/registered_model/{w.model}", {}), _uc("EXECUTE")),
    ("POST", f"{EXP}/permissions/create"): Case(
        lambda w, c: (f"{EXP}/permissions/create", body(experiment_id=w.exp, username="ana", permission="READ")),
        _exp_manage, lambda w: {"d": w.admin.request("DELETE", f"{EXP}/permissions/delete",
                                                     json={"experiment_id": w.exp, "username": "ana"})}),
    ("GET", f"{EXP}/permissions/get"): Case(
        lambda w, c: (f"{EXP}/permissions/get", q(experiment_id=w.exp, username="gus")), _exp_manage),
    ("PATCH", f"{EXP}/permissions/update"): Case(
        lambda w, c: (f"{EXP}/permissions/update", body(experiment_id=w.exp, username="gus", permission="MANAGE")),
        _exp_manage),
    ("DELETE", f"{EXP}/permissions/delete"): Case(
        lambda w, c: (f"{EXP}/permissions/delete", body(experiment_id=w.exp, username="ana")), _exp_manage,
        lambda w: {"c": w.admin.post(f"{EXP}/permissions/create", json={"experiment_id": w.exp, "username": "ana",
                                                                        "permission": "READ"})}),
    ("POST", f"{RMS}/permissions/create"): Case(
        lambda w, c: (f"{RMS}/permissions/create", body(name="m1", username="ana", permission="READ")),
        _uc("MANAGE"), lambda w: {"d": w.admin.request("DELETE", f"{RMS}/permissions/delete",
                                                       json={"name": "m1", "username": "ana"})}),
    ("GET", f"{RMS}/permissions/get"): Case(
        lambda w, c: (f"{RMS}/permissions/get", q(name="m1", username="gus")), _uc("MANAGE")),
    ("PATCH", f"{RMS}/permissions/update"): Case(
        lambda w, c: (f"{RMS}/permissions/update", body(name="m1", username="gus", permission="MANAGE")),
        _uc("MANAGE")),
    ("DELETE", f"{RMS}/permissions/delete"): Case(
        lambda w, c: (f"{RMS}/permissions/delete", body(name="m1", username="ana")), _uc("MANAGE"),
        lambda w: {"c": w.admin.post(f"{RMS}/permissions/create", json={"name": "m1", "username": "ana",
                                                                        "permission": "READ"})}),
    ("POST", f"{ROUTE}/users/create"): Case(
        lambda w, c: (f"{ROUTE}/users/create", body(username=uniq("u"), password="long enough pw")), ADMIN),
    ("GET", f"{ROUTE}/users/get"): Case(lambda w, c: (f"{ROUTE}/users/get", q(username="gus")), SELF),
    ("PATCH", f"{ROUTE}/users/update-password"): Case(
        lambda w, c: (f"{ROUTE}/users/update-password", body(username="gus", password="another long pw")), SELF),
    ("PATCH", f"{ROUTE}/users/update-admin"): Case(
        lambda w, c: (f"{ROUTE}/users/update-admin", body(username=c["user"], is_admin=False)), ADMIN,
        lambda w: {"user": w.admin.post(f"{ROUTE}/users/create", json={"username": uniq("u"),
                                                                      "password": "long enough pw"}
                                        ).json()["user"]["username"]}),
    ("DELETE", f"{ROUTE}/users/delete"): Case(
        lambda w, c: (f"{ROUTE}/users/delete", body(username=c["user"])), ADMIN,
        lambda w: {"user": w.admin.post(f"{ROUTE}/users/create", json={"username": uniq("u"),
                                                                      "password": "long enough pw"}
                                        ).json()["user"]["username"]}),
    ("GET", "/api/2.0/audit/entries"): Case(lambda w, c: ("/api/2.0/audit/entries", {}), ADMIN),
    ("GET", "/api/2.0/audit/verify"): Case(lambda w, c: ("/api/2.0/audit/verify", {}), ADMIN),
}
# The OpenAPI document and its viewers: for anyone signed in.
SCHEMA_ROUTES = ("/schema", "/schema/openapi.json", "/schema/openapi.yaml", "/schema/openapi.yml", "/schema/swagger",
                 "/schema/redoc", "/schema/rapidoc", "/schema/elements", "/schema/oauth2-redirect.html",
                 "/schema/{path:str}")
for _p in SCHEMA_ROUTES:
    CASES[("GET", _p)] = Case(lambda w, c, _p=_p: (_p.replace("{path:str}", "openapi.json"), {}), SIGNED_IN)


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves (the router's own list)."""
    from cairn.app.server import create_app

    out = set()
    with engine.open(Path(__import__("tempfile").mkdtemp())) as eng:
        app = create_app(eng, auth=True)
        for route in app.routes:
            methods = set(getattr(route, "methods", ()) or ()) - {"OPTIONS", "HEAD"}
            if not methods and route.path == "/serving-endpoints":  # the raw scoring mount
                out.add(("POST", "/serving-endpoints/{name}/invocations"))
            out.update((m, route.path) for m in methods)
    return out


def test_every_route_has_a_case():
    routes = app_routes()
    missing = sorted(routes - set(CASES))
    assert not missing, f"routes with no access case (say who may call them): {missing}"
    stale = sorted(set(CASES) - routes)
    assert not stale, f"cases for routes that no longer exist: {stale}"


@pytest.fixture(scope="module")
def world(tmp_path_factory, session_launch):
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    from cairn.engine.features.lookups import FeatureLookup
    from cairn.engine.sdk.client import Client
    from cairn.engine.sdk.features import FeatureEngineeringClient, offline_store

    tmp = tmp_path_factory.mktemp("routes")
    data = tmp / "data"
    X = np.random.default_rng(0).normal(size=(20, 3))
    onnx_path = tmp / "ridge.onnx"
    onnx_path.write_bytes(to_onnx(Ridge().fit(X, X @ [1.0, 2.0, 3.0]), X[:1].astype(np.float32),
                                  target_opset=17).SerializeToString())
    client = Client(data)
    eng = client._engine
    exp = client.create_experiment("world")
    run = client.create_run(exp).info.run_id
    client.log_metric(run, "m", 1.0)
    client.log_text(run, "hello", "f.txt")
    lm = eng.logged_models.create_logged_model(exp, name="lm").info.model_id
    client._ensure_registered_model("m1")
    client.create_model_version("m1", str(onnx_path))
    client.set_registered_model_alias("m1", "champ", "1")
    import pyarrow as pa

    offline = offline_store(eng.features)
    offline.create_table("main.default.ft", ["id"], schema={"id": "bigint", "x": "double"})
    offline.write_table("main.default.ft", pa.table({"id": [1], "x": [1.0]}))
    offline.publish_table("main.default.ft")
    FeatureEngineeringClient(engine=eng).create_feature_spec(
        "main.default.spec1", [FeatureLookup(table_name="main.default.ft", lookup_key="id")])
    eng.endpoints.create_endpoint("ep1", {"served_entities": [{"entity_name": "m1", "entity_version": "1"}]})
    from cairn.engine.monitoring.profiles import profile_columns

    eng.monitoring.create_monitor("ep1")
    eng.monitoring.set_baseline("m1", "1", profile_columns({"x": [1.0, 2.0, 3.0]}))
    gov = eng.governance
    for name in ("ana", "eve", "gus"):
        gov.principals.create("user", name, admin=name == "ana")
    tokens = {name: gov.credentials.create_token(name)[0] for name in ("ana", "eve", "gus")}
    # Nothing for anyone by default: no workspace grants, MLflow's default permission off.
    from cairn.engine.governance.grants import WORKSPACE_DEFAULTS

    for s, privileges in WORKSPACE_DEFAULTS:
        gov.grants.update(s, [("users", [], privileges)], "test")
    gov.grants.set_default_permission("NO_PERMISSIONS")
    eng.close()
    _, url = session_launch(data, "--auth")
    clients = {n: httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {t}"})
               for n, t in tokens.items()}
    w = SimpleNamespace(url=url, data=data, exp=exp, run=run, lm=lm, model="main.default.m1", ft="main.default.ft",
                        spec="main.default.spec1", ep="ep1", art=f"{exp}/{run}/artifacts/f.txt",
                        admin=clients["ana"], eve=clients["eve"], gus=clients["gus"], anon=httpx.Client(
                            base_url=url, timeout=60))
    yield w
    for c in (*clients.values(), w.anon):
        c.close()


def _grant(w, grants, add: bool) -> None:
    for kind, name, privileges in grants:
        change = {"principal": "gus", "add" if add else "remove": privileges}
        r = w.admin.patch(f"{UC}/permissions/{kind}/{name}", json={"changes": [change]})
        assert r.status_code == 200, r.text


def _call(client, method, case, w, ctx):
    path, kwargs = case.request(w, ctx)
    return client.request(method, path, **kwargs)


@pytest.mark.parametrize("key", sorted(CASES), ids=lambda k: f"{k[0]} {k[1]}")
def test_route_refuses_strangers_and_lets_the_granted_in(world, key):
    method, _ = key
    case = CASES[key]
    w = world
    ctx = case.setup(w) if case.setup else {}
    anon = _call(w.anon, method, case, w, ctx)
    if case.grants == OPEN:
        assert anon.status_code == 200
        return
    assert anon.status_code == 401, (anon.status_code, anon.text)
    assert anon.json()["error_code"] == "UNAUTHENTICATED"
    eve = _call(w.eve, method, case, w, ctx)
    if case.grants in (SIGNED_IN, FILTERED) or case.sees is not None:
        assert eve.status_code in case.ok, (eve.status_code, eve.text)
        if case.sees is not None:
            assert not case.sees(w, eve.json()), "a caller with no grant sees the object"
    else:
        assert eve.status_code in (403, 404), (eve.status_code, eve.text)
        code = eve.json()["error_code"]
        assert code in ("PERMISSION_DENIED", "RESOURCE_DOES_NOT_EXIST"), eve.text
        if eve.status_code == 403 and case.grants != ADMIN and case.grants != SELF:
            assert "does not have" in eve.json()["message"], eve.text  # names the privilege
    if case.grants == SIGNED_IN:
        return
    if case.grants == ADMIN:
        assert _call(w.gus, method, case, w, ctx).status_code == 403
        granted = _call(w.admin, method, case, w, ctx)
    elif case.grants == SELF:
        granted = _call(w.gus, method, case, w, ctx)
    else:
        grants = case.grants(w, ctx)
        _grant(w, grants, True)
        try:
            granted = _call(w.gus, method, case, w, ctx)
        finally:
            _grant(w, grants, False)
    assert granted.status_code in case.ok, (granted.status_code, granted.text)
    if case.sees is not None:
        assert case.sees(w, granted.json()), "the granted caller does not see the object"
