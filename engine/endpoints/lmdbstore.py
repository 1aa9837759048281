"""LmdbEndpointStore: the EndpointStore contract (endpointstore.py) on the engine's LMDB.

Keys (fixed width, big-endian; see keys.py). `ep` is a u64 id from the meta counter
`next_endpoint_id`, never reused, so a payload log left by a deleted endpoint can never
be mistaken for a new endpoint's:
  endpoints        u64 ep                        -> EndpointRecord
  endpoint_names   utf-8 name                    -> u64 ep
  payload_logs     u64 ep + i64 ts(ms) + u64 seq -> PayloadRow
A log is one key prefix and a time range one range scan. `seq` comes from the meta
counter `next_payload_seq`, read and advanced inside each logging operation: the writer
runs operations one at a time (and LMDB's write lock spans processes), so records
logged in the same millisecond never collide, even with two processes on one directory
or after a restart; an in-memory counter could promise neither.

Each record holds its config as a nested (map-encoded) EndpointConfig: configs gain
fields over time, and a map decodes old and new shapes alike. `payload_rows` counts the
log, kept in the same transaction as the rows, so payload_count is one read.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid
from collections.abc import Sequence

import msgspec

from cairn.engine.endpoints.config import check_config, check_endpoint_name
from cairn.engine.endpoints.contract import (
    FEATURE_SPEC,
    READ_PAYLOADS_DEFAULT,
    READ_PAYLOADS_MAX,
    AutoCaptureConfig,
    ConfigStamp,
    Endpoint,
    EndpointConfig,
    EndpointStore,
    PayloadRecord,
)
from cairn.engine.errors import CairnError, already_exists, invalid, not_found
from cairn.engine.query.pagination import Page, check_max_results
from cairn.engine.registry.contract import RegistryStore
from cairn.engine.store.codec import Codec
from cairn.engine.store.keys import i64, prefix_end, read_i64, read_u64, u64
from cairn.engine.store.lmdbenv import Batch, LmdbEnv
from cairn.engine.store.timestamps import now_ms

# sub-database name -> dupsort; the engine merges this into its table list.
ENDPOINT_TABLES: dict[str, bool] = {
    "endpoints": False,
    "endpoint_names": False,
    "payload_logs": False,
}

NEXT_ENDPOINT_ID = b"next_endpoint_id"
NEXT_PAYLOAD_SEQ = b"next_payload_seq"
# Keys deleted per transaction when a log is dropped: bounds one commit's size and time.
PURGE_CHUNK = 10_000
_KEY_LEN = 24  # ep(8) + ts(8) + seq(8)


class EndpointRecord(msgspec.Struct, array_like=True):
    name: str
    uid: str  # Endpoint.id
    creator: str
    creation_time: int
    last_updated_time: int
    config_version: int
    config: EndpointConfig
    payload_rows: int = 0


class _StampView(msgspec.Struct, array_like=True):
    """The head of an EndpointRecord: array_like decoding ignores the trailing fields,
    so config_stamps never decodes a config."""

    name: str
    uid: str
    creator: str
    creation_time: int
    last_updated_time: int
    config_version: int


class PayloadRow(msgspec.Struct, array_like=True):
    """A PayloadRecord without what its key holds (the endpoint and the timestamp)."""

    request_id: str
    status_code: int
    latency_ms: float
    client_request_id: str = ""
    served_entity_name: str = ""
    model_name: str = ""
    model_version: str = ""
    request: str = ""
    response: str = ""
    truncated: bool = False
    shadow: bool = False


ENDPOINT = Codec(EndpointRecord)
PAYLOAD = Codec(PayloadRow)
_STAMP = Codec(_StampView)


def _entity(rec: EndpointRecord) -> Endpoint:
    return Endpoint(
        name=rec.name,
        config=rec.config,
        creation_timestamp=rec.creation_time,
        last_updated_timestamp=rec.last_updated_time,
        creator=rec.creator,
        id=rec.uid,
        config_version=rec.config_version,
    )


def _row(r: PayloadRecord) -> PayloadRow:
    return PayloadRow(
        request_id=r.request_id,
        status_code=r.status_code,
        latency_ms=r.latency_ms,
        client_request_id=r.client_request_id,
        served_entity_name=r.served_entity_name,
        model_name=r.model_name,
        model_version=r.model_version,
        request=r.request,
        response=r.response,
        truncated=r.truncated,
        shadow=r.shadow,
    )


def _record(ts: int, row: PayloadRow) -> PayloadRecord:
    return PayloadRecord(
        request_id=row.request_id,
        timestamp_ms=ts,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        client_request_id=row.client_request_id,
        served_entity_name=row.served_entity_name,
        model_name=row.model_name,
        model_version=row.model_version,
        request=row.request,
        response=row.response,
        truncated=row.truncated,
        shadow=row.shadow,
    )


# -- page tokens: the position (ts + seq) of the next record, URL-safe base64 ------------
def _encode_token(position: bytes) -> str:
    return base64.urlsafe_b64encode(position).decode().rstrip("=")


def _decode_token(token: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError, TypeError):
        raw = b""
    if len(raw) != 16:
        raise invalid(f"page_token: {token!r} is not a token this listing returned")
    return raw


def _time_bound(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 62) <= value < 1 << 62:
        raise invalid(f"{field}: must be an integer (milliseconds since the epoch), got {value!r}")
    return value


class LmdbEndpointStore(EndpointStore):
    def __init__(self, lenv: LmdbEnv, registry: RegistryStore):
        self._env = lenv
        self._db = lenv.dbs
        self._registry = registry
        self._purge_orphans()

    def _check(self, config) -> EndpointConfig:
        """The config checked, and every served model version (or alias) found."""
        checked = check_config(config)
        for i, se in enumerate(checked.served_entities):
            if se.entity_type == FEATURE_SPEC:
                continue
            try:
                if se.entity_version:
                    self._registry.get_model_version(se.entity_name, se.entity_version)
                else:
                    self._registry.get_model_version_by_alias(se.entity_name, se.entity_alias)
            except CairnError as exc:
                raise CairnError(f"served_entities[{i}] ({se.name}): {exc.message}", exc.error_code) from None
        return checked

    # ================================================================ lookups
    def _id(self, txn, name: str) -> bytes:
        """The endpoint's u64 id as key bytes; RESOURCE_DOES_NOT_EXIST if unknown."""
        raw = txn.get(name.encode(), db=self._db["endpoint_names"]) if isinstance(name, str) and name else None
        if raw is None:
            raise not_found(f"Endpoint '{name}' does not exist.")
        return raw

    def _get(self, txn, name: str) -> tuple[bytes, EndpointRecord]:
        eid = self._id(txn, name)
        return eid, ENDPOINT.decode(txn.get(eid, db=self._db["endpoints"]))

    # ================================================================ endpoints
    def create_endpoint(self, name, config, creator="") -> Endpoint:
        name = check_endpoint_name(name)
        checked = self._check(config)
        if checked.auto_capture_config is None:
            checked.auto_capture_config = AutoCaptureConfig()
        creator = creator or ""

        def op(b: Batch) -> EndpointRecord:
            key = name.encode()
            if b.txn.get(key, db=self._db["endpoint_names"]) is not None:
                raise already_exists(f"Endpoint '{name}' already exists.")
            ep = b.next_id(NEXT_ENDPOINT_ID)
            t = now_ms()
            rec = EndpointRecord(
                name=name,
                uid=uuid.uuid4().hex,
                creator=creator,
                creation_time=t,
                last_updated_time=t,
                config_version=1,
                config=checked,
            )
            b.txn.put(u64(ep), ENDPOINT.encode(rec), db=self._db["endpoints"])
            b.txn.put(key, u64(ep), db=self._db["endpoint_names"])
            return rec

        return _entity(self._env.write(op))

    def get_endpoint(self, name) -> Endpoint:
        with self._env.read() as txn:
            return _entity(self._get(txn, name)[1])

    def list_endpoints(self) -> list[Endpoint]:
        out = []
        with self._env.read() as txn, txn.cursor(db=self._db["endpoint_names"]) as cur:
            for eid in cur.iternext(keys=False):
                out.append(_entity(ENDPOINT.decode(txn.get(eid, db=self._db["endpoints"]))))
        return out

    def update_config(self, name, config) -> Endpoint:
        checked = self._check(config)

        def op(b: Batch) -> EndpointRecord:
            eid, rec = self._get(b.txn, name)
            if checked.auto_capture_config is None:
                checked.auto_capture_config = rec.config.auto_capture_config or AutoCaptureConfig()
            rec.config = checked
            rec.config_version += 1
            rec.last_updated_time = max(now_ms(), rec.last_updated_time)
            b.txn.put(eid, ENDPOINT.encode(rec), db=self._db["endpoints"])
            return rec

        return _entity(self._env.write(op))

    def delete_endpoint(self, name) -> None:
        def op(b: Batch) -> bytes:
            eid = self._id(b.txn, name)
            b.txn.delete(name.encode(), db=self._db["endpoint_names"])
            b.txn.delete(eid, db=self._db["endpoints"])
            return eid

        # The endpoint is gone in this one transaction (queued log writes find no
        # endpoint and drop their records); its log follows chunk by chunk.
        self._purge(self._env.write(op))

    def config_stamps(self) -> dict[str, ConfigStamp]:
        out = {}
        with self._env.read() as txn, txn.cursor(db=self._db["endpoints"]) as cur:
            for raw in cur.iternext(keys=False):
                head = _STAMP.decode(raw)
                out[head.name] = ConfigStamp(head.uid, head.config_version)
        return out

    # ================================================================ payload logs
    def log_payloads(self, endpoint: str, records: Sequence[PayloadRecord]) -> None:
        if not records:
            return
        if not isinstance(endpoint, str) or not endpoint:
            raise invalid("endpoint: an endpoint name is required")
        # Everything that can fail happens here, in the caller's thread: an operation
        # queued with write_async must never raise (it would fail the writer's batch).
        # msgspec encodes whatever a field holds; decoding it back here makes a wrongly
        # typed record fail now rather than make the log unreadable later.
        try:
            rows = [(i64(r.timestamp_ms), PAYLOAD.encode(_row(r))) for r in records]
            for _, value in rows:
                PAYLOAD.decode(value)
        except (msgspec.ValidationError, TypeError, AttributeError, struct.error) as exc:
            raise invalid(f"records: a record field has the wrong type ({exc})") from None
        name_key = endpoint.encode()
        db = self._db

        def op(b: Batch) -> None:
            eid = b.txn.get(name_key, db=db["endpoint_names"])
            current = b.txn.get(eid, db=db["endpoints"]) if eid is not None else None
            if current is None:
                return  # deleted before this batch committed: its log is gone too
            raw = b.txn.get(NEXT_PAYLOAD_SEQ, db=db["meta"])
            seq = read_u64(raw) if raw else 1
            put = b.txn.put
            for ts, value in rows:
                put(eid + ts + u64(seq), value, db=db["payload_logs"])
                seq += 1
            put(NEXT_PAYLOAD_SEQ, u64(seq), db=db["meta"])
            rec = ENDPOINT.decode(current)
            rec.payload_rows += len(rows)
            put(eid, ENDPOINT.encode(rec), db=db["endpoints"])

        self._env.write_async(op)

    def read_payloads(self, endpoint, start_ms=None, end_ms=None, max_results=None, page_token=None):
        limit = check_max_results(max_results, READ_PAYLOADS_MAX, default=READ_PAYLOADS_DEFAULT)
        start_ms = _time_bound(start_ms, "start_ms")
        end_ms = _time_bound(end_ms, "end_ms")
        position = _decode_token(page_token) if page_token else b""
        items: list[PayloadRecord] = []
        next_token = None
        with self._env.read() as txn:
            eid = self._id(txn, endpoint)
            start = eid + (i64(start_ms) if start_ms is not None else b"")
            start = max(start, eid + position)
            end = eid + i64(end_ms) if end_ms is not None else prefix_end(eid)
            with txn.cursor(db=self._db["payload_logs"]) as cur:
                if cur.set_range(start):
                    for key, value in cur:
                        if end is not None and key >= end:
                            break
                        if len(items) == limit:
                            next_token = _encode_token(key[8:_KEY_LEN])
                            break
                        items.append(_record(read_i64(key, 8), PAYLOAD.decode(value)))
        return Page(items=items, next_page_token=next_token)

    def payload_count(self, endpoint) -> int:
        with self._env.read() as txn:
            return self._get(txn, endpoint)[1].payload_rows

    # ================================================================ log deletion
    def _purge(self, eid: bytes) -> None:
        """Delete the log under `eid`, PURGE_CHUNK keys per transaction."""
        db = self._db["payload_logs"]

        def chunk(b: Batch) -> bool:
            with b.txn.cursor(db=db) as cur:
                if not cur.set_range(eid):
                    return False
                for _ in range(PURGE_CHUNK):
                    if not cur.key().startswith(eid):
                        return False
                    if not cur.delete():  # False: that was the table's last key
                        return False
                return cur.key().startswith(eid)

        while self._env.write(chunk):
            pass

    def _purge_orphans(self) -> None:
        """Delete logs whose endpoint is gone (a crash in the middle of a delete). One
        seek per distinct id, so this costs nothing when there are none."""
        orphans = []
        with self._env.read() as txn, txn.cursor(db=self._db["payload_logs"]) as cur:
            found = cur.first()
            while found:
                eid = cur.key()[:8]
                if txn.get(eid, db=self._db["endpoints"]) is None:
                    orphans.append(eid)
                found = cur.set_range(prefix_end(eid) or b"\xff" * 9)
        for eid in orphans:  # after the read: never wait for a write while holding one
            self._purge(eid)
