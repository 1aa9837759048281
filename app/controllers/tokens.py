"""/api/2.0/token: personal access tokens in Databricks' shape, for the caller.

  POST /api/2.0/token/create  {lifetime_seconds?, comment?} -> {token_value, token_info}
  GET  /api/2.0/token/list    -> {token_infos: [...]} (the caller's; every token for an admin)
  POST /api/2.0/token/delete  {token_id} -> {} (the caller's own, or any for an admin)

The value is shown once and stored only as a hash. With auth off there is no one to
issue a token to, so create answers INVALID_STATE saying how to turn auth on.
"""
from __future__ import annotations

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from cairn.app.auth import source_of
from cairn.app.registrywire import required
from cairn.engine.datadir import Engine
from cairn.engine.errors import INVALID_STATE, PERMISSION_DENIED, CairnError
from cairn.engine.governance.access import Access


class CreateToken(msgspec.Struct):
    lifetime_seconds: float | None = None
    comment: str | None = None


class DeleteToken(msgspec.Struct):
    token_id: str | None = None


def _info_out(info) -> dict:
    return {"token_id": info.token_id, "creation_time": info.creation_time, "expiry_time": info.expiry_time,
            "comment": info.comment, "principal": info.principal}


class TokenController(Controller):
    path = "/api/2.0/token"
    tags = ("tokens",)

    @post("/create", status_code=200, sync_to_thread=True)
    def create(self, engine: Engine, access: Access, request: Request, data: JSONBody[CreateToken]) -> dict:
        caller = access.signed_in()
        if not caller.principal:
            raise CairnError("Authentication is off on this server: tokens are not needed. Start it with "
                             "--auth (after `cairn users create NAME --admin`) to use them.", INVALID_STATE)
        value, info = engine.governance.credentials.create_token(caller.principal, data.lifetime_seconds,
                                                                 data.comment or "")
        engine.governance.audit.record(caller.principal, source_of(request.scope), "token.create", info.token_id)
        return {"token_value": value, "token_info": _info_out(info)}

    @get("/list", sync_to_thread=True)
    def list_tokens(self, engine: Engine, access: Access) -> dict:
        caller = access.signed_in()
        tokens = engine.governance.credentials.list_tokens(None if caller.admin else caller.principal)
        return {"token_infos": [_info_out(t) for t in tokens]}

    @post("/delete", status_code=200, sync_to_thread=True)
    def delete(self, engine: Engine, access: Access, request: Request, data: JSONBody[DeleteToken]) -> dict:
        caller = access.signed_in()
        token_id = required(data.token_id, "token_id")
        owner = engine.governance.credentials.token_owner(token_id)
        if owner != caller.principal and not caller.admin:
            raise CairnError(f"Token '{token_id}' is not yours: only its owner or an admin may revoke it",
                             PERMISSION_DENIED)
        engine.governance.credentials.revoke_token(token_id)
        engine.governance.audit.record(caller.principal, source_of(request.scope), "token.revoke", token_id)
        return {}
