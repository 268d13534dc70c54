"""The snapshot warm-up loop: the tree snapshots of the days in use, built ahead of requests.

After the tree is loaded or changed, the snapshots of the current periods' days are built
in a worker thread, so that no request waits for one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterable

from huibao_platform.logs import get_logger
from huibao_rollup.domain.tree import Tree

log = get_logger(__name__)

WARM_AFTER_SECONDS = 0.5
"""Snapshots are built this long after the last tree change (a burst of changes, such as a
whole tree arriving in batches, is built once, after it)."""
WARM_EVERY_SECONDS = 60.0


class SnapshotWarmer:
    """Builds the snapshots of `days()` whenever `wanted` was called (see `run`)."""

    def __init__(self, tree: Tree, days: Callable[[], Iterable[dt.date]]) -> None:
        self._tree = tree
        self._days = days
        self._wanted = asyncio.Event()

    def wanted(self) -> None:
        """The tree changed (or was loaded): build again once it settles."""
        self._wanted.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Build the snapshots of the days in use, in a worker thread, whenever the tree
        has settled after a change, once after start-up, and every `WARM_EVERY_SECONDS`
        (the days in use move at midnight)."""
        tree, wanted = self._tree, self._wanted
        while not stop.is_set():
            waker = asyncio.ensure_future(wanted.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waker, stopper}, timeout=WARM_EVERY_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            waker.cancel()
            stopper.cancel()
            while wanted.is_set() and not stop.is_set():  # wait for quiet
                wanted.clear()
                await asyncio.sleep(WARM_AFTER_SECONDS)
            if stop.is_set():
                return
            started = time.perf_counter()
            built = 0
            for day in self._days():
                if wanted.is_set():
                    break  # changed again: start over once it settles
                if tree.has_snapshot(day):
                    continue
                try:
                    prepared = await asyncio.to_thread(tree.prepare, day)
                except Exception as e:  # noqa: BLE001 (the tree changed under the worker: start over)
                    log.info("snapshot_warm_retry", error=repr(e))
                    wanted.set()
                    break
                built += tree.adopt(prepared)
            if built:
                log.info(
                    "snapshots_warmed",
                    snapshots=built,
                    units=len(tree),
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
