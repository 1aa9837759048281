"""Grants over HTTP, in Unity Catalog's shape, and MLflow's basic-auth permission API on
the same grants, so tooling written for either works.

Unity Catalog (securable types: engine/governance/privileges.py):
  GET   /api/2.1/unity-catalog/permissions/{type}/{full_name}[?principal=]
        -> {"privilege_assignments": [{"principal", "privileges": [...]}]}
  PATCH /api/2.1/unity-catalog/permissions/{type}/{full_name}
        {"changes": [{"principal", "add": [...], "remove": [...]}], "owner"?}
        -> the assignments after (`owner` is Cairn's: transfer ownership)
  GET   /api/2.1/unity-catalog/effective-permissions/{type}/{full_name}[?principal=]
        -> {"privilege_assignments": [{"principal", "privileges": [{"privilege",
            "inherited_from_type", "inherited_from_name"}]}], "owner"}
Reading grants needs the object to be visible to the caller; changing them, MANAGE (or
CAN_MANAGE) on it or above, its ownership, or an admin.

MLflow (mlflow/server/auth/routes.py; READ < EDIT < MANAGE):
  POST|GET|PATCH|DELETE /api/2.0/mlflow/experiments/permissions/{create,get,update,delete}
  POST|GET|PATCH|DELETE /api/2.0/mlflow/registered-models/permissions/{create,get,update,delete}
  POST /api/2.0/mlflow/users/create, GET users/get, PATCH users/update-password,
  PATCH users/update-admin, DELETE users/delete
An experiment permission is a CAN_READ/CAN_EDIT/CAN_MANAGE grant; a registered model's
READ is EXECUTE, EDIT adds APPLY_TAG and MODIFY, MANAGE is ALL_PRIVILEGES and MANAGE.

Every change is in the audit log with what changed.
"""
from __future__ import annotations

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import JSONBody

from cairn.app.auth import source_of
from cairn.app.registrywire import message_or_query, required
from cairn.engine.datadir import Engine
from cairn.engine.errors import CairnError, already_exists, invalid, not_found
from cairn.engine.governance.access import Access
from cairn.engine.governance.privileges import (
    EXPERIMENT,
    MLFLOW_AS,
    REGISTERED_MODEL,
    Securable,
    check_mlflow_permission,
    expand,
    mlflow_level,
    securable,
)
from cairn.engine.governance.records import USER


class Change(msgspec.Struct):
    principal: str | None = None
    add: list[str] = []
    remove: list[str] = []


class UpdatePermissions(msgspec.Struct):
    changes: list[Change] = []
    owner: str | None = None


def _audit(engine: Engine, request: Request, action: str, obj: object, detail: str) -> None:
    caller = request.scope["user"]
    engine.governance.audit.record_async(caller.principal, source_of(request.scope), action, str(obj), "ok", detail)


def _assignments(pairs) -> dict:
    return {"privilege_assignments": [{"principal": p, "privileges": privs} for p, privs in pairs]}


class UnityPermissionsController(Controller):
    path = "/api/2.1/unity-catalog"
    tags = ("permissions",)

    @get("/permissions/{securable_type:str}/{full_name:path}", sync_to_thread=False)
    def get_permissions(self, engine: Engine, access: Access, securable_type: str, full_name: str,
                        principal: str | None = None) -> dict:
        s = self._visible(access, securable_type, full_name)
        pairs = engine.governance.grants.assignments(s)
        return _assignments([(p, privs) for p, privs in pairs if principal is None or p == principal])

    @patch("/permissions/{securable_type:str}/{full_name:path}", status_code=200, sync_to_thread=True)
    def update_permissions(self, engine: Engine, access: Access, request: Request, securable_type: str,
                           full_name: str, data: JSONBody[UpdatePermissions]) -> dict:
        s = securable(securable_type, full_name.strip("/"))
        access.manage(s)
        grants = engine.governance.grants
        changes = [(required(c.principal, "changes.principal"), c.add, c.remove) for c in data.changes]
        pairs = grants.update(s, changes, access.caller.principal) if changes else grants.assignments(s)
        for p, add, remove in changes:
            _audit(engine, request, "grant.update", s, f"{p}: +{','.join(add)} -{','.join(remove)}")
        if data.owner:
            access.transfer(s, data.owner)
            _audit(engine, request, "owner.transfer", s, data.owner)
        return _assignments(pairs)

    @get("/effective-permissions/{securable_type:str}/{full_name:path}", sync_to_thread=False)
    def effective(self, engine: Engine, access: Access, securable_type: str, full_name: str,
                  principal: str | None = None) -> dict:
        s = self._visible(access, securable_type, full_name)
        out = []
        for grantee, privileges in engine.governance.grants.effective(s, principal):
            out.append({"principal": grantee, "privileges": [
                {"privilege": p, **({"inherited_from_type": src.type.upper(), "inherited_from_name": src.name}
                                    if src is not None else {})} for p, src in privileges]})
        return {"privilege_assignments": out, "owner": engine.governance.grants.owner(s) or ""}

    @staticmethod
    def _visible(access: Access, securable_type: str, full_name: str) -> Securable:
        s = securable(securable_type, full_name.strip("/"))
        if not access.sees(s):
            raise not_found(f"{str(s)[0].upper()}{str(s)[1:]} does not exist or is not visible to you")
        access.signed_in()
        return s


