"""The one LMDB environment of a data directory, and the one writer that feeds it.

All writes go through `Writer`: callers hand it small operations (functions of a write
transaction); a single thread takes everything queued, runs it in one transaction and
commits once (group commit). A caller that needs durability waits for its operation's
future; one that does not (metric points) returns at once and its write is committed with
the next batch, which starts as soon as the writer is free (no wait window).

Growth: LMDB's map is fixed per open. On MapFullError the whole batch is aborted, the map
doubled and the batch run again, so operations must only touch the transaction until the
batch commits. Another process that sees MapResizedError adopts the new size and retries.
LMDB changes the map size only while no transaction of this process is open, so every
transaction passes a `ResizeGate` (shared) and every resize takes it exclusively.
Rule that follows: never wait for a write while holding a read snapshot.
"""
from __future__ import annotations

import atexit
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from cairn.engine.errors import CairnError, storage_error

# Address space only (the file grows with the data); doubling on demand beyond this.
DEFAULT_MAP_SIZE = 8 << 30
MAX_DBS = 64
MAX_READERS = 512
# Upper bound on operations taken into one transaction: keeps one commit's latency bounded.
MAX_BATCH_OPS = 20_000
# How long a map resize waits for open transactions of this process to end.
RESIZE_WAIT_S = 30.0

Op = Callable[["Batch"], Any]
_U64 = struct.Struct(">Q")  # the meta counters' encoding (store/keys.py's u64)


class ResizeGate:
    """Many transactions at once, or one map resize alone. A thread that already holds
    a transaction may open another without waiting (nested reads cannot deadlock)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._active = 0
        self._resizing = False
        self._local = threading.local()

    def enter(self) -> None:
        depth = getattr(self._local, "depth", 0)
        with self._cond:
            while self._resizing and depth == 0:
                self._cond.wait()
            self._active += 1
        self._local.depth = depth + 1

    def leave(self) -> None:
        self._local.depth -= 1
        with self._cond:
            self._active -= 1
            if not self._active:
                self._cond.notify_all()

    @contextmanager
    def exclusive(self, timeout: float | None = None) -> Iterator[None]:
        timeout = RESIZE_WAIT_S if timeout is None else timeout
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._resizing = True
            # A thread that holds a snapshot while waiting for a write would wait forever:
            # fail that write with a clear error instead of hanging.
            if not self._cond.wait_for(lambda: not self._active, timeout):
                self._resizing = False
                self._cond.notify_all()
                raise CairnError(
                    "The store's map must grow, but a read snapshot stayed open for "
                    f"{timeout:.0f} s (a caller waiting for a write while holding a read?)",
                    "INTERNAL_ERROR",
                )
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class Batch:
    """What an operation sees: the write transaction, named sub-databases and hooks."""

    __slots__ = ("env", "txn", "dbs", "_after_commit")

    def __init__(self, env: lmdb.Environment, txn: lmdb.Transaction, dbs: dict[str, Any]):
        self.env = env
        self.txn = txn
        self.dbs = dbs
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` once this batch is durable (e.g. to publish a cache entry)."""
        self._after_commit.append(fn)

    def next_id(self, counter: bytes) -> int:
        """Take the next id (from 1, never reused) of the meta counter `counter`, in
        this transaction: ids are taken by the one writer, so two callers never share one."""
        raw = self.txn.get(counter, db=self.dbs["meta"])
        n = _U64.unpack(raw)[0] if raw else 1
        self.txn.put(counter, _U64.pack(n + 1), db=self.dbs["meta"])
        return n


class _Item:
    __slots__ = ("op", "future", "isolated")

    def __init__(self, op: Op, future: Future | None, isolated: bool):
        self.op = op
        self.future = future
        self.isolated = isolated


