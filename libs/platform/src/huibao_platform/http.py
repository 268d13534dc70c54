"""The HTTP side every service shares: health, metrics, errors, auth and request logging."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Match

from huibao_platform import metrics
from huibao_platform.auth import Principal, TokenStore
from huibao_platform.errors import BrokerUnavailableError, StorageUnavailableError
from huibao_platform.logs import get_logger

log = get_logger("http")

ReadyCheck = Callable[[], Awaitable[bool]]


def error_body(field: str, reason: str, message: str) -> dict[str, Any]:
    """The one shape of every error answer: a list of field errors."""
    return {"errors": [{"field": field, "reason": reason, "message": message}]}


def _field_path(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) if parts else "body"


def install_common(app: FastAPI, service: str, ready_checks: dict[str, ReadyCheck]) -> None:
    """Add health, metrics, error handlers and the canonical request log line to `app`."""

    @app.get("/health/live", tags=["health"], summary="The process is alive")
    async def live() -> dict[str, str]:
        return {"status": "live", "service": service}

    @app.get("/health/ready", tags=["health"], summary="PostgreSQL and Kafka are reachable")
    async def ready() -> JSONResponse:
        results = {name: await check() for name, check in ready_checks.items()}
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

    @app.exception_handler(HTTPException)
    async def on_http(_: Request, exc: HTTPException) -> JSONResponse:
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

    @app.middleware("http")
    async def canonical_line(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        route = _route_template(app, request)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if tp := request.headers.get("traceparent"):
            structlog.contextvars.bind_contextvars(traceparent=tp)
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - start
            metrics.HTTP_DURATION.labels(route, request.method, str(status)).observe(elapsed)
            if not route.startswith(("/health", "/metrics")):
                log.info(
                    "http_request",
                    method=request.method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id", "traceparent")


def _reason_of(status: int) -> str:
    return {
        401: "unauthenticated",
        403: "out_of_scope",
        404: "not_found",
        413: "too_large",
        409: "conflict",
        415: "unsupported_media_type",
    }.get(status, "bad_request")


def _route_template(app: FastAPI, request: Request) -> str:
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"


_bearer = HTTPBearer(auto_error=False, description="Token bound to an org unit.")


def principal_dependency(
    get_store: Callable[[], TokenStore],
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency resolving the bearer token to a principal (401 otherwise)."""

    async def dependency(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
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
        return principal

    return dependency
