"""The Kafka entrypoint: the loops that feed org-unit changes and accepted events to the
apply use case (`huibao_rollup.service_layer.apply.Applier`).

The event loop owns everything Kafka: it fetches a batch, waits until the tree places its
units, sends refused records to the reject topic, and then, holding the source's lock
(rebalances wait for it), checks the batch was fetched in the current rebalance generation
for partitions this replica still owns, hands the events and the positions they expect to
the applier, and on `Applied` records the new positions and commits them to Kafka (only
after PostgreSQL committed), on `Fenced` seeks again from PostgreSQL's record.

A batch that cannot be applied yet (PostgreSQL unreachable, a unit not in the tree yet) is
retried as it is, never skipped and never acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka.errors import KafkaError

from huibao_contracts.orgunits import OrgUnitChange
from huibao_contracts.rejects import FieldError, Reason
from huibao_platform import tracing
from huibao_platform.errors import BrokerUnavailableError, StorageUnavailableError
from huibao_platform.lag import LagMonitor
from huibao_platform.logs import get_logger
from huibao_platform.tracing import SpanKind
from huibao_rollup.adapters.kafka_events import EventSource, Polled
from huibao_rollup.adapters.kafka_rejects import RejectSink
from huibao_rollup.adapters.kafka_tree import TreeFeed
from huibao_rollup.domain.tree import Tree
from huibao_rollup.service_layer.answers import AnswerCache
from huibao_rollup.service_layer.apply import Applier, Fenced
from huibao_rollup.settings import RollupSettings

log = get_logger(__name__)

LOST_CHECK_SECONDS = 5.0
"""How often the consumer checks that the broker did not lose its data."""
UNKNOWN_UNIT_GRACE_SECONDS = 10.0
"""How long a record of a unit the caught-up tree does not know waits before it is
refused (the org-unit change and the event travel on different topics)."""

CatchUp = Callable[[], Awaitable[bool | None]]


def unknown_units(tree: Tree, batch: Sequence[Polled]) -> list[str]:
    """Units named by the batch whose path the tree cannot resolve yet."""
    return sorted(
        {
            p.event.unit
            for p in batch
            if p.event is not None and not tree.knows_path(p.event.unit, p.event.date)
        }
    )


def _refuse_unknown(tree: Tree, batch: Sequence[Polled]) -> None:
    for p in batch:
        e = p.event
        if e is not None and not tree.knows_path(e.unit, e.date):
            p.event = None
            p.refused = [
                FieldError(
                    field="subject",
                    reason=Reason.UNKNOWN_UNIT,
                    message=f"the org-unit tree has no path of {e.unit} on {e.date}",
                )
            ]


async def wait_for_units(
    tree: Tree,
    batch: Sequence[Polled],
    catch_up: CatchUp,
    retry_seconds: float,
    stop: asyncio.Event,
) -> bool:
    """Wait until the tree places every event's unit; False when `stop` was set meanwhile.

    An event whose unit the tree cannot place waits for the org-unit changes; once the
    tree has read every change published (`catch_up` answers True) and the unit is still
    unknown `UNKNOWN_UNIT_GRACE_SECONDS` after the batch arrived, the record is refused as
    `unknown_unit` (reporting never accepts one: something else wrote it), so that it
    cannot stop its partition."""
    waiting_since = time.monotonic()
    while unknown := unknown_units(tree, batch):
        if stop.is_set():
            return False
        log.warning("unknown_units", count=len(unknown), units=unknown[:10])
        caught_up = await catch_up()
        if not unknown_units(tree, batch):
            break
        if caught_up and time.monotonic() - waiting_since >= UNKNOWN_UNIT_GRACE_SECONDS:
            _refuse_unknown(tree, batch)
            continue
        await asyncio.sleep(retry_seconds)
    return True


async def apply_batch(
    applier: Applier,
    batch: Sequence[Polled],
    *,
    source: EventSource,
    generation: int,
    rejects: RejectSink | None,
    catch_up: CatchUp,
    retry_seconds: float,
    stop: asyncio.Event,
) -> dict[int, tuple[int, str]] | None:
    """Apply one batch; the positions committed, or None when the batch was dropped (a
    rebalance or another replica overtook it: the source was repositioned) or is still
    waiting for units when `stop` is set."""
    if not await wait_for_units(applier.tree, batch, catch_up, retry_seconds, stop):
        return None
    refused = [p for p in batch if p.refused]
    if refused and rejects is not None:  # sent before the positions move past them
        await rejects.publish(refused)
    positions: dict[int, tuple[int, str]] = {}
    for p in batch:
        positions[p.partition] = (p.offset, p.key)
    events = [p.event for p in batch if p.event is not None]
    with tracing.batch_span(
        f"process {source.topic}",
        SpanKind.CONSUMER,
        lambda: tracing.messaging_attributes("process", source.topic, len(batch)),
        lambda: (tracing.extract(p.record.headers) for p in batch if p.record is not None),
    ):
        async with source.lock:
            if source.generation != generation or not all(source.owns(p) for p in positions):
                await source.reposition()
                return None
            expected = {p: source.expected(p) for p in positions}
            result = await applier.apply(
                source.topic, events, positions, expected, records=len(batch)
            )
            if isinstance(result, Fenced):
                await source.reposition(result.partitions)
                return None
            source.applied(positions)
    return positions


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
    applier: Applier,
    source: EventSource,
    feed: TreeFeed,
    stop: asyncio.Event,
    retry_seconds: float = 1.0,
    rejects: RejectSink | None = None,
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
                    positions = await apply_batch(
                        applier,
                        batch,
                        source=source,
                        generation=generation,
                        rejects=rejects,
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


def tree_changes(
    applier: Applier, answers: AnswerCache, changed: Callable[[], None]
) -> Callable[[Sequence[OrgUnitChange]], Awaitable[None]]:
    """What the org-unit feed does with a batch of changes: apply them (no answer is
    cached meanwhile), then call `changed` (the snapshots are rebuilt)."""

    async def apply_changes(changes: Sequence[OrgUnitChange]) -> None:
        answers.tree_changing()
        try:
            await applier.apply_changes(changes)
        finally:
            answers.tree_changed()
            changed()

    return apply_changes


async def _started(start: Callable[[], Awaitable[None]], what: str, stop: asyncio.Event) -> bool:
    """Start a Kafka client, retrying while the broker is away; False when stopped first."""
    delay = 0.5
    while not stop.is_set():
        try:
            await start()
        except Exception as e:  # noqa: BLE001 (aiokafka raises several unrelated types here)
            log.warning("kafka_start_retry", client=what, error=str(e))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            return True
    return False


async def run_consumers(
    settings: RollupSettings,
    applier: Applier,
    on_changes: Callable[[Sequence[OrgUnitChange]], Awaitable[None]],
    *,
    feed: TreeFeed,
    source: EventSource,
    rejects: RejectSink | None,
    lag: LagMonitor,
    stop: asyncio.Event,
) -> None:
    """Follow the org-unit feed (handing changes to `on_changes`) and, unless this is a
    query-only replica, apply accepted events, until `stop` is set; then stop the Kafka
    clients."""
    lag.watch(feed.topic, f"{settings.consumer_group}-tree", feed.positions)
    if settings.consume_events:
        lag.watch_group(source.topic, settings.consumer_group, source.owned)
    tree_task: asyncio.Task[None] | None = None
    try:
        if not await _started(feed.start, "orgunit_feed", stop):
            return
        tree_task = asyncio.create_task(feed.run(stop, on_changes), name="rollup-tree")
        if not settings.consume_events:
            log.info("query_only_replica")
            await stop.wait()
        elif await _started(source.start, "event_consumer", stop):
            await run_events(
                applier, source, feed, stop, settings.unknown_unit_retry_seconds, rejects
            )
    finally:
        stop.set()
        if tree_task is not None:
            await tree_task
        await source.stop()
        await feed.stop()
        if rejects is not None:
            await rejects.stop()
