"""Operations: SIGTERM drains. A service stopped in the middle of a stream of events exits 0
within the grace period, and once it is back the rollup's totals are exact: nothing lost,
nothing counted twice.

Runs on a throwaway stack (reporting and rollup) of its own. The grace period asserted is the
launcher's (`ServiceProcess.grace`, 15 s); Kubernetes and compose allow 30 s.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_stack.services import ServiceProcess
from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

LESSON = "huibao.lesson.delivered.v1"
GRACE = 15.0
ROLLUP_ENV = {
    # Tansu's group rejoin is slow; a short session lets the restarted replica take over soon
    "HUIBAO_SESSION_TIMEOUT_MS": "6000",
    "HUIBAO_HEARTBEAT_INTERVAL_MS": "500",
    # small batches, so that one is in flight whenever the signal arrives
    "HUIBAO_BATCH_MAX_RECORDS": "200",
}
_ids = itertools.count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def drain_stack() -> AsyncIterator[EmbeddedStack]:
    stack = EmbeddedStack(services=("reporting", "rollup"), service_env={"rollup": ROLLUP_ENV})
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


def lessons(prefix: str, branches: list[str], n: int) -> list[dict[str, Any]]:
    """`n` new lessons (fresh activity ids), audience 1 to 7, spread over `branches`."""
    out = []
    for _ in range(n):
        i = next(_ids)
        data = {
            "activity_id": f"{prefix}-ls-{i}",
            "date": "2026-06-10",
            "speaker_role": "branch_secretary",
            "topic": "党课",
            "audience": 1 + i % 7,
        }
        out.append(cloudevent(LESSON, branches[i % len(branches)], data, id=f"{prefix}-{i}"))
    return out


async def setup_tree(stack: EmbeddedStack, prefix: str) -> list[str]:
    units = build_city(prefix, counties=1, townships_per_county=1, branches_per_township=4)
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        r = await client.put(f"{stack.urls['reporting']}/v1/orgunits", json=units)
        assert r.status_code == 200, r.text
    return [u["id"] for u in units if u["level"] == "branch"]


def auth(stack: EmbeddedStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.admin_token}"}


async def lesson_totals(
    client: httpx.AsyncClient, stack: EmbeddedStack, node: str
) -> tuple[int, int]:
    r = await client.get(
        f"{stack.urls['rollup']}/v1/nodes/{node}/summary", params={"period": "2026-06"}
    )
    if r.status_code != 200:
        return -1, -1
    m = r.json()["metrics"]
    return int(m["lesson.delivered"]), int(m["lesson.audience"])


async def sigterm(proc: ServiceProcess) -> tuple[float, int | None]:
    """SIGTERM `proc` (SIGKILL after the grace period); seconds until it exited, exit status."""
    started = time.monotonic()
    await proc.stop(grace=GRACE)
    elapsed = time.monotonic() - started
    return elapsed, proc._child.returncode()


async def test_sigterm_on_the_rollup_mid_stream_drains_and_keeps_totals_exact(
    drain_stack: EmbeddedStack,
) -> None:
    stack = drain_stack
    p = f"sgr{uuid.uuid4().hex[:6]}"
    branches = await setup_tree(stack, p)
    sent: list[dict[str, Any]] = []
    stop_stream = asyncio.Event()

    async def stream(client: httpx.AsyncClient) -> None:
        while not stop_stream.is_set():
            batch = lessons(p, branches, 200)
            r = await client.post(f"{stack.urls['reporting']}/v1/events", json=batch)
            assert r.status_code == 200, r.text
            assert r.json()["accepted"] == len(batch), r.text
            sent.extend(batch)
            await asyncio.sleep(0.05)

    rollup = stack.service("rollup")
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        producer = asyncio.create_task(stream(client))
        try:

            async def applying() -> bool:
                delivered, _ = await lesson_totals(client, stack, p)
                return delivered > 0

            await wait_until(applying, timeout=40, message="the rollup applies the stream")
            applied_at_signal, _ = await lesson_totals(client, stack, p)
            elapsed, status = await sigterm(rollup)
            assert status == 0, f"rollup exit status {status}:\n{rollup.log_tail()}"
            assert elapsed < GRACE
            print(f"rollup: SIGTERM to exit {elapsed:.2f}s")
            await asyncio.sleep(1.0)  # the stream goes on while the rollup is away
            await rollup.start()
        finally:
            stop_stream.set()
            await producer
        expected = (len(sent), sum(e["data"]["audience"] for e in sent))
        assert expected[0] > applied_at_signal > 0

        async def exact() -> bool:
            return await lesson_totals(client, stack, p) == expected

        await wait_until(exact, timeout=60, message=f"rollup totals reach {expected}")
        await asyncio.sleep(1.0)
        assert await lesson_totals(client, stack, p) == expected  # and stay there

    tail = rollup.log_path.read_text(encoding="utf-8")
    assert '"event.action": "rollup_stopped"' in tail
    assert "rollup_consumers_crashed" not in tail


async def test_sigterm_on_reporting_answers_or_refuses_and_loses_nothing_answered(
    drain_stack: EmbeddedStack,
) -> None:
    stack = drain_stack
    p = f"sgp{uuid.uuid4().hex[:6]}"
    branches = await setup_tree(stack, p)
    url = f"{stack.urls['reporting']}/v1/events"
    answered: list[dict[str, Any]] = []
    unanswered: list[list[dict[str, Any]]] = []
    odd: list[str] = []
    stop_stream = asyncio.Event()

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
            while not stop_stream.is_set():
                batch = lessons(p, branches, 100)
                try:
                    r = await client.post(url, json=batch)
                except httpx.TransportError:
                    unanswered.append(batch)  # refused or cut: the sender retries later
                    return
                if r.status_code != 200 or r.json()["accepted"] != len(batch):
                    odd.append(f"{r.status_code} {r.text[:200]}")
                    return
                answered.extend(batch)

    reporting = stack.service("reporting")
    workers = [asyncio.create_task(worker()) for _ in range(4)]
    try:
        await wait_until(lambda: len(answered) >= 1200, timeout=30, interval=0.02)
        elapsed, status = await sigterm(reporting)
    finally:
        stop_stream.set()
        await asyncio.gather(*workers)
    assert status == 0, f"reporting exit status {status}:\n{reporting.log_tail()}"
    assert elapsed < GRACE
    print(
        f"reporting: SIGTERM to exit {elapsed:.2f}s; {len(answered)} events answered, "
        f"{len(unanswered)} batches cut"
    )
    assert not odd, odd  # every answer was a full 200; anything else is a broken drain

    await reporting.start()
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        for batch in unanswered:  # the integrator's retry: stored before the cut = duplicate
            r = await client.post(url, json=batch)
            assert r.status_code == 200, r.text
            assert {x["status"] for x in r.json()["results"]} <= {"accepted", "duplicate"}
        every = answered + [e for batch in unanswered for e in batch]
        expected = (len(every), sum(e["data"]["audience"] for e in every))

        async def exact() -> bool:
            return await lesson_totals(client, stack, p) == expected

        await wait_until(exact, timeout=60, message=f"rollup totals reach {expected}")
        await asyncio.sleep(1.0)
        assert await lesson_totals(client, stack, p) == expected
    assert '"event.action": "reporting_stopped"' in reporting.log_path.read_text(encoding="utf-8")
