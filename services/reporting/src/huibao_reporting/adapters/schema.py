"""Install the reporting schema, the outbox table and the auth tables, once per start."""

from __future__ import annotations

import zlib
from pathlib import Path

import asyncpg

from huibao_platform import auth, outbox
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
    """Run the DDL serialised across replicas (same lock as `huibao_platform.db.apply_schema`)."""
    lock_id = zlib.crc32(f"huibao-schema-{SCHEMA}".encode())
    async with storage_errors(), pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_id)
        try:
            await conn.execute(ddl())
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)
