"""The transactional outbox: rows written in the caller's transaction, relayed to Kafka.

Rows name contract topics; the relay adds the deployment's topic prefix when it publishes.
`enqueue` runs inside the same PostgreSQL transaction as the state change, so "stored"
and "will be published" are one fact. One relay per schema is active at a time (a
PostgreSQL advisory lock elects it); it publishes rows in sequence order, so a broker outage
only delays delivery. A resend after a failure may duplicate records on Kafka: consumers
deduplicate by `source` + `id`.

A broker that loses what it held (the embedded one keeps topics in memory) must not lose
what the consumers had not read yet. So rows of the topics named in `Retain` are kept after
publishing, with the partition and offset Kafka gave them, until they are no longer needed:
a topic with a confirming consumer group drops a row once that group's committed offset on
its partition is past it (the consumer commits only what it has applied); a topic without
one keeps its rows for the retention period. The relay remembers, per partition, the base
offset of the last batch it published (`outbox_marks`); when the broker answers an end
offset at or below it, or gives a new batch an offset at or below it, the partition has
started over, and every kept row of that topic is published again, in sequence order
(log `outbox_topic_started_over`, metric `huibao_outbox_republished`). See
docs/architecture.md, "An emptied broker".
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from asyncpg.pool import PoolConnectionProxy
from opentelemetry.trace import SpanKind

from huibao_platform import metrics, tracing
from huibao_platform.kafka import CachedPartitioner, Record, publish_batches
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
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS published_partition int;
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS published_offset bigint;
CREATE INDEX IF NOT EXISTS outbox_unpublished ON {schema}.outbox (seq)
    WHERE published_offset IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published ON {schema}.outbox
    (topic, published_partition, published_offset) WHERE published_offset IS NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.outbox_epochs (
    topic text PRIMARY KEY,
    epoch int  NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.outbox_marks (
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    base_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


EPOCH_HEADER = "huibao_log_epoch"
"""Header on records of a kept topic once it started over: how many times it did. A
consumer that finds another epoch than the record it applied before knows the log was
rewritten, and reads the partition again from its beginning."""


@dataclass(frozen=True, slots=True)
class Retain:
    """Which published rows the relay keeps, so that an emptied broker gets them again.

    `groups`: contract topic → the consumer group whose committed offsets confirm its rows
    (a row goes once the group committed past it). `topics`: contract topics kept for
    `retention_seconds` after they were written (consumers without a confirming group).
    Topics in neither are deleted as soon as Kafka acknowledged them.
    """

    groups: Mapping[str, str] = field(default_factory=dict)
    topics: frozenset[str] = frozenset()
    retention_seconds: float = 7 * 86_400
    kafka_options: Mapping[str, Any] = field(default_factory=dict)
    """aiokafka client options for the end-offset and committed-offset readers."""
    check_seconds: float = 1.0
    """How often an idle relay asks the broker whether a partition started over."""
    prune_seconds: float = 5.0
    """How often confirmed or expired rows are deleted."""
    settle_seconds: float = 1.0
    """Pause after finding that a topic started over, before publishing it again."""

    def keeps(self, topic: str) -> bool:
        """True when published rows of `topic` are kept."""
        return topic in self.groups or topic in self.topics


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
        retain: Retain | None = None,
        fault_pause: float = 0.0,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch = batch
        self._idle_sleep = idle_sleep
        self._prefix = topic_prefix
        self._retain = retain or Retain()
        self._fault_pause = fault_pause
        """A test hook (0: off): pause between Kafka's acknowledgement and recording it."""
        self._wake = asyncio.Event()
        self._lock_id = zlib.crc32(f"huibao-relay-{schema}".encode())
        self._partitioner = CachedPartitioner()
        self._epochs: dict[str, int] = {}
        """Contract topic → times it started over (published as `EPOCH_HEADER` when > 0)."""
        self._marks: dict[tuple[str, int], tuple[int, int]] = {}
        """(contract topic, partition) → (base offset, end offset) of the last batch sent."""
        self._readers: dict[str | None, AIOKafkaConsumer] = {}
        self._checked = 0.0
        self._pruned = 0.0
        self.is_leader = False

    def kick(self) -> None:
        """Tell the relay new rows are waiting (saves the idle wait)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Elect, then relay until `stop` is set; survives PostgreSQL and Kafka outages."""
        try:
            await self._run(stop)
        finally:
            await self._drop_readers()

    async def _run(self, stop: asyncio.Event) -> None:
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
            except Exception as e:  # the relay must never die silently
                log.error("relay_failed", schema=self._schema, error=repr(e), exc_info=True)
                await self._drop_readers()
                await _sleep_or_stop(stop, 1.0)

    async def _relay_while_leader(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        await self._load_marks()
        while not stop.is_set():
            await self._housekeeping()
            rows = await self._pool.fetch(
                f"SELECT seq, topic, key, value, headers, created_at FROM {self._schema}.outbox"
                " WHERE published_offset IS NULL ORDER BY seq LIMIT $1",
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
                placed = await self._publish(rows)
            except (KafkaError, OSError, TimeoutError) as e:
                metrics.RELAY_FAILURES.inc()
                log.warning(
                    "relay_publish_failed", schema=self._schema, error=str(e), rows=len(rows)
                )
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            if self._fault_pause > 0:  # the fault runs kill the process here
                log.info("relay_fault_pause", schema=self._schema, rows=len(rows))
                await asyncio.sleep(self._fault_pause)
            await self._record(rows, placed)
            metrics.RELAY_PUBLISHED.inc(len(rows))

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> list[_Placed]:
        """Publish `rows` as one record batch per partition (in seq order within each), with
        the platform's batch publisher; where each batch landed."""
        records: list[Record] = []
        for r in rows:
            headers = [(k, v.encode()) for k, v in r["headers"]]
            if epoch := self._epochs.get(r["topic"]):
                headers.append((EPOCH_HEADER, str(epoch).encode()))
            records.append((self._prefix + r["topic"], r["key"], r["value"], headers))
        with tracing.batch_span(
            f"publish {self._prefix}{rows[0]['topic']}" if rows else "publish",
            SpanKind.PRODUCER,
            lambda: tracing.messaging_attributes(
                "publish", self._prefix + rows[0]["topic"] if rows else "", len(rows)
            ),
            lambda: (tracing.extract(r["headers"]) for r in rows),
        ):
            batches = await publish_batches(
                self._producer, records, self._partitioner, ack_timeout=30
            )
        return [
            _Placed(
                rows[b.records[0]]["topic"],
                b.partition,
                b.base,
                [rows[i]["seq"] for i in b.records],
            )
            for b in batches
        ]

    async def _record(self, rows: Sequence[asyncpg.Record], placed: list[_Placed]) -> None:
        """Delete the rows published that nobody needs again; note where the kept ones are.

        Exactly the rows published: a row with a lower seq whose transaction committed
        after this round's read must stay for the next round.
        """
        kept_seq: list[int] = []
        kept_partition: list[int] = []
        kept_offset: list[int] = []
        gone: list[int] = []
        marks: dict[tuple[str, int], tuple[int, int]] = {}
        started_over: set[str] = set()
        for p in placed:
            if not self._retain.keeps(p.topic):
                gone.extend(p.seqs)
                continue
            kept_seq.extend(p.seqs)
            kept_partition.extend([p.partition] * len(p.seqs))
            kept_offset.extend(range(p.base, p.base + len(p.seqs)))
            where = (p.topic, p.partition)
            before = self._marks.get(where)
            if before is not None and p.base < before[1]:
                # a batch starts at or after the end of the one before it on a partition that
                # kept its log: this one went back (the log started over) or overlaps it
                started_over.add(p.topic)
            if where not in marks or p.base > marks[where][0]:
                marks[where] = (p.base, p.base + len(p.seqs))
        async with self._pool.acquire() as conn, conn.transaction():
            if gone:
                await conn.execute(
                    f"DELETE FROM {self._schema}.outbox WHERE seq = ANY($1::bigint[])", gone
                )
            if kept_seq:
                await conn.execute(
                    f"UPDATE {self._schema}.outbox o SET published_partition = v.p,"
                    " published_offset = v.o FROM unnest($1::bigint[], $2::int[], $3::bigint[])"
                    " AS v(s, p, o) WHERE o.seq = v.s",
                    kept_seq,
                    kept_partition,
                    kept_offset,
                )
                await conn.executemany(
                    f"INSERT INTO {self._schema}.outbox_marks (topic, partition, base_offset)"
                    " VALUES ($1, $2, $3) ON CONFLICT (topic, partition)"
                    " DO UPDATE SET base_offset = EXCLUDED.base_offset",
                    [(t, p, base) for (t, p), (base, _) in marks.items()],
                )
        self._marks.update(marks)
        for topic in sorted(started_over):
            await self._start_over(topic, "offset_went_back_or_overlaps")

    async def _load_marks(self) -> None:
        epochs = await self._pool.fetch(f"SELECT topic, epoch FROM {self._schema}.outbox_epochs")
        self._epochs = {r["topic"]: r["epoch"] for r in epochs}
        rows = await self._pool.fetch(
            f"SELECT m.topic, m.partition, m.base_offset,"
            f" (SELECT max(o.published_offset) FROM {self._schema}.outbox o"
            "   WHERE o.topic = m.topic AND o.published_partition = m.partition"
            "     AND o.published_offset IS NOT NULL) AS top"
            f" FROM {self._schema}.outbox_marks m"
        )
        self._marks = {
            (r["topic"], r["partition"]): (
                r["base_offset"],
                max(r["base_offset"], r["top"] if r["top"] is not None else -1) + 1,
            )
            for r in rows
        }

    async def _housekeeping(self) -> None:
        """Now and then: ask whether a partition started over; delete what is confirmed."""
        if not self._retain.groups and not self._retain.topics:
            return
        now = time.monotonic()
        try:
            async with asyncio.timeout(30):
                if self._marks and now - self._checked >= self._retain.check_seconds:
                    self._checked = now
                    await self._check_started_over()
                if now - self._pruned >= self._retain.prune_seconds:
                    self._pruned = now
                    await self._prune()
        except TimeoutError:
            log.warning("relay_housekeeping_timeout", schema=self._schema)
            await self._drop_readers()

    async def _drop_readers(self) -> None:
        """Forget the offset readers (they are made again on next use)."""
        readers, self._readers = self._readers, {}
        for reader in readers.values():
            with contextlib.suppress(Exception):
                await reader.stop()

    async def _check_started_over(self) -> None:
        """A partition whose end offset is at or below the base of the last batch we sent
        to it lost its log (the broker came back empty, or the topic was recreated).

        Tansu answers ListOffsets with the base offset of the last batch + 1, so a
        partition that kept its log answers at least the base of our last batch + 1.
        """
        tps = {
            TopicPartition(self._prefix + t, p): (t, base)
            for (t, p), (base, _) in self._marks.items()
        }
        try:
            reader = await self._reader(None)
            async with asyncio.timeout(10):
                ends = await reader.end_offsets(list(tps))
        except (KafkaError, OSError, TimeoutError) as e:
            log.info("relay_offsets_unavailable", schema=self._schema, error=str(e))
            await self._drop_readers()
            return
        started_over = {tps[tp][0] for tp, end in ends.items() if end <= tps[tp][1]}
        for topic in sorted(started_over):
            await self._start_over(topic, "end_offset_below_mark")

    async def _start_over(self, topic: str, reason: str) -> None:
        """Publish every kept row of `topic` again, from the lowest seq."""
        async with self._pool.acquire() as conn, conn.transaction():
            n = await conn.fetchval(
                f"WITH r AS (UPDATE {self._schema}.outbox SET published_partition = NULL,"
                " published_offset = NULL WHERE topic = $1 AND published_offset IS NOT NULL"
                " RETURNING 1) SELECT count(*) FROM r",
                topic,
            )
            await conn.execute(f"DELETE FROM {self._schema}.outbox_marks WHERE topic = $1", topic)
            epoch = await conn.fetchval(
                f"INSERT INTO {self._schema}.outbox_epochs AS e (topic, epoch) VALUES ($1, 1)"
                " ON CONFLICT (topic) DO UPDATE SET epoch = e.epoch + 1 RETURNING epoch",
                topic,
            )
        self._epochs[topic] = int(epoch)
        partitions = sorted(p for t, p in self._marks if t == topic)
        self._marks = {k: v for k, v in self._marks.items() if k[0] != topic}
        # a broker that has just come back may still be creating its topics: give it a
        # moment before the whole backlog arrives
        await asyncio.sleep(self._retain.settle_seconds)
        metrics.OUTBOX_STARTED_OVER.labels(topic).inc()
        metrics.OUTBOX_REPUBLISHED.labels(topic).inc(int(n))
        log.warning(
            "outbox_topic_started_over",
            schema=self._schema,
            topic=topic,
            partitions=partitions,
            republishing=int(n),
            epoch=self._epochs[topic],
            detected_by=reason,
        )

    async def _prune(self) -> None:
        """Delete kept rows their consumer group confirmed, and expired rows of the others."""
        for topic, group in self._retain.groups.items():
            try:
                committed = await self._committed(topic, group)
            except (KafkaError, OSError, TimeoutError) as e:
                log.info("relay_committed_unavailable", topic=topic, group=group, error=str(e))
                await self._drop_readers()
                continue
            # a committed offset beyond what we know the partition holds is not trusted
            # (a consumer still committing positions of the log before it started over)
            confirmed = {
                p: c
                for p, c in committed.items()
                if (mark := self._marks.get((topic, p))) is not None and c <= mark[1]
            }
            if confirmed:
                await self._pool.execute(
                    f"DELETE FROM {self._schema}.outbox o USING unnest($2::int[], $3::bigint[])"
                    " AS c(p, o) WHERE o.topic = $1 AND o.published_partition = c.p"
                    " AND o.published_offset < c.o",
                    topic,
                    list(confirmed),
                    list(confirmed.values()),
                )
        if self._retain.topics:
            await self._pool.execute(
                f"DELETE FROM {self._schema}.outbox WHERE topic = ANY($1::text[])"
                " AND published_offset IS NOT NULL"
                " AND created_at < now() - make_interval(secs => $2)",
                sorted(self._retain.topics),
                self._retain.retention_seconds,
            )
        kept = await self._pool.fetchval(
            f"SELECT count(*) FROM {self._schema}.outbox WHERE published_offset IS NOT NULL"
        )
        metrics.OUTBOX_KEPT.set(int(kept))

    async def _committed(self, topic: str, group: str) -> dict[int, int]:
        """Partition → the group's committed offset (partitions without one are left out)."""
        reader = await self._reader(group)
        name = self._prefix + topic
        parts = sorted(await self._producer.partitions_for(name))
        out: dict[int, int] = {}
        async with asyncio.timeout(10):
            for p in parts:
                offset = await reader.committed(TopicPartition(name, p))
                if offset is not None and offset >= 0:
                    out[p] = int(offset)
        return out

    async def _reader(self, group: str | None) -> AIOKafkaConsumer:
        """A consumer that never subscribes: it only reads end or committed offsets."""
        reader = self._readers.get(group)
        if reader is None:
            reader = AIOKafkaConsumer(
                **self._retain.kafka_options,
                group_id=group,
                enable_auto_commit=False,
                request_timeout_ms=10_000,
            )
            try:
                async with asyncio.timeout(10):
                    await reader.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await reader.stop()
                raise
            self._readers[group] = reader
        return reader

    async def _update_backlog(self, rows: Sequence[asyncpg.Record]) -> None:
        if not rows:
            metrics.OUTBOX_BACKLOG.set(0)
            metrics.OUTBOX_OLDEST_AGE.set(0)
            return
        if len(rows) < self._batch:
            metrics.OUTBOX_BACKLOG.set(len(rows))
        else:
            waiting = await self._pool.fetchval(
                f"SELECT count(*) FROM {self._schema}.outbox WHERE published_offset IS NULL"
            )
            metrics.OUTBOX_BACKLOG.set(int(waiting))
        age = (dt.datetime.now(dt.UTC) - rows[0]["created_at"]).total_seconds()
        metrics.OUTBOX_OLDEST_AGE.set(max(age, 0.0))


@dataclass(frozen=True, slots=True)
class _Placed:
    """Where one record batch landed: its rows (seq order) start at `base`."""

    topic: str
    partition: int
    base: int
    seqs: list[int]


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass
