"""Operations: every service's `/metrics` after real traffic, and its health endpoints while
PostgreSQL goes away and comes back.

Runs on a throwaway stack of its own (PostgreSQL is stopped here; the shared `stack` must
not see that), the scheduler on a manual clock so its cycles and notifications can be moved.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts import topics
from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

PD = "huibao.party_day.held.v1"
PREFIX = f"opm{uuid.uuid4().hex[:6]}"
Sample = tuple[str, dict[str, str], float]
STALL_SECONDS = 3.0
FAST_LAG = {"HUIBAO_LAG_POLL_SECONDS": "0.3", "HUIBAO_READY_STALL_SECONDS": str(STALL_SECONDS)}
"""Lag every 0.3 s, not ready after 3 s of lag without progress (defaults: 5 s and 60 s)."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ops_stack() -> AsyncIterator[tuple[EmbeddedStack, dict[str, list[Sample]]]]:
    """A throwaway stack after some traffic, with every service's parsed `/metrics` samples."""
    stack = EmbeddedStack(
        clock="manual",
        clock_start="2026-06-01T00:00:00+08:00",
        service_env=dict.fromkeys(("reporting", "rollup", "scheduler"), FAST_LAG),
    )
    try:
        await stack.start()
        await _traffic(stack)
        yield stack, {name: await _samples(stack.urls[name]) for name in stack.urls}
    finally:
        await stack.stop()


async def _traffic(stack: EmbeddedStack) -> None:
    """Intake of every outcome, the rollup applying it, queries, and a month of cycles."""
    p = PREFIX
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=3)
    b1, b2, b3 = (u["id"] for u in units if u["level"] == "branch")
    rep, roll, sched = (stack.urls[n] for n in ("reporting", "rollup", "scheduler"))
    auth = {"Authorization": f"Bearer {stack.admin_token}"}

    def pd(b: str, n: int, attendees: int = 10) -> dict[str, Any]:
        data = {"activity_id": f"{p}-pd-{n}", "date": "2026-06-26", "members": 30}
        return cloudevent(PD, b, {**data, "attendees": attendees}, id=f"{p}-{n}")

    async with httpx.AsyncClient(headers=auth, timeout=60) as client:
        r = await client.put(f"{rep}/v1/orgunits", json=units)
        assert r.status_code == 200, r.text
        batch = [pd(b1, 1), pd(b2, 2), pd(b1, 1), pd(b3, 3, attendees=99), pd(f"{p}.nope", 4)]
        r = await client.post(f"{rep}/v1/events", json=batch)
        assert r.status_code == 200, r.text
        outcomes = [x["status"] for x in r.json()["results"]]
        assert outcomes == ["accepted", "accepted", "duplicate", "rejected", "rejected"]

        async def applied() -> bool:
            r = await client.get(f"{roll}/v1/nodes/{p}/summary", params={"period": "2026-06"})
            return r.status_code == 200 and r.json()["metrics"]["party_day.held"] == 2

        await wait_until(applied, timeout=40)
        for node in (b1, b2, f"{p}.c1"):
            r = await client.get(f"{roll}/v1/nodes/{node}/summary", params={"period": "2026-06"})
            assert r.status_code == 200, r.text
        r = await client.get(f"{roll}/v1/nodes/{p}.unknown", params={"period": "2026-06"})
        assert r.status_code == 404
        assert (await client.get(f"{roll}/v1/no/such/{p}/path")).status_code == 404
        # the month's Party Day: opened, reminders, deadline, escalation -> notifications
        r = await client.put(f"{sched}/v1/clock", json={"now": "2026-07-02T00:00:00+08:00"})
        assert r.status_code == 200, r.text
        assert r.json()["transitions"], r.text


