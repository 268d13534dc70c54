"""Helpers of the scheduler service tests: a rollup stand-in, the app harness, topic reads.

Implements the documented shapes of `GET /v1/roots`, `/v1/nodes/{id}`, `/summary`,
`/children` and `/completeness` (paginated) over an in-memory tree and a table of Party Day
reports, served by uvicorn on a free loopback port. `fail = True` makes every call a 503.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException

from huibao_contracts.metrics import PUBLIC
from huibao_contracts.periods import Period


@dataclass
class RollupStub:
    """A tree (as `PUT /v1/orgunits` takes it) and its Party Day reports.

    `reports[(branch, month)]` is `'on_time'` or `'late'`; `lessons[(branch, month)]` a count.
    `fail_after = n` lets n more calls through, then fails every one (503) until reset.
    """

    units: list[dict[str, Any]]
    reports: dict[tuple[str, str], str] = field(default_factory=dict)
    lessons: dict[tuple[str, str], int] = field(default_factory=dict)
    fail: bool = False
    calls: int = 0
    fail_after: int | None = None

    def __post_init__(self) -> None:
        self.by_id = {u["id"]: u for u in self.units}
        self.kids: dict[str, list[str]] = {}
        for u in self.units:
            if u.get("parent"):
                self.kids.setdefault(u["parent"], []).append(u["id"])

    def branches_under(self, unit: str) -> list[str]:
        if self.by_id[unit]["level"] == "branch":
            return [unit]
        return [b for k in self.kids.get(unit, []) for b in self.branches_under(k)]

    def path(self, unit: str) -> list[str]:
        chain = [unit]
        while self.by_id[chain[0]].get("parent"):
            chain.insert(0, self.by_id[chain[0]]["parent"])
        return chain

    def metrics(self, unit: str, period: str) -> dict[str, float | None]:
        months = [str(m) for m in Period.parse(period).months()]
        out: dict[str, float | None] = dict.fromkeys(PUBLIC, 0)
        members = attendees = 0
        for b in self.branches_under(unit):
            for m in months:
                out["party_day.expected"] = (out["party_day.expected"] or 0) + 1
                status = self.reports.get((b, m))
                if status:
                    out["party_day.held"] = (out["party_day.held"] or 0) + 1
                    key = "party_day.on_time" if status == "on_time" else "party_day.late"
                    out[key] = (out[key] or 0) + 1
                    members += 30
                    attendees += 27
                lessons = self.lessons.get((b, m), 0)
                out["lesson.delivered"] = (out["lesson.delivered"] or 0) + lessons
        out["party_day.attendees"] = attendees
        out["party_day.attendance_rate"] = attendees / members if members else None
        return out

    def node(self, unit: str) -> dict[str, Any]:
        u = self.by_id[unit]
        return {"id": unit, "name": u["name"], "level": u["level"], "parent": u.get("parent")}

    def app(self) -> FastAPI:
        api = FastAPI()

        def check(unit: str | None = None) -> None:
            self.calls += 1
            if self.fail_after is not None:
                if self.fail_after <= 0:
                    raise HTTPException(503, "stub failing from now on")
                self.fail_after -= 1
            if self.fail:
                raise HTTPException(503, "stub failing")
            if unit is not None and unit not in self.by_id:
                raise HTTPException(404, "unknown node")

        @api.get("/health/live")
        async def live() -> dict[str, str]:  # what the scheduler's readiness asks
            return {"status": "live", "service": "rollup"}

        @api.get("/v1/roots")
        async def roots() -> dict[str, Any]:
            check()
            return {"items": [self.node(u["id"]) for u in self.units if not u.get("parent")]}

        @api.get("/v1/nodes/{unit}/summary")
        async def summary(unit: str, period: str) -> dict[str, Any]:
            check(unit)
            metrics = self.metrics(unit, period)
            return {"node": self.node(unit), "period": period, "metrics": metrics}

        @api.get("/v1/nodes/{unit}/children")
        async def children(
            unit: str, period: str, metric: str, limit: int = 100, offset: int = 0
        ) -> dict[str, Any]:
            check(unit)
            rows = [
                {**self.node(k), "metrics": self.metrics(k, period)}
                for k in self.kids.get(unit, [])
            ]
            rows.sort(key=lambda r: -(r["metrics"][metric] or 0))
            for r in rows:
                r["value"] = r["metrics"][metric]
            for r in rows:
                r["rank"] = 1 + sum(1 for o in rows if (o["value"] or 0) > (r["value"] or 0))
            return {
                "node": self.node(unit),
                "period": period,
                "metric": metric,
                "total": len(rows),
                "offset": offset,
                "limit": limit,
                "items": rows[offset : offset + limit],
            }

        @api.get("/v1/nodes/{unit}/completeness")
        async def completeness(
            unit: str, cycle: str, period: str, limit: int = 100, offset: int = 0
        ) -> dict[str, Any]:
            check(unit)
            m = self.metrics(unit, period)
            missing = [
                {
                    "id": b,
                    "name": self.by_id[b]["name"],
                    "parent": self.by_id[b]["parent"],
                    "path": self.path(b),
                }
                for b in self.branches_under(unit)
                if (b, period) not in self.reports
            ]
            return {
                "node": self.node(unit),
                "cycle": cycle,
                "period": period,
                "expected": m["party_day.expected"],
                "held": m["party_day.held"],
                "on_time": m["party_day.on_time"],
                "late": m["party_day.late"],
                "missing": len(missing),
                "missing_units": {
                    "total": len(missing),
                    "offset": offset,
                    "limit": limit,
                    "items": missing[offset : offset + limit],
                },
                "late_units": {"total": 0, "offset": 0, "limit": limit, "items": []},
            }

        return api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serve_stub(stub: RollupStub) -> AsyncIterator[str]:
    """Serve `stub` on a free port for the duration; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            stub.app(),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# --- the scheduler app in-process -------------------------------------------------------------

