"""The governance commands as a user types them, and the server's safe defaults: no
network address without --auth, no --auth without an admin who could log in."""
from __future__ import annotations

import json
import subprocess
import sys


def cairn(data, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cairn.cli", "--data", str(data), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_the_server_refuses_an_open_door(tmp_path):
    data = tmp_path / "data"
    out = cairn(data, "server", "--host", "0.0.0.0", "--port", "0")
    assert out.returncode == 1 and "Refusing to listen on 0.0.0.0 without --auth" in out.stderr
    assert "Traceback" not in out.stderr
    out = cairn(data, "server", "--auth", "--port", "0")
    assert out.returncode == 1 and "--auth with no admin user" in out.stderr


def test_users_groups_tokens_and_the_audit_on_the_command_line(tmp_path):
    data = tmp_path / "data"
    made = cairn(data, "users", "create", "ana", "--admin", "--password-stdin", stdin="long enough pw\n")
    assert made.returncode == 0
    assert cairn(data, "service-principals", "create", "ci-bot").returncode == 0
    assert cairn(data, "groups", "create", "ml").returncode == 0
    assert cairn(data, "groups", "add-member", "ml", "ci-bot").returncode == 0
    groups = json.loads(cairn(data, "groups", "list", "--json").stdout)
    assert groups == [{"name": "ml", "kind": "group", "display_name": "ml", "admin": False, "active": True,
                       "created_ms": groups[0]["created_ms"], "members": ["ci-bot"]}]
    made = cairn(data, "tokens", "create", "ci-bot", "--comment", "nightly")
    assert made.returncode == 0 and made.stdout.startswith("cairn_") and "shown once" in made.stderr
    tokens = json.loads(cairn(data, "tokens", "list", "--json").stdout)
    assert [(t["principal"], t["comment"]) for t in tokens] == [("ci-bot", "nightly")]
    assert cairn(data, "groups", "create", "ml").returncode == 1  # already exists: one clean line
    assert cairn(data, "tokens", "revoke", tokens[0]["token_id"]).returncode == 0
    lines = [json.loads(x) for x in cairn(data, "audit", "--json").stdout.splitlines()]
    assert [e["action"] for e in lines] == ["user.create", "service_principal.create", "group.create",
                                            "group.add_member", "token.create", "token.revoke"]
    assert all(e["source"] == "local" and e["principal"].startswith("os:") for e in lines)
    verified = cairn(data, "audit", "verify")
    assert verified.returncode == 0 and "6 entries" in verified.stdout


def test_grants_on_the_command_line(tmp_path):
    data = tmp_path / "data"
    for args in (("users", "create", "ana"), ("groups", "create", "analysts"), ("groups", "add-member", "analysts",
                                                                                 "ana")):
        assert cairn(data, *args).returncode == 0
    out = cairn(data, "grants", "add", "schema", "main.default", "analysts", "EXECUTE", "apply_tag")
    assert out.returncode == 0 and out.stdout.strip() == "analysts on schema 'main.default': EXECUTE, APPLY_TAG"
    shown = json.loads(cairn(data, "grants", "show", "schema", "main.default", "--json").stdout)
    assert {"principal": "analysts", "privileges": ["EXECUTE", "APPLY_TAG"]} in shown["privilege_assignments"]
    eff = json.loads(cairn(data, "grants", "effective", "model", "iris", "--principal", "ana", "--json").stdout)
    assert {"principal": "analysts", "privilege": "EXECUTE", "inherited_from": "schema 'main.default'"} in eff
    assert cairn(data, "grants", "remove", "schema", "main.default", "analysts", "EXECUTE").returncode == 0
    assert cairn(data, "grants", "owner", "model", "iris", "ana").stdout.strip() == \
        "registered model 'main.default.iris' is owned by ana"
    assert "NO_PERMISSIONS" in cairn(data, "grants", "default", "no_permissions").stdout
    bad = cairn(data, "grants", "add", "schema", "main.default", "analysts", "SELECTT")
    assert bad.returncode == 1 and "Privilege 'SELECTT' does not apply to a schema" in bad.stderr
    bad = cairn(data, "grants", "show", "volume", "x")
    assert bad.returncode == 1 and "Unknown securable type 'volume'" in bad.stderr
    actions = [json.loads(x)["action"] for x in cairn(data, "audit", "--json").stdout.splitlines()]
    assert {"grant.update", "owner.transfer", "permission.default"} <= set(actions)
