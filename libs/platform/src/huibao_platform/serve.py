"""Run a service's ASGI app under uvicorn: the console scripts call this."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from huibao_platform.settings import CommonSettings


def _drained(signum: int, frame: FrameType | None) -> None:
    """Nothing left to do: uvicorn has already drained when it re-raises the signal."""


def serve(app: FastAPI, settings: CommonSettings, graceful_seconds: int = 20) -> None:
    """Serve until SIGTERM or SIGINT; the app's lifespan drains its background work.

    On SIGTERM uvicorn stops accepting, finishes open requests (at most `graceful_seconds`),
    runs the lifespan's shutdown (the service drains its in-flight batch and commits), and
    then re-raises the signal with the handler installed before it. That handler is a no-op
    here, so a drained stop returns normally and the process exits 0, as Kubernetes and
    compose expect of a clean stop (the default handler would make it die "by SIGTERM").
    """
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
        lifespan="on",
    )
    signal.signal(signal.SIGTERM, _drained)
    uvicorn.Server(config).run()
