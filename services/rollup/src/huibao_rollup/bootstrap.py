"""The one wiring point: adapters in, the rollup out; settings in, the FastAPI app out.

`Adapters` holds everything the rollup talks to: PostgreSQL (connected), the token store,
the Kafka clients (built, started by the consumer loop, which retries while the broker is
away) and the lag monitor, and the clock. `build_adapters` is the one place that builds the
production ones; tests build theirs with it too (a manual clock). `bootstrap(adapters,
settings)` wires the use cases over them: the in-memory tree, the `Applier`, the `Queries`
and the answer cache. `build_app` serves a `Rollup` over HTTP: its lifespan takes the
given adapters (or builds them), bootstraps, loads the tree, runs the consumers
(`entrypoints.kafka.run_consumers`), the answer cache's version poller, the snapshot
warm-up loop (`entrypoints.snapshots`) and the lag monitor, and stops them in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI

import huibao_dashboard
from huibao_platform import tracing
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
from huibao_rollup.domain.tree import Tree
from huibao_rollup.entrypoints.fast_answers import FastAnswers
from huibao_rollup.entrypoints.http import build_router
from huibao_rollup.entrypoints.kafka import run_consumers, tree_changes
from huibao_rollup.entrypoints.snapshots import SnapshotWarmer
from huibao_rollup.service_layer.answers import AnswerCache
from huibao_rollup.service_layer.apply import Applier
from huibao_rollup.service_layer.queries import Queries
from huibao_rollup.settings import RollupSettings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Adapters:
    """Everything the rollup talks to (see `build_adapters`)."""

    repo: Repository
    tokens: TokenStore
    events: EventSource
    tree_feed: TreeFeed
    rejects: RejectSink
    lag: LagMonitor
    clock: Clock


@dataclass(frozen=True, slots=True)
class Rollup:
    """The wired rollup: the tree, its use cases and the answer cache over its adapters."""

    tree: Tree
    applier: Applier
    queries: Queries
    answers: AnswerCache
    adapters: Adapters


def topics_needed(settings: RollupSettings) -> list[str]:
    """The topics the rollup reads and writes (real names); it never creates them."""
    s = settings
    return [s.topic(t) for t in (s.accepted_topic, s.orgunit_topic, s.rejected_topic)]


@contextlib.asynccontextmanager
async def build_adapters(
    settings: RollupSettings, *, clock: Clock | None = None
) -> AsyncIterator[Adapters]:
    """The production adapters, PostgreSQL connected (retrying while it starts, at most
    HUIBAO_DATABASE_CONNECT_SECONDS), the Kafka clients built; all closed in reverse
    order on exit. `clock` is the rollup's now (wall time when None)."""
    async with contextlib.AsyncExitStack() as stack:
        repo = Repository()
        stack.push_async_callback(repo.close)
        await repo.connect(
            settings.database_url, settings.db_pool_size, within=settings.database_connect_seconds
        )
        tokens = TokenStore(repo.pool, settings.admin_token)
        tokens.start(settings.database_url)  # revocations drop the cache at once
        stack.push_async_callback(tokens.close)
        # its topics must exist (made by `huibao topics`); a broker still away is waited for
        await require_topics(settings, topics_needed(settings), broker_required=False)
        rejects = RejectSink(settings)
        stack.push_async_callback(rejects.stop)
        feed = TreeFeed(settings, settings.topic(settings.orgunit_topic))
        stack.push_async_callback(feed.stop)
        events = EventSource(settings, repo, settings.topic(settings.accepted_topic))
        stack.push_async_callback(events.stop)
        lag = LagMonitor(
            settings,
            interval=settings.lag_poll_seconds,
            stall_seconds=settings.ready_stall_seconds,
        )
        yield Adapters(
            repo=repo,
            tokens=tokens,
            events=events,
            tree_feed=feed,
            rejects=rejects,
            lag=lag,
            clock=clock or SystemClock(),
        )


def bootstrap(adapters: Adapters, settings: RollupSettings) -> Rollup:
    """The rollup's use cases wired over `adapters` (the tree still empty: `load_tree`)."""
    tree = Tree()
    repo = adapters.repo
    return Rollup(
        tree=tree,
        applier=Applier(repo, tree, settings.calendar, settings.class_hours),
        queries=Queries(repo, tree, settings.calendar, adapters.clock),
        answers=AnswerCache(lambda: tree.generation, repo.data_version),
        adapters=adapters,
    )


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (e := task.exception()) is not None:
        log.error("rollup_consumers_crashed", error=repr(e), exc_info=e)