# -- MLflow's permission API ---------------------------------------------------------------
class ExperimentPermission(msgspec.Struct):
    experiment_id: str | None = None
    username: str | None = None
    permission: str | None = None


class ModelPermission(msgspec.Struct):
    name: str | None = None
    username: str | None = None
    permission: str | None = None


def _level_of(kind: str, privileges: list[str] | None) -> str | None:
    return None if privileges is None else mlflow_level(kind, expand(kind, privileges))


def _mlflow_get(engine: Engine, s: Securable, username: str, what: str) -> str:
    level = _level_of(s.type, engine.governance.grants.granted(s, username))
    if level is None:
        raise not_found(f"{what} permission with {'experiment_id' if s.type == EXPERIMENT else 'name'}="
                        f"{s.name if s.type == EXPERIMENT else s.name.removeprefix('main.default.')} "
                        f"and username={username} not found")
    return level


def _mlflow_set(engine: Engine, request: Request, s: Securable, username: str, permission: str | None,
                *, create: bool) -> str:
    grants = engine.governance.grants
    user = required(username, "username")
    level = check_mlflow_permission(required(permission, "permission"))
    if create and grants.granted(s, user) is not None:
        raise already_exists(f"Permission for {s} and username={user} already exists")
    grants.replace(s, user, sorted(MLFLOW_AS[s.type][level]), request.scope["user"].principal)
    _audit(engine, request, "permission.set", s, f"{user}: {level}")
    return level


def _mlflow_update(engine: Engine, request: Request, s: Securable, username: str | None, permission: str | None,
                   what: str) -> None:
    _mlflow_get(engine, s, required(username, "username"), what)  # MLflow's 404 when there is none
    _mlflow_set(engine, request, s, username, permission, create=False)


def _mlflow_delete(engine: Engine, request: Request, s: Securable, username: str | None, what: str) -> None:
    user = required(username, "username")
    _mlflow_get(engine, s, user, what)
    engine.governance.grants.replace(s, user, [], request.scope["user"].principal)
    _audit(engine, request, "permission.delete", s, user)


class MlflowExperimentPermissionController(Controller):
    path = "/api/2.0/mlflow/experiments/permissions"
    tags = ("permissions",)

    @staticmethod
    def _s(access: Access, experiment_id: str | None) -> Securable:
        s = Securable(EXPERIMENT, str(required(experiment_id, "experiment_id")))
        access.manage(s)
        return s

    def _out(self, s: Securable, username: str, level: str) -> dict:
        return {"experiment_permission": {"experiment_id": s.name, "user_id": username, "permission": level}}

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, engine: Engine, access: Access, request: Request, data: JSONBody[ExperimentPermission]) -> dict:
        s = self._s(access, data.experiment_id)
        return self._out(s, data.username, _mlflow_set(engine, request, s, data.username, data.permission,
                                                       create=True))

    @get("/get", sync_to_thread=False)
    def get_permission(self, engine: Engine, access: Access, experiment_id: str | None = None,
                       username: str | None = None) -> dict:
        s = self._s(access, experiment_id)
        user = required(username, "username")
        return self._out(s, user, _mlflow_get(engine, s, user, "Experiment"))

    @patch("/update", status_code=200, sync_to_thread=True)
    def update(self, engine: Engine, access: Access, request: Request, data: JSONBody[ExperimentPermission]) -> dict:
        _mlflow_update(engine, request, self._s(access, data.experiment_id), data.username, data.permission,
                       "Experiment")
        return {}

    @delete("/delete", status_code=200, sync_to_thread=True)
    def delete_permission(self, engine: Engine, access: Access, request: Request,
                          data: ExperimentPermission | None = None) -> dict:
        msg = message_or_query(request, data, ExperimentPermission)
        _mlflow_delete(engine, request, self._s(access, msg.experiment_id), msg.username, "Experiment")
        return {}


