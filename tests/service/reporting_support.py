"""The reporting app in-process on the embedded broker and PostgreSQL, and a topic tap.

`reporting_service` runs the real app (its lifespan: pool, schema, relay, Kafka intake)
against a fresh database of `infra`, with its own consumer group so the `stack`
fixture's reporting process, if running, does not share its partitions. `TopicTap`
collects every record of some topics from their beginning, for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI
from tests.support.topics import create_huibao_topics
from tests.support.waits import wait_until

from huibao_reporting.bootstrap import Adapters, build_adapters, build_app
from huibao_reporting.settings import ReportingSettings
from huibao_stack.infra import Infrastructure

ADMIN = "reporting-test-admin"
PREFIX = "reporting-test."
"""Topic prefix of the in-process apps, so the session stack's services never see their records."""


@dataclass
class TopicTap:
    """Every record of `topics` from the beginning, collected in the background."""

    bootstrap: str
    topics: tuple[str, ...]
    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *(PREFIX + t for t in self.topics),
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                self.records.extend(recs)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    def matching(
        self, topic: str, pred: Callable[[ConsumerRecord[bytes, bytes]], bool]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        return [r for r in list(self.records) if r.topic == PREFIX + topic and pred(r)]

    async def wait_for(
        self,
        topic: str,
        pred: Callable[[ConsumerRecord[bytes, bytes]], bool],
        count: int = 1,
        within: float = 30,
    ) -> list[ConsumerRecord[bytes, bytes]]:
        def enough() -> list[ConsumerRecord[bytes, bytes]]:
            found = self.matching(topic, pred)
            return found if len(found) >= count else []

        return await wait_until(enough, timeout=within, message=f"{count} records on {topic}")


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def value_of(record: ConsumerRecord[bytes, bytes]) -> Any:
    return orjson.loads(record.value or b"null")


def id_of(record: ConsumerRecord[bytes, bytes]) -> Any:
    """The CloudEvent id of `record`, or None when its value is not a JSON object (a reject
    record carries whatever bytes were refused, and other tests leave such records on the
    shared topics)."""
    try:
        value = orjson.loads(record.value or b"null")
    except orjson.JSONDecodeError:
        return None
    return value.get("id") if isinstance(value, dict) else None


@dataclass
class ReportingService:
    """The app, an admin HTTP client, its settings, its adapters and a tap on reporting's
    output topics."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: ReportingSettings
    tap: TopicTap
    adapters: Adapters

    def as_token(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://reporting",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    async def produce(
        self, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
    ) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            for key, value, headers in records:
                await producer.send_and_wait(
                    PREFIX + "huibao.activity.submitted", value=value, key=key, headers=headers
                )
        finally:
            await producer.stop()


def reporting_settings(
    infra: Infrastructure, database_url: str, **overrides: Any
) -> ReportingSettings:
    return ReportingSettings(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers,
        admin_token=ADMIN,
        kafka_group_id=f"huibao-reporting-test-{uuid.uuid4().hex[:8]}",
        topic_prefix=PREFIX,
        **overrides,
    )


@contextlib.asynccontextmanager
async def running(settings: ReportingSettings) -> AsyncIterator[ReportingService]:
    """The app over the production adapters (passed in), its lifespan running and Kafka
    started."""
    await create_huibao_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    tap = TopicTap(
        settings.kafka_bootstrap_servers,
        ("huibao.activity.accepted", "huibao.activity.rejected", "huibao.orgunit.changes"),
    )
    async with build_adapters(settings) as adapters:
        app = build_app(settings, adapters)
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(app.state.kafka.ready.wait(), 60)
            await tap.start()
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://reporting",
                headers={"Authorization": f"Bearer {ADMIN}"},
                timeout=30,
            )
            try:
                yield ReportingService(app, client, settings, tap, adapters)
            finally:
                await client.aclose()
                await tap.stop()


@contextlib.asynccontextmanager
async def fresh_service(infra: Infrastructure) -> AsyncIterator[ReportingService]:
    """Reporting in-process on a fresh database of the embedded stack."""
    url = await infra.fresh_database(f"reporting_{uuid.uuid4().hex[:8]}")
    async with running(reporting_settings(infra, url)) as service:
        yield service
