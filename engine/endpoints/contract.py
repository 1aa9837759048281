"""Serving endpoints and their payload logs: the interface. These docstrings are the
spec; `LmdbEndpointStore` (endpoints.py) implements it, the HTTP controller, the CLI and
the serving runtime (app/serving) call it.

Entities are shaped like Databricks' serving-endpoints API JSON (`served_entities`,
`traffic_config.routes`, `auto_capture_config`), so the HTTP layer encodes them as they
are. Cairn's additions: a served entity may follow an alias (`entity_alias`) instead of
pinning a version, carries its batching settings, and an endpoint may have a `shadow`.

Endpoint names: 1-63 characters of ASCII letters, digits, `_` and `-` (they appear in
URLs, metric labels and CLI arguments), case-sensitive, unique.

Configs (`EndpointConfig`), checked on create and on every update; a bad one is
INVALID_PARAMETER_VALUE whose message starts with the field's path, e.g.
"traffic_config.routes: percentages sum to 90, must be 100" or
"served_entities[1]: give entity_version or entity_alias, not both":
- `served_entities`: 1-15 (Databricks' limit). Each names a registered model in any form
  the registry accepts (`iris`, `schema.iris`, `catalog.schema.iris`) and exactly one
  of `entity_version` (a positive integer, as a string or an int; stored as a string)
  or `entity_alias` (an alias name; `latest` allowed). Only the syntax is checked, not
  that the model or version exists: a version may be registered later, and the runtime
  reports what it cannot load. `name` defaults to `<model>-<version or alias>` (the last
  part of the model name) and must be unique in the endpoint; names are 1-255 letters,
  digits, `_` and `-`. `workload_type` is CPU or GPU (Databricks' GPU_SMALL,
  GPU_MEDIUM, GPU_LARGE and MULTIGPU_MEDIUM are taken as GPU). Batching: max_batch_rows
  1-65,536; max_wait_ms 0-1,000 (0: no wait window); max_queue_rows 1-10,000,000;
  max_workers 0-1,024 (0: the cores available).
- `traffic_config.routes`: integer percentages 0-100 summing to 100; every route names
  a served entity, at most once; every served entity except the shadow has a route (as
  Databricks requires). Omitted when exactly one entity serves traffic: it gets 100.
- `shadow` (optional): a served entity that receives a copy of a `fraction` (0 < f <= 1)
  of requests; its answers are logged, never returned. It has no route, and cannot be
  the only served entity.
- `auto_capture_config` (Databricks' inference tables): payload logging on/off, the
  sampled fraction of requests (0-1), and the cap on each logged request and response
  (0-16 MiB; the runtime truncates and marks the record `truncated`). Omitted on
  create: disabled. Omitted on update: the endpoint keeps its current one.
Returned configs are normalized: names filled in, versions as strings, traffic_config
and auto_capture_config always present.

`config_version` starts at 1 and grows by one on each `update_config`; with the
endpoint's `id` (unique per data directory, never reused, so a deleted and re-created
endpoint differs) it tells the live runtime when to reload (`config_stamps`).

Payload logs (Databricks' inference tables), per endpoint, kept until the endpoint is
deleted: `log_payloads` queues records without waiting (the serving path never blocks
on storage); they are durable once the writer commits its next batch (`Engine.flush()`
waits for that). Records for an endpoint that no longer exists are dropped. Reads are
by time range, oldest first, with page tokens that hold a position (new records never
shift a page); the order within one millisecond is the order of logging.

Errors: RESOURCE_DOES_NOT_EXIST (404) for an unknown endpoint ("Endpoint 'x' does not
exist."); RESOURCE_ALREADY_EXISTS for a taken name; INVALID_PARAMETER_VALUE for bad
arguments, naming the field.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import msgspec

from cairn.engine.query.pagination import Page

MAX_ENDPOINT_NAME_LENGTH = 63
# Rows a worker takes into one model call. Larger than the common request so that a busy
# queue of 64-row requests runs in fewer calls: measured on the bench's RandomForest,
# 256 gave ~20% more rows/s than 64 at concurrency 8, 1,024 none (the batch then waits
# on the slowest part); with no wait window it never delays a lone request.
DEFAULT_MAX_BATCH_ROWS = 256
MAX_SERVED_ENTITIES = 15
READ_PAYLOADS_DEFAULT = 100
READ_PAYLOADS_MAX = 10_000


# -- config entities ---------------------------------------------------------------------
MODEL = "MODEL"
FEATURE_SPEC = "FEATURE_SPEC"
ENTITY_TYPES = (MODEL, FEATURE_SPEC)


class ServedEntity(msgspec.Struct, kw_only=True):
    """One registered model version (or alias) an endpoint serves, with its batching;
    or, with entity_type FEATURE_SPEC, a feature spec (Databricks' feature serving:
    keys in, feature values out, no model and no version)."""

    name: str = ""
    entity_name: str
    # A string on the wire (Databricks'); an int is accepted and stored as its string.
    entity_version: str | int = ""
    entity_alias: str = ""  # Cairn's: follow the alias as it moves
    workload_type: str = "CPU"
    scale_to_zero_enabled: bool = False
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    max_wait_ms: float = 0.0
    max_queue_rows: int = 4096
    max_workers: int = 0  # 0: the cores available
    entity_type: str = MODEL


class Route(msgspec.Struct, kw_only=True):
    served_entity_name: str
    traffic_percentage: int


class TrafficConfig(msgspec.Struct, kw_only=True):
    routes: list[Route] = []


class ShadowConfig(msgspec.Struct, kw_only=True):
    """Cairn's: `served_entity_name` gets a copy of `fraction` of the traffic."""

    served_entity_name: str
    fraction: float = 1.0


