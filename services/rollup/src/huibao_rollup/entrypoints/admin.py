"""The `rebuild` and `verify` commands: aggregates recomputed from the stored facts."""

from __future__ import annotations

import sys

from huibao_rollup.adapters import pg_admin
from huibao_rollup.adapters.pg_admin import Difference, Progress
from huibao_rollup.adapters.postgres import Repository
from huibao_rollup.settings import RollupSettings


async def differences(
    settings: RollupSettings, progress: Progress | None = None
) -> list[Difference]:
    """Every live aggregate that differs from a rebuild from facts (`progress` per month)."""
    repo = Repository()
    await repo.connect(settings.database_url, 2, within=settings.database_connect_seconds)
    try:
        return await pg_admin.differences(repo.pool, progress or pg_admin.no_progress)
    finally:
        await repo.close()


async def rebuilt(settings: RollupSettings, progress: Progress | None = None) -> int:
    """Replace every aggregate with its rebuild from facts; the rows written."""
    repo = Repository()
    await repo.connect(settings.database_url, 2, within=settings.database_connect_seconds)
    try:
        return await pg_admin.rebuild(repo.pool, progress or pg_admin.no_progress)
    finally:
        await repo.close()


async def verify(settings: RollupSettings) -> int:
    """Print every live aggregate that differs from a rebuild; exit status 1 if any."""
    diffs = await differences(settings)
    for d in diffs:
        sys.stdout.write(f"{d.node}\t{d.period}\t{d.metric}\tlive={d.live}\trebuilt={d.rebuilt}\n")
    sys.stdout.write(f"{len(diffs)} difference(s)\n")
    return 1 if diffs else 0


async def rebuild(settings: RollupSettings) -> int:
    """Replace every aggregate with its rebuild from facts."""
    rows = await rebuilt(settings)
    sys.stdout.write(f"rebuilt {rows} aggregate row(s) from facts\n")
    return 0
