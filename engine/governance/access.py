"""What one caller may do: the questions every surface (an HTTP route, the command line)
asks before it acts, in the terms of the object it acts on.

`Access(engine, caller)` resolves an object to its securable (a run to its experiment, a
model version's files to their model, an artifact path to its run's experiment) and
asks the grants. It remembers that it was asked (`checked`): the HTTP gate refuses to
send a success that no check allowed, so a route that forgets to ask fails closed.

Two ways of saying no, both without telling whether the object exists:
- experiments, runs and logged models are addressed by ids: one the caller may not read
  is answered exactly as one that does not exist (RESOURCE_DOES_NOT_EXIST, the store's
  own message); one it may read but not change is PERMISSION_DENIED naming the level;
- catalog objects are addressed by name: the grants are asked before the object is
  looked up, so the answer (PERMISSION_DENIED naming the privilege) is the same
  whether it exists or not.
"""
from __future__ import annotations

from collections.abc import Iterable

from cairn.engine.errors import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, CairnError, invalid, not_found
from cairn.engine.governance.credentials import Caller
from cairn.engine.governance.privileges import (
    APPLY_TAG,
    CAN_EDIT,
    CAN_MANAGE,
    CAN_QUERY,
    CAN_READ,
    CAN_VIEW,
    CATALOG,
    CREATE_FUNCTION,
    CREATE_MODEL,
    CREATE_SCHEMA,
    CREATE_TABLE,
    EXECUTE,
    EXPERIMENT,
    FUNCTION,
    MANAGE,
    MODIFY,
    REGISTERED_MODEL,
    SCHEMA,
    SELECT,
    SERVING_ENDPOINT,
    TABLE,
    USE_CATALOG,
    USE_SCHEMA,
    Securable,
    securable,
)
from cairn.engine.registry.names import parse_model_name

__all__ = [
    "APPLY_TAG", "CAN_EDIT", "CAN_MANAGE", "CAN_QUERY", "CAN_READ", "CAN_VIEW", "CREATE_FUNCTION", "CREATE_MODEL",
    "CREATE_SCHEMA", "CREATE_TABLE", "EXECUTE", "MANAGE", "MODIFY", "SELECT", "Access",
]