class MlflowModelPermissionController(Controller):
    path = "/api/2.0/mlflow/registered-models/permissions"
    tags = ("permissions",)

    @staticmethod
    def _s(access: Access, name: str | None) -> Securable:
        s = securable(REGISTERED_MODEL, required(name, "name"))
        access.manage(s)
        return s

    def _out(self, name: str, username: str, level: str) -> dict:
        return {"registered_model_permission": {"name": name, "user_id": username, "permission": level}}

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, engine: Engine, access: Access, request: Request, data: JSONBody[ModelPermission]) -> dict:
        s = self._s(access, data.name)
        return self._out(data.name, data.username, _mlflow_set(engine, request, s, data.username,
                                                               data.permission, create=True))

    @get("/get", sync_to_thread=False)
    def get_permission(self, engine: Engine, access: Access, name: str | None = None,
                       username: str | None = None) -> dict:
        s = self._s(access, name)
        user = required(username, "username")
        return self._out(name, user, _mlflow_get(engine, s, user, "Registered model"))

    @patch("/update", status_code=200, sync_to_thread=True)
    def update(self, engine: Engine, access: Access, request: Request, data: JSONBody[ModelPermission]) -> dict:
        _mlflow_update(engine, request, self._s(access, data.name), data.username, data.permission,
                       "Registered model")
        return {}

    @delete("/delete", status_code=200, sync_to_thread=True)
    def delete_permission(self, engine: Engine, access: Access, request: Request,
                          data: ModelPermission | None = None) -> dict:
        msg = message_or_query(request, data, ModelPermission)
        _mlflow_delete(engine, request, self._s(access, msg.name), msg.username, "Registered model")
        return {}


class UserBody(msgspec.Struct):
    username: str | None = None
    password: str | None = None
    is_admin: bool | None = None


class MlflowUserController(Controller):
    """MLflow's user routes over Cairn's principals (users only; groups and service
    principals are the command line's)."""

    path = "/api/2.0/mlflow/users"
    tags = ("permissions",)

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, engine: Engine, access: Access, request: Request, data: JSONBody[UserBody]) -> dict:
        access.admin("create users")
        name = required(data.username, "username")
        engine.governance.principals.create(USER, name, password=required(data.password, "password"),
                                            created_by=access.caller.principal)
        _audit(engine, request, "user.create", name, "")
        return {"user": self._user(engine, name)}

    @get("/get", sync_to_thread=False)
    def get_user(self, engine: Engine, access: Access, username: str | None = None) -> dict:
        name = required(username, "username")
        if name != access.caller.principal:
            access.admin("read other users")
        access.signed_in()
        return {"user": self._user(engine, name)}

    @patch("/update-password", status_code=200, sync_to_thread=True)
    def update_password(self, engine: Engine, access: Access, request: Request, data: JSONBody[UserBody]) -> dict:
        name = required(data.username, "username")
        if name != access.caller.principal:
            access.admin("change another user's password")
        access.signed_in()
        engine.governance.principals.set_password(name, required(data.password, "password"))
        _audit(engine, request, "user.password", name, "")
        return {}

    @patch("/update-admin", status_code=200, sync_to_thread=True)
    def update_admin(self, engine: Engine, access: Access, request: Request, data: JSONBody[UserBody]) -> dict:
        access.admin("make or unmake admins")
        name = required(data.username, "username")
        if data.is_admin is None:
            raise invalid("is_admin: true or false is required")
        engine.governance.principals.set_admin(name, data.is_admin)
        _audit(engine, request, "user.admin", name, str(data.is_admin).lower())
        return {}

    @delete("/delete", status_code=200, sync_to_thread=True)
    def delete_user(self, engine: Engine, access: Access, request: Request, data: UserBody | None = None) -> dict:
        access.admin("delete users")
        msg = message_or_query(request, data, UserBody)
        name = required(msg.username, "username")
        if engine.governance.principals.get(name).kind != USER:
            raise invalid(f"'{name}' is not a user")
        engine.governance.principals.delete(name)
        _audit(engine, request, "user.delete", name, "")
        return {}

    @staticmethod
    def _user(engine: Engine, name: str) -> dict:
        rec = engine.governance.principals.get(name)
        if rec.kind != USER:
            raise CairnError(f"'{name}' is a {rec.kind}, not a user", "RESOURCE_DOES_NOT_EXIST")
        grants = engine.governance.grants
        exp, models = [], []
        for s, privileges in grants.granted_to(name):
            if s.type == EXPERIMENT:
                exp.append({"experiment_id": s.name, "user_id": name,
                            "permission": _level_of(EXPERIMENT, privileges)})
            elif s.type == REGISTERED_MODEL:
                models.append({"name": s.name, "user_id": name,
                               "permission": _level_of(REGISTERED_MODEL, privileges)})
        return {"id": name, "username": name, "is_admin": rec.admin, "experiment_permissions": exp,
                "registered_model_permissions": models}
