"""The org-unit registry over HTTP: bulk import (JSON or CSV), read, move, merge, close.

PUT /v1/orgunits answers 200 with counts; 422 with field paths such as `[3].parent` when
any unit is refused (nothing is stored then), 403 when a unit lies outside the token's
subtree, 413 over the size limits, 415 for another content type. The dated changes answer
200 with the published `OrgUnitChange`s, 404 for an unknown unit, 422 for a refused change.
"""

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from huibao_contracts.orgunits import ORG_UNIT_ID_PATTERN, OrgUnit, OrgUnitChange, OrgUnitId
from huibao_contracts.rejects import FieldError, Reason
from huibao_contracts.storable import StorableDate
from huibao_platform.auth import Principal
from huibao_platform.http import error_body
from huibao_platform.openapi_doc import CSV_CONTENT, answers, inline_schema
from huibao_reporting.domain.events import field_errors
from huibao_reporting.domain.registry_rules import ImportKind
from huibao_reporting.entrypoints.answers_schema import (
    ChangesAnswer,
    ImportAnswer,
    ImportRow,
    OrgUnitAnswer,
)
from huibao_reporting.entrypoints.bodies import (
    parse_csv,
    parse_json,
    read_body,
    require_media_type,
    too_large,
)
from huibao_reporting.service_layer.registry import Registry, RegistryRefusedError
from huibao_reporting.settings import ReportingSettings

CSV_COLUMNS = tuple(OrgUnit.model_fields)
EFFECTIVE = "effective"
"""The optional row field (JSON key or CSV column) from which an import's change holds;
without it, from the day of the import in the configured time zone."""
IMPORT_COLUMNS = (*CSV_COLUMNS, EFFECTIVE)
_DATE: TypeAdapter[dt.date] = TypeAdapter(StorableDate)
UnitPath = Annotated[str, Path(pattern=ORG_UNIT_ID_PATTERN, description="Org-unit id.")]


class MoveRequest(BaseModel):
    """Move a unit under another parent from `effective` on."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    parent: OrgUnitId
    effective: StorableDate = Field(description="First day under the new parent.")


class MergeRequest(BaseModel):
    """Merge a unit into another from `effective` on; its children move there."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    into: OrgUnitId
    effective: StorableDate = Field(description="First day of the merged unit.")


class CloseRequest(BaseModel):
    """Close a unit from `effective` on."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    effective: StorableDate = Field(description="First day the unit is no longer active.")


_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": inline_schema(ImportRow)}},
            **CSV_CONTENT,
        },
    },
}


def refused(e: RegistryRefusedError) -> HTTPException:
    """The HTTP answer of a refused registry request."""
    return HTTPException(e.status, {"errors": [x.model_dump(mode="json") for x in e.errors]})


def _units(items: Any) -> tuple[list[OrgUnit], list[dt.date | None]]:
    """The units of an import and each row's `effective` date (None when absent)."""
    if not isinstance(items, list):
        raise HTTPException(
            422, error_body("body", "invalid_field", "send a JSON array of org units")
        )
    units, effectives, errors = [], [], []
    for i, given in enumerate(items):
        effective: dt.date | None = None
        item = given
        if isinstance(given, dict) and EFFECTIVE in given:
            item = {k: v for k, v in given.items() if k != EFFECTIVE}
            raw = given[EFFECTIVE]
            try:
                effective = None if raw is None else _DATE.validate_python(raw)
            except ValidationError:
                errors.append(
                    FieldError(
                        field=f"[{i}].{EFFECTIVE}",
                        reason=Reason.INVALID_FIELD,
                        message="effective must be a date (YYYY-MM-DD)",
                    )
                )
        try:
            units.append(OrgUnit.model_validate(item))
            effectives.append(effective)
        except ValidationError as e:
            errors += field_errors(e, f"[{i}]", Reason.INVALID_FIELD, CSV_COLUMNS)
    if errors:
        raise HTTPException(422, {"errors": [x.model_dump(mode="json") for x in errors[:1000]]})
    return units, effectives


