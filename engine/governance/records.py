"""Storage records of governance, one sub-database per record kind.

  principals   utf-8 name                        -> PrincipalRecord (users, groups and
                                                    service principals share one namespace)
  tokens       sha256(token)                     -> TokenRecord
  token_ids    utf-8 token id                    -> sha256(token)
  audit        u64 sequence number               -> AuditEntry (chained by hash)
  grants       "type\0name\0principal"           -> GrantRecord (privileges on one securable)
  owners       "type\0name"                       -> OwnerRecord
  rate_limits  utf-8 endpoint name                -> RateLimitsRecord

Meta keys: `audit_head` (u64 seq + the last entry's hash) and `credentials_generation`
(u64, bumped by every change that can take access away or change it: credentials,
memberships, grants, owners, the default permission, rate limits; a cache in any
process compares it to know when to drop what it remembered, and a request reads it
once for its authentication and all its checks); `default_permission` (MLflow's, on experiments and
registered models without a grant); `grants_bootstrapped` (the workspace defaults are
written once).
"""
from __future__ import annotations

import msgspec

from cairn.engine.store.codec import Codec

GOVERNANCE_TABLES: dict[str, bool] = {
    "principals": False,
    "tokens": False,
    "token_ids": False,
    "audit": False,
    "grants": False,
    "owners": False,
    "rate_limits": False,
}
AUDIT_HEAD = b"audit_head"
GENERATION = b"credentials_generation"  # the name it had before grants shared it
DEFAULT_PERMISSION = b"default_permission"
GRANTS_BOOTSTRAPPED = b"grants_bootstrapped"

USER = "user"
GROUP = "group"
SERVICE_PRINCIPAL = "service_principal"
KINDS = (USER, GROUP, SERVICE_PRINCIPAL)
# The group every principal is in without being added (Databricks' `users`): grants to
# it hold for everyone who signs in.
ALL_USERS = "users"


class PrincipalRecord(msgspec.Struct, array_like=True):
    kind: str
    display_name: str
    admin: bool
    created_ms: int
    created_by: str
    active: bool = True
    password_hash: str = ""  # "scrypt$n$r$p$salt_hex$hash_hex"; users only
    members: list[str] = []  # groups only: users, service principals and groups


class TokenRecord(msgspec.Struct, array_like=True):
    token_id: str
    principal: str
    comment: str
    created_ms: int
    expiry_ms: int  # 0: never expires
    revoked_ms: int = 0


class AuditEntry(msgspec.Struct, array_like=True, kw_only=True):
    seq: int
    ts_ms: int
    principal: str  # "" for an unauthenticated caller
    source: str  # the caller's address, or "local" for the command line
    action: str  # e.g. "POST /api/2.0/mlflow/runs/create", "token.create", "login"
    object: str = ""
    outcome: str = ""  # an HTTP status, or "ok" / "denied"
    detail: str = ""
    prev_hash: str = ""
    hash: str = ""


class GrantRecord(msgspec.Struct, array_like=True):
    privileges: list[str]
    granted_ms: int
    granted_by: str


class OwnerRecord(msgspec.Struct, array_like=True):
    principal: str
    since_ms: int


class RateLimit(msgspec.Struct, kw_only=True):
    """Databricks' endpoint rate limit: `calls` per `renewal_period`, counted per
    principal (key "user") or for the whole endpoint (key "endpoint")."""

    calls: int
    key: str = "user"
    renewal_period: str = "minute"


class RateLimitsRecord(msgspec.Struct, array_like=True):
    limits: list[RateLimit]
    set_ms: int
    set_by: str


PRINCIPAL = Codec(PrincipalRecord)
RATE_LIMITS = Codec(RateLimitsRecord)
GRANT = Codec(GrantRecord)
OWNER = Codec(OwnerRecord)
TOKEN = Codec(TokenRecord)
AUDIT = Codec(AuditEntry)
