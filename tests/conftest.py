"""Session fixtures: the embedded infrastructure and the three services as processes.

- `infra`: PostgreSQL and the Tansu broker (throwaway), or the external services named by
  DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS. A `huibao_stack.infra.Infrastructure`:
  `database_url`, `bootstrap_servers`, `env()`, `await fresh_database(name)`, and
  `postgres` / `broker` (None when external) for restart tests.
- `stack`: `infra` plus reporting, rollup and scheduler as separate processes, the
  scheduler on a manual clock starting 2026-06-01T00:00:00+08:00. A
  `huibao_stack.stack.EmbeddedStack`: `urls`, `admin_token`, `infra`, `service(name)`.

Tests that use either are marked `@pytest.mark.stack`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from huibao_stack.infra import Infrastructure
from huibao_stack.stack import EmbeddedStack

CLOCK_START = "2026-06-01T00:00:00+08:00"
"""Where the scheduler's manual clock starts in the `stack` fixture."""


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def infra() -> AsyncIterator[Infrastructure]:
    """Embedded PostgreSQL and broker for the whole session, removed at its end."""
    run_dir = Path(tempfile.mkdtemp(prefix="huibao-test-"))
    infrastructure = Infrastructure(
        run_dir,
        database_url=os.environ.get("DATABASE_URL") or None,
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
    )
    try:
        await infrastructure.start()
        yield infrastructure
    finally:
        await infrastructure.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(infra: Infrastructure) -> AsyncIterator[EmbeddedStack]:
    """The three services as processes on `infra`; fails with a service's log tail."""
    services = EmbeddedStack(infra=infra, clock="manual", clock_start=CLOCK_START)
    try:
        await services.start()
        yield services
    finally:
        await services.stop()
