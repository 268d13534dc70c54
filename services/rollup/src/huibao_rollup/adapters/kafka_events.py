"""The accepted-activity consumer, positioned from PostgreSQL rather than from Kafka.

aiokafka is used directly (not faststream): the consumer must seek every newly assigned
partition to the position PostgreSQL recorded, check that the broker still holds the record
found there, and drop records fetched before a rebalance; faststream's subscriber hides the
fetch loop these steps need. Kafka's own committed offsets are written after PostgreSQL
commits, for lag tooling only: they are never read back.

Positions: on assignment each partition is sought to the offset of the last record applied.
The first record fetched must be that record (same offset, same message key); it is then
skipped. Anything else means the broker lost its data (the embedded broker keeps topics in
memory and starts again from offset 0 after a restart), so the partition is read again
from the beginning and the facts' revisions absorb the repeats.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from huibao_contracts.rejects import FieldError
from huibao_contracts.topics import ACTIVITY_ACCEPTED
from huibao_platform.kafka import client_options, reset_beyond_end
from huibao_platform.logs import get_logger
from huibao_platform.outbox import EPOCH_HEADER
from huibao_rollup.adapters.codec import decode_event, record_key
from huibao_rollup.domain.model import ActivityEvent
from huibao_rollup.service_layer.ports import PositionStore
from huibao_rollup.settings import RollupSettings

log = get_logger(__name__)


@dataclass(slots=True)
class Polled:
    """One fetched record: where it sits, what identifies it, and its event if it is valid;
    otherwise why it is refused and the record itself (for the reject topic)."""

    partition: int
    offset: int
    key: str
    event: ActivityEvent | None
    refused: list[FieldError] | None = None
    record: ConsumerRecord | None = None
    reject_sent: bool = False


@dataclass(slots=True)
class _Partition:
    expected: int
    """Offset of the last record applied, as PostgreSQL holds it (-1 for none)."""
    verify: tuple[int, str] | None
    """(offset, key) the first record fetched must match, until it has been seen."""


class EventSource:
    """Fetches batches of accepted events for the partitions this replica owns."""

    def __init__(
        self, settings: RollupSettings, positions: PositionStore, topic: str = ACTIVITY_ACCEPTED
    ) -> None:
        self.topic = topic
        self._settings = settings
        self._positions = positions
        self._parts: dict[int, _Partition] = {}
        self.lock = asyncio.Lock()
        """Held while a batch is applied; rebalances wait for it."""
        self.generation = 0
        """Increases with every rebalance: a batch fetched before one is dropped."""
        self._consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_max_records,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            fetch_max_bytes=64 << 20,
            max_partition_fetch_bytes=16 << 20,
        )

    async def start(self) -> None:
        """Connect and join the group; positions are set as partitions get assigned."""
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Listener(self))

    async def stop(self) -> None:
        """Leave the group."""
        await self._consumer.stop()

    async def assign(self, tps: list[TopicPartition]) -> None:
        """Seek newly assigned partitions to PostgreSQL's record (called by the listener)."""
        async with self.lock:
            self.generation += 1
            stored = await self._positions.read_positions(self.topic)
            self._parts = {}
            for tp in tps:
                offset, key = stored.get(tp.partition, (-1, ""))
                await self._seek(tp, offset, key)
            log.info(
                "partitions_assigned",
                partitions=sorted(self._parts),
                positions={p: s.expected for p, s in self._parts.items()},
            )

    async def revoke(self) -> None:
        """Forget partitions being taken away (called by the listener)."""
        async with self.lock:
            self.generation += 1
            self._parts = {}

    def expected(self, partition: int) -> int:
        """Offset of the last record applied on `partition`, as last known."""
        return self._parts[partition].expected

    def owns(self, partition: int) -> bool:
        """True while `partition` is assigned to this replica."""
        return partition in self._parts

    async def poll(self) -> list[Polled]:
        """Up to `batch_max_records` records, waiting at most `batch_wait_ms` to fill up."""
        out: list[Polled] = []
        limit = self._settings.batch_max_records
        deadline = time.monotonic() + self._settings.batch_wait_ms / 1000
        timeout_ms = 500
        while len(out) < limit:
            chunk = await self._consumer.getmany(
                timeout_ms=timeout_ms, max_records=limit - len(out)
            )
            for tp, records in chunk.items():
                out.extend(await self._accept(tp, records))
            remaining = deadline - time.monotonic()
            if not chunk or remaining <= 0:
                break
            timeout_ms = max(1, int(remaining * 1000))
        return out

    async def _accept(self, tp: TopicPartition, records: list[ConsumerRecord]) -> list[Polled]:
        part = self._parts.get(tp.partition)
        if part is None or not records:
            return []
        polled = []
        for r in records:
            event = decode_event(r.value, tp.partition)
            if isinstance(event, list):
                key = record_key(r.value, None) + log_epoch(r)
                polled.append(Polled(tp.partition, r.offset, key, None, event, r))
            else:
                key = record_key(r.value, event) + log_epoch(r)
                polled.append(Polled(tp.partition, r.offset, key, event, None, r))
        if part.verify is not None:
            offset, key = part.verify
            part.verify = None
            first = polled[0]
            if first.offset == offset and first.key == key:
                polled = polled[1:]
            else:
                log.warning(
                    "broker_lost_data",
                    topic=self.topic,
                    partition=tp.partition,
                    stored_offset=offset,
                    found_offset=first.offset,
                )
                await self._consumer.seek_to_beginning(tp)
                return []
        return polled

    def applied(self, positions: dict[int, tuple[int, str]]) -> None:
        """PostgreSQL committed these positions: they are what the next batch must find."""
        for partition, (offset, _) in positions.items():
            if (part := self._parts.get(partition)) is not None:
                part.expected = offset

    async def reposition(self, partitions: list[int] | None = None) -> None:
        """Seek again from PostgreSQL's record: another replica applied past us, or a batch
        fetched across a rebalance was dropped. Call with `lock` held."""
        wanted = self._parts if partitions is None else partitions
        tps = [TopicPartition(self.topic, p) for p in wanted if p in self._parts]
        stored = await self._positions.read_positions(self.topic)
        for tp in tps:
            offset, key = stored.get(tp.partition, (-1, ""))
            await self._seek(tp, offset, key)

    async def _seek(self, tp: TopicPartition, offset: int, key: str) -> None:
        """Seek to the record last applied, so that the first fetch can check it; from the
        beginning when nothing was applied yet."""
        self._parts[tp.partition] = _Partition(offset, (offset, key) if offset >= 0 else None)
        if offset >= 0:
            self._consumer.seek(tp, offset)
        else:
            await self._consumer.seek_to_beginning(tp)

    async def check_lost(self) -> None:
        """A partition whose high watermark fell below our position lost its data (the
        broker restarted empty): read it again from the beginning (the platform's
        `reset_beyond_end`, which counts it). Call with `lock` held."""
        tps = [TopicPartition(self.topic, p) for p in sorted(self._parts)]
        for reset in await reset_beyond_end(self._consumer, tps):
            log.warning(
                "broker_lost_data",
                topic=self.topic,
                partition=reset.tp.partition,
                position=reset.position,
                high_watermark=reset.high_watermark,
            )
            if (part := self._parts.get(reset.tp.partition)) is not None:
                part.verify = None

    async def ack(self, positions: dict[int, tuple[int, str]]) -> None:
        """Commit to Kafka what PostgreSQL committed (best effort, never read back)."""
        from aiokafka.structs import OffsetAndMetadata

        offsets = {
            TopicPartition(self.topic, p): OffsetAndMetadata(o + 1, "")
            for p, (o, _) in positions.items()
            if p in self._parts
        }
        if not offsets:
            return
        try:
            async with asyncio.timeout(5):
                await self._consumer.commit(offsets)
        except (KafkaError, TimeoutError) as e:
            log.info("kafka_commit_skipped", error=str(e))

    def owned(self) -> list[int]:
        """The partitions assigned to this replica now (lag is exported by the
        platform's `LagMonitor`, for every partition)."""
        return sorted(self._parts)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: EventSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._source.revoke()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._source.assign(list(assigned))


def log_epoch(record: ConsumerRecord) -> str:
    """`@N` when the record carries the outbox's log epoch (its topic started over N times;
    see `huibao_platform.outbox`), else "". Part of the key a stored position is checked
    against, so that a rewritten log never passes for the one the rollup applied."""
    for name, value in record.headers or ():
        if name == EPOCH_HEADER:
            return "@" + bytes(value or b"").decode(errors="replace")
    return ""
