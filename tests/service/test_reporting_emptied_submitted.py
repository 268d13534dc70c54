"""Reporting's Kafka intake skips nothing submitted to a broker that came back empty.

The embedded broker keeps its topics (and its groups' offsets) in memory: after a restart
every partition of `huibao.activity.submitted` starts at offset 0 again, while an intake
consumer that ran across the restart goes on at its old position, or commits it into the
new broker (acknowledging a batch it had in flight), where the next consumer of the group
resumes from it. Tansu answers a fetch beyond the end with nothing (Kafka would answer
OFFSET_OUT_OF_RANGE and apply auto_offset_reset), so records produced after the restart
below that position were skipped (docs/faults.md). The intake now compares its positions
with the partitions' ends and reads such a partition again from its beginning
(`huibao_consumer_offset_reset_total`).

On a broker of its own (the session's is shared), with the session's PostgreSQL.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from tests.service.reporting_support import PREFIX, reporting_settings, running
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts.topics import PARTITIONS
from huibao_stack.broker import EmbeddedBroker
from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]

VOLUNTEER = "huibao.volunteer.served.v1"
SUBMITTED = PREFIX + "huibao.activity.submitted"
STRUCTURED = [("content-type", b"application/cloudevents+json")]
BEFORE, AFTER = 5, 2
"""Records per partition before the restart (the intake's position) and after it (fewer,
so that all of them lie below that position)."""


@contextlib.asynccontextmanager
async def own_broker() -> AsyncIterator[EmbeddedBroker]:
    with tempfile.TemporaryDirectory(prefix="huibao-emptied-") as run_dir:
        broker = EmbeddedBroker(log_path=Path(run_dir) / "broker.log")
        broker.topic_prefixes.add(PREFIX)
        await broker.start()
        try:
            yield broker
        finally:
            await broker.stop()


async def produce(bootstrap: str, events: list[tuple[int, dict[str, object]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, event in events:
            await producer.send_and_wait(
                SUBMITTED, orjson.dumps(event), partition=partition, headers=STRUCTURED
            )
    finally:
        await producer.stop()


async def accepted(url: str, ids: list[str]) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM reporting.events_seen WHERE id = ANY($1::text[])", ids
            )
        )
    finally:
        await conn.close()


async def test_events_sent_after_the_broker_came_back_empty_are_all_taken_in(
    infra: Infrastructure,
) -> None:
    p = f"es{uuid.uuid4().hex[:6]}"
    url = await infra.fresh_database(f"reporting_{p}")
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=4)
    branches = [u["id"] for u in units if u["level"] == "branch"]
    partitions = PARTITIONS["huibao.activity.submitted"]

    def events(tag: str, per_partition: int) -> list[tuple[int, dict[str, object]]]:
        out = []
        for part in range(partitions):
            for i in range(per_partition):
                aid = f"{p}-{tag}-{part}-{i}"
                data = {"activity_id": aid, "date": "2026-11-10", "volunteers": 3, "served": 7}
                unit = branches[i % len(branches)]
                out.append((part, cloudevent(VOLUNTEER, unit, data, id=aid)))
        return out

    async with own_broker() as broker:
        settings = reporting_settings(infra, url).model_copy(
            update={"kafka_bootstrap_servers": broker.bootstrap_servers}
        )
        async with running(settings) as service:
            assert (await service.client.put("/v1/orgunits", json=units)).status_code == 200
            before = events("before", BEFORE)
            await produce(broker.bootstrap_servers, before)
            ids = [str(e["id"]) for _, e in before]
            await wait_until(lambda: _all(url, ids), 60, 0.2, "the events before the restart")

        await broker.restart()  # empty: every partition starts at 0 again
        after = events("after", AFTER)
        await produce(broker.bootstrap_servers, after)
        # the offsets a consumer that ran across the restart commits into the new broker
        # (its acknowledgement of a batch in flight): beyond every partition's new end
        await commit(broker.bootstrap_servers, settings.kafka_group_id, partitions, BEFORE)

        async with running(settings) as service:
            ids = [str(e["id"]) for _, e in after]
            await wait_until(
                lambda: _all(url, ids), 60, 0.3, "every event sent after the restart taken in"
            )
            metrics = (await service.client.get("/metrics")).text
            counted = f'huibao_consumer_offset_reset_total{{topic="{SUBMITTED}"}}'
            assert counted in metrics, "the intake did not count its resets"


async def commit(bootstrap: str, group: str, partitions: int, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(SUBMITTED, part) for part in range(partitions)]
        consumer.assign(tps)
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp in tps})
    finally:
        await consumer.stop()


async def _all(url: str, ids: list[str]) -> bool:
    return await accepted(url, ids) == len(ids)
