"""Walks a tree one parent at a time, several parents at once, depth first.

The per-unit steps visit every non-branch unit once: the visit reads that parent's children
listings, issues what they complete and answers the children to visit next. A few workers
share one stack (last in, first out), so the walk goes deep before it goes wide and holds
only the pending siblings along the paths in progress, never the tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def walk(
    start: Sequence[T], visit: Callable[[T], Awaitable[Sequence[T]]], workers: int
) -> None:
    """Visit `start` and everything the visits answer, `workers` at a time.

    Returns once every visit has returned; the first visit that raises cancels the others
    and its error propagates.
    """
    stack: asyncio.LifoQueue[T] = asyncio.LifoQueue()
    for item in reversed(start):
        stack.put_nowait(item)

    async def work() -> None:
        while True:
            item = await stack.get()
            try:
                for nxt in reversed(await visit(item)):
                    stack.put_nowait(nxt)
            finally:
                stack.task_done()

    tasks = [asyncio.create_task(work()) for _ in range(max(workers, 1))]
    finished = asyncio.create_task(stack.join())
    try:
        await asyncio.wait([finished, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                task.result()  # a worker only ends by raising: re-raise its error
    finally:
        for task in [finished, *tasks]:
            task.cancel()
        await asyncio.gather(finished, *tasks, return_exceptions=True)
