"""The artifact store: content-addressed blobs on disk, plus an LMDB tree of paths.

Two layers:

* `BlobStore` keeps file contents under ``<data>/blobs``, named only by their sha256
  (``blobs/ab/cd/<sha256>``). A blob is streamed to ``blobs/tmp`` while it is hashed,
  fsynced, renamed into place and its directory fsynced, so a blob that exists is whole.
  Identical contents are stored once.
* `ArtifactStore` maps full artifact paths (``'1/<run_id>/artifacts/model/model.onnx'``,
  what MLflow's artifact proxy ``/api/2.0/mlflow-artifacts/artifacts/<path>`` sees) to
  `ArtifactEntry` records in the ``artifacts`` LMDB sub-database. Only files have keys;
  directories are implied by the paths under them (there are no empty directories).

A client-supplied path never becomes a file-system path: it is validated by
`check_artifact_path` and used only as an LMDB key.

Blob garbage collection is out of scope: deleting or overwriting a tree entry leaves
its blob on disk (another entry may share it). A later sweep can remove the blobs that
no entry references.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import lmdb
import msgspec

from cairn.engine.errors import CONTROL_CHARACTER, INTERNAL_ERROR, CairnError, invalid, not_found
from cairn.engine.store.lmdbenv import Batch, LmdbEnv


class FileInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One artifact listing entry (MLflow's FileInfo): size only for files."""

    path: str
    is_dir: bool
    file_size: int | None = None


# sub-db name -> dupsort flag; the engine merges this into its table list.
ARTIFACT_TABLES = {"artifacts": False}

CHUNK_SIZE = 1 << 20  # 1 MiB: the unit of streamed reads and writes
# LMDB's key limit is 511 bytes; keep room for a prefix in other tables (copies, indexes).
MAX_PATH_BYTES = 400
# Temp files older than this are leftovers of interrupted writes: removed on open.
TMP_MAX_AGE_S = 3600.0
# A data directory's blob store, and the scratch space inside it that writes stream
# through (other streamed copies, such as a bundle's spooled files, use it too).
BLOBS_DIR = "blobs"
SCRATCH_DIR = "tmp"

_SHA_RE = re.compile(r"[0-9a-f]{64}")
_DRIVE_RE = re.compile(r"[A-Za-z]:")
# How many entries `walk` reads per read transaction.
_WALK_BATCH = 1000


