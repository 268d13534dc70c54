"""The platform's per-partition batch publisher (used by the outbox relay's peers and by
`make bench`): every record lands on Kafka's partition for its key, in order, at the
partition and offset its batch answers, also when batches fill up and topics mix."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from tests.support.topics import read_topic

from huibao_platform.kafka import CachedPartitioner, Placed, Record, publish_batches
from huibao_stack.infra import Infrastructure

pytestmark = pytest.mark.stack


def where(batches: list[Placed], count: int) -> list[tuple[int, int]]:
    """(partition, offset) of each of `count` records published, from its batch."""
    found: dict[int, tuple[int, int]] = {}
    for b in batches:
        assert b.records == sorted(b.records)  # in order within the batch
        for j, i in enumerate(b.records):
            assert i not in found  # each record in one batch
            found[i] = (b.partition, b.base + j)
    assert sorted(found) == list(range(count))
    return [found[i] for i in range(count)]


async def test_records_land_where_and_as_answered(infra: Infrastructure) -> None:
    run = uuid.uuid4().hex[:8]
    wide, narrow = f"test.batches.wide.{run}", f"test.batches.narrow.{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(wide, 3, 1), NewTopic(narrow, 1, 1)])
    finally:
        await admin.close()
    # small batches: every partition fills several, interleaved across partitions
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, max_batch_size=2048)
    await producer.start()
    records: list[Record] = [
        (
            wide if i % 4 else narrow,
            f"b{i % 23}".encode(),
            f"value {i} ".encode() * 8,
            [("n", str(i).encode())],
        )
        for i in range(600)
    ]
    try:
        positions = where(await publish_batches(producer, records, CachedPartitioner()), 600)
        again = where(await publish_batches(producer, records[:5], CachedPartitioner()), 5)
    finally:
        await producer.stop()

    assert len(positions) == len(records)
    stored = {
        (r.topic, r.partition, r.offset): r
        for topic in (wide, narrow)
        for r in await read_topic(
            infra.bootstrap_servers, topic, partitions=3 if topic == wide else 1
        )
    }
    assert len(stored) == len(records) + 5
    default = DefaultPartitioner()
    for (topic, key, value, headers), (partition, offset) in zip(records, positions, strict=True):
        count = 3 if topic == wide else 1
        assert partition == default(key, list(range(count)), list(range(count)))
        got = stored[(topic, partition, offset)]
        assert (got.key, got.value, list(got.headers)) == (key, value, headers)
    # a second call goes on after the first, on every partition it touches
    last: dict[tuple[str, int], int] = {}
    for (topic, *_), (partition, offset) in zip(records, positions, strict=True):
        last[(topic, partition)] = max(offset, last.get((topic, partition), -1))
    for (topic, *_), (partition, offset) in zip(records[:5], again, strict=True):
        assert offset > last[(topic, partition)]
