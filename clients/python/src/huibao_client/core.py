"""The request-building core both clients share: what to send, and what an answer means.

`RequestCore` turns every operation into a `Call`: an `httpx.Request` and the function that
reads its answer. `HuibaoClient` and `AsyncHuibaoClient` only send calls (with the bounded
retry of `RetryPolicy`) and hand the answer back to `RequestCore.outcome`; no operation is
written twice. Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from huibao_client.errors import UnexpectedResponseError, api_error, retry_after_seconds
from huibao_client.models import (
    BatchResult,
    Children,
    ClockAnswer,
    Completeness,
    Cycles,
    EventResult,
    ImportResult,
    Series,
    Summary,
    Whoami,
)
from huibao_contracts.activities import ACTIVITY_TYPES, ActivityBase
from huibao_contracts.cycles import CycleKind, CycleTransition
from huibao_contracts.envelope import BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE, CloudEvent
from huibao_contracts.feedback import FeedbackReport
from huibao_contracts.orgunits import OrgUnit
from huibao_contracts.periods import Period

T = TypeVar("T")

Event: TypeAlias = CloudEvent | Mapping[str, Any]
"""An event to send: a `CloudEvent` model, or a mapping in structured JSON form (sent as
given, so a caller can also send what the contract refuses and read the refusal)."""
Unit: TypeAlias = OrgUnit | Mapping[str, Any]
"""An org unit to import: an `OrgUnit`, or a mapping (which may carry `effective`)."""
PeriodLike: TypeAlias = Period | str
"""A period: a `Period`, or its text (`2026-05`, `2026-Q2`, `2026`)."""

_TYPE_OF: dict[type[ActivityBase], str] = {model: name for name, model in ACTIVITY_TYPES.items()}

try:
    VERSION = metadata.version("huibao-client")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0+unknown"


def new_event(
    payload: ActivityBase,
    *,
    subject: str,
    source: str,
    id: str,
    time: dt.datetime | None = None,
    **extensions: str | int | bool,
) -> CloudEvent:
    """A CloudEvent for a typed activity payload; `type` follows from the payload's model.

    `time` is when your platform recorded the activity (timezone-aware); without it,
    reporting's receipt time decides whether a Party Day is on time. `extensions` become
    CloudEvents extension attributes (names of 1-20 lower-case letters or digits).
    """
    kind = _TYPE_OF.get(type(payload))
    if kind is None:
        raise TypeError(f"{type(payload).__name__} is not the payload model of an activity type")
    return CloudEvent.model_validate(
        {
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": kind,
            "subject": subject,
            "time": time,
            "data": payload.model_dump(mode="json", exclude_none=True),
            **extensions,
        }
    )


def event_json(event: Event) -> dict[str, Any]:
    """An event as the JSON object it travels as (absent attributes left out)."""
    if isinstance(event, CloudEvent):
        return event.model_dump(mode="json", exclude_none=True)
    return dict(event)


def _unit_json(unit: Unit) -> dict[str, Any]:
    if isinstance(unit, OrgUnit):
        return unit.model_dump(mode="json", exclude_none=True)
    return dict(unit)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry only a 503 that carries `Retry-After`, at most `max_retries` times, and only
    when it asks to wait no longer than `max_delay` seconds; nothing else is retried (a
    timeout or a broken connection is raised at once: the caller decides), and a call that
    is not `repeatable` (running a cycle step) never is."""

    max_retries: int = 3
    max_delay: float = 10.0

    def delay(self, response: httpx.Response, retries_done: int) -> float | None:
        """Seconds to wait before sending again, or None to answer `response` as it is."""
        if response.status_code != 503 or retries_done >= self.max_retries:
            return None
        wait = retry_after_seconds(response.headers.get("retry-after"))
        if wait is None or wait > self.max_delay:
            return None
        return wait


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One operation: the request to send and how to read a successful answer."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]
    per_event: bool = False
    """True when a 403 or 422 carrying per-event `results` is an answer, not an error."""
    repeatable: bool = True
    """False when sending the request twice could act twice (running a cycle's *next*
    step): such a call is never retried, whatever the answer."""


