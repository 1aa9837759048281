"""/api/2.0/audit: the audit log for admins (a SIEM pulls it; `cairn audit` reads the
same entries locally).

  GET /api/2.0/audit/entries?since_ms=&principal=&action=&object=&max_results=
      -> {"entries": [{seq, ts_ms, principal, source, action, object, outcome, detail,
          prev_hash, hash}]} (oldest first; the newest max_results, at most 10,000)
  GET /api/2.0/audit/verify -> {"entries_checked": N, "intact": bool, "problem"?}
"""
from __future__ import annotations

import msgspec
from litestar import Controller, get

from cairn.engine.datadir import Engine
from cairn.engine.errors import invalid
from cairn.engine.governance.access import Access

MAX_ENTRIES = 10_000


class AuditController(Controller):
    path = "/api/2.0/audit"
    tags = ("audit",)

    @get("/entries", sync_to_thread=True)
    def entries(self, engine: Engine, access: Access, since_ms: int | None = None, principal: str | None = None,
                action: str | None = None, object: str | None = None,  # noqa: A002 - the field's name
                max_results: int = 1000) -> dict:
        access.admin("read the audit log")
        if not 0 < max_results <= MAX_ENTRIES:
            raise invalid(f"max_results: between 1 and {MAX_ENTRIES}, got {max_results}")
        found = engine.governance.audit.entries(since_ms=since_ms, principal=principal, action=action, obj=object,
                                                limit=max_results)
        return {"entries": [msgspec.structs.asdict(e) for e in found]}

    @get("/verify", sync_to_thread=True)
    def verify(self, engine: Engine, access: Access) -> dict:
        access.admin("verify the audit log")
        checked, problem = engine.governance.audit.verify()
        return {"entries_checked": checked, "intact": problem is None, **({"problem": problem} if problem else {})}