class LmdbEnv:
    """One LMDB environment with its named sub-databases and its single writer thread."""

    def __init__(self, path: Path, tables: dict[str, bool], map_size: int = DEFAULT_MAP_SIZE):
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=MAX_DBS,
            max_readers=MAX_READERS,
            subdir=True,
            sync=True,
            metasync=True,
            readahead=False,
            lock=True,
        )
        self.dbs: dict[str, Any] = {}
        self.gate = ResizeGate()
        with self.env.begin(write=True) as txn:
            for name, dupsort in tables.items():
                self.dbs[name] = self.env.open_db(name.encode(), txn=txn, dupsort=dupsort)
        self.writer = Writer(self)

    # -- reads -------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        """A read-only snapshot; adopts a map grown by another process."""
        self.gate.enter()
        try:
            try:
                txn = self.env.begin(buffers=False)
            except lmdb.MapResizedError:
                self.gate.leave()
                self.adopt_map_size()
                self.gate.enter()
                txn = self.env.begin(buffers=False)
            try:
                yield txn
            finally:
                txn.abort()
        finally:
            self.gate.leave()

    def adopt_map_size(self) -> None:
        """Take the map size another process grew the file to."""
        with self.gate.exclusive():
            self.env.set_mapsize(0)

    def grow_map(self) -> None:
        with self.gate.exclusive():
            self.env.set_mapsize(self.env.info()["map_size"] * 2)

    # -- writes ------------------------------------------------------------------------
    def write(self, op: Op, *, isolated: bool = True) -> Any:
        """Run `op` in the next batch and wait until it is committed; return its result."""
        return self.writer.submit(op, wait=True, isolated=isolated).result()

    def write_async(self, op: Op) -> None:
        """Queue `op`; it is committed with the next batch. It must not raise."""
        self.writer.submit(op, wait=False, isolated=False)

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        self.writer.submit(lambda b: None, wait=True, isolated=False).result()

    def map_size(self) -> int:
        return self.env.info()["map_size"]

    def close(self) -> None:
        self.writer.stop()
        self.env.close()


class Writer:
    """The single writer thread: group commit with per-operation isolation."""

    def __init__(self, lenv: LmdbEnv):
        self._lenv = lenv
        self._pending: list[_Item] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="cairn-writer", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def submit(self, op: Op, *, wait: bool, isolated: bool) -> Future | None:
        fut: Future | None = Future() if wait else None
        item = _Item(op, fut, isolated)
        with self._cond:
            if self._stopping:
                raise CairnError("the store is closed", "INTERNAL_ERROR")
            self._pending.append(item)
            if len(self._pending) == 1:
                self._cond.notify()
        return fut

    def stop(self) -> None:
        """Commit what is queued, then end the thread (idempotent; also runs at exit)."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending and self._stopping:
                    return
                items = self._pending[:MAX_BATCH_OPS]
                del self._pending[:MAX_BATCH_OPS]
            self._run(items)

    def _run(self, items: list[_Item]) -> None:
        lenv = self._lenv
        env = lenv.env
        while True:
            results: list[tuple[bool, Any]] = []
            try:
                txn = self._begin()
                try:
                    batch = Batch(env, txn, lenv.dbs)
                    try:
                        for item in items:
                            results.append(self._apply(item, batch))
                        txn.commit()
                    except BaseException:
                        txn.abort()
                        raise
                finally:
                    lenv.gate.leave()
            except lmdb.MapFullError:
                try:
                    lenv.grow_map()
                except BaseException as exc:
                    self._fail(items, exc)
                    return
                continue
            except BaseException as exc:  # an unexpected storage failure fails the whole batch
                self._fail(items, storage_error(exc, lenv.path) or exc)
                return
            break
        for fn in batch._after_commit:
            fn()
        for item, (ok, value) in zip(items, results):
            if item.future is not None:
                if ok:
                    item.future.set_result(value)
                else:
                    item.future.set_exception(value)

    @staticmethod
    def _fail(items: list[_Item], exc: BaseException) -> None:
        for item in items:
            if item.future is not None and not item.future.done():
                item.future.set_exception(exc)

    def _begin(self) -> lmdb.Transaction:
        """A write transaction, holding the resize gate (shared) until `_run` leaves it."""
        lenv = self._lenv
        lenv.gate.enter()
        try:
            return lenv.env.begin(write=True)
        except lmdb.MapResizedError:
            lenv.gate.leave()
            lenv.adopt_map_size()
            lenv.gate.enter()
        try:
            return lenv.env.begin(write=True)
        except BaseException:
            lenv.gate.leave()
            raise

    @staticmethod
    def _apply(item: _Item, batch: Batch) -> tuple[bool, Any]:
        if not item.isolated:
            return True, item.op(batch)
        # A child transaction: an operation that fails leaves no trace, the batch goes on.
        parent = batch.txn
        child = batch.env.begin(write=True, parent=parent)
        hooks = len(batch._after_commit)
        batch.txn = child
        try:
            value = item.op(batch)
        except lmdb.MapFullError:
            child.abort()
            raise
        except Exception as exc:
            child.abort()
            del batch._after_commit[hooks:]
            return False, exc
        finally:
            batch.txn = parent
        child.commit()
        return True, value

