"""The query API (port 8002): summaries, children, completeness, series, the tree.

Every route needs a bearer token holding the `read` scope and answers only inside the
token's subtree (403);
an unknown node is 404, a malformed period or metric 422. List endpoints answer CSV with
`Accept: text/csv` or `?format=csv`.

JSON answers are encoded once with orjson and sent as bytes (FastAPI's generic encoder
would walk every value of every request); summaries and children listings are kept in
the `AnswerCache` until the data they were built from moves (see
`huibao_rollup.service_layer.answers`), under the keys of `entrypoints.answer_keys`.
The caller's scope is checked before the cache is asked, so the cache never decides access.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, Security

from huibao_platform.auth import Principal
from huibao_platform.http import error_body
from huibao_platform.openapi_doc import PeriodQuery
from huibao_platform.openapi_doc import answers as declared
from huibao_platform.spreadsheet import CSV_MEDIA_TYPE, csv_text, wants_csv
from huibao_rollup.entrypoints.answer_keys import (
    DEFAULT_LIMIT,
    DEFAULT_METRIC,
    DEFAULT_OFFSET,
    children_key,
    page_size,
    summary_key,
)
from huibao_rollup.entrypoints.answers_schema import (
    ChildrenAnswer,
    CompletenessAnswer,
    NodeAnswer,
    RootsAnswer,
    SeriesAnswer,
    SummaryAnswer,
)
from huibao_rollup.errors import (
    InvalidQueryError,
    OutOfScopeError,
    QueryError,
    UnknownNodeError,
)
from huibao_rollup.service_layer.answers import AnswerCache, dumps
from huibao_rollup.service_layer.queries import Queries, parse_period

PrincipalDep = Callable[..., Awaitable[Principal]]
Format = Annotated[str | None, Query(pattern="^(json|csv)$", description="`csv` for CSV.")]
MAX_PAGING = 999_999_999
"""The largest `limit` and `offset` taken (nine digits, as the fast path reads them): a
bigger one would not fit the answer's 64-bit integers (a 500 before this bound)."""
Limit = Annotated[int, Query(ge=1, le=MAX_PAGING, description="Page size (capped by the service).")]
Offset = Annotated[int, Query(ge=0, le=MAX_PAGING, description="Items to skip.")]


STATUS: dict[type[QueryError], int] = {
    UnknownNodeError: 404,
    OutOfScopeError: 403,
    InvalidQueryError: 422,
}
"""The HTTP status of each kind of `QueryError` (422 for any other)."""


def _wants_csv(request: Request, fmt: str | None) -> bool:
    return wants_csv(fmt, request.headers.get("accept"))


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    # formula-like text (a unit named `=HYPERLINK(...)`) is neutralised, numbers kept
    return Response(csv_text(header, rows), media_type=CSV_MEDIA_TYPE)


