"""Signing keys for model bundles: this appliance's ed25519 key and the keys it trusts.

Everything lives in DATA/keys/ as plain files, so an operator can audit or provision it
with ordinary tools:
- `signing.key`: this appliance's private key (PKCS#8 PEM, mode 0600);
- `signing.pub`: its public key as one line, `ed25519 <base64 of the 32 raw bytes> <host>`;
- `trusted/<NAME>.pub`: a trusted signer's public key, in the same one-line form.

A fingerprint is `SHA256:` and the unpadded base64 of the sha256 of the raw public key,
as OpenSSH prints them, so two operators can compare keys over the phone.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import socket
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from cairn.engine.errors import CairnError, already_exists, invalid, not_found

KEYS_DIR = "keys"
PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"
TRUSTED_DIR = "trusted"
KEY_TYPE = "ed25519"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
_TRUST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A public key given on the command line or in a file is short; a bigger file is not one.
_MAX_KEY_FILE = 64 * 1024


class KeyInfo(msgspec.Struct, kw_only=True):
    """A public key as `cairn keys list` shows it."""

    name: str
    public_key: str  # base64 of the 32 raw bytes
    fingerprint: str
    path: str = ""


def keys_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / KEYS_DIR


def fingerprint(raw: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def _info(name: str, raw: bytes, path: Path | str = "") -> KeyInfo:
    return KeyInfo(name=name, public_key=base64.b64encode(raw).decode(), fingerprint=fingerprint(raw), path=str(path))


def public_key_line(raw: bytes, comment: str = "") -> str:
    return f"{KEY_TYPE} {base64.b64encode(raw).decode()} {comment}".rstrip() + "\n"


# -- this appliance's key ----------------------------------------------------------------
def generate_key(data_dir: str | os.PathLike, *, force: bool = False) -> KeyInfo:
    """A new signing key for this appliance; refuses to replace one unless `force`
    (a replaced key invalidates the trust every other appliance placed in it)."""
    folder = keys_dir(data_dir)
    priv_path = folder / PRIVATE_KEY_FILE
    if priv_path.exists() and not force:
        raise already_exists(
            f"A signing key already exists at {priv_path}: appliances that trust it would "
            "stop accepting this one's bundles; use --force to replace it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = raw_public(key.public_key())
    # Created 0600 from the start (never world-readable, not even for a moment), then
    # renamed over the old one so a crash leaves either the old key or the new one.
    tmp = priv_path.with_name(f".{PRIVATE_KEY_FILE}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, priv_path)
    (folder / PUBLIC_KEY_FILE).write_text(public_key_line(raw, socket.gethostname()))
    return _info("this appliance", raw, priv_path)


def own_key_path(data_dir: str | os.PathLike) -> Path | None:
    path = keys_dir(data_dir) / PRIVATE_KEY_FILE
    return path if path.exists() else None


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """An ed25519 private key from a PEM (PKCS#8, as `cairn keys generate` writes) or
    OpenSSH file; no passphrase (an appliance signs unattended)."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise not_found(f"Cannot read the signing key {p}: {exc.strerror or exc}") from None
    loaders = (serialization.load_pem_private_key, serialization.load_ssh_private_key)
    for load in loaders:
        try:
            key = load(data, password=None)
        except (ValueError, TypeError, binascii.Error):
            continue
        if isinstance(key, Ed25519PrivateKey):
            return key
        raise invalid(f"The signing key {p} is not an ed25519 key")
    raise invalid(f"The signing key {p} is not a PEM or OpenSSH private key without a passphrase")


def own_key_info(data_dir: str | os.PathLike) -> KeyInfo | None:
    path = own_key_path(data_dir)
    if path is None:
        return None
    return _info("this appliance", raw_public(load_private_key(path).public_key()), path)


# -- trusted keys ------------------------------------------------------------------------
def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes of a public key written as `ed25519 <base64> [comment]` (our
    .pub line), bare base64, `ssh-ed25519 AAAA... [comment]` or a PEM public key."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            key = None
    elif text.startswith("ssh-ed25519 "):
        try:
            key = serialization.load_ssh_public_key(text.encode())
        except ValueError:
            key = None
    else:
        words = text.split()
        if len(words) >= 2 and words[0] == KEY_TYPE:
            words = words[1:]
        try:
            raw = base64.b64decode(words[0], validate=True) if words else b""
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise invalid("Not an ed25519 public key: expected the base64 of 32 bytes, "
                          "an 'ed25519 <base64>' line, an ssh-ed25519 line or a PEM key")
        return raw
    if not isinstance(key, Ed25519PublicKey):
        raise invalid("Not an ed25519 public key")
    return raw_public(key)


def read_public_key_arg(file_or_text: str) -> bytes:
    """A key given as a file path or as the key text itself (`cairn keys trust`)."""
    p = Path(file_or_text).expanduser()
    if p.is_file():
        if p.stat().st_size > _MAX_KEY_FILE:
            raise invalid(f"{p} is too large to be a public key")
        return parse_public_key(p.read_text(errors="replace"))
    if file_or_text.endswith((".pub", ".pem")) and " " not in file_or_text.strip():
        raise not_found(f"No such key file: {p}")
    return parse_public_key(file_or_text)


def _trusted_dir(data_dir) -> Path:
    return keys_dir(data_dir) / TRUSTED_DIR


def _check_trust_name(name: str) -> str:
    if not isinstance(name, str) or not _TRUST_NAME.fullmatch(name):
        raise invalid(f"Invalid key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                      "starting with a letter or digit")
    return name


def trust_key(data_dir: str | os.PathLike, name: str, raw: bytes) -> KeyInfo:
    name = _check_trust_name(name)
    for k in trusted_keys(data_dir):
        if k.name == name:
            raise already_exists(f"A trusted key named {name} already exists ({k.fingerprint}); "
                                 "untrust it first to replace it")
        if k.fingerprint == fingerprint(raw):
            raise already_exists(f"This key is already trusted as {k.name} ({k.fingerprint})")
    folder = _trusted_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pub"
    path.write_text(public_key_line(raw, name))
    return _info(name, raw, path)


def untrust_key(data_dir: str | os.PathLike, name: str) -> KeyInfo:
    name = _check_trust_name(name)
    for k in trusted_keys(data_dir):
        if k.name == name:
            Path(k.path).unlink()
            return k
    raise not_found(f"No trusted key named {name} (see `cairn keys list`)")


def trusted_keys(data_dir: str | os.PathLike) -> list[KeyInfo]:
    """Every trusted key, by name. A file that does not parse is an error, not skipped:
    silently trusting fewer keys than the operator configured would hide a mistake."""
    folder = _trusted_dir(data_dir)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.pub")):
        try:
            raw = parse_public_key(path.read_text(errors="replace"))
        except CairnError as exc:
            raise CairnError(f"Trusted key file {path} is unreadable: {exc.message}", exc.error_code) from None
        out.append(_info(path.stem, raw, path))
    return out


# -- signatures --------------------------------------------------------------------------
def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def signature_valid(raw_public_key: bytes, signature: bytes, data: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
