"""POST /v1/events: one structured CloudEvent or a batch, answered per event.

Status codes. A batch (a JSON array, or `application/cloudevents-batch+json`) answers 200
whatever the outcome of each event. A single event answers 202 when accepted (200 in a dry
run), 200 when it is a duplicate, 403 when it lies outside the token's subtree and 422
when it is refused otherwise. Malformed JSON is 400, so is an array sent as one structured
event or a batch that is not an array; an unsupported content type is 415, a
body, an event or a batch over its limit 413.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, HTTPException, Query, Request, Security
from fastapi.responses import JSONResponse

from huibao_contracts.envelope import BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE, CloudEvent
from huibao_contracts.rejects import FieldError, Reason
from huibao_platform.auth import Principal
from huibao_platform.http import error_body
from huibao_platform.openapi_doc import ErrorAnswer, error_response
from huibao_reporting.domain.decisions import Status
from huibao_reporting.domain.events import Submission
from huibao_reporting.entrypoints.answers_schema import EventsAnswer
from huibao_reporting.entrypoints.bodies import (
    parse_json,
    read_body,
    require_media_type,
    too_large,
)
from huibao_reporting.entrypoints.log_fields import event_fields, outcome_fields
from huibao_reporting.service_layer.intake import EventResult, Intake
from huibao_reporting.settings import ReportingSettings

EVENT_TYPES = ("application/json", STRUCTURED_CONTENT_TYPE, BATCH_CONTENT_TYPE)

_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            STRUCTURED_CONTENT_TYPE: {"schema": CloudEvent.model_json_schema()},
            BATCH_CONTENT_TYPE: {
                "schema": {"type": "array", "items": CloudEvent.model_json_schema()}
            },
            "application/json": {
                "schema": {
                    "anyOf": [
                        CloudEvent.model_json_schema(),
                        {"type": "array", "items": CloudEvent.model_json_schema()},
                    ]
                }
            },
        },
    },
}


def _summary(results: Sequence[EventResult]) -> dict[str, Any]:
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    return {
        "results": [r.as_json() for r in results],
        "accepted": counts[Status.ACCEPTED],
        "duplicates": counts[Status.DUPLICATE],
        "rejected": counts[Status.REJECTED],
    }


def _submission(item: Any, max_bytes: int) -> Submission:
    raw = orjson.dumps(item)
    if len(raw) > max_bytes:
        error = FieldError(
            field="event",
            reason=Reason.TOO_LARGE,
            message=f"the event is {len(raw)} bytes; the limit is {max_bytes}",
        )
        return Submission(item, raw, error=error)
    return Submission(item, raw)


def _single_status(result: EventResult, dry_run: bool) -> int:
    if result.status is Status.ACCEPTED:
        return 200 if dry_run else 202
    if result.status is Status.DUPLICATE:
        return 200
    return 403 if any(e.reason is Reason.OUT_OF_SCOPE for e in result.errors) else 422


def events_router(
    settings: ReportingSettings,
    intake: Callable[[], Intake],
    principal: Callable[..., Awaitable[Principal]],
) -> APIRouter:
    """The router of POST /v1/events."""
    router = APIRouter(tags=["events"])

    @router.post(
        "/v1/events",
        summary="Submit one CloudEvent or a batch",
        description=__doc__ or "",
        openapi_extra=_OPENAPI,
        responses={
            200: {
                "model": EventsAnswer,
                "description": "A batch (whatever each event's outcome), a duplicate, or an "
                "event accepted in a dry run.",
            },
            202: {"model": EventsAnswer, "description": "A single event accepted."},
            403: {
                "model": EventsAnswer | ErrorAnswer,
                "description": "A single event outside the token's subtree (its result), "
                "or a token without the `report` scope.",
            },
            413: error_response(413),
            415: error_response(415),
            422: {
                "model": EventsAnswer | ErrorAnswer,
                "description": "A single event refused (its result and `errors`), or an "
                "invalid parameter.",
            },
        },
    )
    async def post_events(
        request: Request,
        caller: Annotated[Principal, Security(principal, scopes=["report"])],
        dry_run: Annotated[bool, Query(description="Validate only; store nothing.")] = False,
    ) -> JSONResponse:
        mt = require_media_type(request, EVENT_TYPES)
        raw = await read_body(request, settings.max_body_bytes)
        body = parse_json(raw)
        if isinstance(body, list) and mt == STRUCTURED_CONTENT_TYPE:
            raise HTTPException(
                400,
                error_body(
                    "body",
                    "invalid_envelope",
                    f"{STRUCTURED_CONTENT_TYPE} is one event, a JSON object; send a batch as"
                    f" {BATCH_CONTENT_TYPE} (or application/json)",
                ),
            )
        if isinstance(body, list) or mt == BATCH_CONTENT_TYPE:
            if not isinstance(body, list):
                raise HTTPException(
                    400,
                    error_body(
                        "body", "invalid_envelope", "a batch must be a JSON array of events"
                    ),
                )
            if len(body) > settings.max_batch_events:
                raise too_large(
                    "body",
                    f"the batch holds {len(body)} events; the limit is {settings.max_batch_events}",
                )
            subs = [_submission(item, settings.max_event_bytes) for item in body]
            results = await intake().submit(
                subs, channel="http", scope=caller.unit, dry_run=dry_run
            )
            structlog.contextvars.bind_contextvars(**outcome_fields(results))
            return JSONResponse(_summary(results), status_code=200)
        if len(raw) > settings.max_event_bytes:
            raise too_large(
                "body", f"the event is {len(raw)} bytes; the limit is {settings.max_event_bytes}"
            )
        sub = Submission(body, raw)
        structlog.contextvars.bind_contextvars(**event_fields(sub))
        results = await intake().submit([sub], channel="http", scope=caller.unit, dry_run=dry_run)
        structlog.contextvars.bind_contextvars(**outcome_fields(results))
        answer = _summary(results)
        if results[0].errors:
            answer["errors"] = answer["results"][0]["errors"]
        return JSONResponse(answer, status_code=_single_status(results[0], dry_run))

    return router
