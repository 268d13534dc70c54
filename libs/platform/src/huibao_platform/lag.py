"""Consumer lag from the broker's end offsets, on a timer, and readiness that follows it.

One `LagMonitor` per service process watches every consumer of that process:

- `watch_group(topic, group)`: a consumer group; its position on each partition is the
  group's committed offset (what `kafka-consumer-groups` shows), read with an OffsetFetch.
- `watch(topic, consumer, positions)`: a consumer without a group (the rollup's tree feed,
  one per replica); `positions()` gives its next offset per partition.

Every `interval` seconds it asks the broker for the end of every partition of the watched
topics and sets `huibao_consumer_lag{topic, partition, group}` for **every** partition,
traffic or not, so a stuck consumer's lag keeps growing instead of freezing. The end offset
is the high watermark of a fetch response: Tansu's ListOffsets answers the base offset of
the last record batch + 1, which is not the end of the partition, so a small probe consumer
(no group) is sought to that answer, reads at most one batch per partition, and pauses again.

Progress: a partition makes progress when its position moves or its lag is 0.
`huibao_consumer_progress_age_seconds` says how long ago that last happened; `ready()` is
False once a partition this process is responsible for (`owned`) has had lag and no progress
for `stall_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from huibao_platform import metrics
from huibao_platform.kafka import client_options
from huibao_platform.logs import get_logger
from huibao_platform.settings import CommonSettings

log = get_logger(__name__)

Positions = Callable[[], Awaitable[Mapping[int, int]]]
"""Next offset to read per partition (partitions missing: nothing read yet)."""
Owned = Callable[[], Iterable[int]]
"""The partitions this process is responsible for now."""

PROBE_TIMEOUT = 3.0
"""Seconds one end-offset probe may take."""


@dataclass(slots=True)
class _Progress:
    position: int | None = None
    lag: int = 0
    since: float = field(default_factory=time.monotonic)
    """When the position last moved or the lag was last 0."""


@dataclass(slots=True)
class _Watched:
    topic: str
    group: str
    positions: Positions | None
    owned: Owned | None
    offsets: AIOKafkaConsumer | None = None
    """A consumer of `group` that never joins it: it only reads committed offsets."""
    partitions: dict[int, _Progress] = field(default_factory=dict)


class LagMonitor:
    """Exports lag and progress of every watched consumer; tells readiness from them."""

    def __init__(
        self, settings: CommonSettings, *, interval: float = 5.0, stall_seconds: float = 60.0
    ) -> None:
        self._settings = settings
        self.interval = interval
        self.stall_seconds = stall_seconds
        self._watched: list[_Watched] = []
        self._probe: AIOKafkaConsumer | None = None
        self._assigned: set[TopicPartition] = set()
        self.polls = 0
        """Completed rounds (tests wait on it)."""

    # --- registration ----------------------------------------------------------------------

    def watch_group(self, topic: str, group: str, owned: Owned | None = None) -> None:
        """Watch consumer group `group` on `topic` (positions: its committed offsets)."""
        self._watched.append(_Watched(topic, group, None, owned))

    def watch(
        self, topic: str, consumer: str, positions: Positions, owned: Owned | None = None
    ) -> None:
        """Watch a consumer without a group, named `consumer` in the `group` label."""
        self._watched.append(_Watched(topic, consumer, positions, owned))

    # --- readiness -------------------------------------------------------------------------

    def stalled(self) -> list[str]:
        """`topic[partition] (group)` of every owned partition with lag and no progress for
        `stall_seconds`."""
        if self.stall_seconds <= 0:
            return []
        now = time.monotonic()
        out = []
        for w in self._watched:
            owned = set(w.owned()) if w.owned is not None else set(w.partitions)
            for p, prog in sorted(w.partitions.items()):
                if p in owned and prog.lag > 0 and now - prog.since > self.stall_seconds:
                    out.append(f"{w.topic}[{p}] ({w.group}): lag {prog.lag}")
        return out

    async def ready(self) -> bool:
        """A readiness check: no owned partition has stalled."""
        return not self.stalled()

    # --- the timer -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every `interval` seconds until `stop` is set; broker outages are waited out."""
        reported: set[str] = set()
        try:
            while not stop.is_set():
                try:
                    await self.poll_once()
                except Exception as e:  # noqa: BLE001 (the broker or a position source away)
                    log.info("lag_poll_failed", error=repr(e))
                    await self._close()  # a broker that restarted: start afresh
                stalled = set(self.stalled())
                for what in sorted(stalled - reported):
                    log.warning("consumer_stalled", partition=what, seconds=self.stall_seconds)
                for what in sorted(reported - stalled):
                    log.info("consumer_progressing", partition=what)
                reported = stalled
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            await self._close()

    async def poll_once(self) -> None:
        """One round: end offsets, positions, gauges."""
        if not self._watched:
            return
        probe = await self._probe_consumer()
        wanted: set[TopicPartition] = set()
        for topic in {w.topic for w in self._watched}:
            parts = probe.partitions_for_topic(topic)
            if not parts:
                await probe.topics()  # refresh metadata; the topic may be created later
                parts = probe.partitions_for_topic(topic) or set()
            wanted |= {TopicPartition(topic, p) for p in parts}
        if not wanted:
            return
        if wanted != self._assigned:
            probe.assign(sorted(wanted))
            probe.pause(*wanted)
            self._assigned = wanted
        async with asyncio.timeout(PROBE_TIMEOUT * 2):
            ends = await self._end_offsets(probe, sorted(wanted))
            for w in self._watched:
                mine = {tp.partition: e for tp, e in ends.items() if tp.topic == w.topic}
                await self._update(w, mine)
        self.polls += 1

    async def _end_offsets(
        self, probe: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        approx: dict[TopicPartition, int] = await probe.end_offsets(tps)
        for tp in tps:
            probe.seek(tp, approx[tp])
        started = int(time.time() * 1000)
        probe.resume(*tps)
        try:
            deadline = time.monotonic() + PROBE_TIMEOUT
            while time.monotonic() < deadline and any(
                (probe.last_poll_timestamp(tp) or 0) < started for tp in tps
            ):
                await probe.getmany(*tps, timeout_ms=100, max_records=10_000)
        finally:
            probe.pause(*tps)
        out = {}
        for tp in tps:
            fresh = (probe.last_poll_timestamp(tp) or 0) >= started
            high = probe.highwater(tp) if fresh else None
            out[tp] = max(approx[tp], high or 0)
        return out

    async def _update(self, w: _Watched, ends: dict[int, int]) -> None:
        positions = await self._positions(w, list(ends))
        now = time.monotonic()
        for p, end in ends.items():
            position = positions.get(p)
            lag = max(end - (position or 0), 0)
            prog = w.partitions.get(p)
            if prog is None:
                prog = w.partitions[p] = _Progress(position, lag, now)
            if position != prog.position or lag == 0:
                prog.since = now
            prog.position, prog.lag = position, lag
            labels = (w.topic, str(p), w.group)
            metrics.CONSUMER_LAG.labels(*labels).set(lag)
            metrics.CONSUMER_PROGRESS_AGE.labels(*labels).set(round(now - prog.since, 3))

    async def _positions(self, w: _Watched, partitions: list[int]) -> Mapping[int, int]:
        if w.positions is not None:
            return await w.positions()
        if w.offsets is None:
            consumer = AIOKafkaConsumer(
                **client_options(self._settings), group_id=w.group, enable_auto_commit=False
            )
            await consumer.start()
            w.offsets = consumer
        out = {}
        for p in partitions:
            committed = await w.offsets.committed(TopicPartition(w.topic, p))
            if committed is not None:
                out[p] = committed
        return out

    async def _probe_consumer(self) -> AIOKafkaConsumer:
        if self._probe is None:
            probe = AIOKafkaConsumer(
                **client_options(self._settings),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                fetch_max_wait_ms=100,
                max_partition_fetch_bytes=1024,
                fetch_max_bytes=256 * 1024,
                request_timeout_ms=int(PROBE_TIMEOUT * 1000),
            )
            await probe.start()
            self._probe = probe
            self._assigned = set()
        return self._probe

    async def _close(self) -> None:
        clients = [self._probe, *(w.offsets for w in self._watched)]
        self._probe = None
        self._assigned = set()
        for w in self._watched:
            w.offsets = None
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
