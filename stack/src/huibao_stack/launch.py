"""Running a stack in the foreground: start it, run something, stop it on any way out.

`huibao up` and `huibao demo` use `run_stack`; so can any script that must leave nothing
behind, whether it ends normally, fails, or gets SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from huibao_stack.processes import kill_all
from huibao_stack.stack import EmbeddedStack


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


async def _run_body(stack: EmbeddedStack, body: Callable[[EmbeddedStack], Awaitable[int]]) -> int:
    """`body(stack)`, unless the supervisor gives up on a part first: then exit status 1."""
    work = asyncio.ensure_future(body(stack))
    failed = asyncio.ensure_future(stack.wait_failed())
    try:
        await asyncio.wait({work, failed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, failed):
            if not task.done():
                task.cancel()
        await asyncio.gather(work, failed, return_exceptions=True)
    if work.cancelled():  # the supervisor gave up first
        _say(f"huibao: {failed.result()}")
        return 1
    return work.result()


async def run_stack(stack: EmbeddedStack, body: Callable[[EmbeddedStack], Awaitable[int]]) -> int:
    """Start `stack`, run `body(stack)`, then stop everything; return `body`'s exit status.

    The first SIGINT or SIGTERM cancels start-up or `body` and stops the stack in order
    (exit status 130 for SIGINT, 0 for SIGTERM); a second one kills every child at once.
    A supervised stack whose supervisor gives up on a part (it kept dying) ends `body` too:
    the reason goes to stderr and the exit status is 1.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:  # pragma: no cover (always inside a task under asyncio.run)
        raise RuntimeError("run_stack must run inside a task")
    interrupted: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        interrupted.append(sig.name)
        if len(interrupted) == 1:
            _say(f"\n{sig.name}: stopping everything…")
            task.cancel()
        else:
            _say(f"{sig.name} again: killing everything now.")
            kill_all()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        try:
            await stack.start()
            return await _run_body(stack, body)
        except asyncio.CancelledError:
            if not interrupted:
                raise
            task.uncancel()
            return 130 if interrupted[0] == "SIGINT" else 0
        finally:
            await stack.stop()
            _say("huibao: stopped.")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