def _model(model: type[Any]) -> Callable[[httpx.Response], Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(model)

    def parse(response: httpx.Response) -> Any:
        try:
            return adapter.validate_json(response.content)
        except ValidationError as e:
            raise UnexpectedResponseError(
                response.status_code, f"not a {model.__name__}: {e}", response.content
            ) from e

    return parse


def _inside(key: str, model: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    """Parse `model` from the `key` member of a JSON object answer."""

    def parse(response: httpx.Response) -> Any:
        try:
            return model.model_validate(pydantic_core.from_json(response.content)[key])
        except (ValueError, KeyError, TypeError) as e:  # ValidationError is a ValueError
            raise UnexpectedResponseError(
                response.status_code, f"no {key} ({model.__name__}) in the answer: {e}",
                response.content,
            ) from e  # fmt: skip

    return parse


_batch = _model(BatchResult)


def _single(response: httpx.Response) -> EventResult:
    batch: BatchResult = _batch(response)
    if len(batch.results) != 1:
        raise UnexpectedResponseError(
            response.status_code, f"{len(batch.results)} results for one event", response.content
        )
    return batch.results[0]


def _period(period: PeriodLike) -> str:
    return str(period)


def _segment(value: str) -> str:
    """`value` as one path segment: percent-encoded, and never `.` or `..` (which a URL
    resolves to another route)."""
    text = str(value)
    if text in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot be a path segment (an org-unit id, kind or period)")
    return quote(text, safe="")


class RequestCore:
    """Builds every request of the three services and reads their answers.

    Arguments:
        reporting_url: base URL of reporting (events, org units).
        rollup_url: base URL of the rollup (queries); default `reporting_url` (one gateway).
        scheduler_url: base URL of the scheduler (cycles, clock, feedback); default
            `reporting_url`.
        token: the bearer token sent with every request (none when None).
        retry: when a 503 is sent again (`RetryPolicy`).
        timeout: the time limits of every request (httpx applies a request's own).
    """

    def __init__(
        self,
        reporting_url: str,
        *,
        rollup_url: str | None = None,
        scheduler_url: str | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.timeout = timeout or httpx.Timeout(30.0)
        self.reporting_url = reporting_url.rstrip("/")
        self.rollup_url = (rollup_url or reporting_url).rstrip("/")
        self.scheduler_url = (scheduler_url or reporting_url).rstrip("/")
        self.retry = retry or RetryPolicy()
        self.headers = {"User-Agent": f"huibao-client/{VERSION}", "Accept": "application/json"}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> httpx.Request:
        headers = dict(self.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return httpx.Request(
            method,
            url,
            params=params,
            headers=headers,
            content=content,
            extensions={"timeout": self.timeout.as_dict()},
        )

    def retry_delay(
        self, call: Call[Any], response: httpx.Response, retries_done: int
    ) -> float | None:
        """Seconds to wait before sending `call` again, or None to answer `response`."""
        return self.retry.delay(response, retries_done) if call.repeatable else None

    @staticmethod
    def outcome(call: Call[T], response: httpx.Response) -> T:
        """The typed answer of `call`, or the `ApiError` subclass of an error status.

        A single event refused with 403/422 is not an error here: its body is the per-event
        answer, read as an `EventResult` with status `rejected`.
        """
        status = response.status_code
        if status < 300:
            return call.parse(response)
        if call.per_event and status in (403, 422) and _is_results(response.content):
            return call.parse(response)
        raise api_error(status, response.headers, response.content)

    # --- reporting ---------------------------------------------------------------------

    def send_event(self, event: Event, *, dry_run: bool = False) -> Call[EventResult]:
        """`POST /v1/events`, one event in structured mode."""
        return Call(
            self._request(
                "POST",
                f"{self.reporting_url}/v1/events",
                params={"dry_run": "true"} if dry_run else None,
                content=pydantic_core.to_json(event_json(event)),
                content_type=STRUCTURED_CONTENT_TYPE,
            ),
            _single,
            per_event=True,
        )

    def send_batch(self, events: Iterable[Event], *, dry_run: bool = False) -> Call[BatchResult]:
        """`POST /v1/events`, a batch (`application/cloudevents-batch+json`)."""
        return Call(
            self._request(
                "POST",
                f"{self.reporting_url}/v1/events",
                params={"dry_run": "true"} if dry_run else None,
                content=pydantic_core.to_json([event_json(e) for e in events]),
                content_type=BATCH_CONTENT_TYPE,
            ),
            _batch,
        )

    def import_orgunits(self, units: Iterable[Unit]) -> Call[ImportResult]:
        """`PUT /v1/orgunits` with a JSON array of units."""
        return Call(
            self._request(
                "PUT",
                f"{self.reporting_url}/v1/orgunits",
                content=pydantic_core.to_json([_unit_json(u) for u in units]),
                content_type="application/json",
            ),
            _model(ImportResult),
        )

    def import_orgunits_csv(self, csv: str | bytes) -> Call[ImportResult]:
        """`PUT /v1/orgunits` with CSV (header `id,name,level,parent,members,opened,closed`,
        optionally `effective`)."""
        body = csv.encode() if isinstance(csv, str) else csv
        return Call(
            self._request(
                "PUT", f"{self.reporting_url}/v1/orgunits", content=body, content_type="text/csv"
            ),
            _model(ImportResult),
        )

    def whoami(self) -> Call[Whoami]:
        """`GET /v1/whoami` on reporting."""
        return Call(self._request("GET", f"{self.reporting_url}/v1/whoami"), _model(Whoami))

    # --- rollup ------------------------------------------------------------------------

    def _node(self, node: str, what: str) -> str:
        return f"{self.rollup_url}/v1/nodes/{_segment(node)}/{what}"

    def summary(self, node: str, period: PeriodLike) -> Call[Summary]:
        """`GET /v1/nodes/{node}/summary?period=`."""
        return Call(
            self._request("GET", self._node(node, "summary"), params={"period": _period(period)}),
            _model(Summary),
        )

    def children(
        self, node: str, period: PeriodLike, *, metric: str, limit: int, offset: int
    ) -> Call[Children]:
        """`GET /v1/nodes/{node}/children?period=&metric=&limit=&offset=`."""
        params: dict[str, str | int] = {"period": _period(period), "metric": metric}
        params.update(limit=limit, offset=offset)
        return Call(
            self._request("GET", self._node(node, "children"), params=params), _model(Children)
        )

    def completeness(
        self, node: str, period: PeriodLike, *, limit: int, offset: int
    ) -> Call[Completeness]:
        """`GET /v1/nodes/{node}/completeness?cycle=party_day&period=&limit=&offset=`."""
        params: dict[str, str | int] = {"cycle": "party_day", "period": _period(period)}
        params.update(limit=limit, offset=offset)
        return Call(
            self._request("GET", self._node(node, "completeness"), params=params),
            _model(Completeness),
        )

    def series(self, node: str, metric: str, first: PeriodLike, last: PeriodLike) -> Call[Series]:
        """`GET /v1/nodes/{node}/series?metric=&from=&to=`."""
        params = {"metric": metric, "from": _period(first), "to": _period(last)}
        return Call(self._request("GET", self._node(node, "series"), params=params), _model(Series))

    # --- scheduler ---------------------------------------------------------------------

    def cycles(self) -> Call[Cycles]:
        """`GET /v1/cycles`."""
        return Call(self._request("GET", f"{self.scheduler_url}/v1/cycles"), _model(Cycles))

    def run_cycle(self, kind: CycleKind | str, period: PeriodLike) -> Call[CycleTransition]:
        """`POST /v1/cycles/{kind}/{period}/run` (admin token)."""
        url = f"{self.scheduler_url}/v1/cycles/{_segment(kind)}/{_segment(_period(period))}/run"
        # a 503 may come after the step committed: sending again could run the step after it
        return Call(
            self._request("POST", url), _inside("transition", CycleTransition), repeatable=False
        )

    def move_clock(self, now: dt.datetime) -> Call[ClockAnswer]:
        """`PUT /v1/clock` (admin token, manual clock only)."""
        return Call(
            self._request(
                "PUT",
                f"{self.scheduler_url}/v1/clock",
                content=pydantic_core.to_json({"now": now}),
                content_type="application/json",
            ),
            _model(ClockAnswer),
        )

    def feedback(self, unit: str, quarter: PeriodLike) -> Call[FeedbackReport]:
        """`GET /v1/feedback/{unit}?quarter=`."""
        return Call(
            self._request(
                "GET",
                f"{self.scheduler_url}/v1/feedback/{_segment(unit)}",
                params={"quarter": _period(quarter)},
            ),
            _model(FeedbackReport),
        )


def _is_results(body: bytes) -> bool:
    try:
        parsed = pydantic_core.from_json(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("results"), list)
