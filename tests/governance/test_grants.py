"""Grants on a real LMDB: Unity Catalog's inheritance (catalog -> schema -> object) and
its USE_CATALOG/USE_SCHEMA gates, owners, ALL_PRIVILEGES, nested groups and `users`,
levels on experiments and endpoints, MLflow's default permission, and that every change
(revoke, membership, delete, rename, a new object under an old name) holds at once."""
from __future__ import annotations

import pytest

from cairn.engine.errors import CairnError
from cairn.engine.governance.access import Access
from cairn.engine.governance.credentials import Caller
from cairn.engine.governance.grants import WORKSPACE_DEFAULTS
from cairn.engine.governance.privileges import Securable, securable

MODEL = securable("registered_model", "ml.prod.churn")
SCHEMA = Securable("schema", "ml.prod")
CATALOG = Securable("catalog", "ml")


@pytest.fixture
def gov(eng):
    g = eng.governance
    for name in ("ana", "bob", "cid"):
        g.principals.create("user", name)
    g.principals.create("group", "team")
    g.principals.create("group", "all-ml")
    g.principals.add_member("team", "bob")
    g.principals.add_member("all-ml", "team")  # bob is in all-ml through team
    return g


def caller(gov, name: str) -> Caller:
    return gov.grants.caller_for(name)


def test_privileges_inherit_down_and_use_gates_the_parents(gov):
    grants, bob = gov.grants, caller(gov, "bob")
    grants.update(CATALOG, [("all-ml", ["EXECUTE"], [])], "test")
    err = grants.denial(bob, MODEL, "EXECUTE")
    assert err is not None and err.error_code == "PERMISSION_DENIED"
    assert "'bob' does not have USE_CATALOG on catalog 'ml'" == err.message
    grants.update(CATALOG, [("team", ["USE_CATALOG"], [])], "test")
    assert "USE_SCHEMA on schema 'ml.prod'" in grants.denial(bob, MODEL, "EXECUTE").message
    grants.update(CATALOG, [("bob", ["USE_SCHEMA"], [])], "test")  # held on the catalog, holds on its schemas
    assert grants.can(bob, MODEL, "EXECUTE")
    assert "MODIFY on registered model 'ml.prod.churn'" in grants.denial(bob, MODEL, "MODIFY").message
    assert not grants.can(caller(gov, "cid"), MODEL, "EXECUTE")


def test_all_privileges_is_everything_but_manage_and_owners_hold_all(gov):
    grants, bob, ana = gov.grants, caller(gov, "bob"), caller(gov, "ana")
    grants.update(CATALOG, [("bob", ["USE_CATALOG"], [])], "test")
    grants.update(SCHEMA, [("bob", ["ALL_PRIVILEGES"], [])], "test")
    for p in ("EXECUTE", "MODIFY", "APPLY_TAG", "USE_SCHEMA", "CREATE_MODEL"):
        assert grants.can(bob, MODEL, p), p
    assert not grants.can(bob, MODEL, "MANAGE")
    grants.adopt(SCHEMA, "ana")  # ana owns the schema: everything in it, but not USE_CATALOG on ml
    assert "USE_CATALOG" in grants.denial(ana, MODEL, "MANAGE").message
    grants.update(CATALOG, [("users", ["USE_CATALOG"], [])], "test")
    assert grants.can(ana, MODEL, "MANAGE")
    grants.set_owner(SCHEMA, "cid")  # ownership transferred: ana keeps nothing
    assert not grants.can(ana, MODEL, "EXECUTE")
    assert grants.can(caller(gov, "cid"), MODEL, "MANAGE")


def test_a_revoke_a_membership_and_a_delete_hold_on_the_next_check(gov):
    grants = gov.grants
    grants.set_default_permission("NO_PERMISSIONS")  # else MLflow's READ lets everyone EXECUTE
    grants.update(CATALOG, [("team", ["USE_CATALOG", "USE_SCHEMA", "EXECUTE"], [])], "test")
    assert grants.can(caller(gov, "bob"), MODEL, "EXECUTE")  # cached now
    grants.update(CATALOG, [("team", [], ["EXECUTE"])], "test")
    assert not grants.can(caller(gov, "bob"), MODEL, "EXECUTE")
    grants.update(CATALOG, [("team", ["EXECUTE"], [])], "test")
    gov.principals.remove_member("team", "bob")
    assert not grants.can(caller(gov, "bob"), MODEL, "EXECUTE")
    grants.update(MODEL, [("cid", ["EXECUTE"], [])], "test")
    gov.principals.delete("cid")
    gov.principals.create("user", "cid")  # the same name again starts with nothing
    assert grants.assignments(MODEL) == []


