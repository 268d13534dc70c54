"""The ticker: every `interval` seconds, run the steps due at the clock's now.

Failures (PostgreSQL or the rollup unavailable) are logged and retried at the next tick;
the loop ends only when `stop` is set.
"""

from __future__ import annotations

import asyncio

from huibao_platform.errors import HuibaoError
from huibao_platform.logs import get_logger
from huibao_scheduler.service_layer.cycle_runner import CycleRunner

log = get_logger(__name__)


async def run_ticker(runner: CycleRunner, interval: float, stop: asyncio.Event) -> None:
    """Tick until `stop` is set."""
    while not stop.is_set():
        try:
            result = await runner.run_due()
            if result.transitions:
                log.info(
                    "tick",
                    now=result.now.isoformat(),
                    transitions=len(result.transitions),
                    pending=result.pending,
                )
        except HuibaoError as e:
            log.warning("tick_failed", error=str(e))
        try:
            async with asyncio.timeout(interval):
                await stop.wait()
        except TimeoutError:
            pass
