"""/api/2.0/serving-endpoints: serving endpoints in Databricks' REST shape, plus Cairn's
payload log reader.

  POST   /api/2.0/serving-endpoints                 {name, config} -> the endpoint
  GET    /api/2.0/serving-endpoints                 -> {"endpoints": [...]} (by name)
  GET    /api/2.0/serving-endpoints/{name}          -> the endpoint
  PUT    /api/2.0/serving-endpoints/{name}/config   the config itself -> the endpoint
  DELETE /api/2.0/serving-endpoints/{name}          -> {}
  PUT    /api/2.0/serving-endpoints/{name}/rate-limits {rate_limits: [{calls, key: user|endpoint,
         renewal_period: minute}]} -> {rate_limits} (also accepted on create; shown by get)
  GET    /api/2.0/serving-endpoints/{name}/payloads?start_time_ms&end_time_ms&max_results
         &page_token -> {"payloads": [...], "next_page_token": ...} (Cairn's: the log
         Databricks keeps in an inference table; oldest first, end exclusive)

As in Databricks, `config_version` is inside `config`, and create, get and update answer
with the endpoint itself. `state.config_update` is always NOT_UPDATING: a config is
applied in one transaction (the Databricks SDK's waiters read this field). Readiness of
the served models is the runtime's to report, not the store's, so `state.ready` is absent.

Who may (Databricks' endpoint ACLs): anyone signed in creates an endpoint, and owns it
(CAN_MANAGE), if it may EXECUTE every model and feature spec it serves; CAN_VIEW reads
it (the list holds only those), CAN_QUERY scores it (the invocations route), CAN_MANAGE
changes, deletes it and reads its payload log.

Configs arrive as plain JSON objects and are checked by the store, so every error names
the field the same way over HTTP, in the CLI and in the SDK. Databricks fields Cairn does
not use (tags, ai_gateway, route_optimized, auto_capture_config's table
names) are accepted and ignored, as a protobuf parser ignores unknown fields.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import JSONBody

from cairn.app.registrywire import page_out, required
from cairn.engine.datadir import Engine
from cairn.engine.endpoints.config import check_config
from cairn.engine.endpoints.contract import Endpoint, EndpointStore
from cairn.engine.errors import invalid
from cairn.engine.governance.access import CAN_MANAGE, Access
from cairn.engine.governance.limits import check_limits
from cairn.engine.governance.privileges import SERVING_ENDPOINT, Securable


class CreateEndpoint(msgspec.Struct):
    name: str | None = None
    config: dict[str, Any] | None = None
    rate_limits: list[Any] | None = None


class RateLimitsBody(msgspec.Struct):
    rate_limits: list[Any] = []


def endpoint_out(ep: Endpoint, rate_limits=()) -> dict:
    config = msgspec.to_builtins(ep.config)
    config["config_version"] = ep.config_version
    return {
        **({"rate_limits": msgspec.to_builtins(rate_limits)} if rate_limits else {}),
        "name": ep.name,
        "id": ep.id,
        "creator": ep.creator,
        "creation_timestamp": ep.creation_timestamp,
        "last_updated_timestamp": ep.last_updated_timestamp,
        "config": config,
        "state": {"config_update": "NOT_UPDATING"},
    }


def _config(body: Any) -> dict:
    if not isinstance(body, dict):
        raise invalid("config: a JSON object with served_entities is required")
    # Databricks' EndpointCoreConfigInput may repeat the endpoint's name: the path names it.
    return {k: v for k, v in body.items() if k != "name"}


class EndpointController(Controller):
    path = "/api/2.0/serving-endpoints"
    tags = ("serving-endpoints",)

    @post("/", status_code=200, sync_to_thread=True)
    def create(self, endpoints: EndpointStore, engine: Engine, access: Access, data: JSONBody[CreateEndpoint]) -> dict:
        name = required(data.name, "name")
        access.signed_in()
        if data.config is None:
            raise invalid("config: a JSON object with served_entities is required")
        config = _config(data.config)
        access.serves(check_config(config).served_entities)
        limits = engine.governance.rate_limits
        if data.rate_limits:
            check_limits(data.rate_limits)  # refused before the endpoint exists
        ep = endpoints.create_endpoint(name, config, creator=access.caller.principal)
        access.created(Securable(SERVING_ENDPOINT, ep.name))
        if data.rate_limits:
            limits.set(ep.name, data.rate_limits, access.caller.principal)
        return endpoint_out(ep, limits.get(ep.name))

    @get("/", sync_to_thread=False)
    def list_endpoints(self, endpoints: EndpointStore, access: Access) -> dict:
        eps = endpoints.list_endpoints()
        seen = set(access.visible(SERVING_ENDPOINT, [ep.name for ep in eps]))
        return {"endpoints": [endpoint_out(ep) for ep in eps if ep.name in seen]}

    @get("/{name:str}", sync_to_thread=False)
    def get_endpoint(self, endpoints: EndpointStore, engine: Engine, access: Access, name: str) -> dict:
        access.endpoint(name)
        return endpoint_out(endpoints.get_endpoint(name), engine.governance.rate_limits.get(name))

    @put("/{name:str}/rate-limits", status_code=200, sync_to_thread=True)
    def set_rate_limits(self, endpoints: EndpointStore, engine: Engine, access: Access, name: str,
                        data: JSONBody[RateLimitsBody]) -> dict:
        """Databricks' PUT rate-limits: replaces them ([] removes every limit)."""
        access.endpoint(name, CAN_MANAGE)
        endpoints.get_endpoint(name)
        limits = engine.governance.rate_limits.set(name, data.rate_limits, access.caller.principal)
        return {"rate_limits": msgspec.to_builtins(limits)}

    @put("/{name:str}/config", status_code=200, sync_to_thread=True)
    def update_config(self, endpoints: EndpointStore, access: Access, name: str, data: JSONBody[Any]) -> dict:
        access.endpoint(name, CAN_MANAGE)
        config = _config(data)
        access.serves(check_config(config).served_entities)
        return endpoint_out(endpoints.update_config(name, config))

    @delete("/{name:str}", status_code=200, sync_to_thread=True)
    def delete_endpoint(self, endpoints: EndpointStore, access: Access, name: str) -> dict:
        access.endpoint(name, CAN_MANAGE)
        endpoints.delete_endpoint(name)
        access.deleted(Securable(SERVING_ENDPOINT, name))
        return {}

    # Up to 10,000 records decoded per page: in a thread, so the event loop keeps serving.
    @get("/{name:str}/payloads", sync_to_thread=True)
    def payloads(
        self,
        endpoints: EndpointStore,
        access: Access,
        name: str,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> dict:
        access.endpoint(name, CAN_MANAGE)
        page = endpoints.read_payloads(
            name, start_ms=start_time_ms, end_ms=end_time_ms, max_results=max_results, page_token=page_token or None
        )
        return page_out("payloads", [msgspec.to_builtins(r) for r in page.items], page.next_page_token)
