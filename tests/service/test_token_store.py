"""The token store on the embedded PostgreSQL: the scopes column keeps older tokens working,
and a revocation (even one made by hand in SQL) is seen within a second, also while the
listening connection is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from tests.support.waits import wait_until

from huibao_platform import auth
from huibao_platform.auth import TokenStore, hash_token
from huibao_platform.db import create_pool, run_ddl

pytestmark = [pytest.mark.stack]

OLD_DDL = """
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.tokens (
    token_hash text PRIMARY KEY,
    unit       text        NOT NULL,
    label      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
"""
"""The table as it was before scopes."""


@pytest_asyncio.fixture(loop_scope="session")
async def database(infra: Any) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    url = await infra.fresh_database("token_store")
    pool = await create_pool(url, max_size=4)
    try:
        yield url, pool
    finally:
        await pool.close()


async def refused_within(store: TokenStore, token: str, seconds: float) -> float:
    """Seconds until `store` refuses `token`; fails when it still accepts it after `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if await store.resolve(token) is None:
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    pytest.fail(f"the token is still accepted {seconds} s after its revocation")


async def test_tokens_made_before_scopes_keep_report_and_read(
    database: tuple[str, asyncpg.Pool],
) -> None:
    _, pool = database
    await pool.execute(OLD_DDL)
    await pool.execute(
        "INSERT INTO auth.tokens (token_hash, unit) VALUES ($1, 'old.unit')", hash_token("old")
    )
    await run_ddl(pool, auth.DDL)
    await run_ddl(pool, auth.DDL)  # idempotent, as every service runs it at start
    who = await TokenStore(pool, "admin").resolve("old")
    assert who is not None
    assert (who.unit, who.ordered_scopes()) == ("old.unit", ["report", "read"])
    made = await TokenStore(pool, "admin").create("new.unit", scopes=["approve"])
    who = await TokenStore(pool, "admin").resolve(made)
    assert who is not None
    assert who.ordered_scopes() == ["approve"]
    with pytest.raises(auth.InvalidScopeError, match="sudo"):
        await TokenStore(pool, "admin").create("new.unit", scopes=["read", "sudo"])


async def test_a_revocation_by_hand_is_seen_within_a_second_listener_up_or_down(
    database: tuple[str, asyncpg.Pool],
) -> None:
    url, pool = database
    await run_ddl(pool, auth.DDL)
    listening = TokenStore(pool, "admin", ttl=60)  # a long TTL: only the notification helps
    deaf = TokenStore(pool, "admin", ttl=60)  # never listens: the fallback TTL holds
    listening.start(url)
    try:
        await wait_until(lambda: listening.listening, timeout=10, message="listener up")
        for round_ in range(3):
            token = await listening.create(f"u.{round_}", scopes=["read"])
            for store in (listening, deaf):
                assert await store.resolve(token) is not None
                assert await store.resolve(token) is not None  # now from the cache
            if round_ == 1:  # the listening connection is cut: the store must not trust it
                killed = await pool.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND datname = current_database()",
                    auth.LISTENER_NAME,
                )
                assert killed == 1
            if round_ == 2:
                await pool.execute(
                    "DELETE FROM auth.tokens WHERE token_hash = $1", hash_token(token)
                )
            else:
                await pool.execute(
                    "UPDATE auth.tokens SET revoked_at = now() WHERE token_hash = $1",
                    hash_token(token),
                )
            assert await refused_within(listening, token, 1.0) < 1.0
            assert await refused_within(deaf, token, 1.0) < 1.0
            if round_ == 1:
                await wait_until(lambda: listening.listening, timeout=10, message="reconnected")
    finally:
        await listening.close()
    assert not listening.listening
