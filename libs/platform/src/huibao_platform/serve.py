"""Run a service's ASGI app under uvicorn: the console scripts call this."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from huibao_platform.settings import CommonSettings


def serve(app: FastAPI, settings: CommonSettings, graceful_seconds: int = 20) -> None:
    """Serve until SIGTERM or SIGINT; the app's lifespan drains its background work."""
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
        lifespan="on",
    )
    uvicorn.Server(config).run()
