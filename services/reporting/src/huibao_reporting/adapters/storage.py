"""Translation of PostgreSQL driver errors at the adapter edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from huibao_platform.errors import StorageUnavailableError, UnstorableValueError


@asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """Turn connection failures and PostgreSQL errors into StorageUnavailableError, and a
    value PostgreSQL refuses (a data error: retrying cannot help) into UnstorableValueError."""
    try:
        yield
    except asyncpg.DataError as e:
        raise UnstorableValueError(f"PostgreSQL refused a value: {e}") from e
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
        raise StorageUnavailableError(f"PostgreSQL: {e}") from e
    except asyncpg.InternalClientError as e:  # a connection the server just ended (db.py)
        raise StorageUnavailableError(f"PostgreSQL: {e}") from e


Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection, bare or from the pool."""

Executor = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool
"""Anything that runs a query: a connection or the pool."""
