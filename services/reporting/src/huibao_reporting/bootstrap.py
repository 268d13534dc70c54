"""The one wiring point: adapters in, the use cases out; settings in, the FastAPI app out.

`Adapters` holds everything reporting talks to at once, connected: the PostgreSQL pool and
the stores over it (intake, registry, the registry cache, tokens) and the clock.
`build_adapters` is the one place that builds the production ones (tests and the bench
build theirs with it too, with a manual clock). `bootstrap(adapters, settings)` wires the
use cases over them, as cosmicpython's `bootstrap.bootstrap(uow=..., ...)` does.
`build_app` serves them over HTTP and Kafka: its lifespan takes the given adapters (or
builds them), bootstraps, and starts the Kafka side in the background (the outbox relay,
the intake consumers), retrying while the broker is away: the HTTP intake keeps accepting
into the outbox meanwhile. On shutdown the consumers stop first, then the relay, the
producer and, when it built them, the adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, HTTPException
from faststream.kafka import KafkaBroker

from huibao_contracts import topics
from huibao_platform import db, tracing
from huibao_platform.auth import TokenStore
from huibao_platform.clock import Clock, SystemClock
from huibao_platform.errors import BrokerUnavailableError, StartupRefusedError
from huibao_platform.http import error_body, install_common, principal_dependency, whoami_router
from huibao_platform.kafka import client_options, new_producer, require_topics, topics_present
from huibao_platform.lag import LagMonitor
from huibao_platform.logs import get_logger
from huibao_platform.outbox import OutboxRelay, Retain
from huibao_reporting.adapters import schema
from huibao_reporting.adapters.intake_repo import PgIntakeStore
from huibao_reporting.adapters.registry_cache import RegistryCache
from huibao_reporting.adapters.registry_repo import PgRegistryStore
from huibao_reporting.domain.checks import IntakeRules
from huibao_reporting.entrypoints.events_api import events_router
from huibao_reporting.entrypoints.kafka import build_broker, watch_positions
from huibao_reporting.entrypoints.orgunits_api import orgunits_router
from huibao_reporting.entrypoints.tokens_api import tokens_router
from huibao_reporting.service_layer.intake import Intake
from huibao_reporting.service_layer.ports import Clock as ClockPort
from huibao_reporting.service_layer.ports import IntakeStore, RegistryStore, UnitRecords
from huibao_reporting.service_layer.registry import Registry
from huibao_reporting.settings import ReportingSettings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Adapters:
    """Everything reporting talks to at once, connected (see `build_adapters`)."""

    pool: asyncpg.Pool
    intake: IntakeStore
    registry: RegistryStore
    units: UnitRecords
    tokens: TokenStore
    clock: ClockPort


@dataclass(frozen=True, slots=True)
class Reporting:
    """The wired service: its use cases over its adapters."""

    intake: Intake
    registry: Registry
    adapters: Adapters


@dataclass(slots=True)
class KafkaSide:
    """The Kafka side while it runs: started in the background, since the broker may be away
    while the HTTP intake keeps accepting into the outbox."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the producer, the relay and the intake consumers run."""
    relay: OutboxRelay | None = None
    intake_brokers: list[KafkaBroker] = field(default_factory=list)
    """The Kafka intake's faststream brokers while they run (their consumers' assignments)."""

    def intake_partitions(self) -> list[int]:
        """Partitions of the submitted topic assigned to this process's intake consumers."""
        return [
            tp.partition
            for broker in self.intake_brokers
            for sub in broker.subscribers
            if (consumer := getattr(sub, "consumer", None)) is not None
            for tp in consumer.assignment()
        ]

    def kick(self) -> None:
        """Wake the relay after a commit."""
        if self.relay is not None:
            self.relay.kick()


def needed_topics(settings: ReportingSettings) -> list[str]:
    """The topics reporting reads and writes (real names); it never creates them."""
    used = [topics.ACTIVITY_ACCEPTED, topics.ACTIVITY_REJECTED, topics.ORGUNIT_CHANGES]
    if settings.kafka_intake:
        used.insert(0, topics.ACTIVITY_SUBMITTED)
    return [settings.topic(t) for t in used]


async def _start_kafka(
    settings: ReportingSettings,
    pool: asyncpg.Pool,
    intake: Callable[[], Intake],
    side: KafkaSide,
    stop: asyncio.Event,
) -> None:
    """Start producer, relay and consumers, retrying until the broker answers; run until stop."""
    delay = 0.5
    while not stop.is_set():
        producer: AIOKafkaProducer = new_producer(settings)
        brokers = [
            build_broker(settings, intake)
            for _ in range(settings.kafka_intake_consumers if settings.kafka_intake else 0)
        ]
        try:
            await require_topics(settings, needed_topics(settings))
            await producer.start()
            for broker in brokers:
                await broker.start()
        except (KafkaError, OSError, BrokerUnavailableError, StartupRefusedError) as e:
            log.warning("kafka_start_retry", error=str(e))
            with contextlib.suppress(Exception):
                await producer.stop()
            for broker in brokers:
                with contextlib.suppress(Exception):
                    await broker.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 5.0)
            continue
        side.relay = OutboxRelay(
            pool,
            producer,
            schema.SCHEMA,
            batch=settings.relay_batch,
            topic_prefix=settings.topic_prefix,
            retain=_retain(settings),
            fault_pause=settings.relay_fault_pause_ms / 1000,
        )
        relay_task = asyncio.create_task(side.relay.run(stop), name="outbox-relay")
        # an emptied broker: an intake consumer beyond a partition's end reads it again
        positions = asyncio.create_task(watch_positions(brokers, stop), name="intake-positions")
        side.ready.set()
        side.intake_brokers = brokers
        log.info("kafka_started", intake_consumers=len(brokers))
        await stop.wait()
        side.intake_brokers = []
        await positions
        for broker in brokers:
            await broker.stop()
        await relay_task
        await producer.stop()
        return


