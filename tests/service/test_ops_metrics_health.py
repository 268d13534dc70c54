"""Operations: every service's `/metrics` after real traffic, and its health endpoints while
PostgreSQL goes away and comes back.

Runs on a throwaway stack of its own (PostgreSQL is stopped here; the shared `stack` must
not see that), the scheduler on a manual clock so its cycles and notifications can be moved.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

PD = "huibao.party_day.held.v1"
PREFIX = f"opm{uuid.uuid4().hex[:6]}"
Sample = tuple[str, dict[str, str], float]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ops_stack() -> AsyncIterator[tuple[EmbeddedStack, dict[str, list[Sample]]]]:
    """A throwaway stack after some traffic, with every service's parsed `/metrics` samples."""
    stack = EmbeddedStack(clock="manual", clock_start="2026-06-01T00:00:00+08:00")
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
                assert r.json() == {"status": "live", "service": name}
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
