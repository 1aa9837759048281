"""Grants and owners on securables (engine/governance/privileges.py says what they are),
and the check every request makes.

A caller holds, on a securable, the union over it and its ancestors of what is granted
to it, to any group it is in (nested groups included, and `users`, which holds
everyone), what owning any of them gives, and on experiments and registered models
MLflow's default permission. Admins hold everything.

The check is on the request path: its answers are cached per (caller, securable) with
the generation they were computed under, which every grant, owner or default change
bumps in the same transaction; the one LMDB get per request that authentication makes
also tells a process its grants cache is stale, so a revoke takes effect on the next
request in every process.

Objects are created and deleted by other rooms, which know nothing of grants: the
surface that creates one calls `adopt` (its owner is the creator, and grants left by an
earlier object of the same name are dropped) and `forget` after a delete.
"""
from __future__ import annotations

from cairn.engine.errors import PERMISSION_DENIED, CairnError
from cairn.engine.governance.cache import MISSING, GenerationCache
from cairn.engine.governance.credentials import Caller
from cairn.engine.governance.principals import bump_generation, check_principal_name
from cairn.engine.governance.privileges import (
    ALL_PRIVILEGES,
    CATALOG,
    CREATE_FUNCTION,
    CREATE_MODEL,
    CREATE_TABLE,
    EVERYTHING,
    MLFLOW_AS,
    OWN,
    READ,
    SCHEMA,
    USE_CATALOG,
    USE_SCHEMA,
    Securable,
    chain,
    check_mlflow_permission,
    check_privileges,
    expand,
    owner_privileges,
)
from cairn.engine.governance.records import (
    ALL_USERS,
    DEFAULT_PERMISSION,
    GRANT,
    GRANTS_BOOTSTRAPPED,
    OWNER,
    GrantRecord,
    OwnerRecord,
)
from cairn.engine.registry.names import DEFAULT_CATALOG, DEFAULT_SCHEMA
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms

_CACHE_MAX = 50_000
# Databricks' workspace catalog defaults: everyone may use the default catalog and
# schema and create in it (so `mlflow.register_model("iris")` works for every user);
# what others create there stays theirs until they grant it.
WORKSPACE_DEFAULTS = (
    (Securable(CATALOG, DEFAULT_CATALOG), [USE_CATALOG]),
    (Securable(SCHEMA, f"{DEFAULT_CATALOG}.{DEFAULT_SCHEMA}"),
     [USE_SCHEMA, CREATE_MODEL, CREATE_TABLE, CREATE_FUNCTION]),
)


def denied(caller: Caller, privilege: str, s: Securable) -> CairnError:
    who = f"'{caller.principal}'" if caller.principal else "An anonymous caller"
    return CairnError(f"{who} does not have {privilege} on {s}", PERMISSION_DENIED)


def _grant_key(s: Securable, principal: str) -> bytes:
    return s.key() + b"\0" + principal.encode()


def _put_grant(b: Batch, key: bytes, privileges: list[str], by: str) -> None:
    """Write a principal's grant on a securable; none left removes it."""
    if privileges:
        b.txn.put(key, GRANT.encode(GrantRecord(privileges, now_ms(), by)), db=b.dbs["grants"])
    else:
        b.txn.delete(key, db=b.dbs["grants"])


