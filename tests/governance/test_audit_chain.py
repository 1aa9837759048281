"""The audit log's hash chain finds an edited, a removed and a truncated entry; the
credential cache forgets on every change that can revoke access."""
from __future__ import annotations

import base64

import pytest

from cairn.engine.errors import CairnError
from cairn.engine.governance.records import AUDIT
from cairn.engine.store.keys import u64


def _fill(audit, n: int = 5) -> None:
    for i in range(n):
        audit.record(f"user{i}", "local", "thing.create", f"obj{i}")


def test_an_edited_entry_is_found(eng):
    audit = eng.governance.audit
    _fill(audit)
    assert audit.verify() == (5, None)

    def edit(b):
        e = AUDIT.decode(b.txn.get(u64(3), db=b.dbs["audit"]))
        e.principal = "someone-else"
        b.txn.put(u64(3), AUDIT.encode(e), db=b.dbs["audit"])

    eng.env.write(edit)
    assert audit.verify() == (2, "entry 3 was changed after it was written (its hash differs)")


def test_removed_entries_are_found_in_the_middle_and_at_the_end(eng):
    audit = eng.governance.audit
    _fill(audit)
    eng.env.write(lambda b: b.txn.delete(u64(5), db=b.dbs["audit"]))
    checked, problem = audit.verify()
    assert checked == 4 and "removed at the end" in problem
    eng.env.write(lambda b: b.txn.delete(u64(2), db=b.dbs["audit"]))
    assert audit.verify() == (1, "entry 2 is missing (found 3 next)")


def test_the_cache_forgets_when_access_is_taken_away(eng):
    gov = eng.governance
    gov.principals.create("user", "bo", password="long enough pw")
    gov.principals.create("group", "ml")
    gov.principals.create("group", "all")
    gov.principals.add_member("all", "ml")
    gov.principals.add_member("ml", "bo")
    token, info = gov.credentials.create_token("bo")
    caller = gov.credentials.authenticate(f"Bearer {token}")
    assert caller.principal == "bo" and caller.groups == {"ml", "all"}  # nested
    with pytest.raises(CairnError, match="cycle"):
        gov.principals.add_member("ml", "all")
    gov.principals.remove_member("ml", "bo")
    assert gov.credentials.authenticate(f"Bearer {token}").groups == frozenset()
    basic = "Basic " + base64.b64encode(b"bo:long enough pw").decode()
    assert gov.credentials.authenticate(basic).principal == "bo"
    gov.principals.set_password("bo", "another long pw")
    with pytest.raises(CairnError, match="Wrong user name or password"):
        gov.credentials.authenticate(basic)
    gov.principals.delete("bo")
    with pytest.raises(CairnError, match="not valid"):  # its tokens went with it
        gov.credentials.authenticate(f"Bearer {token}")
    with pytest.raises(CairnError, match="at least 8"):
        gov.principals.create("user", "cy", password="short")
    with pytest.raises(CairnError, match="Invalid principal name"):
        gov.principals.create("user", "has space")
