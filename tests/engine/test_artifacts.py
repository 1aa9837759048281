"""The artifact store on a real LMDB environment and blob folder (no mocks)."""
from __future__ import annotations

import hashlib
import io
import os
import time
import tracemalloc
from pathlib import Path

import pytest

from cairn.engine.errors import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, CairnError
from cairn.engine.store.artifacts import (
    ARTIFACT_TABLES,
    MAX_PATH_BYTES,
    ArtifactEntry,
    ArtifactStore,
    BlobStore,
    FileInfo,
    _encode_entry,
    check_artifact_path,
)
from cairn.engine.store.lmdbenv import LmdbEnv

ROOT = "1/0123456789abcdef0123456789abcdef/artifacts"


@pytest.fixture
def lenv(tmp_path: Path):
    env = LmdbEnv(tmp_path / "db", {**ARTIFACT_TABLES})
    yield env
    env.close()


@pytest.fixture
def store(lenv: LmdbEnv, tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(lenv, BlobStore(tmp_path / "blobs"))


def blob_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts]


def read_all(store: ArtifactStore, path: str) -> bytes:
    with store.open(path) as f:
        return f.read()


# -- paths ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "/abs",
        "../x",
        "a/../b",
        "a/..",
        "a\\b",
        "a\x00b",
        "a\nb",
        "C:/x",
        "c:x",
        "",
        ".",
        "./",
        "a//b",
        "a//",
        "a/./b",
        "a" * (MAX_PATH_BYTES + 1),
        "\udcff",
    ],
)
def test_bad_paths_rejected(store: ArtifactStore, bad: str):
    with pytest.raises(CairnError) as ei:
        check_artifact_path(bad)
    assert ei.value.error_code == INVALID_PARAMETER_VALUE
    assert repr(bad) in ei.value.message
    with pytest.raises(CairnError) as ei:
        store.put(bad, b"x")
    assert ei.value.error_code == INVALID_PARAMETER_VALUE
    # nothing was stored
    assert list(store.walk("")) == []


@pytest.mark.parametrize(
    "raw,norm",
    [
        ("a", "a"),
        ("a/b.txt", "a/b.txt"),
        ("./a/b", "a/b"),
        ("././a", "a"),
        ("a/b/", "a/b"),
        ("dir with space/ünïcode ✓.bin", "dir with space/ünïcode ✓.bin"),
        ("ab:c/d", "ab:c/d"),
        ("..a/b..", "..a/b.."),
        ("a" * MAX_PATH_BYTES, "a" * MAX_PATH_BYTES),
    ],
)
def test_good_paths_normalised(raw: str, norm: str):
    assert check_artifact_path(raw) == norm


def test_empty_allowed_as_root():
    assert check_artifact_path("", allow_empty=True) == ""
    assert check_artifact_path(".", allow_empty=True) == ""
    assert check_artifact_path("./", allow_empty=True) == ""
    with pytest.raises(CairnError):
        check_artifact_path("//", allow_empty=True)
    with pytest.raises(CairnError):
        check_artifact_path(None)  # type: ignore[arg-type]


