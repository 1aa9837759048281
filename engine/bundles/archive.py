"""The model bundle file: a tar archive with a signed manifest of sha256 digests.

Layout (every name under `cairn-bundle/`):
- `manifest.json`: what the bundle is, where it came from and the size and sha256 of
  every other file; first in the archive, so `inspect` and a truncated copy show it;
- `manifest.sig`: the ed25519 signature over the exact bytes of manifest.json, with the
  signer's public key and fingerprint (absent from an unsigned bundle);
- `version.json`, `lineage.json`, `run.json` (engine/bundles/transfer.py writes them) and
  `model/...`: the version's registered files (ONNX, MLmodel, the original model).

Signing the manifest alone covers every file: each one must match its digest there.
Reading verifies everything before anything is returned, so an importer never writes a
record from a bundle that later turns out to be damaged. It streams: each file is hashed
as it is copied to a temporary file (SpooledFiles), so a bundle's size is bounded by
disk, not memory. Writing takes the files in memory (an export of one version).
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import tempfile
import time
import weakref
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import msgspec

from cairn.engine.bundles.signing import KEY_TYPE, KeyInfo, fingerprint, raw_public, sign, signature_valid
from cairn.engine.errors import CairnError, invalid, not_found
from cairn.engine.store.artifacts import check_artifact_path

BUNDLE_FORMAT = "cairn-model-bundle"
FORMAT_VERSION = 1
ROOT = "cairn-bundle"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
# A bundle is one model version; more members than this is not one of ours.
MAX_MEMBERS = 10_000
# A bundle's files are spooled to disk while they are hashed, and verified before
# anything is written: the sizes its tar headers declare are checked against this before
# a byte is read, so a crafted or gzip-bombed file is refused instead of filling the disk.
MAX_CONTENT_BYTES = 16 * 1024**3
# The manifest and its signature are read into memory: a real one is a few KiB per
# hundred files.
MAX_MANIFEST_BYTES = 16 * 1024**2
_CHUNK = 1024 * 1024


class FileDigest(msgspec.Struct, kw_only=True):
    path: str  # relative to ROOT
    size: int
    sha256: str


class BundleOrigin(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The appliance and version a bundle was exported from."""

    appliance_id: str
    hostname: str = ""
    name: str  # the registered model's full name (catalog.schema.model)
    version: str
    run_id: str = ""
    source: str = ""
    exported_by: str = ""


class Manifest(msgspec.Struct, kw_only=True, omit_defaults=True):
    format: str = BUNDLE_FORMAT
    format_version: int = FORMAT_VERSION
    created: int  # ms since the epoch
    origin: BundleOrigin
    files: list[FileDigest]


class ManifestSignature(msgspec.Struct, kw_only=True):
    algorithm: str
    public_key: str  # base64 of the 32 raw bytes
    fingerprint: str
    signature: str  # base64


class Bundle(msgspec.Struct, kw_only=True):
    """A bundle read and checked against its manifest (signature trust not yet decided)."""

    path: str
    digest: str  # sha256 of the manifest bytes: names the bundle's whole content
    manifest: Manifest
    signature: ManifestSignature | None
    files: Mapping[str, bytes]  # relative path -> content, every one matching its digest
    size: int = 0  # bytes of the archive

    def open_file(self, rel: str) -> BinaryIO:
        """One file's content as a stream (from its spooled copy, for a read bundle)."""
        if isinstance(self.files, SpooledFiles):
            return self.files.open(rel)
        return io.BytesIO(self.files[rel])

    def close(self) -> None:
        """Remove the spooled copies of the files (a read bundle's); idempotent."""
        if isinstance(self.files, SpooledFiles):
            self.files.close()