class Access:
    def __init__(self, engine, caller: Caller, generation: int | None = None):
        """`generation`: the governance generation the request read when it
        authenticated; every check of the request answers as of it (None: each check
        reads it)."""
        self.caller = caller
        self.checked = False
        self.generation = generation
        self._engine = engine
        self._grants = engine.governance.grants

    def _ok(self) -> None:
        self.checked = True

    # -- who ----------------------------------------------------------------------------
    def signed_in(self) -> Caller:
        """Any authenticated caller may (create an experiment, manage its own tokens)."""
        self._ok()
        return self.caller

    def admin(self, what: str) -> None:
        if not self.caller.admin:
            raise CairnError(f"Only an admin may {what}", PERMISSION_DENIED)
        self._ok()

    def grant(self, s: Securable, privilege: str) -> None:
        self._grants.check(self.caller, s, privilege, self.generation)
        self._ok()

    def can(self, s: Securable, privilege: str) -> bool:
        return self._grants.can(self.caller, s, privilege, self.generation)

    def sees(self, s: Securable) -> bool:
        return self._grants.visible(self.caller, s, self.generation)

    def created(self, s: Securable) -> None:
        """The caller just created `s`: it owns it (and nothing granted on an earlier
        object of that name survives)."""
        self._grants.adopt(s, self.caller.principal)

    def deleted(self, s: Securable) -> None:
        self._grants.forget(s)
        if s.type == SERVING_ENDPOINT:
            self._engine.governance.rate_limits.forget(s.name)

    def moved(self, old: Securable, new: Securable) -> None:
        self._grants.move(old, new)

    def owner_of(self, s: Securable) -> str | None:
        return self._grants.owner(s)

    def transfer(self, s: Securable, principal: str) -> None:
        """Give `s` to `principal` (the caller must be able to manage it)."""
        self.manage(s)
        self._grants.set_owner(s, principal)

    def browse(self, kind: str, name: object) -> Securable:
        """Reading a catalog or schema itself: some privilege on it (and USE_CATALOG on
        a schema's catalog); refused naming the privilege that would do."""
        s = securable(kind, name)
        if not self.sees(s):
            err = self._grants.denial(self.caller, s, USE_CATALOG if s.type == CATALOG else USE_SCHEMA, self.generation)
            raise err or CairnError(f"'{self.caller.principal}' may not see {s}", PERMISSION_DENIED)
        self._ok()
        return s

    def manage(self, s: Securable) -> None:
        """Change the grants or the owner of `s`: its owner, MANAGE (or CAN_MANAGE) on
        it or above, or an admin (an experiment or endpoint the caller cannot see is
        answered as absent)."""
        if s.type == EXPERIMENT:
            self.experiment(s.name, CAN_MANAGE)
        elif s.type == SERVING_ENDPOINT:
            self.endpoint(s.name, CAN_MANAGE)
        else:
            self.grant(s, MANAGE)

    # -- experiments, runs, logged models ------------------------------------------------
    def experiment(self, experiment_id: object, level: str = CAN_READ) -> str:
        if experiment_id is None or experiment_id == "":
            self._ok()  # the store names the missing argument
            return experiment_id  # type: ignore[return-value]
        exp = str(experiment_id)
        self._level(Securable(EXPERIMENT, exp), level, lambda: not_found(f"No Experiment with id={exp} exists"))
        return exp

    def _level(self, s: Securable, level: str, absent) -> None:
        if self.caller.admin:
            self._ok()
            return
        held = self._grants.held(self.caller, s, self.generation)[-1]
        if CAN_READ not in held:
            raise absent()
        if level not in held:
            raise self._grants.denial(self.caller, s, level, self.generation)
        self._ok()

    def run(self, run_id: object, level: str = CAN_READ) -> str:
        """The run's experiment id, once the caller may act on it at `level`."""
        if self.caller.admin:
            self._ok()
            return ""
        rid = str(run_id)
        try:
            exp = self._engine.tracking.experiment_of_run(rid)
        except CairnError as exc:
            if exc.error_code != RESOURCE_DOES_NOT_EXIST:
                raise  # a malformed id: the store's own words
            raise not_found(f"Run with id={rid} not found") from None
        self._level(Securable(EXPERIMENT, exp), level, lambda: not_found(f"Run with id={rid} not found"))
        return exp

    def logged_model(self, model_id: object, level: str = CAN_READ) -> None:
        if self.caller.admin:
            self._ok()
            return
        mid = str(model_id)
        try:
            exp = self._engine.logged_models.experiment_of(mid)
        except CairnError as exc:
            if exc.error_code != RESOURCE_DOES_NOT_EXIST:
                raise
            raise not_found(f"Logged model with ID '{mid}' not found.") from None
        self._level(Securable(EXPERIMENT, exp), level, lambda: not_found(f"Logged model with ID '{mid}' not found."))

    def readable_experiments(self, ids: Iterable[object]) -> list[str]:
        """The ids among `ids` the caller may read (a search over the others finds
        nothing, as over experiments that do not exist)."""
        self._ok()
        ids = [str(i) for i in ids]
        if self.caller.admin:
            return ids
        return [i for i in ids if self.experiment_visible(i)]

    def experiment_visible(self, experiment_id: object) -> bool:
        return self.caller.admin or CAN_READ in self._grants.held(
            self.caller, Securable(EXPERIMENT, str(experiment_id)), self.generation)[-1]

    def artifact_path(self, path: str, write: bool) -> None:
        """The artifact proxy: `<experiment id>/<run id>/artifacts/...` and
        `<experiment id>/models/<model id>/...` belong to their experiment (CAN_READ to
        read, CAN_EDIT to write); `registry/<id>/...` to its registered model (EXECUTE).
        Anything else is the admins'."""
        if self.caller.admin:
            self._ok()
            return
        parts = path.split("/")
        if parts[0] == "registry" and len(parts) > 1:
            name = self._engine.registry.model_at_location(f"registry/{parts[1]}")
            if name is None:
                raise not_found(f"No artifact at '{path}'")
            self.grant(Securable(REGISTERED_MODEL, name), EXECUTE)
            return
        if parts[0].isdigit():
            self._level(Securable(EXPERIMENT, parts[0]), CAN_EDIT if write else CAN_READ,
                        lambda: not_found(f"No artifact at '{path}'"))
            return
        raise CairnError(f"Only an admin may {'write' if write else 'read'} '{path}'", PERMISSION_DENIED)

    def model_source(self, source: str, run_id: str | None = None, model_id: str | None = None) -> None:
        """Registering a version reads its source: the caller must be able to read it
        (a run, a logged model, another version, an artifact path); files on the
        server's own disk are for admins."""
        from cairn.engine.registry.registration import ARTIFACT_SCHEME, proxy_path

        if run_id:
            self.run(run_id)
        if model_id:
            self.logged_model(model_id)
        if source.startswith("runs:/"):
            self.run(source[len("runs:/"):].strip("/").partition("/")[0])
        elif source.startswith("models:/"):
            rest = source[len("models:/"):].strip("/")
            if rest.startswith("m-") and "/" not in rest:
                self.logged_model(rest)
            else:
                self.model(rest.partition("@")[0] if "@" in rest else rest.rpartition("/")[0] or rest)
        elif source.startswith(ARTIFACT_SCHEME):
            self.artifact_path(proxy_path(source), write=False)
        elif source.startswith("file://") or source.startswith("/") or "://" in source:
            self.admin("register a model from files on the server's disk")
        else:
            self.artifact_path(source, write=False)
        self._ok()

    # -- catalog objects -----------------------------------------------------------------
    def model(self, name: object, privilege: str = EXECUTE) -> str:
        """The model's full name, once the caller holds `privilege` on it."""
        full = parse_model_name(name).full
        self.grant(Securable(REGISTERED_MODEL, full), privilege)
        return full

    def create_in_schema(self, kind: str, name: object) -> Securable:
        """Creating a model, feature table or feature spec: CREATE_* on its schema."""
        s = securable(kind, name)
        catalog, schema, _ = s.name.split(".", 2)
        need = {REGISTERED_MODEL: CREATE_MODEL, TABLE: CREATE_TABLE, FUNCTION: CREATE_FUNCTION}[s.type]
        self.grant(Securable(SCHEMA, f"{catalog}.{schema}"), need)
        return s

    def catalog_object(self, kind: str, name: object, privilege: str) -> Securable:
        s = securable(kind, name)
        self.grant(s, privilege)
        return s

    def create_schema(self, full_name: object) -> Securable:
        s = securable(SCHEMA, full_name)
        self.grant(Securable(CATALOG, s.name.split(".")[0]), CREATE_SCHEMA)
        return s

    def visible(self, kind: str, names: Iterable[str]) -> list[str]:
        """The names among `names` (as given: `iris` means main.default.iris) the
        caller may see."""
        self._ok()
        if self.caller.admin:
            return list(names)
        return [n for n in names if self._grants.visible(self.caller, securable(kind, n), self.generation)]

    # -- serving endpoints ---------------------------------------------------------------
    def endpoint(self, name: object, level: str = CAN_VIEW) -> None:
        if not isinstance(name, str) or not name:
            raise invalid("An endpoint name is required")
        s = Securable(SERVING_ENDPOINT, name)
        if self.caller.admin:
            self._ok()
            return
        held = self._grants.held(self.caller, s, self.generation)[-1]
        if CAN_VIEW not in held:
            raise not_found(f"Endpoint '{name}' does not exist.")
        if level not in held:
            raise self._grants.denial(self.caller, s, level, self.generation)
        self._ok()

    def query(self, name: str) -> None:
        """Scoring: CAN_QUERY, then the endpoint's rate limits (RateLimited, 429)."""
        self.endpoint(name, CAN_QUERY)
        self._engine.governance.rate_limits.admit(name, self.caller.principal, self.generation)

    def serves(self, entities) -> None:
        """Serving needs EXECUTE on every model (or feature spec) an endpoint serves."""
        for entity in entities:
            kind = FUNCTION if getattr(entity, "entity_type", "") == "FEATURE_SPEC" else REGISTERED_MODEL
            self.catalog_object(kind, entity.entity_name, EXECUTE)
        self._ok()
