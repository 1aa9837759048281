"""What may be granted on what: Unity Catalog's securables and privileges, the permission
levels of experiments and serving endpoints (Databricks' ACLs), and MLflow's permission
names mapped onto both.

Securables and their names:
  catalog           `main`
  schema            `main.default`
  registered_model  `main.default.iris` (a bare `iris` means main.default.iris)
  table             `main.default.customers` (a feature table)
  function          `main.default.churn_spec` (a feature spec)
  experiment        its id, `1`
  serving_endpoint  its name

Catalog objects inherit down (a privilege on a catalog holds on its schemas and their
objects); using an object also needs USE_CATALOG on its catalog and USE_SCHEMA on its
schema, as in Unity Catalog. ALL_PRIVILEGES is every privilege that applies but MANAGE.
Experiments and endpoints have ordered levels (CAN_MANAGE > CAN_EDIT > CAN_READ;
CAN_MANAGE > CAN_QUERY > CAN_VIEW): granting one grants those below.

Cairn adds MODIFY on registered models (new versions, aliases, stages, descriptions):
Unity Catalog leaves those to the owner, MLflow gives them to EDIT, and a team needs
writers that are not owners.
"""
from __future__ import annotations

from typing import NamedTuple

from cairn.engine.errors import invalid
from cairn.engine.registry.names import check_catalog_name, parse_full_name, parse_schema_name

CATALOG = "catalog"
SCHEMA = "schema"
REGISTERED_MODEL = "registered_model"
TABLE = "table"
FUNCTION = "function"
EXPERIMENT = "experiment"
SERVING_ENDPOINT = "serving_endpoint"
SECURABLE_TYPES = (CATALOG, SCHEMA, REGISTERED_MODEL, TABLE, FUNCTION, EXPERIMENT, SERVING_ENDPOINT)
_TYPE_ALIASES = {"model": REGISTERED_MODEL, "registered-model": REGISTERED_MODEL, "feature_table": TABLE,
                 "feature_spec": FUNCTION, "serving-endpoint": SERVING_ENDPOINT, "endpoint": SERVING_ENDPOINT}

USE_CATALOG, USE_SCHEMA, CREATE_SCHEMA = "USE_CATALOG", "USE_SCHEMA", "CREATE_SCHEMA"
CREATE_MODEL, CREATE_TABLE, CREATE_FUNCTION = "CREATE_MODEL", "CREATE_TABLE", "CREATE_FUNCTION"
EXECUTE, SELECT, MODIFY, APPLY_TAG = "EXECUTE", "SELECT", "MODIFY", "APPLY_TAG"
MANAGE, ALL_PRIVILEGES = "MANAGE", "ALL_PRIVILEGES"
CAN_READ, CAN_EDIT, CAN_MANAGE = "CAN_READ", "CAN_EDIT", "CAN_MANAGE"
CAN_VIEW, CAN_QUERY = "CAN_VIEW", "CAN_QUERY"

_MODEL = (EXECUTE, MODIFY, APPLY_TAG, MANAGE)
_TABLE = (SELECT, MODIFY, APPLY_TAG, MANAGE)
_FUNCTION = (EXECUTE, APPLY_TAG, MANAGE)
_CHILDREN = (CREATE_MODEL, CREATE_TABLE, CREATE_FUNCTION, EXECUTE, SELECT, MODIFY, APPLY_TAG)
# What may be granted on each type (ALL_PRIVILEGES too on catalog objects).
APPLICABLE: dict[str, tuple[str, ...]] = {
    CATALOG: (USE_CATALOG, CREATE_SCHEMA, USE_SCHEMA, *_CHILDREN, MANAGE),
    SCHEMA: (USE_SCHEMA, *_CHILDREN, MANAGE),
    REGISTERED_MODEL: _MODEL,
    TABLE: _TABLE,
    FUNCTION: _FUNCTION,
    EXPERIMENT: (CAN_READ, CAN_EDIT, CAN_MANAGE),
    SERVING_ENDPOINT: (CAN_VIEW, CAN_QUERY, CAN_MANAGE),
}
# The privileges that make an object of the type visible to a caller (in lists, and
# not answered as absent).
OWN: dict[str, tuple[str, ...]] = {
    CATALOG: (USE_CATALOG, CREATE_SCHEMA, USE_SCHEMA, MANAGE),
    SCHEMA: (USE_SCHEMA, CREATE_MODEL, CREATE_TABLE, CREATE_FUNCTION, MANAGE),
    REGISTERED_MODEL: _MODEL,
    TABLE: _TABLE,
    FUNCTION: _FUNCTION,
    EXPERIMENT: (CAN_READ,),
    SERVING_ENDPOINT: (CAN_VIEW,),
}
LEVELS: dict[str, tuple[str, ...]] = {
    EXPERIMENT: (CAN_READ, CAN_EDIT, CAN_MANAGE),
    SERVING_ENDPOINT: (CAN_VIEW, CAN_QUERY, CAN_MANAGE),
}
CATALOG_OBJECTS = frozenset((CATALOG, SCHEMA, REGISTERED_MODEL, TABLE, FUNCTION))
EVERYTHING: dict[str, frozenset[str]] = {
    t: frozenset((*APPLICABLE[t], *((ALL_PRIVILEGES,) if t in CATALOG_OBJECTS else ()))) for t in SECURABLE_TYPES
}
# Every catalog privilege: held anywhere up the chain it counts below.
_ALL_UC = frozenset((*APPLICABLE[CATALOG], ALL_PRIVILEGES))

