"""The answer cache: kept while the data version stands, rebuilt when it moves, bypassed
while the tree changes or the version is unknown, and one build for concurrent askers."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from huibao_rollup.service_layer import answers as answers_module
from huibao_rollup.service_layer.answers import AnswerCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self) -> None:
        self.clock = Clock()
        self.db_version = 1
        self.generation = 0
        self.builds = 0
        self.cache = AnswerCache(lambda: self.generation, self.read, self.clock)

    async def read(self) -> object:
        return self.db_version

    async def build(self) -> dict[str, Any]:
        self.builds += 1
        await asyncio.sleep(0)
        return {"n": self.builds}

    async def ask(self, key: tuple[Any, ...] = ("summary", "c", "2026-07")) -> int:
        body = await self.cache.get(key, self.build)
        n: int = orjson.loads(body)["n"]
        return n

    async def polled(self) -> None:
        """One round of the poller, as if it had just answered."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.cache.poll(stop))
        await asyncio.sleep(0.001)
        stop.set()
        await task


async def test_kept_while_the_version_stands_and_rebuilt_when_it_moves() -> None:
    h = Harness()
    assert await h.ask() == 1  # nothing polled yet: built, not kept
    await h.polled()
    assert await h.ask() == 2
    assert await h.ask() == 2  # kept
    assert await h.ask(("summary", "c", "2026-08")) == 3  # another key
    h.db_version = 2  # a batch committed somewhere
    await h.polled()
    assert await h.ask() == 4
    h.generation += 1  # the tree changed in this process
    assert await h.ask() == 5
    assert h.cache.hits == 1


async def test_bypassed_while_the_tree_changes_and_stale_after_it() -> None:
    h = Harness()
    await h.polled()
    assert await h.ask() == 1
    h.cache.tree_changing()
    assert await h.ask() == 2
    assert await h.ask() == 3  # nothing kept meanwhile
    h.cache.tree_changed()
    assert await h.ask() == 4
    assert await h.ask() == 4


async def test_not_served_when_the_poller_fell_silent_or_too_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    await h.polled()
    assert await h.ask() == 1
    h.clock.now += answers_module.SILENT_SECONDS + 0.001  # no poll since
    assert await h.ask() == 2
    monkeypatch.setattr(answers_module, "MAX_AGE_SECONDS", 0.0)
    await h.polled()
    assert await h.ask() == 3
    h.clock.now += 0.001
    assert await h.ask() == 4  # older than the maximum age


async def test_concurrent_askers_share_one_build_and_its_errors() -> None:
    h = Harness()
    await h.polled()
    got = await asyncio.gather(*(h.ask() for _ in range(5)))
    assert got == [1] * 5
    assert h.builds == 1

    async def failing() -> dict[str, Any]:
        await asyncio.sleep(0)
        raise LookupError("no such node")

    results = await asyncio.gather(
        *(h.cache.get(("x",), failing) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert await h.cache.get(("x",), h.build)  # an error is never kept


async def test_the_oldest_answers_go_first_past_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers_module, "MAX_ANSWERS", 2)
    h = Harness()
    await h.polled()
    assert [await h.ask((k,)) for k in "abc"] == [1, 2, 3]
    assert await h.ask(("c",)) == 3
    assert await h.ask(("a",)) == 4  # dropped as the oldest
