"""The `rebuild` and `verify` commands: aggregates recomputed from the stored facts."""

from __future__ import annotations

import sys

from huibao_rollup.adapters import pg_admin
from huibao_rollup.adapters.postgres import Repository
from huibao_rollup.settings import RollupSettings


async def verify(settings: RollupSettings) -> int:
    """Print every live aggregate that differs from a rebuild; exit status 1 if any."""
    repo = Repository()
    await repo.connect(settings.database_url, 2)
    try:
        diffs = await pg_admin.differences(repo.pool)
    finally:
        await repo.close()
    for d in diffs:
        sys.stdout.write(f"{d.node}\t{d.period}\t{d.metric}\tlive={d.live}\trebuilt={d.rebuilt}\n")
    sys.stdout.write(f"{len(diffs)} difference(s)\n")
    return 1 if diffs else 0


async def rebuild(settings: RollupSettings) -> int:
    """Replace every aggregate with its rebuild from facts."""
    repo = Repository()
    await repo.connect(settings.database_url, 2)
    try:
        rows = await pg_admin.rebuild(repo.pool)
    finally:
        await repo.close()
    sys.stdout.write(f"rebuilt {rows} aggregate row(s) from facts\n")
    return 0
