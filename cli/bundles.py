"""`cairn keys ...` and `cairn bundle ...`: move model versions between appliances by file.

argparse only parses flags; the work is engine/bundles/transfer.py (export, import, inspect),
engine/bundles/signing.py (keys) and engine/store/appliance.py (identity). A CairnError becomes
one `error:` line and exit status 1 in cli.main; warnings (what was not checked) go
to stderr as `warning:` lines, after the command has succeeded.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import msgspec

from cairn import engine
from cairn.cli import tables

# engine.bundles.transfer, bundlekeys and appliance are imported by the commands that use them:
# cryptography costs tens of milliseconds, which every other `cairn` command would pay.


def _data_dir(args) -> Path:
    """The data directory without opening LMDB: keys are plain files beside it."""
    return Path(args.data).expanduser() if args.data else engine.default_data_dir()


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def _json(obj: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj), indent=2).decode() + "\n")


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


# -- keys --------------------------------------------------------------------------------
def cmd_keys_generate(args) -> int:
    from cairn.engine.bundles.signing import PUBLIC_KEY_FILE, generate_key

    info = generate_key(_data_dir(args), force=args.force)
    print(f"signing key written to {info.path} (mode 0600)")
    print(f"public key:  ed25519 {info.public_key}")
    print(f"fingerprint: {info.fingerprint}")
    pub = Path(info.path).with_name(PUBLIC_KEY_FILE)
    print(f"On appliances that should accept this one's bundles: cairn keys trust {pub} --name NAME")
    return 0


def cmd_keys_trust(args) -> int:
    from cairn.engine.bundles.signing import read_public_key_arg, trust_key

    info = trust_key(_data_dir(args), args.name, read_public_key_arg(args.key))
    print(f"trusted {info.name}: {info.fingerprint}")
    print("bundle import now accepts only bundles signed by a trusted key")
    return 0


def cmd_keys_untrust(args) -> int:
    from cairn.engine.bundles.signing import trusted_keys, untrust_key

    data = _data_dir(args)
    info = untrust_key(data, args.name)
    print(f"no longer trusted: {info.name} ({info.fingerprint})")
    if not trusted_keys(data):
        _warn("no trusted keys are left: bundle import accepts any bundle (with a warning)")
    return 0


def cmd_keys_list(args) -> int:
    from cairn.engine.bundles.signing import keys_dir, own_key_info, trusted_keys
    from cairn.engine.store.appliance import appliance_identity

    data = _data_dir(args)
    own, trusted = own_key_info(data), trusted_keys(data)
    ident = appliance_identity(data) if data.is_dir() else None
    if args.json:
        _json({"appliance": ident, "signing_key": own, "trusted_keys": trusted})
        return 0
    if ident is not None:
        print(f"appliance {ident.appliance_id} ({ident.hostname})")
    rows = [["(this appliance)", own.fingerprint, own.public_key]] if own else []
    rows += [[k.name, k.fingerprint, k.public_key] for k in trusted]
    if rows:
        print(tables.render(["NAME", "FINGERPRINT", "PUBLIC KEY"], rows, max_cell=64))
    if own is None:
        print(f"(no signing key in {keys_dir(data)}: `cairn keys generate` makes one)", file=sys.stderr)
    if not trusted:
        print("(no trusted keys: bundle import accepts any bundle, with a warning)", file=sys.stderr)
    return 0


# -- bundles -----------------------------------------------------------------------------
def cmd_export(args) -> int:
    from cairn.engine.bundles.transfer import export_bundle, signing_key
    from cairn.engine.sdk.context import current_user

    eng = engine.open(args.data)
    key = None if args.unsigned else signing_key(eng.path, args.key)
    res = export_bundle(eng, args.uri, args.output, key=key, user_id=current_user())
    print(f"exported {res.name} version {res.version} to {res.path} ({res.files} files, {_size(res.size)})")
    print(f"bundle digest sha256:{res.digest}")
    if res.signer:
        print(f"signed by {res.signer}")
    elif args.unsigned:
        _warn("the bundle is unsigned: appliances with trusted keys will refuse it")
    else:
        _warn("the bundle is unsigned (this appliance has no signing key: `cairn keys generate` makes one); "
              "appliances with trusted keys will refuse it")
    return 0


def cmd_import(args) -> int:
    from cairn.engine.bundles.transfer import import_bundle
    from cairn.engine.sdk.context import current_user

    eng = engine.open(args.data)
    wait = {"timeout": args.timeout} if args.timeout is not None else {}
    res = import_bundle(eng, args.file, name=args.name, alias=args.alias, user_id=current_user(), **wait)
    if res.existing:
        print(f"already here: {res.name} version {res.version} ({res.status}) came from this bundle's version; "
              "nothing imported")
    else:
        print(f"imported {res.name} version {res.version}: {res.status}")
        if res.status == "PENDING_REGISTRATION":
            print("(still registering; it finishes when Cairn next opens this data directory)", file=sys.stderr)
        if res.run_id:
            print(f"run {res.run_id} {'recreated' if res.run_created else 'already here, reused'}")
    if args.alias:
        print(f"{res.name}@{args.alias} -> version {res.version}")
    signer = res.signer
    if signer is not None and signer.trusted_as:
        print(f"signature verified: {signer.fingerprint} (trusted as {signer.trusted_as})")
    if signer is not None and signer.warning:
        _warn(f"signature not checked: {signer.warning}")
        _warn("its original model was not loaded (that would run code from the bundle): the ONNX model "
              "was checked to load, and its conversion was verified where it was exported")
    return 0


def cmd_inspect(args) -> int:
    from cairn.engine.bundles.transfer import open_bundle

    data = _data_dir(args)
    c = open_bundle(data, args.file)
    c.bundle.close()  # verified; what it shows is in memory, the spooled files are not needed
    m, o, meta, signer = c.bundle.manifest, c.bundle.manifest.origin, c.meta, c.signer
    if args.json:
        _json({"path": c.bundle.path, "digest": f"sha256:{c.bundle.digest}", "manifest": m,
               "signer": signer, "version": meta})
        return 0
    if signer.trusted_as:
        who = f"{signer.fingerprint} (trusted as {signer.trusted_as})"
    elif signer.signed:
        who = f"{signer.fingerprint} ({'NOT trusted here' if signer.refusal else 'not checked: no trusted keys'})"
    else:
        who = "unsigned" + (" (refused here: trusted keys are configured)" if signer.refusal else "")
    run = c.run.run if c.run else None
    print(tables.render_pairs([
        ("bundle", c.bundle.path),
        ("digest", f"sha256:{c.bundle.digest}"),
        ("model", f"{o.name} version {o.version}"),
        ("stage", meta.stage),
        ("aliases", ", ".join(meta.aliases)),
        ("status", meta.status),
        ("origin", f"{o.hostname} ({o.appliance_id})"),
        ("exported", datetime.fromtimestamp(m.created / 1000).isoformat(sep=" ", timespec="seconds")
         + (f" by {o.exported_by}" if o.exported_by else "")),
        ("run", f"{run.info.run_name} ({run.info.run_id}) in {c.run.experiment_name}" if run else "none"),
        ("signer", who),
        ("integrity", "every file matches the manifest"),
    ]))
    print()
    print(tables.render(["FILE", "SIZE", "SHA256"], [[f.path, f.size, f.sha256[:16]] for f in m.files]))
    return 0


# -- parser ------------------------------------------------------------------------------
def _add(sub, name: str, handler, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.set_defaults(handler=handler, needs_store=False)
    return p


def add_commands(sub) -> None:
    """Register `keys` and `bundle` on the top-level subparsers."""
    keys = sub.add_parser("keys", help="signing keys for model bundles: this appliance's and trusted ones")
    ks = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(ks, "generate", cmd_keys_generate, "make this appliance's ed25519 signing key")
    p.add_argument("--force", action="store_true", help="replace an existing key (appliances trusting it stop "
                                                        "accepting new bundles)")
    p = _add(ks, "trust", cmd_keys_trust, "trust another appliance's public key for bundle import")
    p.add_argument("key", metavar="FILE_OR_KEY", help="a .pub file, or the key: base64, 'ed25519 <base64>', "
                                                      "ssh-ed25519 or PEM")
    p.add_argument("--name", required=True, help="what to call the key (letters, digits, . _ -)")
    p = _add(ks, "untrust", cmd_keys_untrust, "stop trusting a key")
    p.add_argument("name", metavar="NAME")
    p = _add(ks, "list", cmd_keys_list, "this appliance's key and the trusted keys, with fingerprints")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    bundle = sub.add_parser("bundle", help="move a model version to another appliance as one signed file")
    bs = bundle.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(bs, "export", cmd_export, "write a registered version, its run and lineage to a bundle")
    p.add_argument("uri", metavar="URI", help="models:/NAME@ALIAS, models:/NAME/N, models:/NAME/STAGE or "
                                              "models:/NAME/latest")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle (.tar; .tar.gz compresses)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--key", metavar="PATH", help="sign with this ed25519 private key "
                                                   "(default: this appliance's key, if it has one)")
    how.add_argument("--unsigned", action="store_true", help="do not sign")
    p = _add(bs, "import", cmd_import, "verify a bundle and register its version here")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--name", metavar="NAME", help="register under this name (default: the original; "
                                                  "catalog.schema.model works)")
    p.add_argument("--alias", metavar="ALIAS", help="point this alias at the imported version")
    p.add_argument("--timeout", metavar="S", type=float,
                   help="seconds to wait for the version to be verified READY (default 300)")
    p = _add(bs, "inspect", cmd_inspect, "verify a bundle and show what it holds (writes nothing)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
