"""Peak RSS and CPU time of every process of a stack (services, broker, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psutil

from huibao_stack.stack import EmbeddedStack

OWN = "benchmark (producer, pollers)"
"""The label of this process's own CPU time."""


class MemorySampler:
    """Peak RSS per process group, sampled every `interval` seconds (psutil)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak: dict[str, float] = {}
        self._groups: dict[str, Callable[[], list[int]]] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, label: str, pids: Callable[[], list[int]]) -> None:
        """Sample the processes `pids()` answers, as one group called `label`."""
        self._groups[label] = pids

    def sample(self) -> None:
        """Take one RSS sample of every group now."""
        for label, pids in self._groups.items():
            total = 0
            for pid in pids():
                with contextlib.suppress(psutil.Error):
                    total += psutil.Process(pid).memory_info().rss
            self.peak[label] = max(self.peak.get(label, 0.0), total / (1 << 20))

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each watched group, and by this process."""
        out: dict[str, float] = {}
        for label, pids in self._groups.items():
            total = 0.0
            for pid in pids():
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(pid).cpu_times()
                    total += t.user + t.system
            out[label] = total
        own = psutil.Process().cpu_times()
        out[OWN] = own.user + own.system
        return out

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Sample in the background until `stop`."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """One last sample, and stop sampling."""
        self.sample()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def with_children(pid: int | None) -> list[int]:
    """`pid` and all its descendants (none when it is gone)."""
    if pid is None:
        return []
    try:
        proc = psutil.Process(pid)
        return [pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.Error:
        return []


def watch_stack(sampler: MemorySampler, stack: EmbeddedStack, prefix: str) -> None:
    """Watch every service of `stack`, its PostgreSQL and its broker, labelled `prefix…`."""

    def service(name: str) -> Callable[[], list[int]]:
        return lambda: with_children(stack.service(name).pid)

    for name in stack.service_names:
        sampler.watch(f"{prefix}{name}", service(name))
    infra = stack.infra
    if infra.postgres is not None:
        pg = infra.postgres
        sampler.watch(f"{prefix}postgres (all backends)", lambda: with_children(pg.pid))
    if infra.broker is not None:
        br = infra.broker
        sampler.watch(f"{prefix}broker", lambda: with_children(br.pid))


def cpu_per_event(
    before: dict[str, float], after: dict[str, float], events: int, prefix: str
) -> dict[str, float]:
    """CPU µs per event of each process group between two `cpu_seconds` snapshots."""
    out = {
        k.removeprefix(prefix): round((after[k] - before.get(k, 0.0)) / events * 1e6, 1)
        for k in after
        if k in before and k.startswith((prefix, "benchmark"))
    }
    out["total"] = round(sum(out.values()), 1)
    return out
