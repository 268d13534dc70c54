"""PostgreSQL: a connection pool and idempotent schema set-up, per service schema."""

from __future__ import annotations

import asyncio
import urllib.parse
import zlib
from pathlib import Path

import asyncpg
import orjson

from huibao_platform.errors import StorageUnavailableError
from huibao_platform.logs import get_logger

log = get_logger(__name__)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so that COPY (binary only: the outbox's `enqueue`) takes dicts too.
    # jsonb's binary form is a version byte (1) followed by the JSON text.
    await conn.set_type_codec(
        "json", encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: b"\x01" + orjson.dumps(v),
        decoder=lambda b: orjson.loads(b[1:]),
        schema="pg_catalog",
        format="binary",
    )


def redact_url(url: str) -> str:
    """`url` with any password (in the user part or a `password=` parameter) replaced by
    `***`, fit for logs, error messages and banners."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL (a bad port, ...): show none of it
        return "(an unparsable URL)"
    if password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if parts.query:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        masked = [(k, "***" if k.lower() == "password" else v) for k, v in pairs]
        parts = parts._replace(query=urllib.parse.urlencode(masked, safe="*"))
    return urllib.parse.urlunsplit(parts)


def _secrets_of(url: str) -> list[str]:
    """The passwords a URL carries (user part and `password=` parameters), decoded and not."""
    try:
        parts = urllib.parse.urlsplit(url)
        found = [parts.password] if parts.password else []
        found += [v for k, v in urllib.parse.parse_qsl(parts.query) if k.lower() == "password"]
    except ValueError:
        return []
    found += [urllib.parse.unquote(s) for s in found]
    return [s for s in found if s]


TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,  # refused, reset, aborted: PostgreSQL is away or restarting
    TimeoutError,
    asyncpg.InterfaceError,  # the connection closed under the operation, or is cancelling
    # The protocol left mid-state by a server that went away: PostgreSQL ending a backend
    # (a restart, pg_terminate_backend) sends a FATAL ErrorResponse and then closes the
    # socket; an idle pooled connection that has read the error but not yet the close
    # answers its next query "cannot switch to state 12; another operation (2) is in
    # progress". The pool drops the connection when it is released.
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
)
"""Driver errors that say PostgreSQL is (for now) unreachable rather than that the request
is wrong: the HTTP side answers them 503 with Retry-After, never 500."""


FATAL_CONNECT_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,  # auth failed, no such role, pg_hba
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.InvalidPasswordError,
)
"""Connection refusals that waiting cannot cure: reported at once, never retried."""


def connect_failure(url: str, e: BaseException) -> str:
    """One line saying why PostgreSQL at `url` refused or did not answer (password masked)."""
    reason = str(e).strip() or type(e).__name__
    for secret in _secrets_of(url):  # a driver message that echoes the URL shows none
        reason = reason.replace(secret, "***")
    if isinstance(e, TimeoutError):
        reason = "no answer (timed out)"
    elif isinstance(e, OSError):
        reason = f"connection refused or unreachable ({reason})"
    return f"cannot connect to PostgreSQL at {redact_url(url)}: {reason}"


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    attempts: int = 30,
    within: float | None = None,
) -> asyncpg.Pool:
    """Connect, retrying for a while so services may start before PostgreSQL is up.

    It gives up after `attempts` tries or `within` seconds, whichever comes first, and at
    once when PostgreSQL refuses the credentials or the database (waiting cannot help);
    the `StorageUnavailableError` says why, with host, port and database (no password).
    """
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                command_timeout=60,
                timeout=max(1.0, min(10.0, within or 10.0)),
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, ValueError) as e:
            why = connect_failure(url, e)
            late = deadline is not None and loop.time() + delay >= deadline
            if attempt == attempts or late or isinstance(e, (*FATAL_CONNECT_ERRORS, ValueError)):
                raise StorageUnavailableError(why) from e
            log.warning("postgres_connect_retry", attempt=attempt, error=why)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)
        else:
            return pool
    raise StorageUnavailableError("unreachable")  # pragma: no cover


SCHEMA_LOCK_ID = zlib.crc32(b"huibao-schema")
"""One advisory lock for every service's DDL: services sharing a database (and the `auth`
schema) never run `CREATE ... IF NOT EXISTS` side by side, which PostgreSQL does not make safe."""


async def run_ddl(pool: asyncpg.Pool, sql: str) -> None:
    """Run idempotent DDL, serialised across every service and replica of the database."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK_ID)
        try:
            await conn.execute(sql)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK_ID)


async def apply_schema(pool: asyncpg.Pool, name: str, sql_file: Path) -> None:
    """Run a service's idempotent DDL file (`name` is for the reader and the log)."""
    await run_ddl(pool, await asyncio.to_thread(sql_file.read_text, encoding="utf-8"))
    log.debug("schema_applied", schema=name)


async def ping(pool: asyncpg.Pool) -> bool:
    """True when PostgreSQL answers a trivial query within a second."""
    try:
        async with asyncio.timeout(1.0):
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