def _retain(settings: ReportingSettings) -> Retain:
    """What the relay keeps after publishing: accepted events until the rollup's group
    committed past them, changes and rejects for the retention (docs/architecture.md)."""
    group = settings.outbox_confirm_group
    kept = {topics.ORGUNIT_CHANGES, topics.ACTIVITY_REJECTED}
    return Retain(
        groups={topics.ACTIVITY_ACCEPTED: group} if group else {},
        topics=frozenset(kept if group else kept | {topics.ACTIVITY_ACCEPTED}),
        retention_seconds=settings.outbox_retention_hours * 3600,
        kafka_options=client_options(settings),
    )


@contextlib.asynccontextmanager
async def build_adapters(
    settings: ReportingSettings, *, clock: Clock | None = None
) -> AsyncIterator[Adapters]:
    """The production adapters, connected (the schema installed), closed on exit;
    `clock` overrides the system clock (tests)."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await db.create_pool(
            settings.database_url,
            max_size=settings.db_pool_size,
            within=settings.database_connect_seconds,
        )
        stack.push_async_callback(pool.close)
        await schema.install(pool)
        tokens = TokenStore(pool, settings.admin_token)
        tokens.start(settings.database_url)  # revocations drop the cache at once
        stack.push_async_callback(tokens.close)
        yield Adapters(
            pool=pool,
            intake=PgIntakeStore(pool),
            registry=PgRegistryStore(pool),
            units=RegistryCache(pool, settings.registry_cache_units),
            tokens=tokens,
            clock=clock or SystemClock(),
        )


def bootstrap(
    adapters: Adapters, settings: ReportingSettings, *, on_commit: Callable[[], None] = lambda: None
) -> Reporting:
    """Reporting's use cases wired over `adapters`; `on_commit` runs after every commit
    that wrote outbox records (the relay's kick)."""
    rules = IntakeRules(timezone=settings.calendar.tz, future_skew=settings.future_skew)
    return Reporting(
        intake=Intake(adapters.intake, adapters.units, adapters.clock, rules, on_commit=on_commit),
        registry=Registry(adapters.registry, on_commit=on_commit),
        adapters=adapters,
    )


def _not_started() -> HTTPException:
    return HTTPException(503, error_body("service", "unavailable", "reporting is starting"))


def build_app(settings: ReportingSettings, adapters: Adapters | None = None) -> FastAPI:
    """The reporting app over `adapters` (built from `settings` at start when None; given
    ones stay open after it stops). `app.state.kafka` is its `KafkaSide`."""
    wired: Reporting | None = None
    side = KafkaSide()
    lag = LagMonitor(
        settings, interval=settings.lag_poll_seconds, stall_seconds=settings.ready_stall_seconds
    )
    if settings.kafka_intake:
        submitted = settings.topic(topics.ACTIVITY_SUBMITTED)
        lag.watch_group(submitted, settings.kafka_group_id, side.intake_partitions)

    def reporting() -> Reporting:
        if wired is None:
            raise _not_started()
        return wired

    def intake() -> Intake:
        return reporting().intake

    def registry() -> Registry:
        return reporting().registry

    def tokens() -> TokenStore:
        return reporting().adapters.tokens

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal wired
        async with contextlib.AsyncExitStack() as stack:
            given = adapters
            if given is None:
                given = await stack.enter_async_context(build_adapters(settings))
            # its topics must exist (made by `huibao topics`); a broker still away is waited for
            await require_topics(settings, needed_topics(settings), broker_required=False)
            running = bootstrap(given, settings, on_commit=side.kick)
            stop = asyncio.Event()
            kafka = asyncio.create_task(
                _start_kafka(settings, given.pool, intake, side, stop), name="kafka"
            )
            lag_task = asyncio.create_task(lag.run(stop), name="consumer-lag")
            wired = running
            try:
                yield
            finally:
                stop.set()
                if not side.ready.is_set():
                    kafka.cancel()  # still connecting: nothing to drain
                with contextlib.suppress(asyncio.CancelledError):
                    await kafka
                await lag_task
                wired = None
                side.ready.clear()
                side.relay = None
        log.info("reporting_stopped")

    app = FastAPI(
        title="Huibao reporting",
        telemetry=tracing.FASTAPI_TELEMETRY,  # the platform's middleware traces requests
        version="1.0.0",
        description="The front door: activity intake over HTTP and Kafka, and the org-unit "
        'registry. Errors answer `{"errors": [{"field", "reason", "message"}]}`.',
        lifespan=lifespan,
    )

    async def db_ready() -> bool:
        return wired is not None and await db.ping(wired.adapters.pool)

    async def kafka_ready() -> bool:
        return side.ready.is_set() and await topics_present(settings, needed_topics(settings))

    install_common(
        app, "reporting", {"postgres": db_ready, "kafka": kafka_ready, "progress": lag.ready}
    )
    principal = principal_dependency(tokens)

    def today() -> dt.date:
        return settings.calendar.local_date(reporting().adapters.clock.now())

    app.include_router(events_router(settings, intake, principal))
    app.include_router(orgunits_router(settings, registry, principal, today))
    app.include_router(tokens_router(tokens, registry, principal))
    app.include_router(whoami_router(principal))
    app.state.kafka = side
    return app
