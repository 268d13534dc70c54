"""Ready-made JSON answers of the query API, valid until the data they were built from moves.

An answer is kept as the bytes sent, under its route and arguments (never the caller: the
caller's scope is checked before the cache is asked), together with the *version* of the
data it was built from: the tree generation of this process, a local epoch bumped after
every tree change has been re-attributed, and the position of the rollup's apply loop in
PostgreSQL (`rollup.offsets`, written in the transaction of every applied batch, by
whichever replica applied it). A kept answer is served only while all three are unchanged.

Staleness: the database version is polled (`POLL_SECONDS`, 20 ms) while requests arrive,
so an answer can lag a batch committed by any replica by one poll interval plus one poll
round trip, and never by more than `SILENT_SECONDS` (when the poller has not answered for
that long, as when idle or when PostgreSQL is away, nothing is served from the cache);
tree changes of this process are exact (no answer is kept while one is being applied).
Writes outside the apply loop (`huibao-rollup rebuild`, hand-made SQL) do not move the
version: answers older than `MAX_AGE_SECONDS` are never served, which bounds how long
those could be missed.

Concurrent requests for the same missing answer share one computation.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import orjson

from huibao_platform import metrics
from huibao_platform.logs import get_logger

log = get_logger(__name__)

_HIT, _BUILT, _SHARED, _BYPASS = (
    metrics.ANSWERS.labels(o) for o in ("hit", "built", "shared", "bypass")
)

POLL_SECONDS = 0.02
"""How often the database version is read while requests arrive."""
SILENT_SECONDS = 0.25
"""The cache is bypassed when the last poll that answered started longer ago than this."""
IDLE_SECONDS = 2.0
"""Polling stops this long after the last request (and the cache is bypassed until the
next poll has answered)."""
MAX_AGE_SECONDS = 60.0
"""No answer older than this is served, whatever the version says."""
MAX_ANSWERS = 4096
MAX_BYTES = 64 << 20
"""Bounds of the cache: answers, and their total size."""

DataVersion = tuple[int, int, object]
"""What an answer was built from: (tree generation, tree-change epoch, database version)."""
Key = tuple[Hashable, ...]


def dumps(answer: Any) -> bytes:
    """The JSON of an answer (dates as ISO 8601, as FastAPI would encode them)."""
    return orjson.dumps(answer)


class AnswerCache:
    """JSON answers by key, valid for one data version (see the module doc)."""

    def __init__(
        self,
        generation: Callable[[], int],
        read_version: Callable[[], Awaitable[object]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._generation = generation
        self._read_version = read_version
        self._clock = clock
        self._answers: OrderedDict[Key, tuple[DataVersion, float, bytes]] = OrderedDict()
        self._bytes = 0
        self._flights: dict[tuple[Key, DataVersion], asyncio.Future[bytes]] = {}
        self._db_version: object | None = None
        self._polled_at = 0.0
        self._asked_at = clock()  # polls from the start, until idle
        self._wake = asyncio.Event()
        self._epoch = 0
        self._changing = 0
        self.hits = 0
        self.misses = 0

    # --- what the tree feed tells -----------------------------------------------------------

    def tree_changing(self) -> None:
        """A tree change starts being applied: bypass the cache until `tree_changed`."""
        self._changing += 1

    def tree_changed(self) -> None:
        """The change is applied and its facts re-attributed: every kept answer is stale."""
        self._changing -= 1
        self._epoch += 1

    # --- the poller -------------------------------------------------------------------------

    def _version(self) -> DataVersion | None:
        now = self._clock()
        self._asked_at = now
        if not self._wake.is_set():
            self._wake.set()
        if self._changing or self._db_version is None or now - self._polled_at > SILENT_SECONDS:
            return None
        return (self._generation(), self._epoch, self._db_version)

    async def poll(self, stop: asyncio.Event) -> None:
        """Read the database version every `POLL_SECONDS` while requests arrive; sleep when
        none came for `IDLE_SECONDS`."""
        while not stop.is_set():
            if self._clock() - self._asked_at > IDLE_SECONDS:
                self._db_version = None
                self._wake.clear()
                waker = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                stopper.cancel()
                continue
            started = self._clock()
            try:
                self._db_version = await self._read_version()
                self._polled_at = started
            except Exception as e:  # noqa: BLE001 (the database away: serve nothing from the cache)
                self._db_version = None
                log.warning("answer_version_unavailable", error=str(e))
                await asyncio.sleep(1.0)
            await asyncio.sleep(POLL_SECONDS)

    # --- answers ----------------------------------------------------------------------------

    def peek(self, key: Key) -> bytes | None:
        """The kept answer under `key` if it is valid now, else None (nothing is built)."""
        version = self._version()
        if version is None:
            return None
        kept = self._answers.get(key)
        if kept is None or kept[0] != version or self._clock() - kept[1] > MAX_AGE_SECONDS:
            return None
        self._answers.move_to_end(key)
        self.hits += 1
        _HIT.inc()
        return kept[2]

    async def get(self, key: Key, build: Callable[[], Awaitable[Any]]) -> bytes:
        """The JSON of the answer under `key`, built by `build` when not kept for the
        current version (answers built while a tree change is applied are not kept)."""
        version = self._version()
        if version is None:
            self.misses += 1
            _BYPASS.inc()
            return dumps(await build())
        kept = self._answers.get(key)
        now = self._clock()
        if kept is not None and kept[0] == version and now - kept[1] <= MAX_AGE_SECONDS:
            self._answers.move_to_end(key)
            self.hits += 1
            _HIT.inc()
            return kept[2]
        self.misses += 1
        flight = self._flights.get((key, version))
        if flight is not None:
            _SHARED.inc()
            return await asyncio.shield(flight)
        _BUILT.inc()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._flights[(key, version)] = future
        try:
            body = dumps(await build())
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._flights[(key, version)]
        future.set_result(body)
        if self._version() == version:
            self._keep(key, version, now, body)
        return body

    def _keep(self, key: Key, version: DataVersion, at: float, body: bytes) -> None:
        old = self._answers.pop(key, None)
        if old is not None:
            self._bytes -= len(old[2])
        self._answers[key] = (version, at, body)
        self._bytes += len(body)
        while len(self._answers) > MAX_ANSWERS or self._bytes > MAX_BYTES:
            _, (_, _, dropped) = self._answers.popitem(last=False)
            self._bytes -= len(dropped)

    def clear(self) -> None:
        """Forget every answer."""
        self._answers.clear()
        self._bytes = 0
