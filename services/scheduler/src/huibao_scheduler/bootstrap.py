"""The one wiring point: adapters in, the scheduler out; settings in, the FastAPI app out.

`Adapters` holds everything the scheduler talks to, connected. `build_adapters` is the one
place that builds the production ones (PostgreSQL, the Kafka producer and outbox relay,
the rollup's HTTP client, the clock HUIBAO_CLOCK names); tests build theirs with it too,
with a manual clock, a replica name or a hook of their own. `bootstrap(adapters, settings)`
wires the use cases over them, as cosmicpython's `bootstrap.bootstrap(uow=..., ...)` does.
`build_app` serves a `Scheduler` over HTTP: its lifespan takes the given adapters (or
builds them), bootstraps, runs the outbox relay and the ticker, and stops them in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
from fastapi import FastAPI, HTTPException

from huibao_contracts.topics import CYCLE_EVENTS, FEEDBACK_ISSUED, NOTIFICATIONS
from huibao_platform import db, kafka, tracing
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
from huibao_scheduler.entrypoints.error_answers import install_error_answers
from huibao_scheduler.entrypoints.http import build_router
from huibao_scheduler.entrypoints.ticker import run_ticker
from huibao_scheduler.service_layer.cycle_runner import CycleRunner
from huibao_scheduler.service_layer.effect_gatherer import EffectGatherer
from huibao_scheduler.service_layer.ports import Cycles, IssuedEffects, Publisher
from huibao_scheduler.settings import SchedulerSettings


@dataclass(frozen=True, slots=True)
class Adapters:
    """Everything the scheduler talks to, connected (see `build_adapters`)."""

    pool: asyncpg.Pool
    cycles: Cycles
    issued: IssuedEffects
    publisher: Publisher
    rollup: RollupClient
    tokens: TokenStore
    relay: OutboxRelay
    clock: Clock


@dataclass(frozen=True, slots=True)
class Scheduler:
    """The wired scheduler: its use cases over its adapters."""

    runner: CycleRunner
    adapters: Adapters


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


def topics_needed(settings: SchedulerSettings) -> list[str]:
    """The topics the scheduler publishes to (made by `huibao topics`, never by it)."""
    return [settings.topic(t) for t in (CYCLE_EVENTS, FEEDBACK_ISSUED, NOTIFICATIONS)]


@contextlib.asynccontextmanager
async def build_adapters(
    settings: SchedulerSettings,
    *,
    clock: Clock | None = None,
    replica: str | None = None,
    on_claimed: ClaimHook | None = None,
    rollup_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Adapters]:
    """The production adapters, connected, closed in reverse order on exit.

    `clock` overrides HUIBAO_CLOCK, `replica` the host name the step ledger records,
    `on_claimed` the HUIBAO_STEP_DELAY_SECONDS hook inside the step transaction, and
    `rollup_transport` the rollup client's transport (all for tests and the bench).
    """
    replica = replica or socket.gethostname()
    async with contextlib.AsyncExitStack() as stack:
        pool = await db.create_pool(settings.database_url, within=settings.database_connect_seconds)
        stack.push_async_callback(pool.close)
        await install_schema(pool)
        # its topics must exist (made by `huibao topics`): it names the missing ones and exits
        await kafka.require_topics(settings, topics_needed(settings))
        producer = kafka.new_producer(settings)
        await producer.start()
        stack.push_async_callback(producer.stop)
        rollup = RollupClient(
            settings.rollup_url,
            settings.admin_token,
            page_size=settings.rollup_page_size,
            concurrency=settings.rollup_concurrency,
            timeout=settings.rollup_timeout,
            transport=rollup_transport,
        )
        stack.push_async_callback(rollup.aclose)
        tokens = TokenStore(pool, settings.admin_token)
        tokens.start(settings.database_url)  # revocations drop the cache at once
        stack.push_async_callback(tokens.close)
        if on_claimed is None and settings.step_delay_seconds > 0:
            on_claimed = step_delay(settings.step_delay_seconds, replica)
        yield Adapters(
            pool=pool,
            cycles=CycleStore(pool, replica, on_claimed),
            issued=IssuedStore(pool),
            publisher=publisher,
            rollup=rollup,
            tokens=tokens,
            relay=OutboxRelay(pool, producer, SCHEMA, topic_prefix=settings.topic_prefix),
            clock=clock or make_clock(settings),
        )


def bootstrap(adapters: Adapters, settings: SchedulerSettings) -> Scheduler:
    """The scheduler's use cases wired over `adapters`."""
    rules = settings.calendar
    runner = CycleRunner(
        store=adapters.cycles,
        issued=adapters.issued,
        publisher=adapters.publisher,
        effects=EffectGatherer(adapters.rollup, rules, workers=settings.walk_workers),
        rules=rules,
        clock=adapters.clock,
        default_first_month=settings.first_month,
        on_committed=adapters.relay.kick,
        chunk=settings.issue_chunk,
    )
    return Scheduler(runner=runner, adapters=adapters)


def _not_started() -> HTTPException:
    return HTTPException(503, error_body("service", "unavailable", "the scheduler is starting"))


def build_app(
    settings: SchedulerSettings, adapters: Adapters | None = None, *, ticker: bool = True
) -> FastAPI:
    """The scheduler's HTTP app over `adapters` (built from `settings` at start when None;
    given ones stay open after it stops); `ticker` False leaves steps to clock moves."""
    wired: Scheduler | None = None
    needed = topics_needed(settings)

    def scheduler() -> Scheduler:
        if wired is None:
            raise _not_started()
        return wired

    def tokens() -> TokenStore:
        return scheduler().adapters.tokens

    def runner() -> CycleRunner:
        return scheduler().runner

    def cycles() -> Cycles:
        return scheduler().adapters.cycles

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal wired
        async with contextlib.AsyncExitStack() as stack:
            given = adapters
            if given is None:
                given = await stack.enter_async_context(build_adapters(settings))
            running = bootstrap(given, settings)
            await running.runner.first_month()  # fixed from the clock at start, before any move
            relay, stop = given.relay, asyncio.Event()
            tasks = [asyncio.create_task(relay.run(stop), name="outbox-relay")]
            if ticker:
                loop = run_ticker(running.runner, settings.tick_seconds, stop)
                tasks.append(asyncio.create_task(loop, name="ticker"))
            wired = running
            try:
                yield
            finally:
                await _drain(given.pool, relay)
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                wired = None

    app = FastAPI(
        title="Huibao scheduler",
        telemetry=tracing.FASTAPI_TELEMETRY,  # the platform's middleware traces requests
        version="0.1.0",
        lifespan=lifespan,
        description="The calendar: Party Day cycles, notifications, quarterly feedback.",
    )

    async def postgres_ready() -> bool:
        return wired is not None and await db.ping(wired.adapters.pool)

    async def rollup_ready() -> bool:
        """The rollup, whose query API every step reads, answers."""
        return wired is not None and await wired.adapters.rollup.reachable()

    async def broker_ready() -> bool:
        return await kafka.topics_present(settings, needed)

    app.state.settings = settings
    install_common(
        app,
        "scheduler",
        {"postgres": postgres_ready, "kafka": broker_ready, "rollup": rollup_ready},
    )
    install_error_answers(app)
    app.include_router(build_router(runner, cycles, principal_dependency(tokens)))
    app.include_router(whoami_router(principal_dependency(tokens)))
    return app
