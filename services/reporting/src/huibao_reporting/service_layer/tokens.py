"""Token use cases: issue a token for a unit, revoke one; the one rule for the HTTP API
and for `huibao token create`.

A token is issued only for a unit the registry knows (422 `unknown_unit` otherwise), inside
the issuer's subtree (403), holding only scopes the issuer holds itself (403
`missing_scope`): the admin token holds every scope and the whole tree; a stored token
with the `admin` scope may manage the tokens of its own subtree, never wider ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from huibao_contracts.rejects import Reason
from huibao_platform.auth import (
    DEFAULT_SCOPES,
    InvalidScopeError,
    Principal,
    hash_token,
    parse_scopes,
)
from huibao_reporting.errors import ReportingError
from huibao_reporting.service_layer.ports import Tokens
from huibao_reporting.service_layer.registry import Registry, RegistryRefusedError


class TokenRefusedError(ReportingError):
    """A token request was refused: `status`, and the `field`, `reason`, `message` of it."""

    def __init__(self, status: int, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.reason, self.message = status, field, reason, message


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just made: the clear text (shown once), its hash, unit, label and scopes."""

    token: str
    token_hash: str
    unit: str
    label: str
    scopes: tuple[str, ...]


async def _check_place(registry: Registry, unit: str, issuer: Principal) -> None:
    try:
        await registry.get(unit, issuer.unit, dt.date.max)
    except RegistryRefusedError as e:
        if any(err.reason is Reason.OUT_OF_SCOPE for err in e.errors):
            raise TokenRefusedError(
                403, "unit", "out_of_scope", f"{unit} lies outside the subtree of {issuer.unit}"
            ) from e
        raise TokenRefusedError(422, "unit", "unknown_unit", f"unknown org unit {unit}") from e


def _check_admin(issuer: Principal) -> None:
    if "admin" not in issuer.scopes:
        raise TokenRefusedError(
            403, "token", "missing_scope", "managing tokens needs the `admin` scope"
        )


async def issue_token(
    registry: Registry,
    tokens: Tokens,
    issuer: Principal,
    unit: str,
    label: str = "",
    scopes: Iterable[str] | None = None,
) -> IssuedToken:
    """Make a token for `unit` holding `scopes` (default `report`, `read`) on behalf of
    `issuer`; TokenRefusedError when the rule above refuses it."""
    _check_admin(issuer)
    try:
        wanted = parse_scopes(scopes) if scopes is not None else DEFAULT_SCOPES
    except InvalidScopeError as e:
        raise TokenRefusedError(422, "scopes", "invalid_field", str(e)) from e
    beyond = issuer.missing(wanted)
    if beyond:
        raise TokenRefusedError(
            403,
            "scopes",
            "missing_scope",
            f"a token grants only scopes it holds; this one lacks `{'`, `'.join(beyond)}`",
        )
    await _check_place(registry, unit, issuer)
    token = await tokens.create(unit, label, wanted)
    return IssuedToken(token, hash_token(token), unit, label, wanted)


async def revoke_token(
    registry: Registry, tokens: Tokens, issuer: Principal, token_hash: str
) -> None:
    """Revoke the active token of `token_hash`: 404 when none is active, 403 when it is
    bound outside the issuer's subtree (a token of a unit the registry lost is revoked
    by the admin token only)."""
    _check_admin(issuer)
    holder = await tokens.holder(token_hash)
    if holder is not None and issuer.unit is not None:
        try:
            await _check_place(registry, holder.unit or "", issuer)
        except TokenRefusedError as e:
            raise TokenRefusedError(
                403, "token_hash", "out_of_scope", "the token is bound outside your subtree"
            ) from e
    if holder is None or not await tokens.revoke(token_hash):
        raise TokenRefusedError(404, "token_hash", "not_found", "no active token has this hash")
