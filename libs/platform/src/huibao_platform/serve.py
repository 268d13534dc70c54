"""Run a service's ASGI app under uvicorn: the console scripts call this."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator
from importlib import metadata
from types import FrameType

import uvicorn
from fastapi import FastAPI

from huibao_platform import tracing
from huibao_platform.errors import StartupRefusedError, StorageUnavailableError
from huibao_platform.logs import get_logger
from huibao_platform.settings import CommonSettings

STARTUP_FAILURES = (StartupRefusedError, StorageUnavailableError)
"""Start-up failures told in one log line (`startup_failed`, with the reason) and exit 3."""


def package_version(distribution: str) -> str:
    """The installed version of `distribution` (e.g. `huibao-reporting`), or `unknown`."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def service_arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of a service binary: `--help` and `--version` answer without
    reading settings or touching PostgreSQL or Kafka; the service is configured by its
    environment (HUIBAO_*, DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS; see the README)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Configured by environment variables only (DATABASE_URL, "
        "KAFKA_BOOTSTRAP_SERVERS, HUIBAO_*): see the README's configuration section.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version(prog)}")
    return parser


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


class _QuietTraceback(logging.Filter):
    """Drops uvicorn's traceback of a start-up failure already told in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.told = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.told and "Traceback" in record.getMessage())


def tell_startup_failure(app: FastAPI) -> None:
    """Make a start-up that fails for a known reason (PostgreSQL unreachable or refusing,
    topics missing) log one `startup_failed` line with the reason, without the traceback
    uvicorn would print; the process still exits 3 (uvicorn's start-up failure)."""
    inner = app.router.lifespan_context
    quiet = _QuietTraceback()
    logging.getLogger("uvicorn.error").addFilter(quiet)

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        started = False
        try:
            async with inner(a):
                started = True
                yield
        except STARTUP_FAILURES as e:
            if started:
                raise
            quiet.told = True
            get_logger("huibao.serve").error("startup_failed", reason=str(e))
            raise

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
    tell_startup_failure(app)
    signal.signal(signal.SIGTERM, _drained)
    service = app.title.lower().replace(" ", "-")  # "Huibao rollup" -> huibao-rollup
    tracing.configure(settings, service, package_version(service))
    try:
        uvicorn.Server(config).run()
    finally:
        tracing.shutdown()  # flushes the spans still queued
