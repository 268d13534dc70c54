"""Run a service's ASGI app under uvicorn: the console scripts call this."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from huibao_platform.settings import CommonSettings


def _drained(signum: int, frame: FrameType | None) -> None:
    """Nothing left to do: uvicorn has already drained when it re-raises the signal."""


def tune_gc(app: FastAPI, threshold: int) -> None:
    """Make CPython's cyclic garbage collector cheap for a long-running service.

    The collector runs after every `threshold` net container allocations (700 by default)
    and now and then walks every object the process holds: with the rollup's tree or the
    intake's caches that is millions of objects, and profiling the intake showed a third of
    its CPU going there. A higher threshold runs young collections less often, and once
    the app has started (schema, pools, tree loaded) everything alive is frozen, so full
    collections stop re-walking it. `threshold` 0 keeps CPython's defaults.
    """
    if threshold <= 0:
        return
    gc.set_threshold(threshold, 20, 20)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with inner(a):
            gc.collect()
            gc.freeze()
            yield

    app.router.lifespan_context = lifespan


def refuse_unsafe_exposure(settings: CommonSettings) -> None:
    """Exit (status 2, one line naming the setting) when the service would be reachable
    beyond loopback without an admin token of its own; warn when it runs with none."""
    problem = settings.exposure_problem()
    if problem:
        sys.stderr.write(f"huibao: {problem}\n")
        sys.stderr.flush()
        raise SystemExit(2)
    if not settings.admin_token:
        logging.getLogger("huibao.serve").warning(
            "HUIBAO_ADMIN_TOKEN is not set: there is no admin token, only tokens minted into "
            "the database (`huibao token create`) are accepted"
        )


def serve(app: FastAPI, settings: CommonSettings, graceful_seconds: int = 20) -> None:
    """Serve until SIGTERM or SIGINT; the app's lifespan drains its background work.

    On SIGTERM uvicorn stops accepting, finishes open requests (at most `graceful_seconds`),
    runs the lifespan's shutdown (the service drains its in-flight batch and commits), and
    then re-raises the signal with the handler installed before it. That handler is a no-op
    here, so a drained stop returns normally and the process exits 0, as Kubernetes and
    compose expect of a clean stop (the default handler would make it die "by SIGTERM").
    """
    refuse_unsafe_exposure(settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
        lifespan="on",
    )
    tune_gc(app, settings.gc_threshold)
    signal.signal(signal.SIGTERM, _drained)
    uvicorn.Server(config).run()
