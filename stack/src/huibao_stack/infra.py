"""PostgreSQL and the Kafka broker: embedded children, or external services when configured."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncpg

from huibao_stack.broker import EmbeddedBroker, broker_binary, create_topics, wait_for_broker
from huibao_stack.postgres import EmbeddedPostgres, binaries

log = logging.getLogger("huibao.stack")


def replace_database(url: str, database: str) -> str:
    """`url` with its database name replaced by `database`."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


async def run_together(*steps: Coroutine[Any, Any, None]) -> None:
    """Run `steps` concurrently; on the first failure cancel the others and raise that failure."""
    try:
        async with asyncio.TaskGroup() as group:
            for step in steps:
                group.create_task(step)
    except BaseExceptionGroup as eg:
        first = eg.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


class Infrastructure:
    """The storage and messaging the services need.

    `database_url` / `bootstrap_servers` given: those external services are used (the topics
    are still created). Not given: an embedded PostgreSQL and an embedded Tansu broker run as
    children, their files under `run_dir`. `persistent` keeps PostgreSQL's data with fsync on.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        persistent: bool = False,
        database_url: str | None = None,
        bootstrap_servers: str | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.persistent = persistent
        self._external_db = database_url
        self._external_kafka = bootstrap_servers
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None

    @property
    def database_url(self) -> str:
        """DATABASE_URL for the services."""
        if self._external_db:
            return self._external_db
        if self.postgres is None:
            raise RuntimeError("the infrastructure is not started")
        return self.postgres.database_url

    @property
    def bootstrap_servers(self) -> str:
        """KAFKA_BOOTSTRAP_SERVERS for the services."""
        if self._external_kafka:
            return self._external_kafka
        if self.broker is None:
            raise RuntimeError("the infrastructure is not started")
        return self.broker.bootstrap_servers

    def env(self) -> dict[str, str]:
        """DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS, ready to merge into a child's environment."""
        return {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
        }

    def pids(self) -> list[int]:
        """Pids of the embedded children that run now."""
        parts = (self.postgres, self.broker)
        return [p.pid for p in parts if p is not None and p.running() and p.pid is not None]

    async def start(self) -> None:
        """Start what is embedded (PostgreSQL and the broker side by side) and create topics.

        On any failure whatever was started is stopped again before the error propagates.
        """
        # Fail with the plain "not available here" message before anything is started.
        if not self._external_db:
            binaries()
        if not self._external_kafka:
            broker_binary()
        logs = self.run_dir / "logs"
        if not self._external_db:  # throwaway: its own temporary directory, removed at stop
            self.postgres = EmbeddedPostgres(
                self.run_dir / "postgres" if self.persistent else None,
                log_path=logs / "postgres.log",
                fsync=self.persistent,
            )
        if not self._external_kafka:
            self.broker = EmbeddedBroker(log_path=logs / "broker.log")
        try:
            await run_together(self._start_db(), self._start_kafka())
        except BaseException:
            await self.stop()
            raise

    async def _start_db(self) -> None:
        if self.postgres is not None:
            await self.postgres.start()

    async def _start_kafka(self) -> None:
        if self.broker is not None:
            await self.broker.start()
        else:
            await wait_for_broker(self.bootstrap_servers)
            await create_topics(self.bootstrap_servers)

    async def create_topics(self, prefix: str | None = None) -> None:
        """Create the Huibao topics under `prefix` (None: HUIBAO_TOPIC_PREFIX) before the
        services that use it start; an embedded broker creates them again after a restart."""
        if self.broker is not None:
            self.broker.topic_prefixes.add(prefix)
            await create_topics(self.bootstrap_servers, plaintext=True, prefix=prefix)
        else:
            await create_topics(self.bootstrap_servers, prefix=prefix)

    async def stop(self) -> None:
        """Stop the embedded broker, then the embedded PostgreSQL (a throwaway one's data is
        removed)."""
        if self.broker is not None:
            await self.broker.stop()
        if self.postgres is not None:
            await self.postgres.close()

    async def fresh_database(self, name: str) -> str:
        """Create an empty database `name` (dropping one of that name first); return its URL.

        Embedded: created by the superuser, owned by the services' role. External: created
        with DATABASE_URL's own user, which must be allowed to.
        """
        if self.postgres is not None:
            return await self.postgres.fresh_database(name)
        conn = await asyncpg.connect(replace_database(self.database_url, "postgres"), timeout=10)
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {quoted}")
        finally:
            await conn.close()
        return replace_database(self.database_url, name)