# -- paths -------------------------------------------------------------------------------
def check_artifact_path(path: str, *, allow_empty: bool = False) -> str:
    """Normalise and validate a client-supplied relative artifact path.

    Returns the normal form: '/'-separated segments, no leading './', no trailing '/'.
    ``'.'``, ``'./'`` and ``''`` mean the root and normalise to ``''``, which is accepted
    only with ``allow_empty``.

    Rejected with INVALID_PARAMETER_VALUE (the message names the path and the reason):
    a non-string; NUL bytes and other control characters; backslashes; a Windows drive
    prefix (``'C:'``); an absolute path (leading '/'); empty segments (repeated '/', which
    is an error, not something silently collapsed); ``'.'`` or ``'..'`` segments (other
    than one or more leading './'); text that is not encodable as UTF-8 (lone
    surrogates); more than `MAX_PATH_BYTES` bytes of UTF-8.
    """
    if not isinstance(path, str):
        raise invalid(f"Invalid artifact path {path!r}: not a string")

    def bad(reason: str) -> CairnError:
        return invalid(f"Invalid artifact path {path!r}: {reason}")

    if "\x00" in path:
        raise bad("contains a NUL byte")
    if CONTROL_CHARACTER.search(path):
        raise bad("contains a control character")
    if "\\" in path:
        raise bad("contains a backslash")
    if _DRIVE_RE.match(path):
        raise bad("starts with a Windows drive letter")
    if path.startswith("/"):
        raise bad("is absolute")
    p = path
    while p.startswith("./"):
        p = p[2:]
    if p.endswith("/"):
        p = p[:-1]
    if p == ".":
        p = ""
    if not p:
        if allow_empty:
            return ""
        raise bad("is empty")
    for seg in p.split("/"):
        if seg == "":
            raise bad("has an empty segment (repeated '/')")
        if seg == "..":
            raise bad("has a '..' segment")
        if seg == ".":
            raise bad("has a '.' segment")
    try:
        n = len(p.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad("is not valid Unicode") from None
    if n > MAX_PATH_BYTES:
        raise bad(f"is {n} bytes long in UTF-8 (at most {MAX_PATH_BYTES})")
    return p


def _join(a: str, b: str) -> str:
    """Join two normalised paths; checks the combined length."""
    if not a:
        return b
    if not b:
        return a
    joined = f"{a}/{b}"
    if len(joined.encode("utf-8")) > MAX_PATH_BYTES:
        raise invalid(
            f"Invalid artifact path {joined!r}: longer than {MAX_PATH_BYTES} bytes in UTF-8"
        )
    return joined


# -- blobs -------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    """Make a directory's entries durable (a no-op where directories cannot be opened)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_sha(sha: str) -> str:
    if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
        raise invalid(f"Invalid blob id {sha!r}: expected 64 lowercase hex characters")
    return sha


def _chunks(data: bytes | bytearray | memoryview | Iterable[bytes] | BinaryIO) -> Iterator[bytes]:
    """The content as a stream of byte chunks, never reading a stream whole."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        for i in range(0, len(view), CHUNK_SIZE):
            yield view[i : i + CHUNK_SIZE]
        return
    if isinstance(data, str):
        raise TypeError("artifact content must be bytes, not str")
    read = getattr(data, "read", None)
    if read is not None:
        while True:
            chunk = read(CHUNK_SIZE)
            if not chunk:
                return
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"artifact stream returned {type(chunk).__name__}, not bytes")
            yield chunk
    for chunk in data:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"artifact chunk is {type(chunk).__name__}, not bytes")
        if chunk:
            yield chunk


def blob_scratch(data_dir: str | os.PathLike) -> Path:
    """The blob store's scratch directory of data directory `data_dir` (BlobStore.tmp)."""
    return Path(data_dir) / BLOBS_DIR / SCRATCH_DIR


class BlobStore:
    """Immutable files named by the sha256 of their content: ``root/ab/cd/<sha256>``.

    Writes stream through ``root/tmp`` (see `write`), so a crash mid-write leaves at most
    a temp file, which is never visible as a blob; temp files older than
    ``tmp_max_age_s`` (an hour by default) are removed when the store is opened. Younger
    ones are left alone: another process may be writing them.

    Nothing here deletes blobs (garbage collection is out of scope).
    """

    def __init__(self, root: Path, *, tmp_max_age_s: float = TMP_MAX_AGE_S):
        self.root = Path(root)
        self.tmp = self.root / SCRATCH_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._clean_tmp(tmp_max_age_s)

    def _clean_tmp(self, max_age_s: float) -> None:
        cutoff = time.time() - max_age_s
        for entry in os.scandir(self.tmp):
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass  # another process cleaned or finished it

    def path(self, sha: str) -> Path:
        """Where blob `sha` lives (whether or not it exists); for zero-copy serving."""
        _check_sha(sha)
        return self.root / sha[:2] / sha[2:4] / sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def open(self, sha: str) -> BinaryIO:
        """The blob for reading; RESOURCE_DOES_NOT_EXIST if absent."""
        try:
            return open(self.path(sha), "rb")
        except FileNotFoundError:
            raise not_found(f"Blob {sha} does not exist") from None

    def write(self, data: bytes | Iterable[bytes] | BinaryIO) -> tuple[str, int]:
        """Store content; return ``(sha256 hex, size in bytes)``.

        `data` is bytes-like, an iterable of byte chunks (e.g. a generator), or a binary
        file object read in 1 MiB chunks; a stream is never held whole in memory. The
        content goes to a temp file in ``root/tmp`` while it is hashed; the file is
        fsynced and renamed to its final name and the directory fsynced. If the blob
        already exists (same content written before) the temp file is dropped. On any
        error the temp file is removed and the error re-raised.
        """
        h = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in _chunks(data):
                    h.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            sha = h.hexdigest()
            final = self.path(sha)
            try:
                present = final.stat().st_size == size
            except FileNotFoundError:
                present = False
            if present:
                tmp.unlink()
                return sha, size
            self._make_dirs(final.parent)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return sha, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _make_dirs(self, leaf: Path) -> None:
        """Create ``root/ab/cd`` durably (fsync each parent whose entries changed)."""
        for d in (leaf.parent, leaf):
            if not d.is_dir():
                d.mkdir(exist_ok=True)
                _fsync_dir(d.parent)


# -- the tree ----------------------------------------------------------------------------
class ArtifactEntry(msgspec.Struct, array_like=True, frozen=True):
    """One file in the tree (the LMDB value): its blob, size in bytes and write time (ms)."""

    sha256: str
    size: int
    mtime: int


_encode_entry = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(ArtifactEntry).decode

FileInfoList = list[FileInfo]


def _ancestors(key: bytes) -> Iterator[bytes]:
    i = key.find(b"/")
    while i >= 0:
        yield key[:i]
        i = key.find(b"/", i + 1)


def _has_prefix(cur: lmdb.Cursor, prefix: bytes) -> bool:
    return cur.set_range(prefix) and cur.key().startswith(prefix)


class ArtifactStore:
    """Artifacts addressed by a full path under the artifact root.

    Keys of the ``artifacts`` sub-database are the UTF-8 normalised path of each file
    (e.g. ``b'1/<run_id>/artifacts/model/model.onnx'``), values msgpack `ArtifactEntry`.
    Every path argument goes through `check_artifact_path`.

    Invariant: no path is both a file and a directory; `put` and `copy` refuse writes
    that would break it. Listing a directory is a range scan over ``'dir/'`` that jumps
    past each child subtree (seek to ``child + '0'``, since ``'0' == chr(ord('/') + 1)``),
    so its cost follows the number of immediate children, not of descendants.
    """

    def __init__(self, lenv: LmdbEnv, blobs: BlobStore):
        self.lenv = lenv
        self.blobs = blobs
        self.db = lenv.dbs["artifacts"]

    # -- writes ---------------------------------------------------------------------------
    def put(self, path: str, data: bytes | Iterable[bytes] | BinaryIO) -> FileInfo:
        """Store `data` (see `BlobStore.write`) at file `path`, replacing a file there.

        The blob is written first, outside the writer thread; then one durable tree write
        adds the entry, so a reader never sees a partial file. INVALID_PARAMETER_VALUE if
        `path` is an existing directory, or one of its parents is an existing file (the
        message says which). Returns ``FileInfo(path, is_dir=False, file_size)`` with the
        normalised full path.
        """
        p = check_artifact_path(path)
        sha, size = self.blobs.write(data)
        key = p.encode("utf-8")
        value = _encode_entry(ArtifactEntry(sha, size, int(time.time() * 1000)))

        def op(batch: Batch) -> None:
            txn = batch.txn
            self._check_file_slot(txn, key)
            txn.put(key, value, db=self.db)

        self.lenv.write(op)
        return FileInfo(path=p, is_dir=False, file_size=size)

    def _check_file_slot(self, txn: lmdb.Transaction, key: bytes) -> None:
        """Raise unless `key` may hold a file: no ancestor is a file, it is not a dir."""
        for anc in _ancestors(key):
            if txn.get(anc, db=self.db) is not None:
                raise invalid(
                    f"Cannot write artifact {key.decode()!r}: its parent "
                    f"{anc.decode()!r} is a file"
                )
        if _has_prefix(txn.cursor(db=self.db), key + b"/"):
            raise invalid(f"Cannot write artifact {key.decode()!r}: it is a directory")

    def delete(self, path: str) -> int:
        """Remove the file at `path`, or every file under directory `path`; return how
        many entries were removed (0 if nothing was there). The root cannot be deleted
        as a whole. Blobs stay on disk (no garbage collection)."""
        key = check_artifact_path(path).encode("utf-8")
        prefix = key + b"/"

        def op(batch: Batch) -> int:
            txn = batch.txn
            n = 1 if txn.delete(key, db=self.db) else 0
            cur = txn.cursor(db=self.db)
            if cur.set_range(prefix):
                while cur.key().startswith(prefix):
                    n += 1
                    if not cur.delete():  # moves to the next entry; False at the end
                        break
            return n

        return self.lenv.write(op)

    def copy(self, src: str, dst: str) -> int:
        """Copy the file or subtree at `src` to `dst` (entries only: blobs are shared);
        return how many files were copied.

        A file copies to file `dst`; a directory's files keep their paths relative to
        `src` under `dst`. Existing files at the target paths are replaced. All or
        nothing: RESOURCE_DOES_NOT_EXIST if `src` has no files, INVALID_PARAMETER_VALUE if
        `src` and `dst` overlap (one is, or is inside, the other) or a target path
        conflicts with an existing file or directory.
        """
        s = check_artifact_path(src)
        d = check_artifact_path(dst)
        if s == d or d.startswith(s + "/") or s.startswith(d + "/"):
            raise invalid(f"Cannot copy artifacts from {s!r} to {d!r}: the paths overlap")
        skey, dkey = s.encode("utf-8"), d.encode("utf-8")

        def op(batch: Batch) -> int:
            txn = batch.txn
            items: list[tuple[bytes, bytes]] = []
            value = txn.get(skey, db=self.db)
            if value is not None:
                items.append((dkey, value))
            else:
                prefix = skey + b"/"
                cur = txn.cursor(db=self.db)
                ok = cur.set_range(prefix)
                while ok and cur.key().startswith(prefix):
                    items.append((dkey + cur.key()[len(skey) :], cur.value()))
                    ok = cur.next()
            if not items:
                raise not_found(f"Artifact path {s!r} does not exist")
            for key, value in items:
                if len(key) > MAX_PATH_BYTES:
                    raise invalid(
                        f"Invalid artifact path {key.decode()!r}: longer than "
                        f"{MAX_PATH_BYTES} bytes in UTF-8"
                    )
                self._check_file_slot(txn, key)
                txn.put(key, value, db=self.db)
            return len(items)

        return self.lenv.write(op)

    # -- reads ----------------------------------------------------------------------------
    def get(self, path: str) -> ArtifactEntry:
        """The entry of file `path`; RESOURCE_DOES_NOT_EXIST naming the path if there is
        no file there (a directory is not a file)."""
        p = check_artifact_path(path)
        with self.lenv.read() as txn:
            value = txn.get(p.encode("utf-8"), db=self.db)
        if value is None:
            raise not_found(f"Artifact {p!r} does not exist")
        return _decode_entry(value)

    def open(self, path: str) -> BinaryIO:
        """File `path` for reading (binary); RESOURCE_DOES_NOT_EXIST if absent,
        INTERNAL_ERROR if its entry exists but its blob is gone."""
        entry = self.get(path)
        try:
            return open(self.blobs.path(entry.sha256), "rb")
        except FileNotFoundError:
            raise CairnError(
                f"Artifact {path!r} is missing its content (blob {entry.sha256})",
                INTERNAL_ERROR,
            ) from None

    def list(self, root: str, path: str | None = None) -> FileInfoList:
        """Immediate children of directory ``root/path``, sorted by path, MLflow-style.

        `root` is the artifact root the caller lists from (e.g. ``'1/<run>/artifacts'``,
        ``''`` for the whole tree) and `path` a directory relative to it (None or ``''``:
        the root itself). Each `FileInfo.path` is relative to `root`, e.g.
        ``list('1/abc/artifacts', 'model')`` -> ``[FileInfo('model/MLmodel', False, 120),
        FileInfo('model/sub', True)]``; directories carry no size. Listing a file, or a
        directory that does not exist, returns ``[]`` (as MLflow does).
        """
        r = check_artifact_path(root, allow_empty=True)
        rel = check_artifact_path(path if path is not None else "", allow_empty=True)
        full = _join(r, rel)
        dkey = full.encode("utf-8")
        prefix = dkey + b"/" if dkey else b""
        out: list[tuple[bytes, FileInfo]] = []
        base = rel + "/" if rel else ""
        with self.lenv.read() as txn:
            if dkey and txn.get(dkey, db=self.db) is not None:
                return []
            cur = txn.cursor(db=self.db)
            ok = cur.set_range(prefix)
            while ok:
                key = cur.key()
                if not key.startswith(prefix):
                    break
                rest = key[len(prefix) :]
                slash = rest.find(b"/")
                if slash < 0:
                    size = _decode_entry(cur.value()).size
                    out.append((rest, FileInfo(path=base + rest.decode(), is_dir=False, file_size=size)))
                    ok = cur.next()
                else:
                    name = rest[:slash]
                    out.append((name, FileInfo(path=base + name.decode(), is_dir=True)))
                    ok = cur.set_range(prefix + name + b"0")  # past the subtree 'name/...'
        # Key order puts 'a.txt' ('.' < '/') before the children of dir 'a': sort by name.
        out.sort(key=lambda t: t[0])
        return [info for _, info in out]

    def walk(self, prefix: str = "") -> Iterator[tuple[str, ArtifactEntry]]:
        """Every file at or under `prefix` (``''``: the whole tree) as ``(full path,
        entry)``, in key order (the file `prefix` itself first if it is one).

        Reads in batches of short read transactions, so a long walk pins no snapshot;
        files written or deleted during the walk may or may not be seen.
        """
        p = check_artifact_path(prefix, allow_empty=True)
        pkey = p.encode("utf-8")
        if pkey:
            with self.lenv.read() as txn:
                value = txn.get(pkey, db=self.db)
            if value is not None:
                yield p, _decode_entry(value)
        scan = pkey + b"/" if pkey else b""
        after: bytes | None = None
        while True:
            batch: list[tuple[bytes, bytes]] = []
            with self.lenv.read() as txn:
                cur = txn.cursor(db=self.db)
                if after is None:
                    ok = cur.set_range(scan)
                else:
                    ok = cur.set_range(after)
                    if ok and cur.key() == after:
                        ok = cur.next()
                while ok and len(batch) < _WALK_BATCH:
                    key = cur.key()
                    if not key.startswith(scan):
                        ok = False
                        break
                    batch.append((key, cur.value()))
                    ok = cur.next()
            for key, value in batch:
                yield key.decode("utf-8"), _decode_entry(value)
            if not ok or not batch:
                return
            after = batch[-1][0]