ADMIN = "sched-test-admin"


def unique_prefix() -> str:
    """A topic prefix of its own for each test's apps: neither the session stack's scheduler
    nor a record another test's relay publishes late can mix into what a test reads."""
    return f"scheduler-test-{uuid.uuid4().hex[:8]}."


def settings_for(infra: Any, database_url: str, rollup_url: str, **more: Any) -> Any:
    """Scheduler settings on the test infrastructure (no environment read)."""
    from huibao_scheduler.settings import SchedulerSettings

    return SchedulerSettings(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers,
        admin_token=ADMIN,
        rollup_url=rollup_url,
        clock="manual",
        tick_seconds=0.2,
        topic_prefix=more.pop("topic_prefix", None) or unique_prefix(),
        **more,
    )


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[Any]:
    """Run `app`'s lifespan and yield an httpx client talking to it in-process."""
    import httpx
    from tests.support.topics import create_huibao_topics

    settings = app.state.settings
    await create_huibao_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://scheduler",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=60,
        ) as client:
            yield client


@asynccontextmanager
async def real_adapters(settings: Any, clock: Any, **options: Any) -> AsyncIterator[Any]:
    """The scheduler's adapters as production builds them (`bootstrap.build_adapters`: the
    test PostgreSQL, the embedded broker, the rollup stand-in over HTTP) on `clock`;
    `options` name a replica or an `on_claimed` hook. Its topics are made first, as
    `huibao topics` does."""
    from tests.support.topics import create_huibao_topics

    from huibao_scheduler.bootstrap import build_adapters

    await create_huibao_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    async with build_adapters(settings, clock=clock, **options) as adapters:
        yield adapters


@asynccontextmanager
async def serving(settings: Any, clock: Any, **options: Any) -> AsyncIterator[Any]:
    """The scheduler app (ticker off) over `real_adapters(settings, clock, **options)`,
    passed in as production passes its own; yields an httpx client talking to it."""
    from huibao_scheduler.bootstrap import build_app

    async with (
        real_adapters(settings, clock, **options) as adapters,
        running(build_app(settings, adapters, ticker=False)) as client,
    ):
        yield client


# --- reading what was published ---------------------------------------------------------------


async def end_offsets(servers: str, topic: str) -> dict[Any, int]:
    """Current end offset of every partition of `topic` (its real name, prefix included)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        offsets: dict[Any, int] = await consumer.end_offsets(tps)
        return offsets
    finally:
        await consumer.stop()


async def read_since(
    servers: str, since: dict[Any, int], idle: float = 1.5
) -> list[dict[str, Any]]:
    """Every CloudEvent published after `since` (from `end_offsets`), until `idle` s of quiet."""
    import orjson
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle * 1000), max_records=10_000)
            if not batch:
                return out
            for records in batch.values():
                for r in records:
                    event = orjson.loads(r.value)
                    event["_key"] = r.key.decode() if r.key else None
                    out.append(event)
    finally:
        await consumer.stop()
