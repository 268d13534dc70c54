"""The one wiring point: settings (and optionally a clock or test seams) in, FastAPI app out.

The app's lifespan connects to PostgreSQL, installs the schema, starts the Kafka producer,
the outbox relay and the ticker, and stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import httpx
from fastapi import FastAPI, HTTPException

from huibao_platform import db, kafka
from huibao_platform.auth import TokenStore
from huibao_platform.clock import Clock, ManualClock, SystemClock
from huibao_platform.http import (
    error_body,
    install_common,
    principal_dependency,
    whoami_router,
)
from huibao_platform.logs import get_logger
from huibao_platform.outbox import OutboxRelay
from huibao_scheduler.adapters import publisher
from huibao_scheduler.adapters.issued import IssuedStore
from huibao_scheduler.adapters.rollup import RollupClient
from huibao_scheduler.adapters.store import SCHEMA, ClaimHook, CycleStore, install_schema
from huibao_scheduler.domain.plan import PlannedStep
from huibao_scheduler.entrypoints.http import build_router
from huibao_scheduler.entrypoints.ticker import run_ticker
from huibao_scheduler.service_layer.cycle_runner import CycleRunner
from huibao_scheduler.service_layer.effect_gatherer import EffectGatherer
from huibao_scheduler.settings import SchedulerSettings


@dataclass(slots=True)
class Seams:
    """Optional test seams: a hook inside the step transaction, a rollup transport, a name."""

    on_claimed: ClaimHook | None = None
    rollup_transport: httpx.AsyncBaseTransport | None = None
    replica: str = field(default_factory=socket.gethostname)
    ticker: bool = True


@dataclass(slots=True)
class _Wired:
    pool: asyncpg.Pool | None = None
    tokens: TokenStore | None = None
    store: CycleStore | None = None
    runner: CycleRunner | None = None
    rollup: RollupClient | None = None

    async def rollup_ready(self) -> bool:
        """A readiness check: the rollup, whose query API every step reads, answers."""
        return self.rollup is not None and await self.rollup.reachable()


log = get_logger(__name__)


def step_delay(seconds: float, replica: str) -> ClaimHook:
    """The HUIBAO_STEP_DELAY_SECONDS hook (tests only): log, then sleep holding the claim."""

    async def sleep_holding_the_claim(step: PlannedStep) -> None:
        log.warning(
            "step_delayed",
            kind=step.kind,
            period=str(step.period),
            step=step.step,
            replica=replica,
            seconds=seconds,
        )
        await asyncio.sleep(seconds)

    return sleep_holding_the_claim


def make_clock(settings: SchedulerSettings) -> Clock:
    """The clock the settings ask for."""
    if settings.clock == "manual":
        return ManualClock(settings.start_instant())
    return SystemClock()


async def _drain(pool: asyncpg.Pool, relay: OutboxRelay, seconds: float = 5.0) -> None:
    """On shutdown, give the relay (when this replica leads it) a moment to empty the outbox."""
    with contextlib.suppress(TimeoutError, OSError, asyncpg.PostgresError):
        async with asyncio.timeout(seconds):
            while relay.is_leader and await pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.outbox)"
            ):
                relay.kick()
                await asyncio.sleep(0.05)


def _not_started() -> HTTPException:
    return HTTPException(503, error_body("service", "unavailable", "the scheduler is starting"))


def build_app(  # noqa: PLR0915 (the wiring: one closure per dependency)
    settings: SchedulerSettings, clock: Clock | None = None, seams: Seams | None = None
) -> FastAPI:
    """The scheduler app; `clock` overrides HUIBAO_CLOCK (tests inject a ManualClock)."""
    seams = seams or Seams()
    the_clock = clock or make_clock(settings)
    wired = _Wired()

    def tokens() -> TokenStore:
        if wired.tokens is None:
            raise _not_started()
        return wired.tokens

    def runner() -> CycleRunner:
        if wired.runner is None:
            raise _not_started()
        return wired.runner

    def store() -> CycleStore:
        if wired.store is None:
            raise _not_started()
        return wired.store

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await db.create_pool(settings.database_url)
        await install_schema(pool)
        await kafka.ensure_topics(settings)
        producer = kafka.new_producer(settings)
        await producer.start()
        relay = OutboxRelay(pool, producer, SCHEMA, topic_prefix=settings.topic_prefix)
        rollup = RollupClient(
            settings.rollup_url,
            settings.admin_token,
            page_size=settings.rollup_page_size,
            concurrency=settings.rollup_concurrency,
            timeout=settings.rollup_timeout,
            transport=seams.rollup_transport,
        )
        wired.pool, wired.tokens, wired.rollup = (
            pool,
            TokenStore(pool, settings.admin_token),
            rollup,
        )
        wired.tokens.start(settings.database_url)  # revocations drop the cache at once
        on_claimed = seams.on_claimed
        if on_claimed is None and settings.step_delay_seconds > 0:
            on_claimed = step_delay(settings.step_delay_seconds, seams.replica)
        wired.store = CycleStore(pool, seams.replica, on_claimed)
        wired.runner = CycleRunner(
            store=wired.store,
            issued=IssuedStore(pool),
            publisher=publisher,
            effects=EffectGatherer(rollup, settings.calendar, workers=settings.walk_workers),
            rules=settings.calendar,
            clock=the_clock,
            default_first_month=settings.first_month,
            on_committed=relay.kick,
            chunk=settings.issue_chunk,
        )
        app.state.runner = wired.runner
        await wired.runner.first_month()  # fixed from the clock at start, before any move
        stop = asyncio.Event()
        tasks = [asyncio.create_task(relay.run(stop), name="outbox-relay")]
        if seams.ticker:
            tasks.append(
                asyncio.create_task(
                    run_ticker(wired.runner, settings.tick_seconds, stop), name="ticker"
                )
            )
        try:
            yield
        finally:
            await _drain(pool, relay)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if wired.tokens is not None:
                await wired.tokens.close()
            wired.runner = wired.store = wired.tokens = wired.pool = wired.rollup = None
            await rollup.aclose()
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="Huibao scheduler",
        version="0.1.0",
        lifespan=lifespan,
        description="The calendar: Party Day cycles, notifications, quarterly feedback.",
    )

    async def postgres_ready() -> bool:
        return wired.pool is not None and await db.ping(wired.pool)

    async def broker_ready() -> bool:
        return await kafka.broker_reachable(settings)

    install_common(
        app,
        "scheduler",
        {"postgres": postgres_ready, "kafka": broker_ready, "rollup": wired.rollup_ready},
    )
    app.include_router(build_router(runner, store, principal_dependency(tokens)))
    app.include_router(whoami_router(principal_dependency(tokens)))
    return app
