"""The one wiring point: adapters, the rollup, its consumers and the HTTP app.

`build_app(settings)` returns the FastAPI app; its lifespan connects to PostgreSQL, loads
the tree, starts the org-unit feed and the accepted-event consumer as background tasks, and
on shutdown stops them before closing the pool.

For the query API it also runs the answer cache's version poller, and after the tree is
loaded or changed it builds the tree snapshots of the current periods in a worker thread
(`warm`), so that no request waits for one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

import huibao_dashboard
from huibao_contracts.orgunits import OrgUnitChange
from huibao_platform.auth import TokenStore
from huibao_platform.clock import Clock, SystemClock
from huibao_platform.db import ping
from huibao_platform.errors import StorageUnavailableError
from huibao_platform.http import install_common, principal_dependency, whoami_router
from huibao_platform.kafka import require_topics, topics_present
from huibao_platform.lag import LagMonitor
from huibao_platform.logs import get_logger
from huibao_rollup.adapters.kafka_events import EventSource
from huibao_rollup.adapters.kafka_rejects import RejectSink
from huibao_rollup.adapters.kafka_tree import TreeFeed
from huibao_rollup.adapters.postgres import Repository
from huibao_rollup.answers import AnswerCache
from huibao_rollup.domain.tree import Tree
from huibao_rollup.entrypoints.fast_answers import FastAnswers
from huibao_rollup.entrypoints.http import build_router
from huibao_rollup.entrypoints.kafka import run_events, run_tree
from huibao_rollup.handlers import Rollup
from huibao_rollup.queries import Queries
from huibao_rollup.settings import RollupSettings

log = get_logger(__name__)

WARM_AFTER_SECONDS = 0.5
"""Snapshots are built this long after the last tree change (a burst of changes, such as a
whole tree arriving in batches, is built once, after it)."""
WARM_EVERY_SECONDS = 60.0


async def _started(start: Callable[[], Awaitable[None]], what: str, stop: asyncio.Event) -> bool:
    """Start a Kafka client, retrying while the broker is away; False when stopped first."""
    delay = 0.5
    while not stop.is_set():
        try:
            await start()
        except Exception as e:  # aiokafka raises several unrelated types here
            log.warning("kafka_start_retry", client=what, error=str(e))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            return True
    return False


class RollupService:
    """The running parts of one replica: repository, tree, consumers and their tasks."""

    def __init__(self, settings: RollupSettings, clock: Clock) -> None:
        self.settings = settings
        self.tree = Tree()
        self.repo = Repository()
        self.rollup = Rollup(self.repo, self.tree, settings.calendar)
        self.rollup.rejects = RejectSink(settings)
        self.queries = Queries(self.repo, self.tree, settings.calendar, clock)
        self.answers = AnswerCache(lambda: self.tree.generation, self.repo.data_version)
        self.tokens: TokenStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._warm_wanted = asyncio.Event()
        self.lag = LagMonitor(
            settings,
            interval=settings.lag_poll_seconds,
            stall_seconds=settings.ready_stall_seconds,
        )

    def token_store(self) -> TokenStore:
        """The token store (available once started)."""
        if self.tokens is None:
            raise StorageUnavailableError("the rollup is starting")
        return self.tokens

    async def _apply_changes(self, changes: Sequence[OrgUnitChange]) -> None:
        """Apply tree changes; no answer is cached meanwhile, and snapshots are rebuilt."""
        self.answers.tree_changing()
        try:
            await self.rollup.apply_changes(changes)
        finally:
            self.answers.tree_changed()
            self._warm_wanted.set()

    async def warm(self, stop: asyncio.Event) -> None:
        """Build the snapshots of the days in use, in a worker thread, whenever the tree
        has settled after a change, once after start-up, and every `WARM_EVERY_SECONDS`
        (the days in use move at midnight)."""
        while not stop.is_set():
            waker = asyncio.ensure_future(self._warm_wanted.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waker, stopper}, timeout=WARM_EVERY_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            waker.cancel()
            stopper.cancel()
            while self._warm_wanted.is_set() and not stop.is_set():  # wait for quiet
                self._warm_wanted.clear()
                await asyncio.sleep(WARM_AFTER_SECONDS)
            if stop.is_set():
                return
            started = time.perf_counter()
            built = 0
            for day in self.queries.days_in_use():
                if self._warm_wanted.is_set():
                    break  # changed again: start over once it settles
                if self.tree.has_snapshot(day):
                    continue
                try:
                    prepared = await asyncio.to_thread(self.tree.prepare, day)
                except Exception as e:  # the tree changed under the worker: start over
                    log.info("snapshot_warm_retry", error=repr(e))
                    self._warm_wanted.set()
                    break
                built += self.tree.adopt(prepared)
            if built:
                log.info(
                    "snapshots_warmed",
                    snapshots=built,
                    units=len(self.tree),
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )

    async def _consume(self, stop: asyncio.Event) -> None:
        settings = self.settings
        feed = TreeFeed(settings, self._apply_changes, settings.topic(settings.orgunit_topic))
        source = EventSource(settings, self.repo, settings.topic(settings.accepted_topic))
        tree_topic = settings.topic(settings.orgunit_topic)
        self.lag.watch(tree_topic, f"{settings.consumer_group}-tree", feed.positions)
        if settings.consume_events:
            self.lag.watch_group(source.topic, settings.consumer_group, source.owned)
        tree_task: asyncio.Task[None] | None = None
        try:
            if not await _started(feed.start, "orgunit_feed", stop):
                return
            tree_task = asyncio.create_task(run_tree(feed, stop), name="rollup-tree")
            if not settings.consume_events:
                log.info("query_only_replica")
                await stop.wait()
            elif await _started(source.start, "event_consumer", stop):
                await run_events(
                    self.rollup, source, feed, stop, settings.unknown_unit_retry_seconds
                )
        finally:
            stop.set()
            if tree_task is not None:
                await tree_task
            await source.stop()
            await feed.stop()
            if self.rollup.rejects is not None:
                await self.rollup.rejects.stop()

    @asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        """Connect, load the tree, run the consumers; stop them all on the way out."""
        settings = self.settings
        await self.repo.connect(
            settings.database_url, settings.db_pool_size, within=settings.database_connect_seconds
        )
        self.tokens = TokenStore(self.repo.pool, settings.admin_token)
        self.tokens.start(settings.database_url)  # revocations drop the cache at once
        await self.rollup.load_tree()
        # its topics must exist (made by `huibao topics`); a broker still away is waited for
        await require_topics(settings, self.needed_topics(), broker_required=False)
        stop = asyncio.Event()
        self._task = asyncio.create_task(self._consume(stop), name="rollup-consumers")
        self._task.add_done_callback(_report)
        helpers = [
            asyncio.create_task(self.answers.poll(stop), name="rollup-answer-version"),
            asyncio.create_task(self.warm(stop), name="rollup-snapshot-warm"),
            asyncio.create_task(self.lag.run(stop), name="rollup-lag"),
        ]
        for helper in helpers:
            helper.add_done_callback(_report)
        self._warm_wanted.set()
        log.info("rollup_started", port=settings.http_port, group=settings.consumer_group)
        try:
            yield
        finally:
            stop.set()
            try:
                async with asyncio.timeout(15):
                    await asyncio.shield(self._task)
            except (TimeoutError, Exception):
                self._task.cancel()
            self._task = None
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self.tokens is not None:
                await self.tokens.close()
            self.tokens = None
            await self.repo.close()
            log.info("rollup_stopped")

    async def storage_ok(self) -> bool:
        """PostgreSQL answers."""
        try:
            return await ping(self.repo.pool)
        except StorageUnavailableError:
            return False

    def needed_topics(self) -> list[str]:
        """The topics the rollup reads and writes (real names); it never creates them."""
        s = self.settings
        return [s.topic(t) for t in (s.accepted_topic, s.orgunit_topic, s.rejected_topic)]

    async def broker_ok(self) -> bool:
        """The broker answers and has the rollup's topics."""
        return await topics_present(self.settings, self.needed_topics())

    async def consumer_ok(self) -> bool:
        """The consumers are running."""
        return self._task is not None and not self._task.done()


def build_app(settings: RollupSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The rollup service as an ASGI app."""
    settings = settings or RollupSettings()
    service = RollupService(settings, clock or SystemClock())
    app = FastAPI(
        title="Huibao rollup",
        version="1.0.0",
        lifespan=service.lifespan,
        description="Live aggregates of Party-member education activity, per org "
        "unit and period, with completeness of the monthly Party Day.",
    )
    app.state.service = service
    # added before install_common: runs inside its canonical log middleware
    app.add_middleware(
        FastAnswers,
        queries=service.queries,
        answers=service.answers,
        tokens=service.token_store,
        page_cap=settings.page_size_max,
    )
    install_common(
        app,
        "rollup",
        {
            "postgres": service.storage_ok,
            "kafka": service.broker_ok,
            "consumer": service.consumer_ok,
            "progress": service.lag.ready,
        },
    )
    principal = principal_dependency(service.token_store)
    app.include_router(
        build_router(service.queries, principal, settings.page_size_max, service.answers)
    )
    app.include_router(whoami_router(principal))
    app.include_router(huibao_dashboard.router(settings.scheduler_url))
    return app


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (e := task.exception()) is not None:
        log.error("rollup_consumers_crashed", error=repr(e), exc_info=e)
