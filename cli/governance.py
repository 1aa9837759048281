"""`cairn users|groups|service-principals|tokens|audit ...`: governance on the command line.

The command line works on the data directory itself: whoever can read and write it is
the appliance's operator (local file access is the root of trust), which is how the
first admin is made, never by a default password. Every change made here is audited
with source `local` and the operating-system user as the principal.
"""
from __future__ import annotations

import getpass
import sys

from cairn.cli import tables
from cairn.cli.handlers import with_engine
from cairn.engine.errors import CairnError
from cairn.engine.governance.audit import as_json_line
from cairn.engine.governance.records import GROUP, SERVICE_PRINCIPAL, USER
from cairn.engine.sdk.context import current_user

SOURCE = "local"


def _password(args) -> str | None:
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    if getattr(args, "password", False):
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise CairnError("The passwords differ")
        return first
    return None


def _audit(eng, action: str, obj: str) -> None:
    eng.governance.audit.record(f"os:{current_user()}", SOURCE, action, obj)


def cmd_create(eng, args, kind: str) -> int:
    password = _password(args) if kind == USER else None
    eng.governance.principals.create(kind, args.name, admin=getattr(args, "admin", False), password=password,
                                     display_name=args.display_name or "", created_by=f"os:{current_user()}")
    _audit(eng, f"{kind}.create", args.name)
    print(f"created {kind.replace('_', ' ')} {args.name}" + (" (admin)" if getattr(args, "admin", False) else ""))
    return 0


def cmd_list(eng, args, kind: str) -> int:
    found = eng.governance.principals.list(kind)
    if args.json:
        tables.print_json([{"name": n, **{k: getattr(r, k) for k in ("kind", "display_name", "admin", "active",
                                                                      "created_ms", "members")}}
                           for n, r in found])
        return 0
    print(tables.render(["NAME", "DISPLAY NAME", "ADMIN", "MEMBERS", "CREATED"], [
        [n, r.display_name, "yes" if r.admin else "", ", ".join(r.members), tables.local_time(r.created_ms)]
        for n, r in found]))
    return 0


def cmd_delete(eng, args, kind: str) -> int:
    rec = eng.governance.principals.get(args.name)
    if rec.kind != kind:
        raise CairnError(f"'{args.name}' is a {rec.kind}, not a {kind}")
    eng.governance.principals.delete(args.name)
    _audit(eng, f"{kind}.delete", args.name)
    print(f"deleted {kind.replace('_', ' ')} {args.name} (and its tokens)")
    return 0


def cmd_set_password(eng, args) -> int:
    password = _password(args)
    if password is None:
        raise CairnError("give --password (a prompt) or --password-stdin")
    eng.governance.principals.set_password(args.name, password)
    _audit(eng, "user.set_password", args.name)
    print(f"password of {args.name} changed")
    return 0


def cmd_member(eng, args) -> int:
    if args.action == "add-member":
        eng.governance.principals.add_member(args.group, args.member)
    else:
        eng.governance.principals.remove_member(args.group, args.member)
    _audit(eng, f"group.{args.action.replace('-', '_')}", f"{args.group}/{args.member}")
    print(f"{args.member} {'added to' if args.action == 'add-member' else 'removed from'} {args.group}")
    return 0


def cmd_token_create(eng, args) -> int:
    value, info = eng.governance.credentials.create_token(args.principal, args.lifetime, args.comment or "")
    _audit(eng, "token.create", info.token_id)
    print(value)
    print(f"(token {info.token_id} for {args.principal}; shown once: it is stored only as a hash)", file=sys.stderr)
    return 0


def cmd_token_list(eng, args) -> int:
    found = eng.governance.credentials.list_tokens(args.principal)
    if args.json:
        tables.print_json(found)
        return 0
    print(tables.render(["TOKEN ID", "PRINCIPAL", "COMMENT", "CREATED", "EXPIRES"], [
        [t.token_id, t.principal, t.comment, tables.local_time(t.creation_time),
         "never" if t.expiry_time < 0 else tables.local_time(t.expiry_time)] for t in found]))
    return 0


def cmd_token_revoke(eng, args) -> int:
    eng.governance.credentials.revoke_token(args.token_id)
    _audit(eng, "token.revoke", args.token_id)
    print(f"revoked token {args.token_id}")
    return 0


