"""The Kafka entrypoint: the loop that feeds batches of accepted events to the rollup.

A batch that cannot be applied yet (PostgreSQL unreachable, a unit not in the tree yet) is
retried as it is, never skipped and never acknowledged; Kafka offsets are committed only
after PostgreSQL committed the batch.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka.errors import KafkaError

from huibao_platform.errors import BrokerUnavailableError, StorageUnavailableError
from huibao_platform.logs import get_logger
from huibao_rollup.adapters.kafka_events import EventSource, Polled
from huibao_rollup.adapters.kafka_tree import TreeFeed
from huibao_rollup.handlers import Rollup

log = get_logger(__name__)

LOST_CHECK_SECONDS = 5.0
"""How often the consumer checks that the broker did not lose its data."""


async def _poll(source: EventSource) -> tuple[int, list[Polled]]:
    """The next batch, with the rebalance generation it was fetched in."""
    generation = source.generation
    return generation, await source.poll()


async def _discard(ahead: asyncio.Task[tuple[int, list[Polled]]] | None) -> None:
    if ahead is not None:
        await asyncio.gather(ahead, return_exceptions=True)


async def _reposition(source: EventSource, stop: asyncio.Event, retry_seconds: float) -> None:
    """Seek every partition again from PostgreSQL's record, retrying while it is away."""
    while not stop.is_set():
        try:
            async with source.lock:
                await source.reposition()
        except (StorageUnavailableError, KafkaError) as e:
            log.warning("reposition_retry", error=str(e))
            await asyncio.sleep(retry_seconds)
        else:
            return


async def run_events(
    rollup: Rollup,
    source: EventSource,
    feed: TreeFeed,
    stop: asyncio.Event,
    retry_seconds: float = 1.0,
) -> None:
    """Consume accepted events until `stop` is set.

    The next batch is fetched and decoded while the current one is written to PostgreSQL.
    When a batch is dropped (a rebalance, or another replica moved a partition on), the
    batch fetched ahead is discarded too and the partitions are sought again from
    PostgreSQL's record, so nothing fetched across a reposition is ever applied."""
    checked = time.monotonic()
    ahead: asyncio.Task[tuple[int, list[Polled]]] | None = None
    try:
        while not stop.is_set():
            try:
                if ahead is None:
                    generation, batch = await _poll(source)
                else:
                    task, ahead = ahead, None
                    generation, batch = await task
                if time.monotonic() - checked > LOST_CHECK_SECONDS:
                    checked = time.monotonic()
                    async with source.lock:
                        await source.check_lost()
            except KafkaError as e:
                log.warning("event_fetch_failed", error=str(e))
                await asyncio.sleep(retry_seconds)
                continue
            if not batch:
                continue
            ahead = asyncio.create_task(_poll(source), name="rollup-poll-ahead")
            while not stop.is_set():
                try:
                    positions = await rollup.apply_events(
                        batch,
                        source=source,
                        generation=generation,
                        catch_up=feed.catch_up,
                        retry_seconds=retry_seconds,
                        stop=stop,
                    )
                except (StorageUnavailableError, BrokerUnavailableError) as e:
                    log.warning("batch_retry", error=str(e), records=len(batch))
                    await asyncio.sleep(retry_seconds)
                    continue
                if positions:
                    await source.ack(positions)
                else:
                    await _discard(ahead)
                    ahead = None
                    await _reposition(source, stop, retry_seconds)
                break
    finally:
        if ahead is not None:
            ahead.cancel()
            await _discard(ahead)


async def run_tree(feed: TreeFeed, stop: asyncio.Event) -> None:
    """Follow org-unit changes until `stop` is set."""
    await feed.run(stop)
