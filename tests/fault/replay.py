"""Redeliveries onto `huibao.activity.accepted`, as an outbox relay that crashed between
publishing and deleting its rows would send them: the same bytes, key and headers again.

Exact duplicates sent to reporting never reach the rollup (reporting drops a repeated
`source` + `id`), so these replays are what exercises the rollup's own duplicate check,
including stale revisions arriving after their correction.
"""

from __future__ import annotations

import random

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from huibao_contracts.topics import ACTIVITY_ACCEPTED, PARTITIONS


class Replayer:
    """Re-publishes a sample of what the accepted topic holds; remembers where they landed."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = random.Random(seed)
        self.sent = 0
        self.highest: dict[int, int] = {}
        """Partition → offset of the last replay on it since the broker last started."""

    def broker_restarted(self) -> None:
        """Replays not applied before a broker restart are gone with it."""
        self.highest = {}

    async def replay(self, bootstrap: str, producer: AIOKafkaProducer, count: int) -> int:
        """Re-publish up to `count` records picked at random from the topic; how many."""
        records = await _read_all(bootstrap)
        picked = self.rng.sample(records, min(count, len(records)))
        futures = [
            await producer.send(
                ACTIVITY_ACCEPTED,
                key=r.key,
                value=r.value,
                headers=list(r.headers),
                partition=r.partition,
            )
            for r in picked
        ]
        for f in futures:
            meta = await f
            self.highest[meta.partition] = max(self.highest.get(meta.partition, -1), meta.offset)
        self.sent += len(picked)
        return len(picked)


async def _read_all(bootstrap: str, idle_ms: int = 1500) -> list:  # type: ignore[type-arg]
    """Every record the topic serves until a fetch stays empty for `idle_ms`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [TopicPartition(ACTIVITY_ACCEPTED, p) for p in range(PARTITIONS[ACTIVITY_ACCEPTED])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out = []
        while chunk := await consumer.getmany(*parts, timeout_ms=idle_ms, max_records=20_000):
            for records in chunk.values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()
