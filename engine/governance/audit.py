"""The audit log: append-only, each entry chained to the one before by sha256, so an
entry removed, edited or inserted is found by `verify` (it names the first broken
sequence number).

An entry's hash covers every field but the hash itself, prev_hash included; the head
(last seq and hash) lives in the meta table and is read and advanced inside the same
write as the entry, so the single writer orders the chain even across processes.
Appends from the request path are queued (`write_async`): they never hold up a reply,
and they commit with the next group commit.
"""
from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator

import msgspec

from cairn.engine.governance.records import AUDIT, AUDIT_HEAD, AuditEntry
from cairn.engine.store.keys import u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms

_HEAD = struct.Struct(">Q32s")
GENESIS = "0" * 64
MAX_FIELD = 2000


def entry_hash(e: AuditEntry) -> str:
    body = msgspec.msgpack.encode(msgspec.structs.replace(e, hash=""))
    return hashlib.sha256(body).hexdigest()


def _field(value: object) -> str:
    text = "" if value is None else str(value)
    return text[:MAX_FIELD]


class AuditLog:
    def __init__(self, lenv: LmdbEnv):
        self._env = lenv
        self._db = lenv.dbs

    def _op(self, principal: str, source: str, action: str, obj: str, outcome: str, detail: str):
        fields = [_field(v) for v in (principal, source, action, obj, outcome, detail)]

        def op(b: Batch) -> AuditEntry:
            raw = b.txn.get(AUDIT_HEAD, db=b.dbs["meta"])
            seq, prev = (_HEAD.unpack(raw)[0], _HEAD.unpack(raw)[1].hex()) if raw else (0, GENESIS)
            entry = AuditEntry(seq=seq + 1, ts_ms=now_ms(), principal=fields[0], source=fields[1], action=fields[2],
                               object=fields[3], outcome=fields[4], detail=fields[5], prev_hash=prev)
            entry.hash = entry_hash(entry)
            b.txn.put(u64(entry.seq), AUDIT.encode(entry), db=b.dbs["audit"])
            b.txn.put(AUDIT_HEAD, _HEAD.pack(entry.seq, bytes.fromhex(entry.hash)), db=b.dbs["meta"])
            return entry

        return op

    def record(self, principal: str, source: str, action: str, obj: str = "", outcome: str = "ok",
               detail: str = "") -> AuditEntry:
        """Append and wait until it is durable (the command line, token changes)."""
        return self._env.write(self._op(principal, source, action, obj, outcome, detail))

    def record_async(self, principal: str, source: str, action: str, obj: str = "", outcome: str = "",
                     detail: str = "") -> None:
        """Append with the next group commit (the request path)."""
        self._env.write_async(self._op(principal, source, action, obj, outcome, detail))

    def entries(self, *, since_ms: int | None = None, principal: str | None = None, action: str | None = None,
                obj: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Entries oldest first, filtered (action and object match as substrings); the
        newest `limit` when given."""
        out = [e for e in self._scan()
               if (since_ms is None or e.ts_ms >= since_ms) and (principal is None or e.principal == principal)
               and (action is None or action in e.action) and (obj is None or obj in e.object)]
        return out[-limit:] if limit else out

    def _scan(self) -> Iterator[AuditEntry]:
        with self._env.read() as txn, txn.cursor(db=self._db["audit"]) as cur:
            for _, raw in cur:
                yield AUDIT.decode(raw)

    def verify(self) -> tuple[int, str | None]:
        """(entries checked, None) when the chain is whole; else the first problem,
        naming its sequence number."""
        prev, expected, n = GENESIS, 1, 0
        with self._env.read() as txn:
            head = txn.get(AUDIT_HEAD, db=self._db["meta"])
            with txn.cursor(db=self._db["audit"]) as cur:
                for key, raw in cur:
                    try:
                        e = AUDIT.decode(raw)
                    except msgspec.DecodeError:
                        return n, f"entry at key {key.hex()} does not decode"
                    if e.seq != expected:
                        return n, f"entry {expected} is missing (found {e.seq} next)"
                    if e.prev_hash != prev:
                        return n, f"entry {e.seq} does not follow entry {e.seq - 1} (its prev_hash differs)"
                    if entry_hash(e) != e.hash:
                        return n, f"entry {e.seq} was changed after it was written (its hash differs)"
                    prev, expected, n = e.hash, expected + 1, n + 1
        if head is not None:
            last, digest = _HEAD.unpack(head)
            if last != n or digest.hex() != prev:
                return n, f"the log ends at entry {n} but its head says {last}: entries were removed at the end"
        return n, None


def as_json_line(e: AuditEntry) -> str:
    """One entry as a JSON line (for a SIEM), its fields by name (the stored form is an
    array)."""
    return json.dumps({f: getattr(e, f) for f in e.__struct_fields__}, separators=(",", ":"))
