"""The HTTP side every service shares: health, metrics, errors, auth and request logging."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huibao_platform import db, metrics, tracing
from huibao_platform.auth import Principal, TokenStore
from huibao_platform.errors import (
    BrokerUnavailableError,
    StorageUnavailableError,
    UnstorableValueError,
)
from huibao_platform.logs import get_logger
from huibao_platform.openapi_doc import answers, install_openapi

log = get_logger("http")

ReadyCheck = Callable[[], Awaitable[bool]]


class Live(BaseModel):
    """`GET /health/live`: the process answers."""

    status: Literal["live"] = Field(description="Always `live`.")
    service: str = Field(description="The service answering.", examples=["rollup"])
    version: str = Field(description="Its package version.", examples=["0.1.0"])


class Ready(BaseModel):
    """`GET /health/ready`: whether every dependency answered (200) or not (503)."""

    status: Literal["ready", "not_ready"] = Field(description="`ready` when every check is.")
    service: str = Field(description="The service answering.", examples=["rollup"])
    checks: dict[str, bool] = Field(
        description="Each dependency checked and whether it answered in time.",
        examples=[{"postgres": True, "kafka": True}],
    )


class Whoami(BaseModel):
    """`GET /v1/whoami`: the calling token."""

    unit: str | None = Field(
        description="The unit whose subtree the token may see; null for the admin token.",
        examples=["qingyuan"],
    )
    label: str = Field(
        description="The token's label (`admin` for the admin token; may be empty).",
        examples=["county office"],
    )
    scopes: list[str] = Field(
        description="The scopes it holds, in order.", examples=[["report", "read"]]
    )


def error_body(field: str, reason: str, message: str) -> dict[str, Any]:
    """The one shape of every error answer: a list of field errors."""
    return {"errors": [{"field": field, "reason": reason, "message": message}]}


def _field_path(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) if parts else "body"


def install_common(app: FastAPI, service: str, ready_checks: dict[str, ReadyCheck]) -> None:
    """Add health, metrics, error handlers and the canonical request log line to `app`."""

    try:
        version = metadata.version(f"huibao-{service}")
    except metadata.PackageNotFoundError:
        version = "unknown"

    @app.get(
        "/health/live",
        tags=["health"],
        summary="The process is alive",
        responses={200: {"model": Live}},
    )
    async def live() -> dict[str, str]:
        return {"status": "live", "service": service, "version": version}

    @app.get(
        "/health/ready",
        tags=["health"],
        summary="PostgreSQL and Kafka are reachable",
        responses={
            200: {"model": Ready},
            503: {"model": Ready, "description": "A dependency is not reachable."},
        },
    )
    async def ready() -> JSONResponse:
        names = list(ready_checks)
        outcomes = await asyncio.gather(*(_checked(ready_checks[n]) for n in names))
        results = dict(zip(names, outcomes, strict=True))
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "service": service, "checks": results},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field_path(e.get("loc", ())),
                "reason": "invalid_field",
                "message": str(e.get("msg", "invalid")),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"errors": errors}, status_code=422)

    # Starlette's class, FastAPI's subclass: the body FastAPI cannot parse and an unknown
    # route are raised as Starlette's and get the same error shape as every other answer
    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and "errors" in exc.detail:
            body = exc.detail
        else:
            body = error_body("request", _reason_of(exc.status_code), str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StorageUnavailableError)
    @app.exception_handler(BrokerUnavailableError)
    async def on_unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            error_body("service", "unavailable", str(exc)),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    async def on_driver_error(request: Request, exc: Exception) -> JSONResponse:
        # a PostgreSQL driver error no adapter translated (a token lookup, a pooled
        # connection caught mid-restart): transient, so 503 and a retry, never a 500
        log.warning(
            "storage_error_unmapped", route=route_template(app, request.scope), error=repr(exc)
        )
        return JSONResponse(
            error_body("service", "unavailable", "PostgreSQL is unavailable; retry shortly"),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    for kind in db.TRANSIENT_ERRORS:
        app.add_exception_handler(kind, on_driver_error)

    @app.exception_handler(UnstorableValueError)
    async def on_unstorable(_: Request, exc: Exception) -> JSONResponse:
        # a value PostgreSQL refused: the request cannot succeed as it is (never a 503)
        return JSONResponse(error_body("body", "unstorable", str(exc)), status_code=422)

    app.add_middleware(CanonicalLogMiddleware, app_routes=app)
    # outermost: the request's span is current for everything the request logs and does
    app.add_middleware(tracing.TracingMiddleware, route_of=lambda scope: route_template(app, scope))
    install_openapi(app)


def _reason_of(status: int) -> str:
    return {
        401: "unauthenticated",
        403: "out_of_scope",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        409: "conflict",
        415: "unsupported_media_type",
    }.get(status, "bad_request")


READY_CHECK_TIMEOUT = 2.0
"""Seconds one readiness check may take before it counts as failed."""


async def _checked(check: ReadyCheck) -> bool:
    """A readiness check's answer; False when it raises or takes too long."""
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT):
            return await check()
    except Exception:  # any failure of a dependency means "not ready", never a 500
        return False


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_QUIET = ("/health", "/metrics")
"""Routes without a canonical log line (probes and scrapes would drown the rest)."""


