"""The Kafka entrypoint: the loop that feeds batches of accepted events to the rollup.

A batch that cannot be applied yet (PostgreSQL unreachable, a unit not in the tree yet) is
retried as it is, never skipped and never acknowledged; Kafka offsets are committed only
after PostgreSQL committed the batch.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka.errors import KafkaError

from huibao_platform.errors import StorageUnavailableError
from huibao_platform.logs import get_logger
from huibao_rollup.adapters.kafka_events import EventSource
from huibao_rollup.adapters.kafka_tree import TreeFeed
from huibao_rollup.handlers import Rollup

log = get_logger(__name__)

LOST_CHECK_SECONDS = 5.0
"""How often the consumer checks that the broker did not lose its data."""


async def run_events(
    rollup: Rollup,
    source: EventSource,
    feed: TreeFeed,
    stop: asyncio.Event,
    retry_seconds: float = 1.0,
) -> None:
    """Consume accepted events until `stop` is set."""
    checked = time.monotonic()
    while not stop.is_set():
        generation = source.generation
        try:
            batch = await source.poll()
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
            except StorageUnavailableError as e:
                log.warning("batch_retry", error=str(e), records=len(batch))
                await asyncio.sleep(retry_seconds)
                continue
            if positions:
                await source.ack(positions)
            break


async def run_tree(feed: TreeFeed, stop: asyncio.Event) -> None:
    """Follow org-unit changes until `stop` is set."""
    await feed.run(stop)