async def _samples(url: str) -> list[Sample]:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(f"{url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    ]


def _find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


def _total(samples: list[Sample], name: str, **labels: str) -> float:
    found = _find(samples, name, **labels)
    assert found, f"no sample {name}{labels or ''}"
    return sum(s[2] for s in found)


async def test_promtool_accepts_every_services_metrics(
    ops_stack: tuple[EmbeddedStack, dict[str, list[Sample]]],
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required in CI (Debian package `prometheus`)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    stack, _ = ops_stack
    async with httpx.AsyncClient(timeout=10) as client:
        for name, url in stack.urls.items():
            text = (await client.get(f"{url}/metrics")).text
            assert "huibao_http_request_duration_seconds_bucket" in text
            done = await asyncio.to_thread(
                subprocess.run,
                [promtool, "check", "metrics"],
                input=text,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
            assert not (done.stdout + done.stderr).strip(), f"{name}: {done.stdout}{done.stderr}"


async def test_the_metric_catalogue_moves_with_traffic(
    ops_stack: tuple[EmbeddedStack, dict[str, list[Sample]]],
) -> None:
    _, metrics = ops_stack
    rep, roll, sched = metrics["reporting"], metrics["rollup"], metrics["scheduler"]

    intake = "huibao_intake_events_total"
    assert _total(rep, intake, channel="http", outcome="accepted", reason="") == 2
    assert _total(rep, intake, channel="http", outcome="duplicate", reason="") == 1
    assert _total(rep, intake, channel="http", outcome="rejected", reason="invalid_field") == 1
    assert _total(rep, intake, channel="http", outcome="rejected", reason="unknown_unit") == 1
    assert _find(rep, "huibao_outbox_backlog")
    assert _find(rep, "huibao_outbox_oldest_age_seconds")
    assert _total(rep, "huibao_relay_published_total") >= 4  # 5 units, 2 accepted, 2 rejected

    lag = _find(roll, "huibao_consumer_lag", topic="huibao.activity.accepted")
    assert lag, "no consumer lag per partition"
    assert all(s[1]["partition"].isdigit() for s in lag)
    assert _total(roll, "huibao_rollup_batch_size_count") >= 1
    assert _total(roll, "huibao_rollup_batch_size_sum") >= 2
    assert _total(roll, "huibao_rollup_batch_duration_seconds_count") >= 1
    assert _total(roll, "huibao_rollup_events_applied_total") == 2

    current = [s for s in _find(sched, "huibao_cycle_state", kind="party_day") if s[2] == 1]
    assert len(current) == 1, current
    assert _total(sched, "huibao_notifications_total") >= 1
    assert _find(sched, "huibao_cycle_overdue_steps")


async def test_http_metrics_carry_route_templates_never_ids(
    ops_stack: tuple[EmbeddedStack, dict[str, list[Sample]]],
) -> None:
    _, metrics = ops_stack
    count = "huibao_http_request_duration_seconds_count"
    for name, samples in metrics.items():
        for sample_name, labels, _ in samples:
            for value in labels.values():
                assert PREFIX not in value, f"{name}: {sample_name}{labels} names an org unit"
        routes = {labels["route"] for n, labels, _ in samples if n == count}
        assert "other" not in routes, f"{name}: {routes}"
        assert all(r == "unmatched" or r.startswith("/") for r in routes), routes
    rep, roll, sched = metrics["reporting"], metrics["rollup"], metrics["scheduler"]
    assert _total(rep, count, route="/v1/orgunits", method="PUT", status="200") == 1
    assert _total(rep, count, route="/v1/events", method="POST", status="200") == 1
    assert _total(roll, count, route="/v1/nodes/{id}/summary", method="GET", status="200") >= 4
    assert _total(roll, count, route="/v1/nodes/{id}", method="GET", status="404") == 1
    assert _total(roll, count, route="unmatched", method="GET", status="404") == 1
    assert _total(sched, count, route="/v1/clock", method="PUT", status="200") == 1


async def test_readiness_follows_postgres_while_liveness_stays(
    ops_stack: tuple[EmbeddedStack, dict[str, list[Sample]]],
) -> None:
    stack, _ = ops_stack
    postgres = stack.infra.postgres
    assert postgres is not None, "needs the embedded PostgreSQL"
    urls = stack.urls
    async with httpx.AsyncClient(timeout=10) as client:

        async def all_ready(expected: int) -> dict[str, Any]:
            answers = await asyncio.gather(
                *(client.get(f"{u}/health/ready") for u in urls.values())
            )
            if any(a.status_code != expected for a in answers):
                return {}
            return dict(zip(urls, (a.json() for a in answers), strict=True))

        await postgres.stop()
        try:
            down = await wait_until(lambda: all_ready(503), timeout=20)
            for name, body in down.items():
                assert body["status"] == "not_ready", body
                assert body["service"] == name
                assert body["checks"]["postgres"] is False, body
                assert body["checks"]["kafka"] is True, body
            for name, url in urls.items():
                r = await client.get(f"{url}/health/live")
                assert r.status_code == 200, (name, r.text)
                version = metadata.version(f"huibao-{name}")  # what `huibao status` shows
                assert r.json() == {"status": "live", "service": name, "version": version}
        finally:
            await postgres.start()
        up = await wait_until(lambda: all_ready(200), timeout=30)
        for body in up.values():
            assert body["status"] == "ready"
            assert all(body["checks"].values()), body
        for url in urls.values():
            assert (await client.get(f"{url}/health/live")).status_code == 200
    for name in urls:
        assert stack.service(name).running(), f"{name} exited:\n{stack.service(name).log_tail()}"


# --- readiness that follows consumer progress, lag of every partition ----------------------

SUBMITTED, ACCEPTED, TREE = (
    topics.ACTIVITY_SUBMITTED,
    topics.ACTIVITY_ACCEPTED,
    topics.ORGUNIT_CHANGES,
)
CE_JSON = [("content-type", b"application/cloudevents+json")]


async def _lag(url: str, topic: str) -> dict[int, float]:
    """`huibao_consumer_lag` of `topic` by partition, as `url` exports it now."""
    samples = await _samples(url)
    return {
        int(s[1]["partition"]): s[2] for s in _find(samples, "huibao_consumer_lag", topic=topic)
    }


async def _ready(client: httpx.AsyncClient, url: str) -> tuple[int, dict[str, Any]]:
    r = await client.get(f"{url}/health/ready")
    return r.status_code, r.json()


async def test_lag_is_exported_for_every_partition_of_every_consumer(
    ops_stack: tuple[EmbeddedStack, dict[str, list[Sample]]],
) -> None:
    stack, _ = ops_stack
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    expected = {
        (rep, SUBMITTED, "huibao-reporting"),
        (roll, ACCEPTED, "huibao-rollup"),
        (roll, TREE, "huibao-rollup-tree"),
    }
    for url, topic, group in expected:
        samples = _find(await _samples(url), "huibao_consumer_lag", topic=topic)
        assert {s[1]["partition"] for s in samples} == {
            str(p) for p in range(topics.PARTITIONS[topic])
        }, (topic, samples)
        assert {s[1]["group"] for s in samples} == {group}
        # caught up (a rollup another test just restarted reads the tree again first)
        await wait_until(functools.partial(_lag_total, url, topic, 0), timeout=15)
        ages = _find(await _samples(url), "huibao_consumer_progress_age_seconds", topic=topic)
        assert len(ages) == topics.PARTITIONS[topic]


async def _lag_total(url: str, topic: str, expected: float) -> bool:
    return sum((await _lag(url, topic)).values()) == expected


async def _not_ready(client: httpx.AsyncClient, url: str) -> tuple[int, dict[str, Any]] | None:
    status, body = await _ready(client, url)
    return (status, body) if status == 503 else None


async def _is_ready(client: httpx.AsyncClient, url: str) -> bool:
    return (await _ready(client, url))[0] == 200


async def _locked(database_url: str, table: str) -> asyncpg.Connection:
    """A connection holding `table` in EXCLUSIVE mode (reads pass, writes wait) until closed."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(f"BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE")
    return conn


async def test_a_blocked_consumer_goes_unready_with_growing_lag_and_recovers(
    ops_stack: tuple[EmbeddedStack, dict[str, list[Sample]]],
) -> None:
    """Reporting's Kafka intake, then the rollup, blocked by a lock in PostgreSQL (which
    itself still answers): the lag grows on the timer, ready goes 503 after the stall window
    only for the blocked one, and both come back once the lock is gone."""
    stack, _ = ops_stack
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    p = f"{PREFIX}l"
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=3)
    branches = [u["id"] for u in units if u["level"] == "branch"]
    n = 12

    def record(i: int) -> tuple[bytes, bytes]:
        # one Party Day per branch and month: 3 branches x 4 months
        date = f"2026-{3 + i // 3:02d}-26"
        data = {"activity_id": f"{p}-{i}", "date": date, "members": 30, "attendees": 9}
        unit = branches[i % 3]
        return unit.encode(), orjson.dumps(cloudevent(PD, unit, data, id=f"{p}-{i}"))

    auth = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(headers=auth, timeout=30) as client:
        r = await client.put(f"{rep}/v1/orgunits", json=units)
        assert r.status_code == 200, r.text
        await wait_until(lambda: _lag_total(roll, TREE, 0), timeout=20)
        applied = _total(await _samples(roll), "huibao_rollup_events_applied_total")
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
        await producer.start()
        reporting_lock = await _locked(stack.database_url, "reporting.events_seen")
        rollup_lock: asyncpg.Connection | None = None
        try:
            started = time.monotonic()
            for key, value in (record(i) for i in range(n)):
                await producer.send_and_wait(SUBMITTED, value, key=key, headers=CE_JSON)
            await wait_until(lambda: _lag_total(rep, SUBMITTED, n), timeout=10)
            _, body = await wait_until(lambda: _not_ready(client, rep), timeout=15)
            # the window runs from the last poll that saw no lag (at most a poll before)
            assert time.monotonic() - started >= STALL_SECONDS - 1
            assert body["checks"] == {"postgres": True, "kafka": True, "progress": False}, body
            assert await _is_ready(client, roll), "the rollup has nothing to do yet"

            # the rollup cannot write either; reporting goes on and publishes to it
            rollup_lock = await _locked(stack.database_url, "rollup.offsets")
            await reporting_lock.close()
            await wait_until(lambda: _lag_total(rep, SUBMITTED, 0), timeout=15)
            await wait_until(lambda: _is_ready(client, rep), timeout=10)
            await wait_until(lambda: _lag_total(roll, ACCEPTED, n), timeout=15)
            _, body = await wait_until(lambda: _not_ready(client, roll), timeout=15)
            assert body["checks"]["postgres"] is True, body
            assert body["checks"]["consumer"] is True, body
            assert body["checks"]["progress"] is False, body

            await rollup_lock.close()
            await wait_until(lambda: _lag_total(roll, ACCEPTED, 0), timeout=15)
            await wait_until(lambda: _is_ready(client, roll), timeout=10)
            after = _total(await _samples(roll), "huibao_rollup_events_applied_total")
            assert after - applied == n
        finally:
            await producer.stop()
            for conn in (reporting_lock, rollup_lock):
                if conn is not None and not conn.is_closed():
                    await conn.close()


async def test_the_scheduler_is_not_ready_while_the_rollup_is_down(
    ops_stack: tuple[EmbeddedStack, dict[str, list[Sample]]],
) -> None:
    stack, _ = ops_stack
    sched = stack.urls["scheduler"]
    rollup = stack.service("rollup")
    async with httpx.AsyncClient(timeout=10) as client:
        assert await _is_ready(client, sched)
        await rollup.stop()
        try:
            status, body = await _ready(client, sched)
            assert status == 503, body
            assert body["checks"] == {"postgres": True, "kafka": True, "rollup": False}, body
        finally:
            await rollup.start()
        status, body = await _ready(client, sched)
        assert status == 200, body
