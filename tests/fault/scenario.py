"""The fault scenario: a stream through the real front door while the stack is abused.

A throwaway `EmbeddedStack` of its own (reporting and rollup as processes, embedded
PostgreSQL and Tansu) gets a tree of 1 city, 4 counties, 40 townships and 2,000 branches,
then a seeded stream (`model.Stream`) on `huibao.activity.submitted`. The stream is sent in
steps; each step's fault strikes while that step's events flow: SIGKILL a rollup replica
(aimed at an open batch transaction) and start it again, restart PostgreSQL, a second
rollup replica joins or leaves. The broker restarts only after the rollup caught up, since
the embedded broker comes back empty. Each step also re-publishes a sample of the accepted
topic (`replay.Replayer`). At the end the rollup API must show the model's numbers and
`huibao_rollup verify` find no difference (`proof`).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from tests.fault import probe, proof
from tests.fault.faults import Faults
from tests.fault.model import Stream, progress_target
from tests.fault.replay import Replayer
from tests.support.tree import build_city

from huibao_stack.stack import EmbeddedStack

SUBMITTED = "huibao.activity.submitted"
OUTPUT = Path(__file__).resolve().parent.parent / "output"
ROLLUP_ENV = {
    "HUIBAO_SESSION_TIMEOUT_MS": "6000",
    "HUIBAO_HEARTBEAT_INTERVAL_MS": "500",
    "HUIBAO_BATCH_WAIT_MS": "100",
    "HUIBAO_UNKNOWN_UNIT_RETRY_SECONDS": "0.2",
}
Plan = tuple[tuple[str | None, float], ...]
"""(fault, share of the stream sent while it happens), in order."""
SHORT_PLAN: Plan = (
    ("kill", 0.3),
    ("pg_restart", 0.2),
    ("join", 0.2),
    ("leave", 0.1),
    ("broker", 0.2),
)
LONG_PLAN: Plan = (
    ("kill", 0.12),
    ("pg_restart", 0.12),
    ("join", 0.1),
    ("kill", 0.12),
    ("leave", 0.1),
    ("kill", 0.12),
    ("broker", 0.12),
    ("kill", 0.1),
    (None, 0.1),
)


@dataclass
class Report:
    """What a run did and measured."""

    events: int = 0
    faults: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


class FaultRun:
    """One scenario run on its own stack; `await run()` raises AssertionError on a mismatch."""

    def __init__(
        self,
        events: int,
        plan: Plan,
        *,
        seed: int = 7,
        sample: tuple[int, int] = (8, 40),
        rollup_env: dict[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.n = events
        self.plan = plan
        self.sample = sample
        self.keep = keep  # the services' logs are copied to tests/output even on success
        """How many townships and branches are checked (all counties and the city are)."""
        self.units = build_city("ft", counties=4, townships_per_county=10, branches_per_township=50)
        branches = {u["id"]: u["members"] for u in self.units if u["level"] == "branch"}
        townships = [u["id"] for u in self.units if u["level"] == "township"]
        self.stream = Stream(branches, townships, seed=seed)
        self.report = Report(events=events)
        self.stack = EmbeddedStack(
            services=("reporting", "rollup"),
            service_env={"rollup": ROLLUP_ENV | (rollup_env or {})},
            parallel_start=True,
        )
        self.faults = Faults(self.stack, seed)
        self.replayer = Replayer(seed)
        self.producer: AIOKafkaProducer | None = None
        self.sampler: probe.Sampler | None = None

    async def run(self) -> Report:
        """Start the stack, stream with faults, check, stop; the report."""
        began = time.monotonic()
        lap = self._lap
        await self.stack.start()
        try:
            lap("start_seconds", began)
            self.sampler = probe.Sampler(self.stack.database_url)
            await self._load_tree()
            lap("tree_seconds", began)
            await self._start_producer()
            self.sampler.start()
            for fault, share in self.plan:
                step = time.monotonic()
                count = round(self.n * share)
                if fault == "broker":
                    await self._broker_restart()
                    await self._send(count)
                else:
                    await asyncio.gather(
                        self._send(count), self._fault(fault), self._replay(count // 10)
                    )
                self.report.steps.append(f"{fault}: {time.monotonic() - step:.1f}s")
            await self._send(self.n - self.stream.counts.total)
            await self.wait_caught_up(300)
            lap("stream_seconds", began)
            await self._check()
            lap("check_seconds", began)
            if self.keep:
                self.report.figures["logs"] = keep_logs(self.stack)
        except BaseException:
            self.report.figures["logs"] = keep_logs(self.stack)
            raise
        finally:
            self.report.faults, self.report.findings = self.faults.done, self.faults.findings
            await self._close()
            self.report.wall_seconds = round(time.monotonic() - began, 1)
        return self.report

    def _lap(self, name: str, began: float) -> None:
        done = sum(v for k, v in self.report.figures.items() if k.endswith("_seconds"))
        self.report.figures[name] = round(time.monotonic() - began - done, 1)

    async def _load_tree(self) -> None:
        async with self._client() as client:
            r = await client.put(f"{self.stack.urls['reporting']}/v1/orgunits", json=self.units)
            assert r.status_code == 200, f"loading the tree: {r.status_code} {r.text[:500]}"
            url = f"{self.stack.urls['rollup']}/v1/nodes/{self.units[-1]['id']}"

            async def known() -> bool:
                return (await client.get(url)).status_code == 200

            await until(known, 60, "the rollup learns the tree")

    async def _start_producer(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.stack.bootstrap_servers, linger_ms=20, max_batch_size=256 << 10
        )
        await self.producer.start()

    async def _send(self, count: int, chunk: int = 1000) -> None:
        """Publish the next `count` events in chunks, as an integrator's gateway would."""
        assert self.producer is not None
        left = count
        while left > 0:
            events = self.stream.take(min(chunk, left))
            left -= len(events)
            futures = [
                await self.producer.send(
                    SUBMITTED,
                    key=e["subject"].encode(),
                    value=orjson.dumps(e),
                    headers=[("content-type", b"application/cloudevents+json")],
                )
                for e in events
            ]
            await asyncio.gather(*futures)
            await asyncio.sleep(0.05)

    async def _replay(self, count: int) -> None:
        """Once the step's events flow into the rollup, publish `count` accepted ones again."""
        await self._mid_flow()
        assert self.producer is not None
        await self.replayer.replay(self.stack.bootstrap_servers, self.producer, count)

    async def _close(self) -> None:
        if self.sampler is not None:
            await self.sampler.stop()
        if self.producer is not None:
            await self.producer.stop()
        await self.stack.stop()

    # --- faults ----------------------------------------------------------------------------

    async def _fault(self, fault: str | None) -> None:
        if fault is not None:
            if fault != "kill":  # a kill waits for an open batch transaction instead
                await self._mid_flow()
            await self.faults.inflict(fault)

    async def _mid_flow(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Wait until the rollup applies new facts: the fault then hits a flowing stream."""
        await until(lambda: self._facts() is not None, 30, "a first progress reading")
        before = self._facts() or 0
        try:
            await until(lambda: (self._facts() or 0) > before + 300, timeout, "applying")
        except AssertionError:
            raise AssertionError(
                f"the rollup applied no new facts within {timeout}s (faults so far "
                f"{self.faults.done}; last reading {self._last()}; alive {self.faults.alive()}; "
                f"logs kept in {keep_logs(self.stack)})"
            ) from None

    async def _broker_restart(self) -> None:
        """Only once everything sent is applied: whatever is still in Kafka dies with it."""
        await self.wait_caught_up(300)
        assert self.producer is not None
        await self.producer.stop()
        await self.faults.restart_broker()
        self.replayer.broker_restarted()
        await self._start_producer()

    async def wait_caught_up(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until the rollup holds the latest revision of every activity sent and went past
        every replay."""
        target = progress_target(self.stream)

        def done() -> bool:
            last = self._last()
            return last is not None and last.caught_up(target, self.replayer.highest)

        try:
            await until(done, timeout, "caught up")
        except AssertionError:
            raise AssertionError(
                f"the rollup did not catch up within {timeout}s: target (facts, revisions) "
                f"{target}, replays up to {self.replayer.highest}, last reading {self._last()}; "
                f"sent {self.stream.counts}; alive {self.faults.alive()}; "
                f"logs kept in {keep_logs(self.stack)}"
            ) from None

    def _last(self) -> probe.Progress | None:
        return self.sampler.last if self.sampler is not None else None

    def _facts(self) -> int | None:
        last = self._last()
        return last.facts if last is not None else None

    # --- the proof -------------------------------------------------------------------------

    async def _check(self) -> None:
        nodes = proof.sample_nodes(self.units, *self.sample)
        async with self._client() as client:
            checked = await proof.check_summaries(
                client, self.stack.urls["rollup"], self.units, self.stream, nodes
            )
        verified = await proof.check_verify(self.stack.database_url)
        batches = probe.read_batches([p.log_path for p in self.stack.replicas("rollup")])
        assert self.sampler is not None
        self.report.figures |= proof.figures(self.stream, batches, self.sampler)
        self.report.figures |= {
            "replays_sent": self.replayer.sent,
            "summaries_checked": checked,
            "verify": verified,
        }

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.stack.admin_token}"}
        return httpx.AsyncClient(headers=headers, timeout=30)


def keep_logs(stack: EmbeddedStack) -> str:
    """Copy the stack's logs under tests/output before the throwaway stack removes them."""
    target = OUTPUT / f"fault-logs-{time.strftime('%Y%m%d-%H%M%S')}"
    shutil.copytree(stack.log_dir, target, dirs_exist_ok=True)
    return str(target)


async def until(fn: Callable[[], Any], timeout: float, what: str) -> None:  # noqa: ASYNC109
    """Poll `fn` (sync or async) until truthy; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.25)
