"""Reading a topic from its beginning without a consumer group (no ~5 s group join on Tansu)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from huibao_contracts.topics import PARTITIONS
from tests.support.waits import wait_until

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


async def read_topic(bootstrap: str, topic: str, partitions: int | None = None) -> list[Record]:
    """Every record of `topic` up to its current end: `assign()` + `seek_to_beginning`
    (of its `partitions`, by default as many as the contract gives it, else 1)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        count = partitions or PARTITIONS.get(topic, 1)
        parts = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[Record] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(*parts, timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def wait_for_records(
    bootstrap: str,
    topic: str,
    pred: Callable[[Record], bool],
    count: int = 1,
    timeout: float = 30,  # noqa: ASYNC109 (a polling deadline)
) -> list[Record]:
    """Records of `topic` matching `pred`, once there are at least `count` of them."""

    async def enough() -> list[Record]:
        found = [r for r in await read_topic(bootstrap, topic) if pred(r)]
        return found if len(found) >= count else []

    return await wait_until(enough, timeout=timeout, interval=0.5, message=f"{count} on {topic}")


def headers_dict(record: Record) -> dict[str, bytes]:
    """The record's headers as a dict (the last value of a repeated name wins)."""
    return {k: v or b"" for k, v in record.headers}


async def create_huibao_topics(bootstrap: str, prefix: str = "") -> None:
    """Create the Huibao topics under `prefix`, as `huibao topics` does: services never
    create them, and a test that runs one in-process with a prefix of its own does it first."""
    from huibao_platform.kafka import create_topics
    from huibao_platform.settings import TopicSettings

    await create_topics(TopicSettings(KAFKA_BOOTSTRAP_SERVERS=bootstrap, topic_prefix=prefix))


@contextlib.asynccontextmanager
async def tap(bootstrap: str, *topics: str) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """Every record of `topics` from their beginning, appended to the yielded list as it
    arrives (a consumer outside any group), until the block ends."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []

    async def run() -> None:
        while True:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)

    task = asyncio.create_task(run())
    try:
        yield records
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()