def cmd_audit(eng, args) -> int:
    entries = eng.governance.audit.entries(since_ms=tables.since_ms(args.since), principal=args.principal,
                                           action=args.action_filter, obj=args.object, limit=args.limit or None)
    if args.json:
        for e in entries:
            print(as_json_line(e))
        return 0
    print(tables.render(["SEQ", "TIME", "PRINCIPAL", "SOURCE", "ACTION", "OBJECT", "OUTCOME"], [
        [e.seq, tables.local_time(e.ts_ms), e.principal or "(anonymous)", e.source, e.action, e.object, e.outcome]
        for e in entries], max_cell=60))
    return 0


def cmd_audit_verify(eng, args) -> int:
    checked, problem = eng.governance.audit.verify()
    if problem:
        print(f"error: the audit log is broken after {checked} good entries: {problem}", file=sys.stderr)
        return 1
    print(f"the audit log is whole: {checked} entries, each chained to the one before")
    return 0



def add_commands(sub) -> None:
    """Register users, groups, service-principals, tokens and audit."""
    for word, kind in (("users", USER), ("groups", GROUP), ("service-principals", SERVICE_PRINCIPAL)):
        top = sub.add_parser(word, help=f"{kind.replace('_', ' ')}s: create, list, delete"
                             + (", add-member, remove-member" if kind == GROUP else ""))
        acts = top.add_subparsers(dest="action", metavar="ACTION", required=True)
        p = acts.add_parser("create", help=f"create a {kind.replace('_', ' ')}")
        p.add_argument("name", metavar="NAME")
        p.add_argument("--display-name", metavar="TEXT")
        if kind != GROUP:
            p.add_argument("--admin", action="store_true", help="may do everything, grant and revoke")
        if kind == USER:
            p.add_argument("--password", action="store_true", help="set a password for basic auth (prompted)")
            p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        p.set_defaults(handler=with_engine(cmd_create, kind), needs_store=False)
        p = acts.add_parser("list", help=f"{kind.replace('_', ' ')}s")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=with_engine(cmd_list, kind), needs_store=False)
        p = acts.add_parser("delete", help=f"delete a {kind.replace('_', ' ')} (and its tokens)")
        p.add_argument("name", metavar="NAME")
        p.set_defaults(handler=with_engine(cmd_delete, kind), needs_store=False)
        if kind == USER:
            p = acts.add_parser("set-password", help="set or change a user's password")
            p.add_argument("name", metavar="NAME")
            p.add_argument("--password", action="store_true", help="prompted")
            p.add_argument("--password-stdin", action="store_true", help="read it from stdin")
            p.set_defaults(handler=with_engine(cmd_set_password), needs_store=False)
        if kind == GROUP:
            for act in ("add-member", "remove-member"):
                p = acts.add_parser(act, help=f"{act.split('-')[0]} a user, service principal or group")
                p.add_argument("group", metavar="GROUP")
                p.add_argument("member", metavar="MEMBER")
                p.set_defaults(handler=with_engine(cmd_member), needs_store=False)
    top = sub.add_parser("tokens", help="personal access tokens: create, list, revoke")
    acts = top.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = acts.add_parser("create", help="a token for a user or service principal (printed once)")
    p.add_argument("principal", metavar="PRINCIPAL")
    p.add_argument("--lifetime", type=float, metavar="SECONDS", help="expires after this long (default: never)")
    p.add_argument("--comment", metavar="TEXT")
    p.set_defaults(handler=with_engine(cmd_token_create), needs_store=False)
    p = acts.add_parser("list", help="tokens (never their values)")
    p.add_argument("--principal", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=with_engine(cmd_token_list), needs_store=False)
    p = acts.add_parser("revoke", help="revoke a token (refused on its next request)")
    p.add_argument("token_id", metavar="TOKEN_ID")
    p.set_defaults(handler=with_engine(cmd_token_revoke), needs_store=False)
    top = sub.add_parser("audit", help="the audit log: who did what (verify: check its hash chain)")
    top.add_argument("--since", metavar="ISO|MS")
    top.add_argument("--principal", metavar="NAME")
    top.add_argument("--action", dest="action_filter", metavar="TEXT", help="actions containing TEXT")
    top.add_argument("--object", metavar="TEXT", help="objects containing TEXT")
    top.add_argument("--limit", type=int, default=100, metavar="N", help="the newest N (default 100; 0: all)")
    top.add_argument("--json", action="store_true", help="JSON lines (for a SIEM)")
    top.set_defaults(handler=with_engine(cmd_audit), needs_store=False)
    verify = top.add_subparsers(dest="audit_action", metavar="ACTION")
    v = verify.add_parser("verify", help="check every entry's hash chain; exit 1 naming the first broken one")
    v.set_defaults(handler=with_engine(cmd_audit_verify), needs_store=False)