def _fail(e: QueryError) -> HTTPException:
    status = next((code for kind, code in STATUS.items() if isinstance(e, kind)), 422)
    return HTTPException(status, error_body(e.field, e.reason, e.message))


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def build_router(  # noqa: PLR0915 (one closure per route)
    use_cases: Callable[[], Queries],
    principal: PrincipalDep,
    page_cap: int,
    answers: Callable[[], AnswerCache | None] = lambda: None,
) -> APIRouter:
    """The query API routes over the `Queries` that `use_cases()` gives (it raises
    StorageUnavailableError, a 503, while the rollup starts); `answers()` keeps summaries
    and children listings (none kept when it gives None)."""
    router = APIRouter(prefix="/v1", tags=["rollup"])
    caller = Security(principal, scopes=["read"])  # every query needs the `read` scope

    async def cached(key: tuple[Any, ...], build: Callable[[], Awaitable[Any]]) -> bytes:
        try:
            cache = answers()
            if cache is None:
                return dumps(await build())
            return await cache.get((*key, use_cases().today()), build)
        except QueryError as e:
            raise _fail(e) from e

    def scoped(who: Principal, node: str) -> None:
        try:
            use_cases().authorize(who, node)
        except QueryError as e:
            raise _fail(e) from e

    @router.get(
        "/roots",
        summary="The roots the token may see",
        responses=declared(model=RootsAnswer, csv=True),
    )
    async def roots(*, who: Principal = caller, request: Request, format: Format = None) -> Any:
        answer = use_cases().roots(who)
        if _wants_csv(request, format):
            return _csv(
                ("id", "name", "level"), ((i["id"], i["name"], i["level"]) for i in answer["items"])
            )
        return _json(dumps(answer))

    @router.get(
        "/nodes/{id}",
        summary="One org unit with its path and children",
        responses=declared(404, model=NodeAnswer),
    )
    async def node(id: str, who: Principal = caller) -> Any:
        scoped(who, id)
        return _json(dumps(use_cases().node(id)))

    @router.get(
        "/nodes/{id}/summary",
        summary="Every public metric of a node in a period",
        responses=declared(404, model=SummaryAnswer, csv=True),
    )
    async def summary(
        id: str,
        *,
        who: Principal = caller,
        request: Request,
        period: PeriodQuery,
        format: Format = None,
    ) -> Any:
        scoped(who, id)
        queries = use_cases()
        try:
            p = parse_period(period)
        except QueryError as e:
            raise _fail(e) from e
        if _wants_csv(request, format):
            try:
                answer = await queries.summary(id, p)
            except QueryError as e:
                raise _fail(e) from e
            return _csv(("metric", "value"), answer["metrics"].items())
        return _json(await cached(summary_key(id, p), lambda: queries.summary(id, p)))

    @router.get(
        "/nodes/{id}/children",
        summary="Children ranked by a metric",
        responses=declared(404, model=ChildrenAnswer, csv=True),
    )
    async def children(
        id: str,
        *,
        who: Principal = caller,
        request: Request,
        period: PeriodQuery,
        metric: str = DEFAULT_METRIC,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = DEFAULT_OFFSET,
        format: Format = None,
    ) -> Any:
        scoped(who, id)
        queries = use_cases()
        try:
            p = parse_period(period)
        except QueryError as e:
            raise _fail(e) from e
        size = page_size(limit, page_cap)
        if _wants_csv(request, format):
            try:
                answer = await queries.children(id, p, metric, size, offset)
            except QueryError as e:
                raise _fail(e) from e
            return _csv(
                ("rank", "id", "name", "level", "value"),
                ((i["rank"], i["id"], i["name"], i["level"], i["value"]) for i in answer["items"]),
            )
        return _json(
            await cached(
                children_key(id, p, metric, size, offset),
                lambda: queries.children(id, p, metric, size, offset),
            )
        )

    @router.get(
        "/nodes/{id}/completeness",
        summary="Who held the month's Party Day, and who not",
        responses=declared(404, model=CompletenessAnswer, csv=True),
    )
    async def completeness(
        id: str,
        *,
        who: Principal = caller,
        request: Request,
        period: PeriodQuery,
        cycle: str = "party_day",
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = DEFAULT_OFFSET,
        format: Format = None,
    ) -> Any:
        scoped(who, id)
        try:
            if cycle != "party_day":
                raise InvalidQueryError("cycle", "only `party_day` is supported")
            answer = await use_cases().completeness(
                id, parse_period(period, month_only=True), page_size(limit, page_cap), offset
            )
        except QueryError as e:
            raise _fail(e) from e
        if _wants_csv(request, format):
            rows = [
                ("missing", i["id"], i["name"], i["parent"], "")
                for i in answer["missing_units"]["items"]
            ]
            rows += [
                ("late", i["id"], i["name"], i["parent"], i["reported_at"])
                for i in answer["late_units"]["items"]
            ]
            rows += [
                ("unexpected", i["id"], i["name"], i["parent"], i["reported_at"])
                for i in answer["unexpected_units"]["items"]
            ]
            return _csv(("status", "id", "name", "parent", "reported_at"), rows)
        return _json(dumps(answer))

    @router.get(
        "/nodes/{id}/series",
        summary="A metric month by month",
        responses=declared(404, model=SeriesAnswer, csv=True),
    )
    async def series(
        id: str,
        *,
        who: Principal = caller,
        request: Request,
        metric: str,
        from_: Annotated[PeriodQuery, Query(alias="from")],
        to: PeriodQuery,
        format: Format = None,
    ) -> Any:
        scoped(who, id)
        try:
            answer = await use_cases().series(
                id, metric, parse_period(from_, "from"), parse_period(to, "to")
            )
        except QueryError as e:
            raise _fail(e) from e
        if _wants_csv(request, format):
            return _csv(("period", "value"), ((p["period"], p["value"]) for p in answer["points"]))
        return _json(dumps(answer))

    return router