class SpooledFiles(Mapping[str, bytes]):
    """A bundle's files as read from its archive, each in a temporary file of its own:
    a model of gigabytes is never held in memory. `files[rel]` reads one whole file,
    `open(rel)` streams it. The temporary files go with `close()`, or with this object;
    in a directory the blob store cleans at open, a crash leaves nothing for long."""

    def __init__(self, spool_dir: Path | None):
        self._dir = spool_dir
        self._paths: dict[str, str] = {}
        self._finalizer = weakref.finalize(self, _unlink_all, self._paths)

    def spool(self, rel: str, stream, size: int) -> str:
        """Copy `size` bytes of `stream` to a temporary file for `rel`; their sha256.
        EOFError when the stream ends first."""
        fd, path = tempfile.mkstemp(prefix="bundle-", dir=self._dir)
        self._paths[rel] = path
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            left = size
            while left > 0:
                chunk = stream.read(min(_CHUNK, left))
                if not chunk:
                    raise EOFError(f"{rel} is cut short")
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
        return digest.hexdigest()

    def open(self, rel: str) -> BinaryIO:
        return open(self._paths[rel], "rb")

    def __getitem__(self, rel: str) -> bytes:
        with self.open(rel) as f:
            return f.read()

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def close(self) -> None:
        self._finalizer()


def _unlink_all(paths: dict[str, str]) -> None:
    for path in paths.values():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    paths.clear()


class SignerCheck(msgspec.Struct, kw_only=True, omit_defaults=True):
    signed: bool
    fingerprint: str = ""
    trusted_as: str = ""  # the trusted key's name, when one vouched for the bundle
    warning: str = ""  # what was not checked, for the importer to print
    refusal: str = ""  # why this appliance's trusted keys refuse the bundle