@dataclass(frozen=True, slots=True)
class Serving:
    """A rollup while its app runs: the wired use cases and the consumers' task."""

    rollup: Rollup
    consumers: asyncio.Task[None]


@contextlib.asynccontextmanager
async def serving(settings: RollupSettings, adapters: Adapters | None) -> AsyncIterator[Serving]:
    """Bootstrap over `adapters` (built, and closed after, when None), load the tree and
    run the background loops until exit; then stop them."""
    async with contextlib.AsyncExitStack() as stack:
        given = adapters
        if given is None:
            given = await stack.enter_async_context(build_adapters(settings))
        running = bootstrap(given, settings)
        await running.applier.load_tree()
        warmer = SnapshotWarmer(running.tree, running.queries.days_in_use)
        stop = asyncio.Event()
        consumers = asyncio.create_task(
            run_consumers(
                settings,
                running.applier,
                tree_changes(running.applier, running.answers, warmer.wanted),
                feed=given.tree_feed,
                source=given.events,
                rejects=given.rejects,
                lag=given.lag,
                stop=stop,
            ),
            name="rollup-consumers",
        )
        consumers.add_done_callback(_report)
        helpers = [
            asyncio.create_task(running.answers.poll(stop), name="rollup-answer-version"),
            asyncio.create_task(warmer.run(stop), name="rollup-snapshot-warm"),
            asyncio.create_task(given.lag.run(stop), name="rollup-lag"),
        ]
        for helper in helpers:
            helper.add_done_callback(_report)
        warmer.wanted()
        log.info("rollup_started", port=settings.http_port, group=settings.consumer_group)
        try:
            yield Serving(running, consumers)
        finally:
            stop.set()
            try:
                async with asyncio.timeout(15):
                    await asyncio.shield(consumers)
            except Exception:  # noqa: BLE001 (a timeout or whatever they ended with: cancel)
                consumers.cancel()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
    log.info("rollup_stopped")


def build_app(settings: RollupSettings, adapters: Adapters | None = None) -> FastAPI:
    """The rollup service as an ASGI app over `adapters` (built from `settings` at start
    when None; given ones are closed by their owner after it stops)."""
    live: Serving | None = None
    needed = topics_needed(settings)

    def rollup() -> Rollup:
        if live is None:
            raise StorageUnavailableError("the rollup is starting")
        return live.rollup

    def tokens() -> TokenStore:
        return rollup().adapters.tokens

    def queries() -> Queries:
        return rollup().queries

    def answers() -> AnswerCache:
        return rollup().answers

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Connect, load the tree, run the consumers; stop them all on the way out. While
        it runs, `app.state.rollup` is the wired `Rollup` (for tests and benchmarks)."""
        nonlocal live
        async with serving(settings, adapters) as running:
            live, app.state.rollup = running, running.rollup
            try:
                yield
            finally:
                live, app.state.rollup = None, None

    app = FastAPI(
        title="Huibao rollup",
        telemetry=tracing.FASTAPI_TELEMETRY,  # the platform's middleware traces requests
        version="1.0.0",
        lifespan=lifespan,
        description="Live aggregates of Party-member education activity, per org "
        "unit and period, with completeness of the monthly Party Day.",
    )

    async def postgres_ready() -> bool:
        """PostgreSQL answers."""
        try:
            return live is not None and await ping(live.rollup.adapters.repo.pool)
        except StorageUnavailableError:
            return False

    async def broker_ready() -> bool:
        """The broker answers and has the rollup's topics."""
        return await topics_present(settings, needed)

    async def consumer_ready() -> bool:
        """The consumers are running."""
        return live is not None and not live.consumers.done()

    async def progress_ready() -> bool:
        """No consumed partition is stalled behind its end."""
        return live is not None and await live.rollup.adapters.lag.ready()

    app.state.settings = settings
    # added before install_common: runs inside its canonical log middleware
    app.add_middleware(
        FastAnswers,
        queries=queries,
        answers=answers,
        tokens=tokens,
        page_cap=settings.page_size_max,
    )
    install_common(
        app,
        "rollup",
        {
            "postgres": postgres_ready,
            "kafka": broker_ready,
            "consumer": consumer_ready,
            "progress": progress_ready,
        },
    )
    principal = principal_dependency(tokens)
    app.include_router(build_router(queries, principal, settings.page_size_max, answers))
    app.include_router(whoami_router(principal))
    app.include_router(huibao_dashboard.router(settings.scheduler_url))
    return app
