"""The three Huibao services, each run as its own process: `python -m huibao_<name>`."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

from huibao_stack.errors import StartupError
from huibao_stack.processes import Child, tail

SERVICES: tuple[str, ...] = ("reporting", "rollup", "scheduler")
"""Every service, in start-up order."""

DEFAULT_PORTS: dict[str, int] = {"reporting": 8001, "rollup": 8002, "scheduler": 8003}
"""The fixed ports of `huibao up`; HUIBAO_<NAME>_PORT overrides each."""


class ServiceProcess:
    """One replica of one service: start it, wait for `/health/ready`, stop, kill, restart."""

    def __init__(
        self,
        name: str,
        *,
        port: int,
        env: Mapping[str, str],
        log_dir: Path,
        replica: int = 1,
        argv: Sequence[str] | None = None,
        ready_timeout: float = 90.0,
        grace: float = 15.0,
        echo: IO[str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.replica = replica
        self.ready_timeout = ready_timeout
        self.grace = grace
        label = name if replica == 1 else f"{name}-{replica}"
        self.label = label
        self.log_path = log_dir / f"{label}.log"
        full_env = {
            **env,
            "HUIBAO_HTTP_HOST": "127.0.0.1",
            "HUIBAO_HTTP_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
        self.env = full_env
        self._child = Child(
            label,
            list(argv) if argv else [sys.executable, "-m", f"huibao_{name}"],
            log_path=self.log_path,
            env=full_env,
            echo=echo,
        )
        self._starting = False

    @property
    def url(self) -> str:
        """The base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._child.pid

    def running(self) -> bool:
        """True while the process runs."""
        return self._child.running()

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log file."""
        return tail(self.log_path, lines)

    def died(self) -> str | None:
        """How the process ended (`exit code 3`, `signal SIGKILL`) when it exited on its
        own after starting; None while it runs or starts, and after `stop` or `kill`."""
        return None if self._starting else self._child.died()

    async def start(self) -> None:
        """Start the process and wait until `/health/ready` answers 200."""
        self._starting = True
        try:
            self._child.start()
            try:
                await self.wait_ready()
            except BaseException:
                await self.kill()
                raise
        finally:
            self._starting = False

    async def wait_ready(self) -> None:
        """Poll `/health/ready` until 200; raise `StartupError` with the log tail otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        last = "no answer yet"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while loop.time() < deadline:
                if not self._child.running():
                    code = self._child.returncode()
                    why = startup_reason(self.log_tail(200))
                    raise StartupError(
                        f"service {self.label} exited while starting (exit {code})"
                        + (f": {why}" if why else "")
                        + f"; log {self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    r = await client.get(f"{self.url}/health/ready")
                except httpx.HTTPError as e:
                    last = f"{type(e).__name__}: {e}"
                else:
                    if r.status_code == 200:
                        return
                    last = f"{r.status_code} {r.text[:300]}"
                await asyncio.sleep(0.2)
        raise StartupError(
            f"service {self.label} was not ready on {self.url} within {self.ready_timeout:.0f}s "
            f"(last: {last}); log {self.log_path}:\n{self.log_tail()}"
        )

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM (the service drains its work), then SIGKILL after the grace period."""
        await asyncio.to_thread(
            self._child.stop, signal.SIGTERM, self.grace if grace is None else grace
        )

    async def kill(self) -> None:
        """SIGKILL: a crash, with nothing drained."""
        await asyncio.to_thread(self._child.kill)

    async def restart(self, *, crash: bool = False) -> None:
        """Stop (or kill, with `crash`) and start again on the same port."""
        await (self.kill() if crash else self.stop())
        await self.start()


def startup_reason(log_text: str) -> str | None:
    """The reason a service gave for not starting: its last `startup_failed` log line."""
    for line in reversed(log_text.splitlines()):
        if "startup_failed" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return line.strip()  # a console-format line: show it as it is
        if isinstance(record, dict) and record.get("event.action") == "startup_failed":
            return str(record.get("huibao.reason", ""))  # ECS lines (huibao_platform.logs)
    return None
