"""Driving the rollup in-process against the real broker and PostgreSQL of `infra`.

Each harness gets its own database, its own topics and its own consumer group, so tests
never see each other's records. Records are produced straight onto the topics as reporting
would publish them: `OrgUnitChange` JSON on the org-unit topic, structured CloudEvents
with `huibaoreceived` on the accepted topic, keyed by unit id.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI
from tests.support.events import cloudevent
from tests.support.waits import wait_until

from huibao_platform.clock import Clock
from huibao_rollup.bootstrap import Adapters, build_adapters, build_app
from huibao_rollup.settings import RollupSettings
from huibao_stack.infra import Infrastructure

ADMIN = "rollup-test-admin"
RECEIVED = "2026-06-26T12:00:00+08:00"


def changes(
    units: Iterable[dict[str, Any]],
    first_seq: int = 1,
    kind: str = "upsert",
    effective: str | None = None,
) -> list[tuple[str, bytes]]:
    """OrgUnitChange records for units listed parents first (paths follow the parents)."""
    units = list(units)
    parents = {u["id"]: u.get("parent") for u in units}
    out = []
    for i, u in enumerate(units):
        path = [u["id"]]
        while (p := parents.get(path[0])) is not None:
            path.insert(0, p)
        change = {
            "seq": first_seq + i,
            "kind": kind,
            "effective": effective,
            "unit": u,
            "path": path,
        }
        out.append((u["id"], orjson.dumps(change)))
    return out


def accepted(
    type_: str, unit: str, data: dict[str, Any], *, received: str = RECEIVED, **kw: Any
) -> tuple[str, bytes]:
    """An accepted-event record as reporting's relay publishes it."""
    event = cloudevent(type_, unit, data, **kw)
    event["huibaoreceived"] = received
    return unit, orjson.dumps(event)


def party_day(
    unit: str,
    month: str,
    *,
    attendees: int = 20,
    members: int = 25,
    revision: int = 1,
    time: str | None = None,
    retracted: bool = False,
    id: str | None = None,
    activity_id: str | None = None,
) -> tuple[str, bytes]:
    """A Party Day report of `unit` for `month` (held on the 26th)."""
    data = {
        "activity_id": activity_id or f"pd-{unit}-{month}",
        "revision": revision,
        "date": f"{month}-26",
        "members": members,
        "attendees": attendees,
        "retracted": retracted,
    }
    return accepted("huibao.party_day.held.v1", unit, data, time=time, id=id)


class Harness:
    """One in-process rollup with its own database, topics and group."""

    def __init__(self, infra: Infrastructure, name: str) -> None:
        self.infra = infra
        self.name = name
        tag = f"{name}-{uuid.uuid4().hex[:8]}"
        self.accepted_topic = f"test.{tag}.accepted"
        self.orgunit_topic = f"test.{tag}.orgunits"
        self.group = f"rollup-{tag}"
        self.database_url = ""
        self._producer: AIOKafkaProducer | None = None

    async def setup(self, partitions: int = 6) -> None:
        """Create the database and the topics."""
        self.database_url = await self.infra.fresh_database("rollup_" + self.name.replace("-", "_"))
        admin = AIOKafkaAdminClient(bootstrap_servers=self.infra.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(self.accepted_topic, partitions, 1), NewTopic(self.orgunit_topic, 1, 1)]
            )
        finally:
            await admin.close()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.infra.bootstrap_servers, enable_idempotence=False, linger_ms=5
        )
        await self._producer.start()

    async def close(self) -> None:
        """Stop the producer."""
        if self._producer is not None:
            await self._producer.stop()

    def settings(self, **overrides: Any) -> RollupSettings:
        """Settings of one replica."""
        values: dict[str, Any] = {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.infra.bootstrap_servers,
            "admin_token": ADMIN,
            "consumer_group": self.group,
            "accepted_topic": self.accepted_topic,
            "orgunit_topic": self.orgunit_topic,
            "batch_wait_ms": 50,
            "unknown_unit_retry_seconds": 0.2,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
        }
        values.update(overrides)
        return RollupSettings(**values)

    async def produce(self, topic: str, records: Iterable[tuple[str, bytes]]) -> None:
        """Publish (key, value) records and wait for the broker's acknowledgements."""
        assert self._producer is not None
        futures = [await self._producer.send(topic, value=v, key=k.encode()) for k, v in records]
        for f in futures:
            await f

    async def tree(self, units: Iterable[dict[str, Any]], **kw: Any) -> None:
        """Publish units as org-unit changes."""
        await self.produce(self.orgunit_topic, changes(units, **kw))

    async def events(self, records: Iterable[tuple[str, bytes]]) -> None:
        """Publish accepted events."""
        await self.produce(self.accepted_topic, records)

    @asynccontextmanager
    async def replica(
        self, *, clock: Clock | None = None, **overrides: Any
    ) -> AsyncIterator[Client]:
        """Run one replica (lifespan included) over the adapters production builds
        (`bootstrap.build_adapters`) and yield an HTTP client for it; `clock` is the
        rollup's now (wall time when None)."""
        settings = self.settings(**overrides)
        async with build_adapters(settings, clock=clock) as adapters:
            app = build_app(settings, adapters)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport,
                    base_url="http://rollup",
                    headers={"Authorization": f"Bearer {ADMIN}"},
                ) as http:
                    yield Client(app, http, adapters)


class Client:
    """HTTP helpers over one replica."""

    def __init__(self, app: FastAPI, http: httpx.AsyncClient, adapters: Adapters) -> None:
        self.app = app
        self.http = http
        self.adapters = adapters

    async def metrics(self, node: str, period: str) -> dict[str, Any]:
        """The summary metrics of a node (asserting 200)."""
        r = await self.http.get(f"/v1/nodes/{node}/summary", params={"period": period})
        assert r.status_code == 200, r.text
        return dict(r.json()["metrics"])

    async def wait_for(
        self, node: str, period: str, expected: dict[str, Any], wait_seconds: float = 30
    ) -> dict[str, Any]:
        """Wait until the node's metrics include `expected`; return them."""

        async def check() -> dict[str, Any] | None:
            m = await self.metrics(node, period)
            return m if all(m.get(k) == v for k, v in expected.items()) else None

        try:
            return await wait_until(check, timeout=wait_seconds)
        except AssertionError:
            got = await self.metrics(node, period)
            raise AssertionError(f"{node} {period}: wanted {expected}, got {got}") from None


def now_iso() -> str:
    """The current instant, RFC 3339."""
    return dt.datetime.now(dt.UTC).isoformat()
