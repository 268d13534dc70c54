"""Admin API of bearer tokens: create one for a unit (the clear token is shown once), revoke.

POST /v1/tokens answers 201 with the token and its hash; DELETE /v1/tokens/{hash} answers
204, or 404 when no active token has that hash. Both need the admin token (403 otherwise).
"""

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.orgunits import OrgUnitId
from huibao_platform.auth import Principal, TokenStore, hash_token
from huibao_platform.http import error_body
from huibao_reporting.service_layer.registry import Registry, RegistryRefusedError


class TokenRequest(BaseModel):
    """A token to create for an org unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    unit: OrgUnitId
    label: str = Field(default="", max_length=200, description="Who holds it, for the audit.")


def tokens_router(
    tokens: Callable[[], TokenStore],
    registry: Callable[[], Registry],
    principal: Callable[..., Awaitable[Principal]],
) -> APIRouter:
    """The router of /v1/tokens."""
    router = APIRouter(tags=["tokens"])

    async def admin(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if not caller.is_admin:
            raise HTTPException(
                403, error_body("token", "out_of_scope", "only the admin token manages tokens")
            )
        return caller

    @router.post("/v1/tokens", status_code=201, summary="Create a token bound to a unit")
    async def create(
        body: TokenRequest, caller: Annotated[Principal, Depends(admin)]
    ) -> dict[str, Any]:
        try:
            await registry().get(body.unit, None, dt.date.max)
        except RegistryRefusedError as e:
            raise HTTPException(
                422, error_body("unit", "unknown_unit", f"unknown org unit {body.unit}")
            ) from e
        token = await tokens().create(body.unit, body.label)
        return {
            "token": token,
            "token_hash": hash_token(token),
            "unit": body.unit,
            "label": body.label,
        }

    @router.delete("/v1/tokens/{token_hash}", status_code=204, summary="Revoke a token")
    async def revoke(
        token_hash: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
        caller: Annotated[Principal, Depends(admin)],
    ) -> Response:
        if not await tokens().revoke(token_hash):
            raise HTTPException(
                404, error_body("token_hash", "not_found", "no active token has this hash")
            )
        return Response(status_code=204)

    return router