class AutoCaptureConfig(msgspec.Struct, kw_only=True):
    """Databricks' inference tables: which requests are logged and how much of each.
    Databricks' table fields (catalog_name, schema_name, ...) are accepted and ignored."""

    enabled: bool = False
    sampling_fraction: float = 1.0
    max_payload_bytes: int = 65_536


class EndpointConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What an endpoint serves. traffic_config and auto_capture_config may be omitted in
    input (see the module docstring); returned configs always carry both."""

    served_entities: list[ServedEntity]
    traffic_config: TrafficConfig | None = None
    shadow: ShadowConfig | None = None
    auto_capture_config: AutoCaptureConfig | None = None


class Endpoint(msgspec.Struct, kw_only=True):
    name: str
    config: EndpointConfig
    creation_timestamp: int
    last_updated_timestamp: int
    creator: str = ""
    id: str = ""  # 32 hex digits, unique per data directory, never reused
    config_version: int = 1


class ConfigStamp(NamedTuple):
    """What a poller compares: a new id means the endpoint was deleted and re-created."""

    id: str
    config_version: int


# -- payload logs ------------------------------------------------------------------------
class PayloadRecord(msgspec.Struct, kw_only=True):
    """One logged request (a row of Databricks' inference table)."""

    request_id: str
    timestamp_ms: int
    status_code: int
    latency_ms: float
    client_request_id: str = ""
    served_entity_name: str = ""
    model_name: str = ""
    model_version: str = ""
    request: str = ""
    response: str = ""
    truncated: bool = False  # request or response was cut to max_payload_bytes
    shadow: bool = False  # answered by the shadow entity; never returned to the client


class EndpointStore(ABC):
    @abstractmethod
    def create_endpoint(self, name: str, config: EndpointConfig | Mapping, creator: str = "") -> Endpoint:
        """A new endpoint at config_version 1. `config` may be a mapping of the JSON
        shape. RESOURCE_ALREADY_EXISTS ("Endpoint 'x' already exists.") if the name is
        taken; RESOURCE_DOES_NOT_EXIST naming the served entity and the model version
        (or alias) when a served model version does not exist, as Databricks refuses it."""

    @abstractmethod
    def get_endpoint(self, name: str) -> Endpoint: ...

    @abstractmethod
    def list_endpoints(self) -> list[Endpoint]:
        """Every endpoint, ordered by name (byte order)."""

    @abstractmethod
    def update_config(self, name: str, config: EndpointConfig | Mapping) -> Endpoint:
        """Replace the endpoint's config (checked as on create, served versions included); config_version + 1 and
        last_updated_timestamp now. An omitted auto_capture_config keeps the current one;
        an omitted shadow removes it. Returns the updated endpoint."""

    @abstractmethod
    def delete_endpoint(self, name: str) -> None:
        """Delete the endpoint and its payload log. The endpoint is gone at once (one
        transaction); its log is then deleted in bounded chunks, so one transaction
        stays small however long the log. A log left behind by a crash mid-delete is
        removed the next time the store opens."""

    @abstractmethod
    def config_stamps(self) -> dict[str, ConfigStamp]:
        """name -> (id, config_version) of every endpoint, in one cheap read: what the
        live runtime polls to learn which endpoints to build, reload or drop."""

    def config_versions(self) -> dict[str, int]:
        """name -> config_version (config_stamps without the ids; a poller should
        compare stamps, since a re-created endpoint starts again at 1)."""
        return {name: s.config_version for name, s in self.config_stamps().items()}

    # -- payload logs --------------------------------------------------------------------
    @abstractmethod
    def log_payloads(self, endpoint: str, records: Sequence[PayloadRecord]) -> None:
        """Queue `records` for `endpoint`'s log as one write; never waits for storage.
        Records are encoded in the caller's thread (a record that cannot be encoded
        raises here, not in the writer). Records queued for an endpoint deleted before
        they commit are dropped."""

    @abstractmethod
    def read_payloads(
        self,
        endpoint: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> Page[PayloadRecord]:
        """Records with start_ms <= timestamp_ms < end_ms (either bound optional),
        oldest first; max_results default 100, at most 10,000. The next_page_token
        continues after the page's last record: pass it with the same bounds. A token
        that cannot be decoded is INVALID_PARAMETER_VALUE."""

    @abstractmethod
    def payload_count(self, endpoint: str) -> int:
        """How many records the endpoint's log holds (committed ones)."""