def test_a_new_object_under_an_old_name_starts_clean_and_a_rename_keeps_grants(gov):
    grants = gov.grants
    grants.adopt(MODEL, "ana")
    grants.update(MODEL, [("bob", ["EXECUTE"], [])], "ana")
    grants.adopt(MODEL, "cid")  # deleted and created again by cid
    assert grants.owner(MODEL) == "cid" and grants.assignments(MODEL) == []
    grants.update(MODEL, [("bob", ["EXECUTE", "MODIFY"], ["MODIFY"])], "cid")
    new = securable("registered_model", "ml.prod.churn2")
    grants.move(MODEL, new)
    assert grants.assignments(new) == [("bob", ["EXECUTE"])] and grants.owner(new) == "cid"
    assert grants.assignments(MODEL) == [] and grants.owner(MODEL) is None


def test_levels_default_permission_and_the_effective_listing(gov, eng):
    grants, bob, cid = gov.grants, caller(gov, "bob"), caller(gov, "cid")
    exp = Securable("experiment", "7")
    assert grants.can(bob, exp, "CAN_READ") and not grants.can(bob, exp, "CAN_EDIT")  # MLflow's default READ
    grants.set_default_permission("NO_PERMISSIONS")
    assert not grants.can(bob, exp, "CAN_READ")
    grants.update(exp, [("team", ["CAN_EDIT"], [])], "test")
    assert grants.can(bob, exp, "CAN_READ") and grants.can(bob, exp, "CAN_EDIT")
    assert not grants.can(bob, exp, "CAN_MANAGE") and not grants.can(cid, exp, "CAN_READ")
    access = Access(eng, cid)
    with pytest.raises(CairnError, match="No Experiment with id=7 exists"):  # invisible: as if absent
        access.experiment("7")
    with pytest.raises(CairnError, match="'bob' does not have CAN_MANAGE on experiment '7'"):
        Access(eng, bob).experiment("7", "CAN_MANAGE")
    grants.update(CATALOG, [("users", ["USE_CATALOG"], [])], "test")
    grants.update(SCHEMA, [("bob", ["EXECUTE"], [])], "test")
    listed = dict(grants.effective(MODEL, "bob"))
    assert ("EXECUTE", SCHEMA) in listed["bob"] and ("USE_CATALOG", CATALOG) in listed["users"]
    assert "cid" not in listed


def test_bad_grants_are_named(gov):
    grants = gov.grants
    with pytest.raises(CairnError, match="Privilege 'SELECT' does not apply to a registered model"):
        grants.update(MODEL, [("bob", ["SELECT"], [])], "test")
    with pytest.raises(CairnError, match="Principal 'nobody' does not exist"):
        grants.update(MODEL, [("nobody", ["EXECUTE"], [])], "test")
    with pytest.raises(CairnError, match="Unknown securable type 'volume'"):
        securable("volume", "x")
    with pytest.raises(CairnError, match="exists without being created"):
        gov.principals.create("group", "users")


def test_the_workspace_defaults_let_everyone_create_in_main_default_and_see_only_their_own(gov, eng):
    grants, bob, cid = gov.grants, caller(gov, "bob"), caller(gov, "cid")
    for s, privileges in WORKSPACE_DEFAULTS:  # written once, on first open
        assert grants.assignments(s) == [("users", privileges)]
    grants.set_default_permission("NO_PERMISSIONS")
    access = Access(eng, bob)
    mine = access.create_in_schema("registered_model", "iris")  # CREATE_MODEL on main.default
    assert mine.name == "main.default.iris"
    access.created(mine)
    assert grants.can(bob, mine, "MANAGE") and not grants.visible(cid, mine)
    with pytest.raises(CairnError, match="USE_CATALOG on catalog 'ml'"):
        access.create_in_schema("registered_model", "ml.prod.x")