# -- writing -----------------------------------------------------------------------------
def write_bundle(out: str | os.PathLike, origin: BundleOrigin, files: dict[str, bytes], key=None) -> Bundle:
    """Write `files` (relative path -> bytes) with a manifest, signed with `key` (an
    Ed25519PrivateKey) when given. Written to a temporary name and renamed, so `out`
    is never a half-written bundle. A name ending .gz or .tgz is gzip-compressed."""
    digests = [
        FileDigest(path=p, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        for p, data in sorted(files.items())
    ]
    manifest = Manifest(created=int(time.time() * 1000), origin=origin, files=digests)
    manifest_bytes = msgspec.json.format(msgspec.json.encode(manifest), indent=2)
    sig = None
    if key is not None:
        raw = raw_public(key.public_key())
        sig = ManifestSignature(
            algorithm=KEY_TYPE, public_key=base64.b64encode(raw).decode(), fingerprint=fingerprint(raw),
            signature=base64.b64encode(sign(key, manifest_bytes)).decode(),
        )
    path = Path(out).expanduser()
    mode = "w:gz" if path.name.endswith((".gz", ".tgz")) else "w"
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with tarfile.open(tmp, mode, format=tarfile.PAX_FORMAT) as tf:
            _add(tf, MANIFEST, manifest_bytes, manifest.created)
            if sig is not None:
                _add(tf, SIGNATURE, msgspec.json.encode(sig), manifest.created)
            for p in sorted(files):
                _add(tf, p, files[p], manifest.created)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CairnError(f"Cannot write the bundle {path}: {exc.strerror or exc}") from None
    return Bundle(
        path=str(path), digest=hashlib.sha256(manifest_bytes).hexdigest(), manifest=manifest,
        signature=sig, files=files, size=path.stat().st_size,
    )


def _add(tf: tarfile.TarFile, rel: str, data: bytes, mtime_ms: int) -> None:
    info = tarfile.TarInfo(f"{ROOT}/{rel}")
    info.size = len(data)
    info.mtime = mtime_ms // 1000
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


# -- reading -----------------------------------------------------------------------------
def read_bundle(path: str | os.PathLike, *, max_bytes: int = MAX_CONTENT_BYTES,
                spool_dir: str | os.PathLike | None = None) -> Bundle:
    """The bundle at `path`, refused with one clear message if it is not a tar, is
    truncated, has no or a bad manifest, a bad signature, or a file that is missing,
    extra or does not match its digest. Its files are spooled to temporary files in
    `spool_dir` (default: the system's); `Bundle.close()` removes them."""
    p = Path(path).expanduser()
    where = f"Bundle {p}"
    if not p.is_file():
        raise not_found(f"{where} does not exist or is not a file")
    files = SpooledFiles(Path(spool_dir) if spool_dir is not None else None)
    try:
        return _verified(p, where, files, max_bytes)
    except BaseException:
        files.close()
        raise


def _verified(p: Path, where: str, files: SpooledFiles, max_bytes: int) -> Bundle:
    small, digests = _read_members(p, where, files, max_bytes)
    manifest_bytes = small.get(MANIFEST)
    if manifest_bytes is None:
        raise invalid(f"{where} has no manifest ({ROOT}/{MANIFEST}): not a Cairn model bundle, or truncated")
    # The signature first: it covers the exact bytes, so a manifest changed after signing
    # is named as such, whatever the change did to its JSON.
    sig = _signature(small.get(SIGNATURE), manifest_bytes, where)
    try:
        manifest = msgspec.json.decode(manifest_bytes, type=Manifest)
    except msgspec.DecodeError as exc:
        raise invalid(f"{where} has an unreadable manifest ({ROOT}/{MANIFEST}): {exc}") from None
    if manifest.format != BUNDLE_FORMAT:
        raise invalid(f"{where} is not a Cairn model bundle (format {manifest.format!r})")
    if manifest.format_version > FORMAT_VERSION:
        raise invalid(f"{where} has format version {manifest.format_version}; this Cairn reads up to "
                      f"{FORMAT_VERSION}: upgrade Cairn to import it")
    listed = {}
    for fd in manifest.files:
        if fd.path in listed or fd.path in (MANIFEST, SIGNATURE):
            raise invalid(f"{where}: the manifest lists {fd.path} twice")
        listed[fd.path] = fd
    for rel in digests:
        if rel not in listed:
            raise invalid(f"{where}: file {ROOT}/{rel} is not listed in the manifest (added after export?)")
    for rel, fd in listed.items():
        found = digests.get(rel)
        if found is None:
            raise invalid(f"{where}: file {ROOT}/{rel} listed in the manifest is missing (truncated?)")
        if found != (fd.size, fd.sha256):
            raise invalid(f"{where}: file {ROOT}/{rel} does not match its manifest digest (tampered or corrupt)")
    return Bundle(
        path=str(p), digest=hashlib.sha256(manifest_bytes).hexdigest(), manifest=manifest,
        signature=sig, files=files, size=p.stat().st_size,
    )


def _read_members(p: Path, where: str, files: SpooledFiles,
                  max_bytes: int) -> tuple[dict[str, bytes], dict[str, tuple[int, str]]]:  # fmt: skip
    """The manifest and signature (in memory) and, for every other member, its (size,
    sha256) as spooled into `files`."""
    small: dict[str, bytes] = {}
    digests: dict[str, tuple[int, str]] = {}
    name = ""
    total = 0
    try:
        with tarfile.open(p, "r:*") as tf:
            for n, member in enumerate(tf):
                name = member.name
                if n >= MAX_MEMBERS:
                    raise invalid(f"{where} holds more than {MAX_MEMBERS} files: not a Cairn model bundle")
                rel = _member_path(member, where)
                total += member.size
                if total > max_bytes:
                    raise invalid(f"{where} holds more than {max_bytes:,} bytes of files, more than this "
                                  "appliance accepts in one bundle")
                if rel in small or rel in digests:
                    raise invalid(f"{where} holds {member.name} twice")
                f = tf.extractfile(member)
                if rel in (MANIFEST, SIGNATURE):
                    if member.size > MAX_MANIFEST_BYTES:
                        raise invalid(f"{where}: {member.name} is {member.size:,} bytes, not a Cairn manifest")
                    data = f.read() if f is not None else b""
                    if len(data) != member.size:
                        raise invalid(f"{where} is truncated: {member.name} is cut short")
                    small[rel] = data
                else:  # a regular file (_member_path): extractfile gives its stream
                    try:
                        digests[rel] = (member.size, files.spool(rel, f, member.size))
                    except EOFError:
                        raise invalid(f"{where} is truncated: {member.name} is cut short") from None
    except tarfile.ReadError as exc:
        if not small and not digests and not name:
            raise invalid(f"{where} is not a Cairn model bundle: not a tar archive ({exc})") from None
        raise invalid(f"{where} is truncated or corrupt at {name or 'its start'}: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise invalid(f"{where} is truncated or corrupt at {name or 'its start'}: {exc or type(exc).__name__}") from None
    except OSError as exc:
        raise invalid(f"Cannot read bundle {p}: {exc.strerror or exc}") from None
    return small, digests


def _member_path(member: tarfile.TarInfo, where: str) -> str:
    """The member's path under ROOT; only plain files with clean relative paths (the
    paths become artifact paths, never file-system paths, but a bundle of ours never
    holds anything else)."""
    if not member.isreg():
        raise invalid(f"{where} holds {member.name}, which is not a plain file: not a Cairn model bundle")
    head, sep, rel = member.name.partition("/")
    if head != ROOT or not sep:
        raise invalid(f"{where} holds {member.name}, outside {ROOT}/: not a Cairn model bundle")
    try:
        return check_artifact_path(rel)
    except CairnError:
        raise invalid(f"{where} holds an unsafe path {member.name!r}") from None


def _signature(raw: bytes | None, manifest_bytes: bytes, where: str) -> ManifestSignature | None:
    if raw is None:
        return None
    try:
        sig = msgspec.json.decode(raw, type=ManifestSignature)
        public = base64.b64decode(sig.public_key, validate=True)
        signature = base64.b64decode(sig.signature, validate=True)
    except (msgspec.DecodeError, ValueError):
        raise invalid(f"{where} has an unreadable signature ({ROOT}/{SIGNATURE})") from None
    if sig.algorithm != KEY_TYPE or len(public) != 32:
        raise invalid(f"{where} is signed with an unsupported key ({sig.algorithm}): Cairn signs with ed25519")
    if not signature_valid(public, signature, manifest_bytes):
        raise invalid(
            f"{where}: the signature does not match the manifest ({ROOT}/{MANIFEST} was changed "
            "after signing, or the signature was replaced)"
        )
    # The fingerprint is recomputed, never taken from the file: it names the key that
    # really verified the signature.
    sig.fingerprint = fingerprint(public)
    return sig


def check_signer(bundle: Bundle, trusted: list[KeyInfo]) -> SignerCheck:
    """Where trusted keys are configured, the bundle must be signed by one of them (else
    `refusal` says why not); where none is, it passes with a `warning` that says what
    was not checked. A signature that does not verify was already refused by
    read_bundle, whatever the configuration."""
    sig = bundle.signature
    where = f"Bundle {bundle.path}"
    if trusted:
        if sig is None:
            return SignerCheck(signed=False, refusal=(
                f"{where} is unsigned, and this appliance accepts only bundles signed by a trusted key "
                "(see `cairn keys list`)"))
        for k in trusted:
            if k.public_key == sig.public_key:
                return SignerCheck(signed=True, fingerprint=sig.fingerprint, trusted_as=k.name)
        return SignerCheck(signed=True, fingerprint=sig.fingerprint, refusal=(
            f"{where} is signed by {sig.fingerprint}, which is not a trusted key on this appliance "
            "(trust it with `cairn keys trust` if you know its owner)"))
    if sig is None:
        return SignerCheck(signed=False, warning="the bundle is unsigned and no trusted keys are configured: "
                                                 "its origin was not checked (`cairn keys trust` makes import "
                                                 "require a trusted signature)")
    return SignerCheck(signed=True, fingerprint=sig.fingerprint,
                       warning=f"no trusted keys are configured: the signer {sig.fingerprint} was not checked")