class Grants:
    def __init__(self, lenv: LmdbEnv, principals):
        self._env = lenv
        self._db = lenv.dbs
        self._principals = principals
        self._cache = GenerationCache(lenv, _CACHE_MAX)  # (caller, securable) -> what it holds

    # -- the check --------------------------------------------------------------------
    def held(self, caller: Caller, s: Securable, generation: int | None = None) -> tuple[frozenset[str], ...]:
        """What `caller` holds on each of chain(s), catalog first, inherited included.
        `generation`: the request's read of it (read here when not given)."""
        hit, generation = self._cache.lookup((caller, s), generation)
        if hit is not MISSING:
            return hit
        out = self._compute(caller, s)
        self._cache.store((caller, s), out, generation)
        return out

    def _compute(self, caller: Caller, s: Securable) -> tuple[frozenset[str], ...]:
        names = (caller.principal, *caller.groups, ALL_USERS)
        held: set[str] = set()
        out = []
        with self._env.read() as txn:
            default = self._default(txn)
            for node in chain(s):
                raw = txn.get(node.key(), db=self._db["owners"])
                if raw is not None and OWNER.decode(raw).principal in names:
                    held |= owner_privileges(node.type)
                for name in names:
                    raw = txn.get(_grant_key(node, name), db=self._db["grants"])
                    if raw is not None:
                        held |= expand(node.type, GRANT.decode(raw).privileges)
                if node.type in MLFLOW_AS:
                    held |= expand(node.type, MLFLOW_AS[node.type][default])
                out.append(frozenset(held))
        return tuple(out)

    def denial(self, caller: Caller, s: Securable, privilege: str, generation: int | None = None
               ) -> CairnError | None:
        """None when `caller` may use `privilege` on `s`, else the PERMISSION_DENIED
        error naming the first privilege missing (USE_CATALOG, USE_SCHEMA, then it)."""
        if caller.admin:
            return None
        nodes = chain(s)
        held = self.held(caller, s, generation)
        for node, have in zip(nodes[:-1], held[:-1]):
            need = USE_CATALOG if node.type == CATALOG else USE_SCHEMA
            if need not in have:
                return denied(caller, need, node)
        if privilege not in held[-1]:
            return denied(caller, privilege, s)
        return None

    def check(self, caller: Caller, s: Securable, privilege: str, generation: int | None = None) -> None:
        err = self.denial(caller, s, privilege, generation)
        if err is not None:
            raise err

    def can(self, caller: Caller, s: Securable, privilege: str, generation: int | None = None) -> bool:
        return self.denial(caller, s, privilege, generation) is None

    def visible(self, caller: Caller, s: Securable, generation: int | None = None) -> bool:
        """Whether `caller` may know `s` exists: it may use its parents and holds some
        privilege on it."""
        if caller.admin:
            return True
        nodes = chain(s)
        held = self.held(caller, s, generation)
        for node, have in zip(nodes[:-1], held[:-1]):
            if (USE_CATALOG if node.type == CATALOG else USE_SCHEMA) not in have:
                return False
        return any(p in held[-1] for p in OWN[s.type])

    # -- owners -----------------------------------------------------------------------
    def owner(self, s: Securable) -> str | None:
        with self._env.read() as txn:
            raw = txn.get(s.key(), db=self._db["owners"])
        return OWNER.decode(raw).principal if raw is not None else None

    def adopt(self, s: Securable, owner: str) -> None:
        """A new object: `owner` owns it (no one, when ""), and grants an earlier object
        of the same name left are gone. Nothing is written when there is nothing to do
        (auth off, no grants left behind)."""
        if not owner and not self._has_any(s):
            return

        def op(b: Batch) -> None:
            self._drop(b, s)
            if owner:
                b.txn.put(s.key(), OWNER.encode(OwnerRecord(owner, now_ms())), db=b.dbs["owners"])
            bump_generation(b)

        self._env.write(op)

    def forget(self, s: Securable) -> None:
        """The object is gone: so are its owner and grants."""
        if not self._has_any(s):
            return

        def op(b: Batch) -> None:
            self._drop(b, s)
            bump_generation(b)

        self._env.write(op)

    def move(self, old: Securable, new: Securable) -> None:
        """A rename: owner and grants follow the object."""

        def op(b: Batch) -> None:
            self._drop(b, new)
            owner = b.txn.get(old.key(), db=b.dbs["owners"])
            if owner is not None:
                b.txn.put(new.key(), owner, db=b.dbs["owners"])
            for principal, rec in self._read_grants(b.txn, old):
                b.txn.put(_grant_key(new, principal), GRANT.encode(rec), db=b.dbs["grants"])
            self._drop(b, old)
            bump_generation(b)

        self._env.write(op)

    def set_owner(self, s: Securable, principal: str) -> None:
        principal = self._grantee(principal)

        def op(b: Batch) -> None:
            b.txn.put(s.key(), OWNER.encode(OwnerRecord(principal, now_ms())), db=b.dbs["owners"])
            bump_generation(b)

        self._env.write(op)

    def _has_any(self, s: Securable) -> bool:
        with self._env.read() as txn:
            return txn.get(s.key(), db=self._db["owners"]) is not None or bool(self._read_grants(txn, s))

    def _drop(self, b: Batch, s: Securable) -> None:
        b.txn.delete(s.key(), db=b.dbs["owners"])
        for principal, _ in self._read_grants(b.txn, s):
            b.txn.delete(_grant_key(s, principal), db=b.dbs["grants"])

    # -- grants -----------------------------------------------------------------------
    def _read_grants(self, txn, s: Securable) -> list[tuple[str, GrantRecord]]:
        prefix = s.key() + b"\0"
        out = []
        with txn.cursor(db=self._db["grants"]) as cur:
            if cur.set_range(prefix):
                for key, raw in cur:
                    if not key.startswith(prefix):
                        break
                    out.append((key[len(prefix):].decode(), GRANT.decode(raw)))
        return out

    def assignments(self, s: Securable) -> list[tuple[str, list[str]]]:
        """(principal, privileges) granted directly on `s`, by principal."""
        with self._env.read() as txn:
            return [(p, rec.privileges) for p, rec in self._read_grants(txn, s)]

    def _grantee(self, principal: object) -> str:
        if principal == ALL_USERS:
            return ALL_USERS
        name = check_principal_name(principal)
        self._principals.get(name)  # RESOURCE_DOES_NOT_EXIST naming it
        return name

    def update(self, s: Securable, changes: list[tuple[str, list[str], list[str]]], by: str
               ) -> list[tuple[str, list[str]]]:
        """Apply (principal, add, remove) changes in one transaction; the assignments
        after. Privileges are checked against the securable's type."""
        checked = [(self._grantee(p), check_privileges(s.type, add), check_privileges(s.type, remove))
                   for p, add, remove in changes]

        def op(b: Batch) -> None:
            for principal, add, remove in checked:
                key = _grant_key(s, principal)
                raw = b.txn.get(key, db=b.dbs["grants"])
                have = GRANT.decode(raw).privileges if raw is not None else []
                now = [p for p in have if p not in remove] + [p for p in add if p not in have and p not in remove]
                _put_grant(b, key, now, by)
            bump_generation(b)

        self._env.write(op)
        return self.assignments(s)

    def replace(self, s: Securable, principal: str, privileges: list[str], by: str) -> None:
        """`principal` holds exactly `privileges` directly on `s` (none: its grant goes)."""
        principal = self._grantee(principal)
        privileges = check_privileges(s.type, privileges)

        def op(b: Batch) -> None:
            _put_grant(b, _grant_key(s, principal), privileges, by)
            bump_generation(b)

        self._env.write(op)

    def granted(self, s: Securable, principal: str) -> list[str] | None:
        """What is granted to `principal` directly on `s` (None: nothing)."""
        with self._env.read() as txn:
            raw = txn.get(_grant_key(s, principal), db=self._db["grants"])
        return GRANT.decode(raw).privileges if raw is not None else None

    def granted_to(self, principal: str) -> list[tuple[Securable, list[str]]]:
        """Every direct grant to `principal` (a scan: for listings, not the request path)."""
        suffix = b"\0" + principal.encode()
        out = []
        with self._env.read() as txn, txn.cursor(db=self._db["grants"]) as cur:
            for key, raw in cur:
                if key.endswith(suffix):
                    kind, name, _ = key.decode().split("\0", 2)
                    out.append((Securable(kind, name), GRANT.decode(raw).privileges))
        return out

    def effective(self, s: Securable, principal: str | None = None
                  ) -> list[tuple[str, list[tuple[str, Securable | None]]]]:
        """Unity Catalog's effective permissions: per grantee (only those that hold for
        `principal` when given), each privilege with the securable it is inherited from
        (None when granted on `s` itself)."""
        grantees = None
        if principal is not None:
            name = self._grantee(principal)
            grantees = {name, ALL_USERS, *self._principals.groups_of(name)}
        out: dict[str, dict[str, Securable | None]] = {}
        with self._env.read() as txn:
            for node in chain(s):
                source = None if node == s else node
                raw = txn.get(node.key(), db=self._db["owners"])
                if raw is not None:
                    owner = OWNER.decode(raw).principal
                    if grantees is None or owner in grantees:
                        held = out.setdefault(owner, {})
                        for p in sorted(owner_privileges(s.type) & set(self._applicable(s))):
                            held.setdefault(p, source)
                for grantee, rec in self._read_grants(txn, node):
                    if grantees is None or grantee in grantees:
                        held = out.setdefault(grantee, {})
                        for p in sorted(expand(node.type, rec.privileges) - {ALL_PRIVILEGES}):
                            held.setdefault(p, source)
        return [(g, sorted(privs.items())) for g, privs in sorted(out.items())]

    @staticmethod
    def _applicable(s: Securable) -> frozenset[str]:
        return EVERYTHING[s.type] | frozenset((USE_CATALOG, USE_SCHEMA))

    # -- the default permission and the workspace defaults -----------------------------
    def _default(self, txn) -> str:
        raw = txn.get(DEFAULT_PERMISSION, db=self._db["meta"])
        return raw.decode() if raw is not None else READ

    def default_permission(self) -> str:
        """MLflow's default permission on experiments and registered models nobody
        granted the caller anything on (READ unless changed, as MLflow's)."""
        with self._env.read() as txn:
            return self._default(txn)

    def set_default_permission(self, permission: str) -> None:
        permission = check_mlflow_permission(permission)

        def op(b: Batch) -> None:
            b.txn.put(DEFAULT_PERMISSION, permission.encode(), db=b.dbs["meta"])
            bump_generation(b)

        self._env.write(op)

    def bootstrap(self) -> None:
        """Write the workspace defaults once per data directory (an admin may revoke
        them; they are not written again)."""
        with self._env.read() as txn:
            if txn.get(GRANTS_BOOTSTRAPPED, db=self._db["meta"]) is not None:
                return

        def op(b: Batch) -> None:
            if b.txn.get(GRANTS_BOOTSTRAPPED, db=b.dbs["meta"]) is not None:
                return
            for s, privileges in WORKSPACE_DEFAULTS:
                key = _grant_key(s, ALL_USERS)
                if b.txn.get(key, db=b.dbs["grants"]) is None:
                    b.txn.put(key, GRANT.encode(GrantRecord(privileges, now_ms(), "")), db=b.dbs["grants"])
            b.txn.put(GRANTS_BOOTSTRAPPED, b"1", db=b.dbs["meta"])
            bump_generation(b)

        self._env.write(op)

    def caller_for(self, principal: str) -> Caller:
        """The Caller a principal would be (for effective permissions of someone else)."""
        rec = self._principals.get(principal)
        return Caller(principal, rec.admin, frozenset(self._principals.groups_of(principal)))