class CanonicalLogMiddleware:
    """One `http_request` log line and one duration observation per request.

    A plain ASGI middleware, so the request runs in this task's context: what the route
    binds (the token's unit, an event id, outcome counts) appears on the canonical line
    and is forgotten after it; the route
    template Starlette stores in `scope["route"]` while routing is read afterwards. The
    `request_id` (X-Request-ID or a new one) and a valid W3C `traceparent` are bound for
    every line logged while the request runs.
    """

    def __init__(self, app: ASGIApp, app_routes: FastAPI) -> None:
        self.app = app
        self._routes = app_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        rid = request.headers.get("x-request-id", "")
        bound: dict[str, Any] = {"request_id": rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex}
        tp = request.headers.get("traceparent", "").strip().lower()
        if _TRACEPARENT.match(tp):
            bound["traceparent"] = tp
        outer = structlog.contextvars.get_contextvars()
        structlog.contextvars.bind_contextvars(**bound)
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            route = route_template(self._routes, scope)
            method = request.method if request.method in _METHODS else "OTHER"
            metrics.HTTP_DURATION.labels(route, method, str(status)).observe(elapsed)
            if not route.startswith(_QUIET):
                log.info(
                    "http_request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            # forget what this request bound (request_id, principal, event ids...)
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**outer)


def route_template(app: FastAPI, scope: Scope) -> str:
    """The path template of the route that handled `scope` (`/v1/nodes/{id}/summary`),
    `unmatched` when none did: never the raw path, so the label set stays bounded."""
    route = scope.get("route")
    if route is None:  # routing never happened (an error before it): match ourselves
        for candidate in app.router.routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


_bearer = HTTPBearer(
    auto_error=False,
    description="A token bound to an org unit and its scopes (`report`, `read`, `approve`, "
    "`admin`). Each operation lists the scopes it needs; a token without one of them is "
    "answered 403 `missing_scope`. Send exactly one `Authorization` header (400 otherwise).",
)


def principal_dependency(
    get_store: Callable[[], TokenStore],
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency resolving the bearer token to a principal (401 otherwise).

    Declare it with `Security(dependency, scopes=[...])`: the principal must hold every
    scope named (403 `missing_scope` otherwise), and OpenAPI lists them on the operation.
    Two or more `Authorization` headers are refused with 400 before any token is looked at.
    """

    async def dependency(
        request: Request,
        needed: SecurityScopes,
        creds: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        refuse_repeated_authorization(request.headers.getlist("authorization"))
        if creds is None or not creds.credentials:
            raise HTTPException(
                401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        principal = await get_store().resolve(creds.credentials)
        if principal is None:
            raise HTTPException(
                401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"}
            )
        structlog.contextvars.bind_contextvars(principal=principal.unit or "admin")
        missing = principal.missing(needed.scopes)
        if missing:
            held = ", ".join(principal.ordered_scopes()) or "none"
            raise HTTPException(
                403,
                error_body(
                    "token",
                    "missing_scope",
                    f"this operation needs the `{'`, `'.join(missing)}` scope;"
                    f" the token holds: {held}",
                ),
            )
        return principal

    return dependency


def refuse_repeated_authorization(values: Sequence[str]) -> None:
    """400 when a request carries more than one `Authorization` header: which one counts
    would depend on who reads it."""
    if len(values) > 1:
        raise HTTPException(
            400,
            error_body(
                "Authorization",
                "repeated_header",
                f"send one Authorization header; this request carries {len(values)}",
            ),
        )


def whoami_router(principal: Callable[..., Awaitable[Principal]]) -> APIRouter:
    """`GET /v1/whoami`: the unit, label and scopes of the token asking (any scope)."""
    router = APIRouter(tags=["tokens"])
    caller = Security(principal)  # any valid token: no scope needed to see oneself

    @router.get(
        "/v1/whoami",
        summary="The unit and scopes of the calling token (needs no scope)",
        responses=answers(400, 401, 503, model=Whoami),
    )
    async def whoami(who: Principal = caller) -> dict[str, Any]:
        return {"unit": who.unit, "label": who.label, "scopes": who.ordered_scopes()}

    return router