def _changes(changes: list[OrgUnitChange]) -> dict[str, Any]:
    return {"changes": [c.model_dump(mode="json") for c in changes]}


def orgunits_router(
    settings: ReportingSettings,
    registry: Callable[[], Registry],
    principal: Callable[..., Awaitable[Principal]],
    today: Callable[[], dt.date],
) -> APIRouter:
    """The router of /v1/orgunits."""
    router = APIRouter(tags=["orgunits"])
    # registry writes need the `report` scope, reads the `read` scope (type aliases)
    Caller = Annotated[Principal, Security(principal, scopes=["report"])]  # noqa: N806
    Reader = Annotated[Principal, Security(principal, scopes=["read"])]  # noqa: N806

    @router.put(
        "/v1/orgunits",
        summary="Import org units in bulk (JSON array or CSV)",
        description=__doc__ or "",
        openapi_extra=_IMPORT_BODY,
        responses=answers(413, 415, model=ImportAnswer),
    )
    async def put_orgunits(request: Request, caller: Caller) -> JSONResponse:
        mt = require_media_type(request, ("application/json", "text/csv"))
        raw = await read_body(request, settings.max_registry_body_bytes)
        items: Any = parse_csv(raw, IMPORT_COLUMNS) if mt == "text/csv" else parse_json(raw)
        if isinstance(items, list) and len(items) > settings.max_registry_units:
            raise too_large(
                "body", f"{len(items)} units; the limit is {settings.max_registry_units}"
            )
        units, effectives = _units(items)
        try:
            plan = await registry().import_units(units, caller.unit, today(), effectives)
        except RegistryRefusedError as e:
            raise refused(e) from e
        return JSONResponse({kind.value: plan.count(kind) for kind in ImportKind})

    @router.get(
        "/v1/orgunits/{unit_id}",
        summary="One org unit with its path and children",
        responses=answers(404, model=OrgUnitAnswer),
    )
    async def get_orgunit(unit_id: UnitPath, caller: Reader) -> dict[str, Any]:
        try:
            found = await registry().get(unit_id, caller.unit, today())
        except RegistryRefusedError as e:
            raise refused(e) from e
        unit = found.record.unit
        return {
            **unit.model_dump(mode="json"),
            "path": list(found.path),
            "children": found.children,
            "placements": [
                {
                    "valid_from": None if p.valid_from == dt.date.min else p.valid_from.isoformat(),
                    "parent": p.parent,
                }
                for p in found.record.placements
            ],
            "labels": [
                {
                    "valid_from": None if x.valid_from == dt.date.min else x.valid_from.isoformat(),
                    "name": x.name,
                    "members": x.members,
                }
                for x in found.record.all_labels
            ],
        }

    @router.post(
        "/v1/orgunits/{unit_id}/move",
        summary="Move a unit from an effective date",
        responses=answers(404, model=ChangesAnswer),
    )
    async def move(unit_id: UnitPath, body: MoveRequest, caller: Caller) -> dict[str, Any]:
        try:
            return _changes(
                await registry().move(unit_id, body.parent, body.effective, caller.unit)
            )
        except RegistryRefusedError as e:
            raise refused(e) from e

    @router.post(
        "/v1/orgunits/{unit_id}/merge",
        summary="Merge a unit into another",
        responses=answers(404, model=ChangesAnswer),
    )
    async def merge(unit_id: UnitPath, body: MergeRequest, caller: Caller) -> dict[str, Any]:
        try:
            return _changes(await registry().merge(unit_id, body.into, body.effective, caller.unit))
        except RegistryRefusedError as e:
            raise refused(e) from e

    @router.post(
        "/v1/orgunits/{unit_id}/close",
        summary="Close a unit from an effective date",
        responses=answers(404, model=ChangesAnswer),
    )
    async def close(unit_id: UnitPath, body: CloseRequest, caller: Caller) -> dict[str, Any]:
        try:
            return _changes(await registry().close(unit_id, body.effective, caller.unit))
        except RegistryRefusedError as e:
            raise refused(e) from e

    return router
