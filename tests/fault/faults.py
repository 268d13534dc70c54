"""The faults a run inflicts on its stack, each noted in the report with its duration.

A service found dead after a fault is a finding (noted with its log tail) and is started
again, so the run can go on and show what else breaks.
"""

from __future__ import annotations

import asyncio
import random
import time

from tests.fault import probe

from huibao_stack.errors import StartupError
from huibao_stack.services import ServiceProcess
from huibao_stack.stack import EmbeddedStack


class Faults:
    """SIGKILL, PostgreSQL and broker restarts, a replica joining and leaving."""

    def __init__(self, stack: EmbeddedStack, seed: int) -> None:
        self.stack = stack
        self.rng = random.Random(seed)
        self.done: list[str] = []
        self.findings: list[str] = []
        self.joined: ServiceProcess | None = None
        self.left: list[ServiceProcess] = []

    async def inflict(self, fault: str) -> None:
        """One of `kill` (SIGKILL rollup replica 1, start it again), `pg_restart` (fast
        shutdown), `pg_crash` (SIGKILL the postmaster: crash recovery), `join`, `leave`."""
        started = time.monotonic()
        note = ""
        if fault == "kill":
            note = " in a batch" if await self._batch_open() else " between batches"
            await self.stack.service("rollup").restart(crash=True)
        elif fault in ("pg_restart", "pg_crash"):
            assert self.stack.infra.postgres is not None, "the fault run needs embedded PostgreSQL"
            await self.stack.infra.postgres.restart(crash=fault == "pg_crash")
        elif fault == "join":
            self.joined = await self.stack.add_replica("rollup")
        elif fault == "leave":
            assert self.joined is not None, "a replica leaves only after one joined"
            self.left.append(self.joined)
            await self.joined.stop()
        else:
            raise ValueError(f"unknown fault {fault!r}")
        self.done.append(f"{fault}{note} ({time.monotonic() - started:.1f}s)")
        await self.check_alive(fault)

    async def restart_broker(self) -> None:
        """Restart the embedded broker: it comes back empty, its topics recreated."""
        broker = self.stack.infra.broker
        assert broker is not None, "the fault run needs the embedded broker"
        started = time.monotonic()
        await broker.restart()
        self.done.append(f"broker ({time.monotonic() - started:.1f}s)")
        await self.check_alive("broker")

    async def _batch_open(self, within: float = 10.0) -> bool:
        """Wait (briefly) until a batch transaction is open, so the kill lands inside one."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await probe.batch_open(self.stack.database_url):
                await asyncio.sleep(self.rng.uniform(0, 0.05))
                return True
            await asyncio.sleep(0.02)
        return False

    async def check_alive(self, after: str) -> None:
        """A service that died, or is not ready again within its ready timeout, is a finding
        (noted with its log tail); a dead one is started again."""
        await asyncio.sleep(1)
        for proc in self.stack.replicas("reporting") + self.stack.replicas("rollup"):
            if proc in self.left:
                continue
            if not proc.running():
                self.findings.append(f"{proc.label} died after {after}:\n{proc.log_tail(15)}")
                await proc.start()
                continue
            try:
                await proc.wait_ready()
            except StartupError as e:
                self.findings.append(f"{proc.label} not ready after {after}: {e}")

    def alive(self) -> dict[str, bool]:
        """Every service process started so far, and whether it runs."""
        procs = self.stack.replicas("reporting") + self.stack.replicas("rollup")
        return {p.label: p.running() for p in procs}
