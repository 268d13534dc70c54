"""Admin API of bearer tokens: create one for a unit with its scopes (the clear token is
shown once), revoke one.

POST /v1/tokens answers 201 with the token, its hash, unit, label and scopes; DELETE
/v1/tokens/{hash} answers 204, or 404 when no active token has that hash. Both need the
`admin` scope (403 `missing_scope` otherwise): the admin token manages every token, a stored
token with `admin` those of its own subtree, granting only scopes it holds. An unknown unit
is 422 `unknown_unit`, the same rule `huibao token create` follows
(`huibao_reporting.service_layer.tokens`).
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Response, Security
from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.orgunits import OrgUnitId
from huibao_contracts.storable import Text
from huibao_platform.auth import Principal, TokenStore
from huibao_platform.http import error_body
from huibao_platform.openapi_doc import answers
from huibao_reporting.entrypoints.answers_schema import TokenAnswer
from huibao_reporting.service_layer.registry import Registry
from huibao_reporting.service_layer.tokens import TokenRefusedError, issue_token, revoke_token

Scope = Literal["report", "read", "approve", "admin"]
_DEFAULT_SCOPES: tuple[Scope, ...] = ("report", "read")


class TokenRequest(BaseModel):
    """A token to create for an org unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    unit: OrgUnitId
    label: Text = Field(default="", max_length=200, description="Who holds it, for the audit.")
    scopes: list[Scope] = Field(
        default_factory=lambda: list(_DEFAULT_SCOPES),
        min_length=1,
        description="What the token may do: `report` (submit activity, change the registry "
        "of its subtree), `read` (every query), `approve` (the approval work), `admin` "
        "(manage the tokens of its subtree). A token grants only scopes it holds.",
        examples=[["report", "read"], ["read"]],
    )


def _refused(e: TokenRefusedError) -> HTTPException:
    return HTTPException(e.status, error_body(e.field, e.reason, e.message))


def tokens_router(
    tokens: Callable[[], TokenStore],
    registry: Callable[[], Registry],
    principal: Callable[..., Awaitable[Principal]],
) -> APIRouter:
    """The router of /v1/tokens."""
    router = APIRouter(tags=["tokens"])
    Admin = Annotated[Principal, Security(principal, scopes=["admin"])]  # noqa: N806

    @router.post(
        "/v1/tokens",
        status_code=201,
        summary="Create a token bound to a unit",
        responses=answers(ok=201, model=TokenAnswer),
    )
    async def create(body: TokenRequest, caller: Admin) -> dict[str, Any]:
        try:
            made = await issue_token(
                registry(), tokens(), caller, body.unit, body.label, body.scopes
            )
        except TokenRefusedError as e:
            raise _refused(e) from e
        return {
            "token": made.token,
            "token_hash": made.token_hash,
            "unit": made.unit,
            "label": made.label,
            "scopes": list(made.scopes),
        }

    @router.delete(
        "/v1/tokens/{token_hash}",
        status_code=204,
        summary="Revoke a token",
        responses=answers(404),
    )
    async def revoke(
        token_hash: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], caller: Admin
    ) -> Response:
        try:
            await revoke_token(registry(), tokens(), caller, token_hash)
        except TokenRefusedError as e:
            raise _refused(e) from e
        return Response(status_code=204)

    return router
