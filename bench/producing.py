"""Putting events onto `huibao.activity.submitted`: all at once in record batches (the
platform's publisher), or at a steady rate with freshness probes."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.generate import Tree, load_event, probe_event
from huibao_contracts import topics
from huibao_platform.kafka import CachedPartitioner, publish_batches

HEADERS = [("content-type", b"application/cloudevents+json")]
CHUNK = 5000
"""Records published (and acknowledged) at a time by `produce_all`."""


def serialise(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) of each event: its subject (the branch) and its JSON."""
    return [(str(e["subject"]).encode(), orjson.dumps(e)) for e in events]


async def new_producer(bootstrap: str) -> AIOKafkaProducer:
    """A started producer tuned for load: leader acks only, large batches."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        enable_idempotence=False,
        linger_ms=10,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
        request_timeout_ms=30_000,
        partitioner=CachedPartitioner(),
    )
    await producer.start()
    return producer


async def produce_all(producer: AIOKafkaProducer, records: list[tuple[bytes, bytes]]) -> None:
    """Produce in record batches per partition (Kafka's key → partition rule, as the outbox
    relay does), so that the benchmark's own producer costs little of the CPU it shares
    with the pipeline."""
    topic = topics.ACTIVITY_SUBMITTED
    partition_of = CachedPartitioner()
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        await publish_batches(
            producer,
            ((topic, key, value, HEADERS) for key, value in chunk),
            partition_of,
            ack_timeout=None,
        )


class LoadProducer:
    """Steady load events at `rate`/s (pure `load_event(n)`), and probes when asked."""

    def __init__(
        self, producer: AIOKafkaProducer, tree: Tree, day: dt.date, probe_branch: str
    ) -> None:
        self.producer = producer
        self.tree = tree
        self.day = day
        self.probe_branch = probe_branch
        self.sent = 0
        self.probes_sent = 0
        self.probe_at: dict[int, float] = {}
        self.behind = 0.0

    async def run(self, rate: float, seconds: float, probe_every: float | None) -> None:
        """Send for `seconds`: load events at `rate`, a probe every `probe_every` seconds."""
        topic = topics.ACTIVITY_SUBMITTED
        started = time.perf_counter()
        base = self.sent
        next_probe = started
        while (now := time.perf_counter()) - started < seconds:
            due = base + int(rate * (now - started)) - self.sent
            self.behind = max(self.behind, due / rate if rate else 0)
            for _ in range(min(due, int(rate))):
                ev = load_event(self.tree, self.sent, self.day, exclude=self.probe_branch)
                await self.producer.send(
                    topic, orjson.dumps(ev), key=str(ev["subject"]).encode(), headers=HEADERS
                )
                self.sent += 1
            if probe_every is not None and now >= next_probe:
                self.probes_sent += 1
                k = self.probes_sent
                ev = probe_event(self.probe_branch, k, self.day)
                fut = await self.producer.send(
                    topic, orjson.dumps(ev), key=self.probe_branch.encode(), headers=HEADERS
                )
                self.probe_at[k] = time.perf_counter()
                fut.add_done_callback(lambda _f: None)
                next_probe += probe_every
            await asyncio.sleep(0.01)
        await self.producer.flush()
