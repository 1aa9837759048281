"""Principals: users, groups and service principals, in one namespace (a group may hold
users, service principals and other groups). Names are case-sensitive, 1-255
characters of letters, digits and `._@+-` (an email address is a fine user name).

A change that can take access away (a delete, a membership change, a password change)
bumps the credentials generation in the same transaction, so every process drops its
cached authentications before its next request.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from cairn.engine.errors import already_exists, invalid, not_found
from cairn.engine.governance.records import (
    ALL_USERS,
    GENERATION,
    GROUP,
    KINDS,
    OWNER,
    PRINCIPAL,
    SERVICE_PRINCIPAL,
    TOKEN,
    USER,
    PrincipalRecord,
)
from cairn.engine.store.keys import read_u64, u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms

_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,255}")
# scrypt at n=2**14, r=8: ~40 ms and 16 MiB per check, standard library only; the
# credential cache means a client pays it once per generation, not per request.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
MIN_PASSWORD_LENGTH = 8


def check_principal_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise invalid(f"Invalid principal name {name!r}: 1-255 letters, digits or '._@+-'")
    return name




def hash_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise invalid(f"A password needs at least {MIN_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got.hex(), digest)


def bump_generation(b: Batch) -> None:
    """Inside a write that changes who may do what: every cache in every process drops
    what it remembered before its next request."""
    raw = b.txn.get(GENERATION, db=b.dbs["meta"])
    b.txn.put(GENERATION, u64((read_u64(raw) if raw else 0) + 1), db=b.dbs["meta"])


def read_generation(lenv: LmdbEnv) -> int:
    with lenv.read() as txn:
        raw = txn.get(GENERATION, db=lenv.dbs["meta"])
    return read_u64(raw) if raw else 0


def _containing(records, name: str) -> set[str]:
    """The groups among (name, record) pairs that hold `name`, directly or through
    groups inside groups."""
    parents: dict[str, set[str]] = {}
    for group, rec in records:
        for member in rec.members:
            parents.setdefault(member, set()).add(group)
    found: set[str] = set()
    todo = [name]
    while todo:
        for group in parents.get(todo.pop(), ()):
            if group not in found:
                found.add(group)
                todo.append(group)
    return found


class Principals:
    def __init__(self, lenv: LmdbEnv):
        self._env = lenv
        self._db = lenv.dbs

    # -- reads ------------------------------------------------------------------------
    def get(self, name: object) -> PrincipalRecord:
        name = check_principal_name(name)
        with self._env.read() as txn:
            raw = txn.get(name.encode(), db=self._db["principals"])
        if raw is None:
            raise not_found(f"Principal '{name}' does not exist.")
        return PRINCIPAL.decode(raw)

    def list(self, kind: str | None = None) -> list[tuple[str, PrincipalRecord]]:
        """(name, record) by name; only `kind` when given."""
        out = []
        with self._env.read() as txn, txn.cursor(db=self._db["principals"]) as cur:
            for key, raw in cur:
                rec = PRINCIPAL.decode(raw)
                if kind is None or rec.kind == kind:
                    out.append((key.decode(), rec))
        return out

    def any_admin(self) -> bool:
        return any(rec.admin and rec.active for _, rec in self.list(USER))

    def groups_of(self, name: str) -> set[str]:
        """Every group `name` belongs to, directly or through nested groups."""
        return _containing(self.list(GROUP), name)

    # -- writes -----------------------------------------------------------------------
    def create(self, kind: str, name: object, *, display_name: str = "", admin: bool = False,
               password: str | None = None, created_by: str = "") -> PrincipalRecord:
        if kind not in KINDS:
            raise invalid(f"kind: one of {', '.join(KINDS)}, got {kind!r}")
        name = check_principal_name(name)
        if name == ALL_USERS:
            raise invalid(f"'{ALL_USERS}' is the group every principal is in; it exists without being created")
        if admin and kind == GROUP:
            raise invalid("A group cannot be an admin; make its members admins, or grant it privileges")
        if password is not None and kind != USER:
            raise invalid("Only users have passwords; service principals use tokens")
        hashed = hash_password(password) if password is not None else ""

        def op(b: Batch) -> PrincipalRecord:
            if b.txn.get(name.encode(), db=b.dbs["principals"]) is not None:
                raise already_exists(f"Principal '{name}' already exists.")
            rec = PrincipalRecord(kind, display_name or name, admin, now_ms(), created_by, password_hash=hashed)
            b.txn.put(name.encode(), PRINCIPAL.encode(rec), db=b.dbs["principals"])
            return rec

        return self._env.write(op)

    def _change(self, name: object, change, *, revokes: bool) -> PrincipalRecord:
        name = check_principal_name(name)

        def op(b: Batch) -> PrincipalRecord:
            raw = b.txn.get(name.encode(), db=b.dbs["principals"])
            if raw is None:
                raise not_found(f"Principal '{name}' does not exist.")
            rec = PRINCIPAL.decode(raw)
            change(b, rec)
            b.txn.put(name.encode(), PRINCIPAL.encode(rec), db=b.dbs["principals"])
            if revokes:
                bump_generation(b)
            return rec

        return self._env.write(op)

    def set_password(self, name: object, password: str) -> None:
        hashed = hash_password(password)

        def change(b: Batch, rec: PrincipalRecord) -> None:
            if rec.kind != USER:
                raise invalid(f"'{name}' is a {rec.kind}: only users have passwords")
            rec.password_hash = hashed

        self._change(name, change, revokes=True)

    def set_admin(self, name: object, admin: bool) -> None:
        def change(b: Batch, rec: PrincipalRecord) -> None:
            if rec.kind == GROUP:
                raise invalid("A group cannot be an admin")
            rec.admin = bool(admin)

        self._change(name, change, revokes=True)

    def add_member(self, group: object, member: object) -> None:
        member = check_principal_name(member)
        if member == group:
            raise invalid(f"Group '{group}' cannot be a member of itself")

        def change(b: Batch, rec: PrincipalRecord) -> None:
            if rec.kind != GROUP:
                raise invalid(f"'{group}' is a {rec.kind}, not a group")
            if b.txn.get(member.encode(), db=b.dbs["principals"]) is None:
                raise not_found(f"Principal '{member}' does not exist.")
            if member in self._ancestors(b, group):
                raise invalid(f"Adding '{member}' to '{group}' would make a cycle of groups")
            if member not in rec.members:
                rec.members = [*rec.members, member]

        self._change(group, change, revokes=True)

    def _ancestors(self, b: Batch, group: str) -> set[str]:
        """Groups that hold `group`, directly or not (read inside the write)."""
        with b.txn.cursor(db=b.dbs["principals"]) as cur:
            records = [(key.decode(), PRINCIPAL.decode(raw)) for key, raw in cur]
        return _containing(records, group)

    def remove_member(self, group: object, member: object) -> None:
        def change(b: Batch, rec: PrincipalRecord) -> None:
            if member not in rec.members:
                raise not_found(f"'{member}' is not a member of '{group}'")
            rec.members = [m for m in rec.members if m != member]

        self._change(group, change, revokes=True)

    def delete(self, name: object) -> None:
        """The principal, its tokens, its memberships, its grants and what it owned
        (then only admins and grants hold), in one transaction: a principal created
        later under the same name starts with nothing."""
        name = check_principal_name(name)

        def op(b: Batch) -> None:
            if not b.txn.delete(name.encode(), db=b.dbs["principals"]):
                raise not_found(f"Principal '{name}' does not exist.")
            with b.txn.cursor(db=b.dbs["principals"]) as cur:
                holders = [(k, PRINCIPAL.decode(v)) for k, v in cur if name in PRINCIPAL.decode(v).members]
            for key, rec in holders:
                rec.members = [m for m in rec.members if m != name]
                b.txn.put(key, PRINCIPAL.encode(rec), db=b.dbs["principals"])
            with b.txn.cursor(db=b.dbs["tokens"]) as cur:
                owned = [(k, TOKEN.decode(v)) for k, v in cur if TOKEN.decode(v).principal == name]
            for key, tok in owned:
                b.txn.delete(key, db=b.dbs["tokens"])
                b.txn.delete(tok.token_id.encode(), db=b.dbs["token_ids"])
            suffix = b"\0" + name.encode()
            with b.txn.cursor(db=b.dbs["grants"]) as cur:
                granted = [k for k in cur.iternext(values=False) if k.endswith(suffix)]
            for key in granted:
                b.txn.delete(key, db=b.dbs["grants"])
            with b.txn.cursor(db=b.dbs["owners"]) as cur:
                owned_objects = [k for k, v in cur if OWNER.decode(v).principal == name]
            for key in owned_objects:
                b.txn.delete(key, db=b.dbs["owners"])
            bump_generation(b)

        self._env.write(op)


__all__ = ["GROUP", "SERVICE_PRINCIPAL", "USER", "Principals", "check_principal_name", "hash_password",
           "password_matches"]
