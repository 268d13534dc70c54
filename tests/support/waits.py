"""Waiting for something that happens asynchronously (a rollup catching up, a restart).

The one wait-until of the tests and the benchmarks (bench/ imports it from here).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """What was waited for did not hold in time (an AssertionError, so pytest reports it as
    a failed expectation; the benchmarks catch it by this name)."""


# fn may answer None ("not yet"); what wait_until returns is truthy, so never None
@overload
async def wait_until(
    fn: Callable[[], Awaitable[T | None]],
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def wait_until(
    fn: Callable[[], T | None],
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def wait_until(
    fn: Callable[[], Any],
    timeout: float = 20,  # noqa: ASYNC109 (a polling deadline, not a cancel scope)
    interval: float = 0.1,
    message: str = "",
) -> Any:
    """Call `fn` (sync or async) until it returns something truthy, and return that.

    An exception from `fn` (a failed assert, a refused connection) counts as "not yet".
    After `timeout` seconds an AssertionError says what `fn` last returned or raised.
    """
    deadline = time.monotonic() + timeout
    attempts = 0
    last: Any = None
    last_error: BaseException | None = None
    while True:
        attempts += 1
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
        except Exception as e:  # noqa: BLE001 (any failure of the probe means "not yet")
            last_error, last = e, None
        else:
            if result:
                return result
            last_error, last = None, result
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    name = getattr(fn, "__qualname__", repr(fn))
    what = f"raised {last_error!r}" if last_error is not None else f"returned {last!r}"
    raise WaitTimeoutError(
        f"{message or name} did not hold within {timeout}s ({attempts} attempts); last call {what}"
    ) from last_error
