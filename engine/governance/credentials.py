"""Credentials: personal access tokens (Databricks' shape) and password checks, and the
cache that keeps authentication off the request path's budget.

A token is `cairn_` + 32 random bytes (URL-safe), shown once; the store keeps only its
sha256, so a copy of the data directory holds no usable token. Revocation, expiry, a
deleted or deactivated principal, a changed password or membership: each takes effect on
the next request, in every process, because a successful check is cached only together
with the credentials generation it was made under, and the generation is read (one LMDB
get) on every request.

Who is calling is a `Caller`: the principal, whether it is an admin, and the groups it
is in (transitively), which grants will need.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import uuid

import msgspec

from cairn.engine.errors import UNAUTHENTICATED, CairnError, invalid, not_found
from cairn.engine.governance.cache import MISSING, GenerationCache
from cairn.engine.governance.principals import Principals, bump_generation, password_matches
from cairn.engine.governance.records import PRINCIPAL, TOKEN, USER, TokenRecord
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms

TOKEN_PREFIX = "cairn_"
MAX_LIFETIME_S = 10 * 365 * 86400
MAX_COMMENT_LENGTH = 1000
_CACHE_MAX = 10_000


class Caller(msgspec.Struct, frozen=True):
    principal: str
    admin: bool = False
    groups: frozenset[str] = frozenset()


ANONYMOUS = Caller("")


class TokenInfo(msgspec.Struct, kw_only=True):
    """A token as the API lists it (never its value)."""

    token_id: str
    principal: str
    comment: str
    creation_time: int
    expiry_time: int  # -1: never, as Databricks writes it
    revoked: bool = False


def unauthenticated(message: str) -> CairnError:
    return CairnError(message, UNAUTHENTICATED)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Credentials:
    def __init__(self, lenv: LmdbEnv, principals: Principals):
        self._env = lenv
        self._db = lenv.dbs
        self._principals = principals
        # credential digest -> (caller, expiry_ms or 0)
        self._cache = GenerationCache(lenv, _CACHE_MAX)

    # -- tokens -----------------------------------------------------------------------
    def create_token(self, principal: str, lifetime_seconds: float | None = None,
                     comment: str = "") -> tuple[str, TokenInfo]:
        """(the token's value, shown only now, and its info)."""
        if lifetime_seconds is not None and (isinstance(lifetime_seconds, bool) or
                                             not isinstance(lifetime_seconds, (int, float)) or
                                             not 0 < lifetime_seconds <= MAX_LIFETIME_S):
            raise invalid(f"lifetime_seconds: between 1 and {MAX_LIFETIME_S}, got {lifetime_seconds!r}")
        comment = comment or ""
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_LENGTH:
            raise invalid(f"comment: a string of at most {MAX_COMMENT_LENGTH} characters")
        rec_p = self._principals.get(principal)
        if rec_p.kind not in (USER, "service_principal"):
            raise invalid(f"'{principal}' is a {rec_p.kind}: tokens are for users and service principals")
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        t = now_ms()
        rec = TokenRecord(uuid.uuid4().hex, principal, comment, t,
                          int(t + lifetime_seconds * 1000) if lifetime_seconds else 0)

        def op(b: Batch) -> None:
            if b.txn.get(principal.encode(), db=b.dbs["principals"]) is None:
                raise not_found(f"Principal '{principal}' does not exist.")
            b.txn.put(_digest(value), TOKEN.encode(rec), db=b.dbs["tokens"])
            b.txn.put(rec.token_id.encode(), _digest(value), db=b.dbs["token_ids"])

        self._env.write(op)
        return value, _info(rec)

    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]:
        """Tokens (of `principal`, or all), oldest first."""
        with self._env.read() as txn, txn.cursor(db=self._db["tokens"]) as cur:
            recs = [TOKEN.decode(v) for _, v in cur]
        return [_info(r) for r in sorted(recs, key=lambda r: r.created_ms)
                if principal is None or r.principal == principal]

    def token_owner(self, token_id: str) -> str:
        with self._env.read() as txn:
            digest = txn.get(str(token_id).encode(), db=self._db["token_ids"])
            raw = txn.get(digest, db=self._db["tokens"]) if digest else None
        if raw is None:
            raise not_found(f"Token '{token_id}' does not exist.")
        return TOKEN.decode(raw).principal

    def revoke_token(self, token_id: str) -> None:
        """Gone at once (the next request with it is refused, in every process)."""

        def op(b: Batch) -> None:
            digest = b.txn.get(str(token_id).encode(), db=b.dbs["token_ids"])
            if digest is None:
                raise not_found(f"Token '{token_id}' does not exist.")
            b.txn.delete(digest, db=b.dbs["tokens"])
            b.txn.delete(str(token_id).encode(), db=b.dbs["token_ids"])
            bump_generation(b)

        self._env.write(op)

    # -- authentication ---------------------------------------------------------------
    def authenticate(self, authorization: str | None, generation: int | None = None) -> Caller:
        """The caller an `Authorization` header names (Bearer token or Basic user:pass);
        UNAUTHENTICATED naming what is wrong otherwise. `generation`: the request's
        read of it (read here when not given)."""
        if not authorization:
            raise unauthenticated("Credentials are required: send Authorization: Bearer <token> "
                                  "(MLFLOW_TRACKING_TOKEN) or basic auth (MLFLOW_TRACKING_USERNAME/PASSWORD)")
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            return self._cached(_digest("t:" + value), lambda: self._check_token(value), generation)
        if scheme == "basic" and value:
            try:
                user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise unauthenticated("The basic auth header is not base64 of user:password") from None
            if not sep:
                raise unauthenticated("The basic auth header is not base64 of user:password")
            return self._cached(_digest(f"p:{user}\0{password}"), lambda: self._check_password(user, password),
                                generation)
        raise unauthenticated("Authorization must be 'Bearer <token>' or 'Basic <base64 user:password>'")

    def _cached(self, key: bytes, check, generation: int | None) -> Caller:
        hit, generation = self._cache.lookup(key, generation)
        if hit is not MISSING and (not hit[1] or hit[1] > now_ms()):
            return hit[0]
        caller, expiry = check()  # raises when refused: a refusal is never cached
        self._cache.store(key, (caller, expiry), generation)
        return caller

    def _check_token(self, value: str) -> tuple[Caller, int]:
        with self._env.read() as txn:
            raw = txn.get(_digest(value), db=self._db["tokens"])
        if raw is None:
            raise unauthenticated("The token is not valid (unknown or revoked)")
        tok = TOKEN.decode(raw)
        if tok.expiry_ms and tok.expiry_ms <= now_ms():
            raise unauthenticated(f"The token {tok.token_id} expired")
        return self._caller(tok.principal), tok.expiry_ms

    def _check_password(self, user: str, password: str) -> tuple[Caller, int]:
        with self._env.read() as txn:
            raw = txn.get(user.encode(), db=self._db["principals"])
        rec = PRINCIPAL.decode(raw) if raw is not None else None
        if rec is None or rec.kind != USER or not rec.password_hash or not password_matches(rec.password_hash,
                                                                                               password):
            raise unauthenticated("Wrong user name or password")
        return self._caller(user), 0

    def _caller(self, name: str) -> Caller:
        try:
            rec = self._principals.get(name)
        except CairnError:
            raise unauthenticated(f"The principal '{name}' no longer exists") from None
        if not rec.active:
            raise unauthenticated(f"The principal '{name}' is deactivated")
        return Caller(name, rec.admin, frozenset(self._principals.groups_of(name)))


def _info(rec: TokenRecord) -> TokenInfo:
    return TokenInfo(token_id=rec.token_id, principal=rec.principal, comment=rec.comment,
                     creation_time=rec.created_ms, expiry_time=rec.expiry_ms or -1, revoked=bool(rec.revoked_ms))
