"""Governance on one data directory: its principals, credentials, grants and audit log."""
from __future__ import annotations

from cairn.engine.governance.audit import AuditLog
from cairn.engine.governance.credentials import Credentials
from cairn.engine.governance.grants import Grants
from cairn.engine.governance.limits import RateLimits
from cairn.engine.governance.principals import Principals
from cairn.engine.store.lmdbenv import LmdbEnv


class Governance:
    def __init__(self, lenv: LmdbEnv):
        self.principals = Principals(lenv)
        self.credentials = Credentials(lenv, self.principals)
        self.audit = AuditLog(lenv)
        self.grants = Grants(lenv, self.principals)
        self.grants.bootstrap()
        self.rate_limits = RateLimits(lenv)
