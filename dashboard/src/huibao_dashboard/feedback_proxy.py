"""The proxy to the scheduler's quarterly feedback, so the page needs one origin only.

`GET /ui/api/feedback/{id}?quarter=2026-Q3` forwards the caller's `Authorization` header to
`{scheduler_url}/v1/feedback/{id}?quarter=2026-Q3` and answers what the scheduler answered
(200, 403, 404, 422 with the scheduler's body). When the scheduler is not configured or
cannot be reached the answer is 503; a 5xx from the scheduler becomes 502. Error bodies
have Huibao's one shape, `huibao_platform.http.error_body`; an id is checked against the
contracts' `ORG_UNIT_ID_PATTERN`.
"""

from __future__ import annotations

import re

import httpx
from fastapi.responses import JSONResponse, Response

from huibao_contracts.orgunits import ORG_UNIT_ID_PATTERN
from huibao_platform.http import error_body

UNIT_ID = re.compile(ORG_UNIT_ID_PATTERN)
"""An org-unit id, as the contracts define it."""
QUARTER = re.compile(r"^\d{4}-Q[1-4]$")
"""A quarter such as `2026-Q3`."""


def error(status: int, field: str, reason: str, message: str) -> JSONResponse:
    """An error answer in Huibao's one error shape."""
    return JSONResponse(error_body(field, reason, message), status_code=status)


class FeedbackProxy:
    """Forwards feedback requests to the scheduler.

    Arguments:
        scheduler_url: the scheduler's base URL (`http://127.0.0.1:8003`); None or empty
            when no scheduler is configured (every request then answers 503).
        timeout: seconds to wait for the scheduler.
        transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        scheduler_url: str | None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.scheduler_url = (scheduler_url or "").rstrip("/") or None
        self.timeout = timeout
        self.transport = transport

    async def feedback(self, unit: str, quarter: str, authorization: str | None) -> Response:
        """The scheduler's answer for `unit` and `quarter`, or an error answer."""
        if not UNIT_ID.match(unit):
            return error(422, "id", "invalid_field", f"{unit!r} is not an org-unit id")
        if not QUARTER.match(quarter):
            return error(
                422, "quarter", "invalid_field", f"{quarter!r} is not a quarter such as 2026-Q3"
            )
        if self.scheduler_url is None:
            return error(
                503,
                "scheduler",
                "unavailable",
                "no scheduler is configured for the dashboard (HUIBAO_SCHEDULER_URL)",
            )
        headers = {"Accept": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        url = f"{self.scheduler_url}/v1/feedback/{unit}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
                answer = await client.get(url, params={"quarter": quarter}, headers=headers)
        except httpx.HTTPError as e:
            return error(
                503,
                "scheduler",
                "unavailable",
                f"the scheduler at {self.scheduler_url} cannot be reached: {type(e).__name__}",
            )
        if answer.status_code >= 500:
            return error(
                502, "scheduler", "bad_gateway", f"the scheduler answered {answer.status_code}"
            )
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=_json_or(answer.headers.get("content-type")),
            headers=_passed_on(answer.headers),
        )


def _json_or(content_type: str | None) -> str:
    return content_type or "application/json"


def _passed_on(headers: httpx.Headers) -> dict[str, str]:
    """Response headers worth passing on to the page."""
    return {k: v for k, v in headers.items() if k.lower() == "www-authenticate"}