def test_length_counts_utf8_bytes():
    with pytest.raises(CairnError) as ei:
        check_artifact_path("é" * (MAX_PATH_BYTES // 2 + 1))
    assert "bytes" in ei.value.message


# -- round trips ---------------------------------------------------------------------------
def test_binary_round_trip(store: ArtifactStore):
    data = bytes(range(256)) * 1000 + b"\x00\r\n\xff"
    info = store.put(f"{ROOT}/bin/data.bin", data)
    assert info == FileInfo(path=f"{ROOT}/bin/data.bin", is_dir=False, file_size=len(data))
    assert read_all(store, f"{ROOT}/bin/data.bin") == data
    entry = store.get(f"{ROOT}/bin/data.bin")
    assert isinstance(entry, ArtifactEntry)
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert entry.size == len(data)
    assert abs(entry.mtime - time.time() * 1000) < 60_000
    assert store.blobs.path(entry.sha256).read_bytes() == data


def test_put_accepts_file_objects_and_empty(store: ArtifactStore):
    store.put("a/f", io.BytesIO(b"hello"))
    store.put("a/empty", b"")
    store.put("a/mv", memoryview(b"view"))
    store.put("a/chunks", iter([b"he", b"", bytearray(b"llo")]))
    assert read_all(store, "a/f") == b"hello"
    assert read_all(store, "a/empty") == b""
    assert read_all(store, "a/mv") == b"view"
    assert read_all(store, "a/chunks") == b"hello"
    with pytest.raises(TypeError):
        store.put("a/s", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put("a/s", iter(["text"]))  # type: ignore[list-item]
    assert [p for p, _ in store.walk("a")] == ["a/chunks", "a/empty", "a/f", "a/mv"]
    # a failed write leaves no temp file behind
    assert list((store.blobs.root / "tmp").iterdir()) == []


def test_get_and_open_missing(store: ArtifactStore):
    store.put("d/f", b"x")
    for path in ("nope", "d", "d/g"):
        with pytest.raises(CairnError) as ei:
            store.get(path)
        assert ei.value.error_code == RESOURCE_DOES_NOT_EXIST
        assert repr(path) in ei.value.message
        with pytest.raises(CairnError) as ei:
            store.open(path)
        assert ei.value.error_code == RESOURCE_DOES_NOT_EXIST


def test_open_with_missing_blob_is_internal_error(store: ArtifactStore):
    store.put("f", b"content")
    store.blobs.path(store.get("f").sha256).unlink()
    with pytest.raises(CairnError) as ei:
        store.open("f")
    assert ei.value.error_code == INTERNAL_ERROR


def test_streamed_20mib_write_from_generator(store: ArtifactStore):
    chunk_size = 64 * 1024
    total = 20 * 1024 * 1024
    expected = hashlib.sha256()
    for i in range(total // chunk_size):
        expected.update(bytes([i % 251]) * chunk_size)

    def gen():
        for i in range(total // chunk_size):
            yield bytes([i % 251]) * chunk_size

    tracemalloc.start()
    try:
        info = store.put(f"{ROOT}/big.bin", gen())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.file_size == total
    # Never more than a few chunks alive at once: far below the 20 MiB content.
    assert peak < 4 * 1024 * 1024, peak
    entry = store.get(f"{ROOT}/big.bin")
    assert entry.sha256 == expected.hexdigest()
    got = hashlib.sha256()
    with store.open(f"{ROOT}/big.bin") as f:
        while chunk := f.read(1 << 20):
            got.update(chunk)
    assert got.hexdigest() == expected.hexdigest()


class _LazyStream(io.RawIOBase):
    """A binary stream that makes its bytes on demand (never exists whole in memory)."""

    def __init__(self, size: int):
        self.left = size
        self.max_read = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            raise AssertionError("the store must not read a stream whole")
        self.max_read = max(self.max_read, n)
        n = min(n, self.left)
        self.left -= n
        return b"z" * n


def test_streamed_write_from_file_object_reads_in_chunks(store: ArtifactStore):
    stream = _LazyStream(20 * 1024 * 1024)
    tracemalloc.start()
    try:
        info = store.put("big/stream.bin", stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.file_size == 20 * 1024 * 1024
    assert stream.max_read <= 1 << 20
    assert peak < 4 * 1024 * 1024, peak
    assert store.get("big/stream.bin").sha256 == hashlib.sha256(b"z" * (20 << 20)).hexdigest()


def test_dedup_same_content_one_blob(store: ArtifactStore, tmp_path: Path):
    data = os.urandom(100_000)
    store.put("r1/model.bin", data)
    store.put("r2/copy/model.bin", iter([data[:10], data[10:]]))
    assert store.get("r1/model.bin").sha256 == store.get("r2/copy/model.bin").sha256
    assert len(blob_files(tmp_path / "blobs")) == 1
    store.put("r3/other.bin", b"other")
    assert len(blob_files(tmp_path / "blobs")) == 2
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_overwrite_file(store: ArtifactStore):
    store.put("d/f.txt", b"first")
    info = store.put("d/f.txt", b"second, longer")
    assert info.file_size == len(b"second, longer")
    assert read_all(store, "d/f.txt") == b"second, longer"
    assert store.list("", "d") == [FileInfo(path="d/f.txt", is_dir=False, file_size=14)]


def test_file_dir_conflicts(store: ArtifactStore):
    store.put("a/b/c.txt", b"x")
    with pytest.raises(CairnError) as ei:
        store.put("a/b", b"y")  # an existing directory
    assert ei.value.error_code == INVALID_PARAMETER_VALUE
    assert "'a/b'" in ei.value.message and "directory" in ei.value.message
    with pytest.raises(CairnError) as ei:
        store.put("a/b/c.txt/d", b"y")  # parent is a file
    assert ei.value.error_code == INVALID_PARAMETER_VALUE
    assert "'a/b/c.txt' is a file" in ei.value.message
    # siblings whose names sort around the directory are fine
    store.put("a/b.txt", b"1")
    store.put("a/b-c", b"2")
    store.put("a/b0", b"3")
    assert [p for p, _ in store.walk("a")] == ["a/b-c", "a/b.txt", "a/b/c.txt", "a/b0"]


# -- listing -------------------------------------------------------------------------------
def test_nested_folder_listing(store: ArtifactStore):
    store.put(f"{ROOT}/model/MLmodel", b"m" * 120)
    store.put(f"{ROOT}/model/model.onnx", b"o" * 10)
    store.put(f"{ROOT}/model/sub/deep/x.txt", b"x")
    store.put(f"{ROOT}/model/sub/y.txt", b"yy")
    store.put(f"{ROOT}/metrics.json", b"{}")
    store.put(f"{ROOT}/model.txt", b"t")  # sorts between 'model' and 'model/' in key order

    assert store.list(ROOT) == [
        FileInfo(path="metrics.json", is_dir=False, file_size=2),
        FileInfo(path="model", is_dir=True),
        FileInfo(path="model.txt", is_dir=False, file_size=1),
    ]
    assert store.list(ROOT, "") == store.list(ROOT)
    assert store.list(ROOT, "model") == [
        FileInfo(path="model/MLmodel", is_dir=False, file_size=120),
        FileInfo(path="model/model.onnx", is_dir=False, file_size=10),
        FileInfo(path="model/sub", is_dir=True),
    ]
    assert store.list(ROOT, "model/sub/") == [
        FileInfo(path="model/sub/deep", is_dir=True),
        FileInfo(path="model/sub/y.txt", is_dir=False, file_size=2),
    ]
    assert store.list(f"{ROOT}/model", "sub/deep") == [
        FileInfo(path="sub/deep/x.txt", is_dir=False, file_size=1),
    ]
    # the root of everything
    assert store.list("") == [FileInfo(path="1", is_dir=True)]
    assert store.list("1") == [FileInfo(path="0123456789abcdef0123456789abcdef", is_dir=True)]
    # a file, an unknown directory, a prefix that is not a segment boundary: []
    assert store.list(ROOT, "model/MLmodel") == []
    assert store.list(ROOT, "nope") == []
    assert store.list(ROOT, "mod") == []
    assert store.list("2/zzz/artifacts") == []
    with pytest.raises(CairnError):
        store.list(ROOT, "../other")
    with pytest.raises(CairnError):
        store.list("/abs")


def test_listing_500_files_with_deep_subtrees(store: ArtifactStore):
    base = f"{ROOT}/big"
    for i in range(500):
        store.put(f"{base}/file{i:03d}.txt", str(i).encode())
    for d in range(5):
        for j in range(40):
            store.put(f"{base}/dir{d}/lvl1/lvl2/lvl3/f{j}.bin", b"deep")
            store.put(f"{base}/dir{d}/f{j}.bin", b"shallow")
    listing = store.list(ROOT, "big")
    assert len(listing) == 505
    assert [f.path for f in listing] == sorted(f.path for f in listing)
    assert [f.path for f in listing if f.is_dir] == [f"big/dir{d}" for d in range(5)]
    assert all(f.path.count("/") == 1 for f in listing)
    files = [f for f in listing if not f.is_dir]
    assert files[0] == FileInfo(path="big/file000.txt", is_dir=False, file_size=1)
    assert files[-1] == FileInfo(path="big/file499.txt", is_dir=False, file_size=3)


def test_listing_skips_subtrees(store: ArtifactStore, lenv: LmdbEnv):
    """A directory whose subtree holds 50,000 files lists only its immediate children
    (the scan seeks past each child's subtree; speed is for bench/, not for tests)."""
    store.put("t/huge/leaf.bin", b"blob")
    entry = store.get("t/huge/leaf.bin")
    raw = _encode_entry(entry)

    def seed(batch):  # straight into the real table, in one transaction
        db = batch.dbs["artifacts"]
        for i in range(50_000):
            batch.txn.put(f"t/huge/d{i % 7}/s{i % 100}/f{i:05d}".encode(), raw, db=db)

    lenv.write(seed)
    listing = store.list("t", "huge")
    assert sum(1 for _ in store.walk("t/huge")) == 50_001
    assert [f.path for f in listing] == [f"huge/d{i}" for i in range(7)] + ["huge/leaf.bin"]


# -- delete, walk, copy --------------------------------------------------------------------
def test_delete_file_and_subtree(store: ArtifactStore):
    store.put("r/a/x", b"1")
    store.put("r/a/sub/y", b"2")
    store.put("r/a/sub/deeper/z", b"3")
    store.put("r/a.txt", b"4")  # shares the prefix 'r/a' but is not inside it
    store.put("r/ab/w", b"5")
    assert store.delete("r/a/sub") == 2
    assert store.list("r", "a") == [FileInfo(path="a/x", is_dir=False, file_size=1)]
    assert store.delete("r/a") == 1
    assert store.list("r") == [
        FileInfo(path="a.txt", is_dir=False, file_size=1),
        FileInfo(path="ab", is_dir=True),
    ]
    assert store.delete("r/a.txt") == 1
    assert store.delete("r/a.txt") == 0
    assert store.delete("nothing/here") == 0
    assert [p for p, _ in store.walk("")] == ["r/ab/w"]
    assert store.delete("r") == 1
    assert store.list("") == []
    with pytest.raises(CairnError) as ei:
        store.delete("")
    assert ei.value.error_code == INVALID_PARAMETER_VALUE


def test_walk(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch):
    import cairn.engine.store.artifacts as artifacts

    monkeypatch.setattr(artifacts, "_WALK_BATCH", 3)  # exercise the batched reads
    paths = [f"x/d{i % 3}/f{i:02d}" for i in range(20)] + ["x/top", "x.other", "y/z"]
    for p in paths:
        store.put(p, p.encode())
    walked = list(store.walk("x"))
    assert [p for p, _ in walked] == sorted(p for p in paths if p.startswith("x/"))
    assert all(e.size == len(p) for p, e in walked)
    assert [p for p, _ in store.walk("x/top")] == ["x/top"]
    assert [p for p, _ in store.walk("x/d1")] == sorted(p for p in paths if p.startswith("x/d1/"))
    assert len(list(store.walk(""))) == len(paths)
    assert list(store.walk("missing")) == []


def test_copy_shares_blobs(store: ArtifactStore, tmp_path: Path):
    store.put("1/r/artifacts/model/MLmodel", b"flavors")
    store.put("1/r/artifacts/model/sub/w.bin", b"weights")
    blobs_before = len(blob_files(tmp_path / "blobs"))
    assert store.copy("1/r/artifacts/model", "models/m/1") == 2
    assert read_all(store, "models/m/1/sub/w.bin") == b"weights"
    assert store.list("models/m/1") == [
        FileInfo(path="MLmodel", is_dir=False, file_size=7),
        FileInfo(path="sub", is_dir=True),
    ]
    assert len(blob_files(tmp_path / "blobs")) == blobs_before
    assert store.copy("1/r/artifacts/model/MLmodel", "single") == 1
    assert read_all(store, "single") == b"flavors"
    for src, dst, code in [
        ("nope", "dst", RESOURCE_DOES_NOT_EXIST),
        ("1/r", "1/r/artifacts/x", INVALID_PARAMETER_VALUE),
        ("1/r/artifacts", "1/r", INVALID_PARAMETER_VALUE),
        ("single", "single", INVALID_PARAMETER_VALUE),
        ("1/r/artifacts/model", "single", INVALID_PARAMETER_VALUE),  # 'single' is a file
        ("single", "models/m", INVALID_PARAMETER_VALUE),  # 'models/m' is a directory
    ]:
        with pytest.raises(CairnError) as ei:
            store.copy(src, dst)
        assert ei.value.error_code == code, (src, dst)
    # a failed copy leaves nothing behind
    assert [p for p, _ in store.walk("single")] == ["single"]
    assert [p for p, _ in store.walk("dst")] == []


# -- blobs and crash safety ----------------------------------------------------------------
def test_blob_store_api(tmp_path: Path):
    blobs = BlobStore(tmp_path / "blobs")
    sha, size = blobs.write(b"abc")
    assert (sha, size) == (hashlib.sha256(b"abc").hexdigest(), 3)
    assert blobs.exists(sha)
    assert blobs.path(sha) == tmp_path / "blobs" / sha[:2] / sha[2:4] / sha
    with blobs.open(sha) as f:
        assert f.read() == b"abc"
    missing = "0" * 64
    assert not blobs.exists(missing)
    with pytest.raises(CairnError) as ei:
        blobs.open(missing)
    assert ei.value.error_code == RESOURCE_DOES_NOT_EXIST
    for bad in ("../../etc/passwd", "ABC", sha.upper(), sha[:-1]):
        with pytest.raises(CairnError) as ei:
            blobs.path(bad)
        assert ei.value.error_code == INVALID_PARAMETER_VALUE


def test_interrupted_write_is_invisible_and_old_temps_are_cleaned(tmp_path: Path):
    root = tmp_path / "blobs"
    blobs = BlobStore(root)
    lenv = LmdbEnv(tmp_path / "db", {**ARTIFACT_TABLES})
    try:
        store = ArtifactStore(lenv, blobs)
        store.put("run/ok.txt", b"complete")

        # A writer that dies mid-stream: its temp file is removed, nothing is committed.
        def dying():
            yield b"partial data"
            raise OSError("client went away")

        with pytest.raises(OSError):
            store.put("run/broken.bin", dying())
        assert list((root / "tmp").iterdir()) == []

        # A crash (no cleanup at all): leftover temp files, one old, one fresh.
        old = root / "tmp" / "blob-old.tmp"
        old.write_bytes(b"half of something")
        hour_ago = time.time() - 2 * 3600
        os.utime(old, (hour_ago, hour_ago))
        fresh = root / "tmp" / "blob-fresh.tmp"
        fresh.write_bytes(b"maybe another process")

        assert store.list("run") == [FileInfo(path="ok.txt", is_dir=False, file_size=8)]
        assert [p for p, _ in store.walk("")] == ["run/ok.txt"]
        assert len(blob_files(root)) == 1
        with pytest.raises(CairnError):
            store.get("run/broken.bin")
        # the temp files do not disturb later writes of the same content
        store.put("run/again.txt", b"half of something")
        assert read_all(store, "run/again.txt") == b"half of something"
    finally:
        lenv.close()

    BlobStore(root)  # reopen: old temp files go, young ones stay
    assert not old.exists()
    assert fresh.exists()
    assert len(blob_files(root)) == 2
