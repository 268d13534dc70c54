"""The cached partitioner sends every key where Kafka's default partitioner would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from huibao_platform.kafka import CachedPartitioner


def test_same_partition_as_the_default_for_every_key_and_partition_count() -> None:
    cached, default = CachedPartitioner(size=50), DefaultPartitioner()
    keys = [f"bcity.c{i % 7}.t{i % 13}.b{i}".encode() for i in range(300)]
    for count in (1, 3, 6, 48):
        partitions = list(range(count))
        for key in keys * 2:  # the second pass answers from the cache (and past its size)
            assert cached(key, partitions, partitions) == default(key, partitions, partitions)


def test_records_without_a_key_go_to_an_available_partition() -> None:
    cached = CachedPartitioner()
    assert {cached(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
