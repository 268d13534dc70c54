"""A supervised stack (`huibao up`, `huibao demo`): what dies is restarted, logged, counted;
what keeps dying stops everything with a message naming it.

The first test kills the real rollup, PostgreSQL and the broker of a stack of its own; the
others use stand-in services (`tests/support/fake_service.py`) on the session's `infra`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts import topics
from huibao_stack.errors import StartupError
from huibao_stack.infra import Infrastructure
from huibao_stack.launch import run_stack
from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

REPO = Path(__file__).resolve().parents[2]
FAKE = [sys.executable, str(REPO / "tests" / "support" / "fake_service.py")]
FAST_LAG = {"HUIBAO_LAG_POLL_SECONDS": "0.5", "HUIBAO_READY_STALL_SECONDS": "5"}
"""Readiness from lag soon, so that "ready" below also means "consuming again"."""


async def _restarts(stack: EmbeddedStack) -> dict[str, float]:
    """huibao_stack_restarts_total by part, from the launcher's own /metrics."""
    assert stack.metrics_url is not None
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(stack.metrics_url)).text
    return {
        s.labels["part"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "huibao_stack_restarts_total"
    }


async def _all_ready(stack: EmbeddedStack) -> bool:
    async with httpx.AsyncClient(timeout=3) as client:
        answers = [await client.get(f"{u}/health/ready") for u in stack.urls.values()]
    return all(a.status_code == 200 for a in answers)


async def _topics_created(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        return set(topics.ALL_TOPICS) <= set(await admin.list_topics())
    finally:
        await admin.close()


def _sigkill(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGKILL)


def _reaped(pid: int | None) -> bool:
    """True once `pid` is gone for good: not even a zombie waiting for its parent."""
    assert pid is not None
    return not psutil.pid_exists(pid)  # a zombie still exists


async def test_rollup_postgres_and_broker_come_back_after_sigkill(
    capfd: pytest.CaptureFixture[str],
) -> None:
    stack = EmbeddedStack(
        supervise=True,
        clock="manual",
        clock_start="2026-06-01T00:00:00+08:00",
        service_env={name: dict(FAST_LAG) for name in ("reporting", "rollup", "scheduler")},
    )
    async with stack:
        assert stack.infra.postgres is not None
        assert stack.infra.broker is not None
        assert await _restarts(stack) == dict.fromkeys(
            ("reporting", "rollup", "scheduler", "postgres", "broker"), 0.0
        )

        # the rollup: back and ready within a few seconds, logged and counted
        rollup = stack.service("rollup")
        old = rollup.pid
        killed = time.monotonic()
        _sigkill(old)

        async def rollup_back() -> bool:
            return rollup.pid != old and rollup.running() and await _all_ready(stack)

        await wait_until(lambda: _reaped(old), timeout=2)
        await wait_until(rollup_back, timeout=15)
        back_after = time.monotonic() - killed
        assert back_after < 10, f"the rollup took {back_after:.1f}s to come back"
        assert (await _restarts(stack))["rollup"] == 1
        seen: list[str] = []

        def logged() -> str:  # the line may follow the restart by a moment
            seen.append("".join(capfd.readouterr()))
            return "".join(seen) if "part_restarted" in "".join(seen) else ""

        lines = await wait_until(logged, timeout=5)
        assert "part_died" in lines, lines[-2000:]
        assert "signal SIGKILL" in lines, lines[-2000:]

        # PostgreSQL: reaped, its backends killed, crash recovery on the same port
        postgres = stack.infra.postgres
        old_pg = postgres.pid
        _sigkill(old_pg)
        await wait_until(lambda: _reaped(old_pg), timeout=2)  # so its lock is free again
        await wait_until(lambda: postgres.pid != old_pg and postgres.running(), timeout=20)
        await wait_until(lambda: _all_ready(stack), timeout=30)
        assert (await _restarts(stack))["postgres"] == 1

        # the broker: back empty, with every topic created again
        broker = stack.infra.broker
        old_broker = broker.pid
        _sigkill(old_broker)
        await wait_until(lambda: broker.pid != old_broker and broker.running(), timeout=20)
        await wait_until(lambda: _topics_created(stack.bootstrap_servers), timeout=20)
        await wait_until(lambda: _all_ready(stack), timeout=30)
        assert (await _restarts(stack)) == {
            "reporting": 0,
            "rollup": 1,
            "scheduler": 0,
            "postgres": 1,
            "broker": 1,
        }

        # and the services work again end to end: an event reaches the rollup
        p = "sup"
        units = build_city(p, counties=1, townships_per_county=1, branches_per_township=1)
        branch = next(u["id"] for u in units if u["level"] == "branch")
        data = {"activity_id": f"{p}-1", "date": "2026-06-26", "members": 30, "attendees": 9}
        auth = {"Authorization": f"Bearer {stack.admin_token}"}
        async with httpx.AsyncClient(headers=auth, timeout=30) as client:
            rep, roll = stack.urls["reporting"], stack.urls["rollup"]
            assert (await client.put(f"{rep}/v1/orgunits", json=units)).status_code == 200
            r = await client.post(
                f"{rep}/v1/events", json=[cloudevent(PD, branch, data, id=f"{p}-1")]
            )
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["status"] == "accepted", r.text

            async def counted() -> bool:
                r = await client.get(f"{roll}/v1/nodes/{p}/summary", params={"period": "2026-06"})
                return r.status_code == 200 and r.json()["metrics"]["party_day.held"] == 1

            await wait_until(counted, timeout=30)

        promtool = shutil.which("promtool")
        if promtool is not None:
            assert stack.metrics_url is not None
            async with httpx.AsyncClient(timeout=5) as client:
                text = (await client.get(stack.metrics_url)).text
            done = await asyncio.to_thread(
                subprocess.run,
                [promtool, "check", "metrics"],
                input=text,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert done.returncode == 0, done
            assert not (done.stdout + done.stderr).strip(), done
    assert stack.pids() == []


PD = "huibao.party_day.held.v1"


async def test_a_part_that_keeps_dying_stops_the_stack_naming_it(
    infra: Infrastructure, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = EmbeddedStack(
        infra=infra,
        services=("reporting", "rollup"),
        service_argv=dict.fromkeys(("reporting", "rollup"), FAKE),
        service_env={"rollup": {"FAKE_SERVICE_MODE": "die_after", "FAKE_SERVICE_DIE_AFTER": "0.3"}},
        supervise=True,
        restart_limit=3,
        restart_window=30,
    )
    seen: dict[str, float] = {}

    async def body(stack: EmbeddedStack) -> int:
        await asyncio.sleep(0.1)
        seen.update(await _restarts(stack))
        await asyncio.Event().wait()  # only the supervisor ends this
        return 0

    started = time.monotonic()
    code = await asyncio.wait_for(run_stack(stack, body), timeout=60)
    assert code == 1
    assert time.monotonic() - started < 30
    message = stack.failure or ""
    assert message.startswith("rollup died 3 times within 30s"), message
    assert "exit code 4" in message
    assert "the fake service dies on purpose" in message, "the end of its log"
    assert f"huibao: {message.splitlines()[0]}" in capsys.readouterr().err
    assert seen["rollup"] == 0
    assert stack.metrics.restarts.labels("rollup")._value.get() == 2  # the third death gave up
    assert stack.pids() == []
    assert not stack.service("reporting").running()
    assert infra.postgres is None or infra.postgres.running(), "an external infra is left alone"


async def test_supervision_leaves_start_failures_and_the_callers_restarts_alone(
    infra: Infrastructure,
) -> None:
    failing = EmbeddedStack(
        infra=infra,
        services=("rollup",),
        service_argv={"rollup": FAKE},
        service_env={"rollup": {"FAKE_SERVICE_MODE": "exit"}},
        supervise=True,
    )
    with pytest.raises(StartupError, match="exit 3") as caught:
        await failing.start()
    assert "boom: the fake service refuses to start" in str(caught.value)
    assert failing.pids() == []

    stack = EmbeddedStack(
        infra=infra,
        services=("reporting",),
        service_argv={"reporting": FAKE},
        supervise=True,
    )
    async with stack:
        reporting = stack.service("reporting")
        await reporting.restart(crash=True)  # what the fault runs do
        await reporting.stop()
        await asyncio.sleep(1)  # five supervisor rounds
        assert not reporting.running(), "a stopped service stays stopped"
        await reporting.start()
        pid = reporting.pid
        await asyncio.sleep(0.5)
        assert reporting.pid == pid
        assert (await _restarts(stack))["reporting"] == 0
