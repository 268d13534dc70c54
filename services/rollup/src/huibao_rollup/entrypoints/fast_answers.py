"""The query API's fast path: summaries and children listings without the framework.

Dashboards under load ask for summaries and children listings again and again; resolving
each through FastAPI (routing, dependency injection, parameter validation) costs more
than sending a kept answer, and about as much as building a new one. `FastAnswers` sits
just inside the canonical log middleware (so every request still gets its log line and
duration metric) and answers a `GET /v1/nodes/{id}/summary` or `/children` itself when,
and only when, all of this holds:

- the request is plain: one `Authorization` header with a `Bearer` token, JSON wanted
  (`huibao_platform.spreadsheet.wants_csv` says no),
  no parameter given twice, `limit` and `offset` plain non-negative integers (`limit` ≥ 1);
- the token is known, holds the `read` scope, and the node lies in its subtree (the same
  checks as the routes);
- the period parses, and the answer is kept in the `AnswerCache` or built without error
  by the same use case, under the same cache key and defaults (`entrypoints.answer_keys`),
  as the route would.

Anything else, including every error, goes on to the routes, which answer as always. The
answer sent is the very bytes the route would send, with the same headers.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from huibao_platform.auth import Principal, TokenStore
from huibao_platform.errors import StorageUnavailableError
from huibao_platform.spreadsheet import wants_csv
from huibao_rollup.entrypoints.answer_keys import (
    DEFAULT_LIMIT,
    DEFAULT_METRIC,
    DEFAULT_OFFSET,
    children_key,
    page_size,
    summary_key,
)
from huibao_rollup.errors import QueryError
from huibao_rollup.service_layer.answers import AnswerCache
from huibao_rollup.service_layer.queries import Queries, parse_period

PREFIX = "/v1/nodes/"
_INT = re.compile(r"^[0-9]{1,9}$")
_SUMMARY = frozenset({"period", "format"})
_CHILDREN = frozenset({"period", "format", "metric", "limit", "offset"})


class FastAnswers:
    """ASGI middleware answering plain summary and children requests (see the module doc);
    `queries`, `answers` and `tokens` give the running rollup's (StorageUnavailableError
    while it starts: the routes answer then)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        queries: Callable[[], Queries],
        answers: Callable[[], AnswerCache],
        tokens: Callable[[], TokenStore],
        page_cap: int,
    ) -> None:
        self.app = app
        self._queries = queries
        self._answers = answers
        self._tokens = tokens
        self._page_cap = page_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(PREFIX)
            or (body := await self._answer(scope)) is None
        ):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope) -> bytes | None:
        node, _, kind = scope["path"][len(PREFIX) :].partition("/")
        if not node or kind not in ("summary", "children"):
            return None
        params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        args = dict(params)
        if len(args) != len(params) or "period" not in args:
            return None
        allowed = _SUMMARY if kind == "summary" else _CHILDREN
        args = {k: v for k, v in args.items() if k in allowed}
        token = _plain_bearer(scope, args.get("format"))
        who: Principal | None = None
        try:
            who = await self._tokens().resolve(token) if token else None
            if who is None or "read" not in who.scopes:
                return None  # the route answers 401 / 403 missing_scope
            queries, answers = self._queries(), self._answers()
            queries.authorize(who, node)
            key = self._key(kind, node, args)
        except (QueryError, StorageUnavailableError):
            key = None
        if key is None or who is None:
            return None
        full = (*key, queries.today())
        body = answers.peek(full)
        if body is None:
            try:
                body = await answers.get(full, self._build(queries, kind, node, args))
            except (QueryError, StorageUnavailableError):
                return None  # the route answers the error
        structlog.contextvars.bind_contextvars(principal=who.unit or "admin")
        # the template the canonical log line and the HTTP metrics label it with (FastAPI
        # nests included routes, so there is no route object to look up cheaply)
        scope["route"] = _Template(f"{PREFIX}{{id}}/{kind}")
        return body

    def _key(self, kind: str, node: str, args: dict[str, str]) -> tuple[Any, ...] | None:
        """The cache key the route would use, None when a parameter is not plain."""
        period = parse_period(args["period"])
        if kind == "summary":
            return summary_key(node, period)
        limit, offset = (
            args.get("limit", str(DEFAULT_LIMIT)),
            args.get("offset", str(DEFAULT_OFFSET)),
        )
        if not _INT.match(limit) or not _INT.match(offset) or int(limit) < 1:
            return None
        size = page_size(int(limit), self._page_cap)
        return children_key(node, period, args.get("metric", DEFAULT_METRIC), size, int(offset))

    def _build(
        self, queries: Queries, kind: str, node: str, args: dict[str, str]
    ) -> Callable[[], Awaitable[dict[str, Any]]]:
        """The use case the route would call (arguments checked by `_key` already)."""
        period = parse_period(args["period"])
        if kind == "summary":
            return lambda: queries.summary(node, period)
        size = page_size(int(args.get("limit", str(DEFAULT_LIMIT))), self._page_cap)
        metric = args.get("metric", DEFAULT_METRIC)
        offset = int(args.get("offset", str(DEFAULT_OFFSET)))
        return lambda: queries.children(node, period, metric, size, offset)


def _plain_bearer(scope: Scope, fmt: str | None) -> str | None:
    """The bearer token of a request that wants JSON, else None (also when it carries
    more than one `Authorization` header: the route answers that 400)."""
    if fmt not in (None, "json"):
        return None  # CSV, or a format the route refuses
    auth: bytes | None = None
    accept: list[str] = []
    for name, value in scope["headers"]:
        if name == b"authorization":
            if auth is not None:
                return None
            auth = value
        elif name == b"accept":
            accept.append(value.decode("latin-1"))
    if wants_csv(fmt, ", ".join(accept)):
        return None
    scheme, _, token = (auth or b"").decode("latin-1").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class _Template:
    """Stands for the route of an answer given here: what `route_template` reads."""

    def __init__(self, path_format: str) -> None:
        self.path_format = path_format