# MLflow's permission names (its basic-auth plugin) on experiments and registered models.
NO_PERMISSIONS, READ, EDIT, MLFLOW_MANAGE = "NO_PERMISSIONS", "READ", "EDIT", "MANAGE"
MLFLOW_PERMISSIONS = (NO_PERMISSIONS, READ, EDIT, MLFLOW_MANAGE)
MLFLOW_AS: dict[str, dict[str, frozenset[str]]] = {
    EXPERIMENT: {NO_PERMISSIONS: frozenset(), READ: frozenset((CAN_READ,)), EDIT: frozenset((CAN_EDIT,)),
                 MLFLOW_MANAGE: frozenset((CAN_MANAGE,))},
    REGISTERED_MODEL: {NO_PERMISSIONS: frozenset(), READ: frozenset((EXECUTE,)),
                       EDIT: frozenset((EXECUTE, APPLY_TAG, MODIFY)),
                       MLFLOW_MANAGE: frozenset((ALL_PRIVILEGES, MANAGE))},
}


class Securable(NamedTuple):
    type: str
    name: str

    def key(self) -> bytes:
        return f"{self.type}\0{self.name}".encode()

    def __str__(self) -> str:
        return f"{self.type.replace('_', ' ')} '{self.name}'"


def securable_type(text: object) -> str:
    t = str(text).lower().replace(" ", "_") if isinstance(text, str) else ""
    t = _TYPE_ALIASES.get(t, t)
    if t not in SECURABLE_TYPES:
        raise invalid(f"Unknown securable type {text!r}: use one of {', '.join(SECURABLE_TYPES)}")
    return t


def securable(kind: object, name: object) -> Securable:
    """The securable a (type, name) pair names, its name in canonical form (a bare
    model name gains main.default)."""
    t = securable_type(kind)
    if t == CATALOG:
        return Securable(t, check_catalog_name(name))
    if t == SCHEMA:
        return Securable(t, ".".join(parse_schema_name(name)))
    if t in (REGISTERED_MODEL, TABLE, FUNCTION):
        what = {REGISTERED_MODEL: ("registered model", "model"), TABLE: ("feature table", "table"),
                FUNCTION: ("feature spec", "spec")}[t]
        return Securable(t, parse_full_name(name, *what).full)
    if not isinstance(name, str) or not name or len(name) > 255 or "\0" in name:
        raise invalid(f"Invalid {t.replace('_', ' ')} name {name!r}")
    return Securable(t, name)


def chain(s: Securable) -> tuple[Securable, ...]:
    """The securable and its ancestors, the catalog first."""
    if s.type == SCHEMA:
        return Securable(CATALOG, s.name.split(".")[0]), s
    if s.type in (REGISTERED_MODEL, TABLE, FUNCTION):
        catalog, schema, _ = s.name.split(".", 2)
        return Securable(CATALOG, catalog), Securable(SCHEMA, f"{catalog}.{schema}"), s
    return (s,)


def check_privileges(t: str, privileges: object) -> list[str]:
    """Upper-case privilege names that apply to type `t`, or INVALID_PARAMETER_VALUE
    naming the one that does not."""
    if not isinstance(privileges, list) or not all(isinstance(p, str) for p in privileges):
        raise invalid("privileges: a list of privilege names")
    out = []
    for p in privileges:
        name = p.upper().replace(" ", "_")
        if name not in EVERYTHING[t]:
            raise invalid(f"Privilege {p!r} does not apply to a {t.replace('_', ' ')}: use "
                          f"{', '.join(sorted(EVERYTHING[t]))}")
        if name not in out:
            out.append(name)
    return out


def expand(t: str, privileges) -> set[str]:
    """What holding `privileges` on a `t` means: ALL_PRIVILEGES spelled out, a level
    with those below it."""
    out = set(privileges)
    if ALL_PRIVILEGES in out:
        out |= _ALL_UC - {MANAGE}
    levels = LEVELS.get(t)
    if levels:
        for i, level in enumerate(levels):
            if level in out:
                out.update(levels[:i])
    return out


def owner_privileges(t: str) -> frozenset[str]:
    return _ALL_UC if t in CATALOG_OBJECTS else EVERYTHING[t]


def mlflow_level(t: str, held: set[str] | frozenset[str]) -> str:
    """The MLflow permission name that `held` amounts to on an experiment or model."""
    for name in (MLFLOW_MANAGE, EDIT, READ):
        if MLFLOW_AS[t][name] - {ALL_PRIVILEGES} <= held:
            return name
    return NO_PERMISSIONS


def check_mlflow_permission(permission: object) -> str:
    if not isinstance(permission, str) or permission.upper() not in MLFLOW_PERMISSIONS:
        raise invalid(f"Invalid permission {permission!r}: use one of {', '.join(MLFLOW_PERMISSIONS)}")
    return permission.upper()
