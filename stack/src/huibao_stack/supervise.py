"""Supervision of what `huibao up` started: a part that dies is reaped, logged, counted and
started again with backoff; a part that keeps dying stops the whole stack.

A *part* is PostgreSQL, the broker, or one replica of a service. A death is an exit that no
`stop()` or `kill()` asked for, noticed within `POLL_SECONDS` (the poll also reaps the
process, so no zombie holds PostgreSQL's lock). The supervisor then kills what is left of
the part's process group (PostgreSQL's backends), waits `backoff * 2**(deaths-1)` seconds
(at most `backoff_max`), and starts it again: the broker comes back empty and creates the
topics again; PostgreSQL runs crash recovery on the same data and port. A restart that
fails counts as one more death. The `limit`-th death within `window` seconds gives up:
`on_give_up(message)` gets the part, how it ended and the end of its log.

Parts that the caller stops, kills or restarts itself (the fault tests do) are left alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from huibao_stack.errors import StackError
from huibao_stack.processes import tail

log = structlog.get_logger("huibao.stack.supervisor")

POLL_SECONDS = 0.2
"""How often every part is checked (and reaped)."""


class Handle(Protocol):
    """What a supervised part offers: `ServiceProcess` and `OwnedServer` both do."""

    log_path: Path

    @property
    def pid(self) -> int | None: ...

    def running(self) -> bool: ...

    def died(self) -> str | None: ...

    async def start(self) -> None: ...

    async def kill(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Part:
    """One supervised process: `name` is the metric label (a service, `postgres` or
    `broker`), `label` names the process itself (`rollup-2` for a second replica)."""

    name: str
    label: str
    handle: Handle


class StackMetrics:
    """The launcher's own metrics, in a registry of their own (one per stack)."""

    def __init__(self, names: list[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.restarts = Counter(
            "huibao_stack_restarts",
            "Restarts by the launcher of a part that died (a service, postgres or broker).",
            ["part"],
            registry=self.registry,
        )
        self.running = Gauge(
            "huibao_stack_running_processes",
            "Processes of each part running now.",
            ["part"],
            registry=self.registry,
        )
        for name in names:
            self.restarts.labels(name)
            self.running.labels(name)


class Supervisor:
    """Watches `parts()` every `POLL_SECONDS` and restarts the ones that died."""

    def __init__(
        self,
        parts: Callable[[], list[Part]],
        metrics: StackMetrics,
        on_give_up: Callable[[str], Awaitable[None]],
        *,
        limit: int = 5,
        window: float = 60.0,
        backoff: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        self._parts = parts
        self._metrics = metrics
        self._on_give_up = on_give_up
        self.limit = limit
        self.window = window
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._deaths: dict[str, deque[float]] = defaultdict(deque)
        self._recovering: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Until cancelled: check every part, start recoveries, refresh the gauges."""
        try:
            while True:
                parts = self._parts()
                counts: dict[str, int] = defaultdict(int)
                for part in parts:
                    if part.handle.running():
                        counts[part.name] += 1
                    if part.label in self._recovering:
                        continue
                    how = part.handle.died()
                    if how is not None:
                        self._recovering[part.label] = asyncio.create_task(
                            self._recover(part, how), name=f"recover-{part.label}"
                        )
                for name in {p.name for p in parts}:
                    self._metrics.running.labels(name).set(counts[name])
                await asyncio.sleep(POLL_SECONDS)
        finally:
            tasks = list(self._recovering.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _recover(self, part: Part, how: str) -> None:
        try:
            await self._recover_loop(part, how)
        finally:
            self._recovering.pop(part.label, None)

    async def _recover_loop(self, part: Part, how: str) -> None:
        deaths = self._deaths[part.label]
        while True:
            pid = part.handle.pid
            await part.handle.kill()  # reaped already; this takes its process group too
            now = time.monotonic()
            deaths.append(now)
            while deaths and now - deaths[0] > self.window:
                deaths.popleft()
            if len(deaths) >= self.limit:
                message = (
                    f"{part.label} died {len(deaths)} times within {self.window:g}s "
                    f"(last: {how}); giving up and stopping the stack. "
                    f"Log {part.handle.log_path}:\n{tail(part.handle.log_path, 20)}"
                )
                log.error(
                    "part_given_up",
                    part=part.name,
                    process=part.label,
                    pid=pid,
                    how=how,
                    deaths=len(deaths),
                    window_seconds=self.window,
                    log=str(part.handle.log_path),
                )
                await self._on_give_up(message)
                return
            delay = min(self.backoff * 2 ** (len(deaths) - 1), self.backoff_max)
            log.warning(
                "part_died",
                part=part.name,
                process=part.label,
                pid=pid,
                how=how,
                deaths_in_window=len(deaths),
                restart_in_seconds=delay,
                log=str(part.handle.log_path),
            )
            await asyncio.sleep(delay)
            self._metrics.restarts.labels(part.name).inc()
            started = time.monotonic()
            try:
                await part.handle.start()
            except StackError as e:
                how = f"restart failed: {str(e).splitlines()[0]}"
                continue
            log.info(
                "part_restarted",
                part=part.name,
                process=part.label,
                pid=part.handle.pid,
                down_seconds=round(time.monotonic() - now, 2),
                start_seconds=round(time.monotonic() - started, 2),
            )
            return


async def serve_metrics(metrics: StackMetrics, port: int) -> asyncio.Server:
    """A tiny HTTP endpoint on 127.0.0.1:`port`: `GET /metrics` in Prometheus text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readline()
                while (await reader.readline()).strip():
                    pass  # headers
            parts = request.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                status, ctype, body = (
                    "200 OK",
                    CONTENT_TYPE_LATEST,
                    generate_latest(metrics.registry),
                )
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = (
                f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (OSError, TimeoutError, ValueError):  # a line over 64 KiB: ValueError
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)
