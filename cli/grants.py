"""`cairn grants ...`: Unity Catalog-style grants on the data directory itself (the
operator's, as every governance command; audited with source `local`).

  cairn grants show TYPE NAME [--json]              what is granted directly, and the owner
  cairn grants effective TYPE NAME [--principal P]  with what is inherited, and from where
  cairn grants add TYPE NAME PRINCIPAL PRIV...      e.g. grants add schema main.ml analysts USE_SCHEMA
  cairn grants remove TYPE NAME PRINCIPAL PRIV...
  cairn grants owner TYPE NAME PRINCIPAL            transfer ownership
  cairn grants default [READ|EDIT|MANAGE|NO_PERMISSIONS]  MLflow's default permission

TYPE: catalog, schema, registered_model, table, function, experiment, serving_endpoint.
"""
from __future__ import annotations

from cairn.cli import tables
from cairn.cli.handlers import with_engine
from cairn.engine.governance.privileges import SECURABLE_TYPES, securable
from cairn.engine.sdk.context import current_user

SOURCE = "local"


def _audit(eng, action: str, obj, detail: str = "") -> None:
    eng.governance.audit.record(f"os:{current_user()}", SOURCE, action, str(obj), detail=detail)


def cmd_show(eng, args) -> int:
    s = securable(args.type, args.name)
    grants = eng.governance.grants
    pairs = grants.assignments(s)
    owner = grants.owner(s) or ""
    if args.json:
        tables.print_json({"securable": {"type": s.type, "name": s.name}, "owner": owner,
                           "privilege_assignments": [{"principal": p, "privileges": privs} for p, privs in pairs]})
        return 0
    print(f"{s}, owner: {owner or '(none: admins only)'}")
    print(tables.render(["PRINCIPAL", "PRIVILEGES"], [[p, ", ".join(privs)] for p, privs in pairs]))
    return 0


def cmd_effective(eng, args) -> int:
    s = securable(args.type, args.name)
    rows = []
    for grantee, privileges in eng.governance.grants.effective(s, args.principal):
        for p, src in privileges:
            rows.append([grantee, p, f"{src}" if src is not None else "(granted here)"])
    if args.json:
        tables.print_json([{"principal": g, "privilege": p, "inherited_from": src} for g, p, src in rows])
        return 0
    print(tables.render(["PRINCIPAL", "PRIVILEGE", "FROM"], rows))
    return 0


def cmd_change(eng, args) -> int:
    s = securable(args.type, args.name)
    add, remove = (args.privileges, []) if args.grant_action == "add" else ([], args.privileges)
    pairs = eng.governance.grants.update(s, [(args.principal, add, remove)], f"os:{current_user()}")
    _audit(eng, "grant.update", s, f"{args.principal}: +{','.join(add)} -{','.join(remove)}")
    held = dict(pairs).get(args.principal, [])
    print(f"{args.principal} on {s}: {', '.join(held) or 'nothing'}")
    return 0


def cmd_owner(eng, args) -> int:
    s = securable(args.type, args.name)
    eng.governance.grants.set_owner(s, args.principal)
    _audit(eng, "owner.transfer", s, args.principal)
    print(f"{s} is owned by {args.principal}")
    return 0


def cmd_default(eng, args) -> int:
    grants = eng.governance.grants
    if args.permission:
        grants.set_default_permission(args.permission)
        _audit(eng, "permission.default", "", args.permission.upper())
    print(f"default permission on experiments and registered models: {grants.default_permission()}")
    return 0



def add_commands(sub) -> None:
    top = sub.add_parser("grants", help="grants on catalogs, schemas, models, tables, experiments, endpoints")
    acts = top.add_subparsers(dest="grant_action", metavar="ACTION", required=True)

    def target(p):
        p.add_argument("type", metavar="TYPE", help=", ".join(SECURABLE_TYPES))
        p.add_argument("name", metavar="NAME")

    p = acts.add_parser("show", help="what is granted directly on an object, and its owner")
    target(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=with_engine(cmd_show), needs_store=False)
    p = acts.add_parser("effective", help="what holds on an object, inherited grants included")
    target(p)
    p.add_argument("--principal", metavar="NAME", help="only what holds for this principal")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=with_engine(cmd_effective), needs_store=False)
    for act in ("add", "remove"):
        p = acts.add_parser(act, help=f"{'grant' if act == 'add' else 'revoke'} privileges")
        target(p)
        p.add_argument("principal", metavar="PRINCIPAL", help="a user, group, service principal, or `users`")
        p.add_argument("privileges", metavar="PRIVILEGE", nargs="+")
        p.set_defaults(handler=with_engine(cmd_change), needs_store=False)
    p = acts.add_parser("owner", help="transfer an object's ownership")
    target(p)
    p.add_argument("principal", metavar="PRINCIPAL")
    p.set_defaults(handler=with_engine(cmd_owner), needs_store=False)
    p = acts.add_parser("default", help="MLflow's default permission (READ unless set)")
    p.add_argument("permission", nargs="?", metavar="PERMISSION", help="READ, EDIT, MANAGE or NO_PERMISSIONS")
    p.set_defaults(handler=with_engine(cmd_default), needs_store=False)
