"""`HuibaoClient` (sync) and `AsyncHuibaoClient` (asyncio): the same operations over httpx.

Both build their requests with one `RequestCore` and read the answers with it; they differ
only in how they send and how they wait before a retry. Use them as context managers (or
call `close()` / `aclose()`), so their connection pool is released:

    with HuibaoClient("http://127.0.0.1:8001", rollup_url="http://127.0.0.1:8002",
                      token=token) as huibao:
        result = huibao.send_batch(events)

Errors are raised as `huibao_client.errors.HuibaoError` subclasses; a refused event is an
answer (`EventResult.status == "rejected"`), not an exception.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from huibao_client.core import Call, Event, PeriodLike, RequestCore, RetryPolicy, Unit
from huibao_client.errors import HuibaoConnectionError, HuibaoTimeoutError
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
from huibao_contracts.cycles import CycleKind, CycleTransition
from huibao_contracts.feedback import FeedbackReport

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
"""Seconds a request may take (connect, read, write and pool each) unless told otherwise."""


def _translate(e: httpx.TransportError, request: httpx.Request) -> HuibaoConnectionError:
    where = f"{request.method} {request.url.copy_with(query=None)}"
    if isinstance(e, httpx.TimeoutException):
        return HuibaoTimeoutError(f"{where}: timed out ({type(e).__name__})")
    return HuibaoConnectionError(f"{where}: {type(e).__name__}: {e}")


class _Base:
    """What both clients hold: the core, the timeout and the httpx options."""

    def __init__(
        self,
        reporting_url: str,
        *,
        rollup_url: str | None,
        scheduler_url: str | None,
        token: str | None,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy | None,
    ) -> None:
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.core = RequestCore(
            reporting_url,
            rollup_url=rollup_url,
            scheduler_url=scheduler_url,
            token=token,
            retry=retry,
            timeout=self.timeout,
        )


class HuibaoClient(_Base):
    """Huibao's HTTP APIs, synchronously.

    Arguments:
        reporting_url: base URL of reporting, e.g. `http://127.0.0.1:8001`.
        rollup_url: base URL of the rollup (default: `reporting_url`, for one gateway).
        scheduler_url: base URL of the scheduler (default: `reporting_url`).
        token: bearer token sent with every request.
        timeout: seconds per request phase, or an `httpx.Timeout`.
        retry: the bounded retry of a 503 with `Retry-After` (default `RetryPolicy()`:
            up to 3 retries, each wait at most 10 s).
        transport: an httpx transport (e.g. `httpx.MockTransport` or one with TLS options).
    """

    def __init__(
        self,
        reporting_url: str,
        *,
        rollup_url: str | None = None,
        scheduler_url: str | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            reporting_url,
            rollup_url=rollup_url,
            scheduler_url=scheduler_url,
            token=token,
            timeout=timeout,
            retry=retry,
        )
        self._http = httpx.Client(timeout=self.timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def run(self, call: Call[T]) -> T:
        """Send `call`, retrying a 503 as `RetryPolicy` allows, and answer its outcome."""
        retries = 0
        while True:
            try:
                response = self._http.send(call.request)
            except httpx.TransportError as e:
                raise _translate(e, call.request) from e
            wait = self.core.retry_delay(call, response, retries)
            if wait is None:
                return self.core.outcome(call, response)
            retries += 1
            time.sleep(wait)

    def send_event(self, event: Event, *, dry_run: bool = False) -> EventResult:
        """Send one event; answer what became of it (accepted, duplicate or rejected with
        its field errors). `dry_run` validates everything and stores nothing."""
        return self.run(self.core.send_event(event, dry_run=dry_run))

    def send_batch(self, events: Iterable[Event], *, dry_run: bool = False) -> BatchResult:
        """Send a batch (up to the service's limit, 1,000 by default); one result per event,
        in order. One bad event never spoils the others."""
        return self.run(self.core.send_batch(events, dry_run=dry_run))

    def import_orgunits(self, units: Iterable[Unit]) -> ImportResult:
        """Import org units (parents before children); all or nothing."""
        return self.run(self.core.import_orgunits(units))

    def import_orgunits_csv(self, csv: str | bytes) -> ImportResult:
        """Import org units from CSV with a header line; all or nothing."""
        return self.run(self.core.import_orgunits_csv(csv))

    def whoami(self) -> Whoami:
        """The unit, label and scopes of the token."""
        return self.run(self.core.whoami())

    def summary(self, node: str, period: PeriodLike) -> Summary:
        """Every public metric of `node` in `period` (month, quarter or year)."""
        return self.run(self.core.summary(node, period))

    def children(
        self,
        node: str,
        period: PeriodLike,
        *,
        metric: str = "party_day.held",
        limit: int = 100,
        offset: int = 0,
    ) -> Children:
        """The children of `node`, ranked by `metric` (1 = best), one page."""
        return self.run(self.core.children(node, period, metric=metric, limit=limit, offset=offset))

    def completeness(
        self, node: str, period: PeriodLike, *, limit: int = 100, offset: int = 0
    ) -> Completeness:
        """Expected, held, on-time, late and missing Party Days under `node` in a month."""
        return self.run(self.core.completeness(node, period, limit=limit, offset=offset))

    def series(self, node: str, metric: str, first: PeriodLike, last: PeriodLike) -> Series:
        """`metric` of `node` month by month from `first` to `last`."""
        return self.run(self.core.series(node, metric, first, last))

    def cycles(self) -> Cycles:
        """Every cycle the scheduler has scheduled, its state and next step."""
        return self.run(self.core.cycles())

    def run_cycle(self, kind: CycleKind | str, period: PeriodLike) -> CycleTransition:
        """Run the next step of a cycle now (admin token); answer the transition."""
        return self.run(self.core.run_cycle(kind, period))

    def move_clock(self, now: dt.datetime) -> ClockAnswer:
        """Move the scheduler's manual clock to `now` and run every due step (admin)."""
        return self.run(self.core.move_clock(now))

    def feedback(self, unit: str, quarter: PeriodLike) -> FeedbackReport:
        """The quarterly feedback report of `unit` (404 until it is issued)."""
        return self.run(self.core.feedback(unit, quarter))


class AsyncHuibaoClient(_Base):
    """Huibao's HTTP APIs for asyncio; the same operations and arguments as `HuibaoClient`.

    `transport` takes an `httpx.AsyncBaseTransport` (e.g. `httpx.ASGITransport(app=...)`
    to talk to an app in-process).
    """

    def __init__(
        self,
        reporting_url: str,
        *,
        rollup_url: str | None = None,
        scheduler_url: str | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            reporting_url,
            rollup_url=rollup_url,
            scheduler_url=scheduler_url,
            token=token,
            timeout=timeout,
            retry=retry,
        )
        self._http = httpx.AsyncClient(timeout=self.timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def run(self, call: Call[T]) -> T:
        """Send `call`, retrying a 503 as `RetryPolicy` allows, and answer its outcome."""
        retries = 0
        while True:
            try:
                response = await self._http.send(call.request)
            except httpx.TransportError as e:
                raise _translate(e, call.request) from e
            wait = self.core.retry_delay(call, response, retries)
            if wait is None:
                return self.core.outcome(call, response)
            retries += 1
            await asyncio.sleep(wait)

    async def send_event(self, event: Event, *, dry_run: bool = False) -> EventResult:
        """Send one event; see `HuibaoClient.send_event`."""
        return await self.run(self.core.send_event(event, dry_run=dry_run))

    async def send_batch(self, events: Iterable[Event], *, dry_run: bool = False) -> BatchResult:
        """Send a batch; see `HuibaoClient.send_batch`."""
        return await self.run(self.core.send_batch(events, dry_run=dry_run))

    async def import_orgunits(self, units: Iterable[Unit]) -> ImportResult:
        """Import org units (JSON); see `HuibaoClient.import_orgunits`."""
        return await self.run(self.core.import_orgunits(units))

    async def import_orgunits_csv(self, csv: str | bytes) -> ImportResult:
        """Import org units from CSV; see `HuibaoClient.import_orgunits_csv`."""
        return await self.run(self.core.import_orgunits_csv(csv))

    async def whoami(self) -> Whoami:
        """The unit, label and scopes of the token."""
        return await self.run(self.core.whoami())

    async def summary(self, node: str, period: PeriodLike) -> Summary:
        """Every public metric of `node` in `period`."""
        return await self.run(self.core.summary(node, period))

    async def children(
        self,
        node: str,
        period: PeriodLike,
        *,
        metric: str = "party_day.held",
        limit: int = 100,
        offset: int = 0,
    ) -> Children:
        """The children of `node` ranked by `metric`, one page."""
        return await self.run(
            self.core.children(node, period, metric=metric, limit=limit, offset=offset)
        )

    async def completeness(
        self, node: str, period: PeriodLike, *, limit: int = 100, offset: int = 0
    ) -> Completeness:
        """The Party Day completeness under `node` in a month."""
        return await self.run(self.core.completeness(node, period, limit=limit, offset=offset))

    async def series(self, node: str, metric: str, first: PeriodLike, last: PeriodLike) -> Series:
        """`metric` of `node` month by month."""
        return await self.run(self.core.series(node, metric, first, last))

    async def cycles(self) -> Cycles:
        """Every scheduled cycle, its state and next step."""
        return await self.run(self.core.cycles())

    async def run_cycle(self, kind: CycleKind | str, period: PeriodLike) -> CycleTransition:
        """Run the next step of a cycle now (admin token)."""
        return await self.run(self.core.run_cycle(kind, period))

    async def move_clock(self, now: dt.datetime) -> ClockAnswer:
        """Move the scheduler's manual clock and run every due step (admin)."""
        return await self.run(self.core.move_clock(now))

    async def feedback(self, unit: str, quarter: PeriodLike) -> FeedbackReport:
        """The quarterly feedback report of `unit`."""
        return await self.run(self.core.feedback(unit, quarter))
