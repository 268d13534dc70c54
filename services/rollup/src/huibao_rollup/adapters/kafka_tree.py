"""The org-unit change feed: every replica reads all of `huibao.orgunit.changes`.

No consumer group: each replica keeps the whole tree in memory, so each reads every
partition from the beginning at start-up (applying a version already known changes
nothing) and then follows the topic. `catch_up()` waits until everything published so far
has been applied; the event consumer calls it when an event names a unit it does not know.
A broker that lost its data (its end offset fell below our position) is read again from
the beginning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from huibao_contracts.orgunits import OrgUnitChange
from huibao_contracts.topics import ORGUNIT_CHANGES
from huibao_platform.errors import StorageUnavailableError
from huibao_platform.kafka import client_options
from huibao_platform.logs import get_logger
from huibao_platform.settings import CommonSettings
from huibao_rollup.adapters.codec import decode_change
from huibao_rollup.adapters.kafka_events import log_epoch

log = get_logger(__name__)

Apply = Callable[[Sequence[OrgUnitChange]], Awaitable[None]]


class TreeFeed:
    """Follows the org-unit changes and hands them, in order, to the `apply` of `run`."""

    def __init__(self, settings: CommonSettings, topic: str = ORGUNIT_CHANGES) -> None:
        self.topic = topic
        self._topic = topic
        self._consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._positions: dict[TopicPartition, int] = {}
        self._epochs: dict[TopicPartition, set[str]] = {}
        """Log epochs met per partition (see `_same_log`)."""
        self._progress = asyncio.Condition()
        self._rounds = 0
        self._stopped = False

    async def start(self) -> None:
        """Connect; partitions are assigned in `run` once the topic exists."""
        await self._consumer.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()

    async def _assign(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            parts = self._consumer.partitions_for_topic(self._topic)
            if parts:
                tps = [TopicPartition(self._topic, p) for p in sorted(parts)]
                self._consumer.assign(tps)
                await self._consumer.seek_to_beginning(*tps)
                self._positions = dict.fromkeys(tps, 0)
                return True
            await self._consumer.topics()  # refresh metadata
            await asyncio.sleep(0.5)
        return False

    async def run(self, stop: asyncio.Event, apply: Apply) -> None:
        """Hand changes to `apply` until `stop` is set; a failed batch is retried, never
        skipped."""
        try:
            await self._run(stop, apply)
        finally:
            async with self._progress:
                self._stopped = True
                self._progress.notify_all()

    async def _run(self, stop: asyncio.Event, apply: Apply) -> None:
        if not await self._assign(stop):
            return
        idle = 0
        while not stop.is_set():
            try:
                chunk = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            except KafkaError as e:
                log.warning("orgunit_fetch_failed", error=str(e))
                await asyncio.sleep(1)
                continue
            for tp, all_records in chunk.items():
                records = self._same_log(tp, all_records)
                if not records:
                    await self._consumer.seek_to_beginning(tp)
                    self._positions[tp] = 0
                    continue
                changes = [c for r in records if (c := decode_change(r.value)) is not None]
                while not stop.is_set():
                    try:
                        await apply(changes)
                        break
                    except StorageUnavailableError as e:
                        log.warning("orgunit_apply_failed", error=str(e))
                        await asyncio.sleep(1)
                else:
                    return
                self._positions[tp] = records[-1].offset + 1
                if len(records) < len(all_records):
                    await self._consumer.seek_to_beginning(tp)
                    self._positions[tp] = 0
            if not chunk:
                idle += 1
                if idle % 25 == 0:  # about every 5 s of silence
                    await self._check_lost()
            else:
                idle = 0
            async with self._progress:
                self._rounds += 1
                self._progress.notify_all()

    def _same_log(self, tp: TopicPartition, records: list[Any]) -> list[Any]:
        """The records up to where the outbox's log epoch changes (the topic started over
        and was published again: `huibao_platform.outbox`); the caller then reads the
        partition from its beginning. An epoch seen once is then accepted as it is."""
        seen = self._epochs.setdefault(tp, set())
        for i, r in enumerate(records):
            epoch = log_epoch(r)
            if epoch not in seen:
                seen.add(epoch)
                if len(seen) > 1:
                    log.warning(
                        "broker_lost_data",
                        topic=self._topic,
                        partition=tp.partition,
                        position=r.offset,
                        epoch=epoch,
                    )
                    return records[:i]
        return records

    async def _check_lost(self) -> None:
        """A partition whose high watermark fell below our position is read again (the
        broker lost its data). High watermarks come from fetch responses (see EventSource)."""
        for tp, position in list(self._positions.items()):
            high = self._consumer.highwater(tp)
            if high is not None and position > high:
                log.warning(
                    "broker_lost_data",
                    topic=self._topic,
                    partition=tp.partition,
                    position=position,
                    high_watermark=high,
                )
                await self._consumer.seek_to_beginning(tp)
                self._positions[tp] = 0

    async def positions(self) -> dict[int, int]:
        """The next offset to read per partition (for the lag monitor)."""
        return {tp.partition: position for tp, position in self._positions.items()}

    async def catch_up(self, wait_seconds: float = 10.0) -> bool:
        """Wait (at most `wait_seconds`) until every change published before the call is
        applied: two more fetch rounds, and every partition read up to its high watermark.
        True when that happened, False after the wait (or before the feed started)."""
        if not self._positions:
            return False
        await self._check_lost()
        target = self._rounds + 2

        def done() -> bool:
            return self._stopped or (
                self._rounds >= target
                and all(
                    position >= (self._consumer.highwater(tp) or 0)
                    for tp, position in self._positions.items()
                )
            )

        try:
            async with asyncio.timeout(wait_seconds), self._progress:
                await self._progress.wait_for(done)
        except TimeoutError:
            log.warning(
                "orgunit_catch_up_timeout",
                positions={str(k): v for k, v in self._positions.items()},
            )
            return False
        return not self._stopped
