"""How the scheduler's own errors answer over HTTP (the platform's mapping covers the rest).

`RollupUnavailableError`: a route that runs a step (`POST /v1/cycles/{kind}/{period}/run`)
needs the rollup's query API; while it is away the step does not run (nothing is written)
and the caller is told to come back: 503 `unavailable` with Retry-After, as for PostgreSQL.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from huibao_platform.http import error_body
from huibao_scheduler.errors import RollupUnavailableError


def install_error_answers(app: FastAPI) -> None:
    """Register the scheduler's error handlers on `app`."""

    @app.exception_handler(RollupUnavailableError)
    async def on_rollup_unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            error_body("service", "unavailable", f"the rollup is unavailable: {exc}"),
            status_code=503,
            headers={"Retry-After": "1"},
        )
