"""The transactional outbox: rows written in the caller's transaction, relayed to Kafka.

Rows name contract topics; the relay adds the deployment's topic prefix when it publishes.
`enqueue` runs inside the same PostgreSQL transaction as the state change, so "stored"
and "will be published" are one fact. One relay per schema is active at a time (a
PostgreSQL advisory lock elects it); it publishes rows in sequence order and deletes them
only after Kafka acknowledged them, so a broker outage only delays delivery. A resend after
a failure may duplicate records on Kafka: consumers deduplicate by `source` + `id`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from asyncpg.pool import PoolConnectionProxy

from huibao_platform import metrics
from huibao_platform.kafka import CachedPartitioner
from huibao_platform.logs import get_logger

log = get_logger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    seq        bigserial PRIMARY KEY,
    topic      text        NOT NULL,
    key        bytea,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One Kafka record to publish: topic, key, value and string headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, str], ...] = field(default=())


async def enqueue(
    conn: asyncpg.Connection | PoolConnectionProxy, schema: str, records: Sequence[OutboxRecord]
) -> None:
    """Add records to the outbox inside the caller's transaction."""
    if not records:
        return
    headers: dict[tuple[tuple[str, str], ...], orjson.Fragment] = {}  # encoded once per kind

    def stored(h: tuple[tuple[str, str], ...]) -> orjson.Fragment:
        if h not in headers:
            headers[h] = orjson.Fragment(orjson.dumps([[k, _storable(v)] for k, v in h]))
        return headers[h]

    await conn.copy_records_to_table(
        "outbox",
        schema_name=schema,
        columns=["topic", "key", "value", "headers"],
        records=[(r.topic, r.key, r.value, stored(r.headers)) for r in records],
    )


def _storable(text: str) -> str:
    """Header text as jsonb can hold it: U+0000 (which jsonb refuses) becomes U+FFFD."""
    return text.replace("\x00", "\ufffd")


class OutboxRelay:
    """Drains one schema's outbox to Kafka, in order, while it holds the relay lock."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        *,
        batch: int = 2000,
        idle_sleep: float = 0.05,
        topic_prefix: str = "",
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch = batch
        self._idle_sleep = idle_sleep
        self._prefix = topic_prefix
        self._wake = asyncio.Event()
        self._lock_id = zlib.crc32(f"huibao-relay-{schema}".encode())
        self._partitioner = CachedPartitioner()
        self.is_leader = False

    def kick(self) -> None:
        """Tell the relay new rows are waiting (saves the idle wait)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Elect, then relay until `stop` is set; survives PostgreSQL and Kafka outages."""
        while not stop.is_set():
            try:
                async with self._pool.acquire() as lock_conn:
                    if not await lock_conn.fetchval(
                        "SELECT pg_try_advisory_lock($1)", self._lock_id
                    ):
                        self.is_leader = False
                        await _sleep_or_stop(stop, 1.0)
                        continue
                    self.is_leader = True
                    try:
                        await self._relay_while_leader(stop)
                    finally:
                        self.is_leader = False
                        await lock_conn.execute("SELECT pg_advisory_unlock($1)", self._lock_id)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("relay_storage_error", schema=self._schema, error=str(e))
                await _sleep_or_stop(stop, 1.0)

    async def _relay_while_leader(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            rows = await self._pool.fetch(
                f"SELECT seq, topic, key, value, headers, created_at FROM {self._schema}.outbox"
                " ORDER BY seq LIMIT $1",
                self._batch,
            )
            await self._update_backlog(rows)
            if not rows:
                self._wake.clear()
                try:
                    async with asyncio.timeout(self._idle_sleep * 20):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            try:
                await self._publish(rows)
            except (KafkaError, OSError) as e:
                metrics.RELAY_FAILURES.inc()
                log.warning(
                    "relay_publish_failed", schema=self._schema, error=str(e), rows=len(rows)
                )
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            # Delete exactly the rows published: a row with a lower seq whose transaction
            # committed after this round's read must stay for the next round.
            await self._pool.execute(
                f"DELETE FROM {self._schema}.outbox WHERE seq = ANY($1::bigint[])",
                [r["seq"] for r in rows],
            )
            metrics.RELAY_PUBLISHED.inc(len(rows))

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> None:
        """Publish `rows` as one record batch per partition (in seq order within each).

        Building the batches here, with the producer's key → partition rule, skips
        aiokafka's per-record `send` (a future, a metadata lookup and a partitioner call
        per record), which cost more CPU than everything else the relay does.
        """
        open_batches: dict[tuple[str, int], Any] = {}
        partitions: dict[str, list[int]] = {}
        sent = []
        for r in rows:
            topic = self._prefix + r["topic"]
            if topic not in partitions:
                partitions[topic] = sorted(await self._producer.partitions_for(topic))
            every = partitions[topic]
            partition = self._partitioner(r["key"], every, every)
            headers = [(k, v.encode()) for k, v in r["headers"]]
            batch = open_batches.get((topic, partition))
            if batch is None:
                batch = open_batches[(topic, partition)] = self._producer.create_batch()
            while (
                batch.append(key=r["key"], value=r["value"], timestamp=None, headers=headers)
                is None
            ):
                sent.append(await self._producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[(topic, partition)] = self._producer.create_batch()
        for (topic, partition), batch in open_batches.items():
            sent.append(await self._producer.send_batch(batch, topic, partition=partition))
        async with asyncio.timeout(30):
            await asyncio.gather(*sent)

    async def _update_backlog(self, rows: Sequence[asyncpg.Record]) -> None:
        if not rows:
            metrics.OUTBOX_BACKLOG.set(0)
            metrics.OUTBOX_OLDEST_AGE.set(0)
            return
        if len(rows) < self._batch:
            metrics.OUTBOX_BACKLOG.set(len(rows))
        else:
            top = await self._pool.fetchval(f"SELECT max(seq) FROM {self._schema}.outbox")
            metrics.OUTBOX_BACKLOG.set(int(top) - int(rows[0]["seq"]) + 1)
        age = (dt.datetime.now(dt.UTC) - rows[0]["created_at"]).total_seconds()
        metrics.OUTBOX_OLDEST_AGE.set(max(age, 0.0))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass
