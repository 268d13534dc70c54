"""What the OpenAPI documents say about answers: the error model, the statuses, CSV bodies.

Every service's error answer has one shape, `ErrorAnswer` (built by `huibao_platform.http`);
`answers(...)` builds the `responses=` of a route from the statuses it can really answer,
and `install_openapi(app)` makes the document tell the truth about what FastAPI adds on its
own: its `HTTPValidationError` 422 schema is replaced by `ErrorAnswer`, and every operation
that takes a bearer token also declares 400 (a repeated `Authorization` header), 401, 403
and 503 (the token store is in PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from huibao_contracts.periods import PERIOD_PATTERN


class ErrorItem(BaseModel):
    """One reason a request was refused."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        description="The field, parameter or header at fault (`body` for the whole body, "
        "`token` for the bearer token, `service` when a dependency is unavailable).",
        examples=["period"],
    )
    reason: str = Field(
        description="A stable machine-readable reason, such as `invalid_field`, "
        "`invalid_period`, `not_found`, `missing_scope`, `out_of_scope`, `conflict`, "
        "`too_large`, `unsupported_media_type`, `unauthenticated` or `unavailable`.",
        examples=["invalid_period"],
    )
    message: str = Field(
        description="What went wrong, for a person.",
        examples=["'2026-13' is not a period: use YYYY-MM (month), YYYY-Qn (quarter) or YYYY"],
    )


class ErrorAnswer(BaseModel):
    """The body of every 4xx and 5xx answer: the list of what was wrong."""

    model_config = ConfigDict(extra="forbid")

    errors: list[ErrorItem] = Field(min_length=1, description="At least one error.")


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The authentication scheme expected (`Bearer`).",
        "schema": {"type": "string"},
    }
}

_DESCRIPTIONS = {
    400: "The request is malformed (a repeated `Authorization` header, a body that is no "
    "JSON, an envelope that is not a CloudEvent).",
    401: "No bearer token, or an unknown or revoked one.",
    403: "The token lacks a scope the operation needs, or the target is outside its subtree.",
    404: "The target does not exist.",
    409: "The request conflicts with the current state.",
    413: "The body is larger than allowed.",
    415: "The body's media type is not accepted.",
    422: "A field or parameter is invalid; each error names it and the reason.",
    502: "An upstream service answered a server error.",
    503: "A dependency (PostgreSQL, Kafka or an upstream service) is unavailable: retry "
    "after `Retry-After` when it is given.",
}

CSV_CONTENT: dict[str, Any] = {
    "text/csv": {
        "schema": {"type": "string", "description": "UTF-8 CSV with a header row."},
    }
}
"""The `content` entry of an answer that can also be CSV (`?format=csv` or
`Accept: text/csv`)."""


def error_response(status: int) -> dict[str, Any]:
    """The `responses` entry of one error status."""
    entry: dict[str, Any] = {"model": ErrorAnswer, "description": _DESCRIPTIONS[status]}
    if status == 503:
        entry["headers"] = _RETRY_AFTER
    if status == 401:
        entry["headers"] = _WWW_AUTHENTICATE
    return entry


def answers(
    *errors: int, ok: int = 200, model: Any = None, csv: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the error statuses it can answer, and, when the route
    sends pre-serialised bytes or CSV, its 2xx `model` and the `text/csv` alternative."""
    out: dict[int | str, dict[str, Any]] = {code: error_response(code) for code in errors}
    if model is not None or csv:
        success: dict[str, Any] = {}
        if model is not None:
            success["model"] = model
        if csv:
            success["content"] = CSV_CONTENT
        out[ok] = success
    return out


PERIOD_DESCRIPTION = "A month `2026-05`, a quarter `2026-Q2` or a year `2026`."

_PERIOD_SCHEMA = {"pattern": PERIOD_PATTERN}
# the pattern is declared, not enforced by FastAPI: the route parses the period itself and
# answers 422 `invalid_period` on the field's own name (`period`, not `query.period`), and
# also refuses what a pattern cannot say (a year outside the storable range, a month where
# a quarter is wanted)

PeriodQuery = Annotated[
    str,
    Query(json_schema_extra=_PERIOD_SCHEMA, description=PERIOD_DESCRIPTION, examples=["2026-05"]),
]
"""A `period` (or `from`, `to`, `quarter`) query parameter, with the contracts' pattern."""

PeriodPath = Annotated[
    str,
    Path(json_schema_extra=_PERIOD_SCHEMA, description=PERIOD_DESCRIPTION, examples=["2026-05"]),
]
"""A `{period}` path parameter, with the contracts' pattern."""

_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_ERROR_REF = "#/components/schemas/ErrorAnswer"
_AUTH_ERRORS = (400, 401, 403, 503)


def _error_entry(status: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
    }
    headers = _RETRY_AFTER if status == 503 else _WWW_AUTHENTICATE if status == 401 else None
    if headers is not None:
        entry["headers"] = headers
    return entry


def correct_document(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with FastAPI's 422 replaced by `ErrorAnswer` and the auth statuses declared."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorAnswer.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorAnswer"] = error_schema
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            _correct_operation(op)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc


def _correct_operation(op: dict[str, Any]) -> None:
    responses = op.setdefault("responses", {})
    unprocessable = responses.get("422")
    if unprocessable is not None:
        for media in unprocessable.get("content", {}).values():
            if media.get("schema", {}).get("$ref") == _FASTAPI_422:
                media["schema"] = {"$ref": _ERROR_REF}
                unprocessable["description"] = _DESCRIPTIONS[422]
    elif op.get("parameters") or op.get("requestBody"):
        responses["422"] = _error_entry(422)
    for status, answer in responses.items():
        # a declared model wins over the schema FastAPI makes of a route's return
        # annotation (`dict[str, Any]` beside the `$ref`)
        for media in answer.get("content", {}).values() if status < "300" else ():
            schema = media.get("schema", {})
            if "$ref" in schema:
                media["schema"] = {"$ref": schema["$ref"]}
    if op.get("security"):
        for status in _AUTH_ERRORS:
            responses.setdefault(str(status), _error_entry(status))


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` answer the corrected document (built once, then cached)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = correct_document(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of `model` with its `$defs` written in place, for an `openapi_extra`
    request body (whose `#/$defs/...` references would not resolve in the document)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
