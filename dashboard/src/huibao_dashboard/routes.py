"""The dashboard's routes: the page and its files under `/ui/`, and the feedback proxy."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import RedirectResponse, Response

from huibao_contracts.feedback import FeedbackReport
from huibao_dashboard.assets import Asset, load_assets
from huibao_dashboard.feedback_proxy import FeedbackProxy, error
from huibao_platform.openapi_doc import answers

SECURITY_HEADERS = {
    # Everything the page loads comes from its own origin: no CDN, no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
"""Headers of every file of the page."""


def _serve(asset: Asset) -> Response:
    return Response(asset.body, media_type=asset.media_type, headers=SECURITY_HEADERS)


def router(
    scheduler_url: str | None,
    *,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> APIRouter:
    """The dashboard as a FastAPI router, to include in the rollup's app.

    Arguments:
        scheduler_url: the scheduler's base URL for the quarterly feedback, or None when
            there is none (the page then says the feedback is unavailable).
        timeout: seconds the feedback proxy waits for the scheduler.
        transport: an httpx transport for the proxy instead of the network (tests).

    Routes: `GET /ui` (redirect), `GET /ui/` (the page), `GET /ui/{file}` (its scripts and
    styles), `GET /ui/api/feedback/{id}?quarter=` (the proxy). None needs a token: the page
    is public, the data behind it is not.
    """
    assets = load_assets()
    proxy = FeedbackProxy(scheduler_url, timeout=timeout, transport=transport)
    api = APIRouter(prefix="/ui", tags=["dashboard"])

    @api.get("", include_in_schema=False)
    async def bare() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @api.get(
        "/",
        summary="The dashboard page",
        response_class=Response,
        responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    )
    async def index() -> Response:
        return _serve(assets["index.html"])

    @api.get(
        "/api/feedback/{id}",
        summary="A unit's quarterly feedback from the scheduler, with the caller's token",
        response_class=Response,
        # the scheduler's answer passed on, or the proxy's own refusal
        responses=answers(400, 401, 403, 404, 422, 502, 503, model=FeedbackReport),
    )
    async def feedback(
        id: str,
        request: Request,
        quarter: Annotated[str, Query(examples=["2026-Q3"])],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        repeated = len(request.headers.getlist("authorization"))
        if repeated > 1:  # as the services answer it: which one counts is never guessed
            return error(
                400,
                "Authorization",
                "repeated_header",
                f"send one Authorization header; this request carries {repeated}",
            )
        return await proxy.feedback(id, quarter, authorization)

    @api.get(
        "/{name}",
        summary="A file of the dashboard page",
        response_class=Response,
        include_in_schema=False,
    )
    async def asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            return error(404, "name", "not_found", f"the dashboard has no file {name!r}")
        return _serve(found)

    return api
