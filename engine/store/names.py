"""Interned key names: every metric, param and tag key gets a 4-byte id, so that data keys
stay fixed-width (run + nid + ...) whatever the key's length or alphabet.

Ids are append-only and never reused, so a cache entry once read from committed state is
valid forever, in every process. New names are added only by the writer thread; they
enter the cache after their batch commits.
"""
from __future__ import annotations

import threading

import lmdb

from cairn.engine.store.keys import read_u32, u32
from cairn.engine.store.lmdbenv import Batch

_NEXT_NID = b"next_name_id"


class NameTable:
    def __init__(self, dbs: dict):
        self._names = dbs["names"]
        self._ids = dbs["name_ids"]
        self._meta = dbs["meta"]
        self._by_name: dict[str, int] = {}
        self.by_id: dict[int, str] = {}  # read directly on hot paths
        self._lock = threading.Lock()

    def cached(self, name: str) -> int | None:
        return self._by_name.get(name)

    def lookup(self, txn: lmdb.Transaction, name: str) -> int | None:
        """The id of `name` in a committed snapshot, or None if never interned."""
        nid = self._by_name.get(name)
        if nid is not None:
            return nid
        raw = txn.get(name.encode(), db=self._names)
        if raw is None:
            return None
        nid = read_u32(raw)
        self._remember(name, nid)
        return nid

    def name(self, txn: lmdb.Transaction, nid: int) -> str:
        name = self.by_id.get(nid)
        if name is None:
            raw = txn.get(u32(nid), db=self._ids)
            if raw is None:  # a dangling id would be storage corruption
                raise KeyError(f"unknown key id {nid}")
            name = raw.decode()
            self._remember(name, nid)
        return name

    def intern(self, batch: Batch, name: str) -> int:
        """Writer thread only: the id of `name`, allocating one inside this batch."""
        nid = self._by_name.get(name)
        if nid is not None:
            return nid
        txn = batch.txn
        encoded = name.encode()
        raw = txn.get(encoded, db=self._names)
        if raw is not None:
            return read_u32(raw)
        counter = txn.get(_NEXT_NID, db=self._meta)
        nid = read_u32(counter) if counter else 1
        txn.put(_NEXT_NID, u32(nid + 1), db=self._meta)
        txn.put(encoded, u32(nid), db=self._names)
        txn.put(u32(nid), encoded, db=self._ids)
        batch.after_commit(lambda: self._remember(name, nid))
        return nid

    def _remember(self, name: str, nid: int) -> None:
        with self._lock:
            self._by_name[name] = nid
            self.by_id[nid] = name
