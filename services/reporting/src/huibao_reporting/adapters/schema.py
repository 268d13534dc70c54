"""Install the reporting schema, the outbox table and the auth tables, once per start."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from huibao_platform import auth, outbox
from huibao_platform.db import run_ddl
from huibao_reporting.adapters.storage import storage_errors

SCHEMA = "reporting"
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.sql"


def ddl() -> str:
    """Every statement of the reporting DDL, idempotent."""
    return "\n".join(
        (
            SCHEMA_FILE.read_text(encoding="utf-8"),
            outbox.DDL.format(schema=SCHEMA),
            auth.DDL,
        )
    )


async def install(pool: asyncpg.Pool) -> None:
    """Run the DDL under the database-wide schema lock shared by every service."""
    async with storage_errors():
        await run_ddl(pool, ddl())
