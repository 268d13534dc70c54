"""The one wiring point of the reporting service: adapters, use cases, HTTP app, Kafka loops.

`build_app(settings)` returns the FastAPI app. Its lifespan connects to PostgreSQL, installs
the schema, and starts the Kafka side in the background (topics, the outbox relay, the
intake consumers), retrying while the broker is away: the HTTP intake keeps accepting into
the outbox meanwhile. On shutdown the consumer stops first, then the relay, the producer
and the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from huibao_contracts import topics
from huibao_platform import db
from huibao_platform.auth import TokenStore
from huibao_platform.clock import Clock, SystemClock
from huibao_platform.errors import BrokerUnavailableError, StartupRefusedError
from huibao_platform.http import install_common, principal_dependency, whoami_router
from huibao_platform.kafka import client_options, new_producer, require_topics, topics_present
from huibao_platform.lag import LagMonitor
from huibao_platform.logs import get_logger
from huibao_platform.outbox import OutboxRelay, Retain
from huibao_reporting.adapters import schema
from huibao_reporting.adapters.registry_cache import RegistryCache
from huibao_reporting.domain.checks import IntakeRules
from huibao_reporting.entrypoints.events_api import events_router
from huibao_reporting.entrypoints.kafka import build_broker
from huibao_reporting.entrypoints.orgunits_api import orgunits_router
from huibao_reporting.entrypoints.tokens_api import tokens_router
from huibao_reporting.service_layer.intake import Intake
from huibao_reporting.service_layer.registry import Registry
from huibao_reporting.settings import ReportingSettings

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Runtime:
    """What the lifespan builds; the routers read it at request time."""

    pool: asyncpg.Pool | None = None
    intake: Intake | None = None
    registry: Registry | None = None
    tokens: TokenStore | None = None
    relay: OutboxRelay | None = None
    kafka_ready: asyncio.Event = field(default_factory=asyncio.Event)
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

    def need(self, value: T | None) -> T:
        """A part that exists once the lifespan has started."""
        if value is None:
            raise RuntimeError("the reporting service is not started")
        return value


def needed_topics(settings: ReportingSettings) -> list[str]:
    """The topics reporting reads and writes (real names); it never creates them."""
    used = [topics.ACTIVITY_ACCEPTED, topics.ACTIVITY_REJECTED, topics.ORGUNIT_CHANGES]
    if settings.kafka_intake:
        used.insert(0, topics.ACTIVITY_SUBMITTED)
    return [settings.topic(t) for t in used]


async def _start_kafka(settings: ReportingSettings, rt: Runtime, stop: asyncio.Event) -> None:
    """Start producer, relay and consumer, retrying until the broker answers; run until stop."""
    delay = 0.5
    while not stop.is_set():
        producer: AIOKafkaProducer = new_producer(settings)
        brokers = [
            build_broker(settings, lambda: rt.need(rt.intake))
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
        rt.relay = OutboxRelay(
            rt.need(rt.pool),
            producer,
            schema.SCHEMA,
            batch=settings.relay_batch,
            topic_prefix=settings.topic_prefix,
            retain=_retain(settings),
            fault_pause=settings.relay_fault_pause_ms / 1000,
        )
        relay_task = asyncio.create_task(rt.relay.run(stop), name="outbox-relay")
        rt.kafka_ready.set()
        rt.intake_brokers = brokers
        log.info("kafka_started", intake_consumers=len(brokers))
        await stop.wait()
        rt.intake_brokers = []
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


def build_app(settings: ReportingSettings, *, clock: Clock | None = None) -> FastAPI:
    """The reporting app; tests pass a manual clock."""
    clock = clock or SystemClock()
    rt = Runtime()
    rules = IntakeRules(timezone=settings.calendar.tz, future_skew=settings.future_skew)
    lag = LagMonitor(
        settings, interval=settings.lag_poll_seconds, stall_seconds=settings.ready_stall_seconds
    )
    if settings.kafka_intake:
        submitted = settings.topic(topics.ACTIVITY_SUBMITTED)
        lag.watch_group(submitted, settings.kafka_group_id, rt.intake_partitions)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        rt.pool = await db.create_pool(
            settings.database_url,
            max_size=settings.db_pool_size,
            within=settings.database_connect_seconds,
        )
        await schema.install(rt.pool)
        # its topics must exist (made by `huibao topics`); a broker still away is waited for
        await require_topics(settings, needed_topics(settings), broker_required=False)
        rt.intake = Intake(
            rt.pool,
            clock,
            rules,
            on_commit=rt.kick,
            registry=RegistryCache(settings.registry_cache_units),
        )
        rt.registry = Registry(rt.pool, on_commit=rt.kick)
        rt.tokens = TokenStore(rt.pool, settings.admin_token)
        rt.tokens.start(settings.database_url)  # revocations drop the cache at once
        stop = asyncio.Event()
        kafka = asyncio.create_task(_start_kafka(settings, rt, stop), name="kafka")
        lag_task = asyncio.create_task(lag.run(stop), name="consumer-lag")
        try:
            yield
        finally:
            stop.set()
            if not rt.kafka_ready.is_set():
                kafka.cancel()  # still connecting: nothing to drain
            with contextlib.suppress(asyncio.CancelledError):
                await kafka
            await lag_task
            if rt.tokens is not None:
                await rt.tokens.close()
            await rt.pool.close()
            log.info("reporting_stopped")

    app = FastAPI(
        title="Huibao reporting",
        version="1.0.0",
        description="The front door: activity intake over HTTP and Kafka, and the org-unit "
        'registry. Errors answer `{"errors": [{"field", "reason", "message"}]}`.',
        lifespan=lifespan,
    )

    async def db_ready() -> bool:
        return rt.pool is not None and await db.ping(rt.pool)

    async def kafka_ready() -> bool:
        return rt.kafka_ready.is_set() and await topics_present(settings, needed_topics(settings))

    install_common(
        app, "reporting", {"postgres": db_ready, "kafka": kafka_ready, "progress": lag.ready}
    )
    principal = principal_dependency(lambda: rt.need(rt.tokens))

    def today() -> dt.date:
        return settings.calendar.local_date(clock.now())

    app.include_router(events_router(settings, lambda: rt.need(rt.intake), principal))
    app.include_router(orgunits_router(settings, lambda: rt.need(rt.registry), principal, today))
    app.include_router(
        tokens_router(lambda: rt.need(rt.tokens), lambda: rt.need(rt.registry), principal)
    )
    app.include_router(whoami_router(principal))
    app.state.runtime = rt
    return app
