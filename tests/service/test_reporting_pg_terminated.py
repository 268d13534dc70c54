"""PostgreSQL ending the intake's connections is a 503 with Retry-After, never a 500.

The chaos run's one `500` (docs/faults.md) was asyncpg's `InternalClientError: cannot
switch to state 12; another operation (2) is in progress`. It is not two coroutines on one
connection: PostgreSQL ending a backend (its restart, `pg_terminate_backend`) sends a FATAL
ErrorResponse, then closes the socket. An idle pooled connection that has read the error
but not yet the close is left in the protocol's error-consuming state (2), and its next
query fails so. The same line shows in the scheduler's token listener, whose connection
only one coroutine ever uses.

To make the window between the error and the close as wide as the test needs, reporting
reaches PostgreSQL (the embedded one) through a TCP relay that passes every byte at once
but holds a closing server side's EOF for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from tests.service.reporting_support import ADMIN, reporting_settings
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_reporting.bootstrap import build_adapters, build_app
from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack]

PD = "huibao.party_day.held.v1"
HOLD = 6.0
"""Seconds the relay keeps a connection open after PostgreSQL closed its side."""


@contextlib.asynccontextmanager
async def eof_holding_relay(host: str, port: int) -> AsyncIterator[int]:
    """A local port relaying to `host:port`; the server's EOF reaches the client HOLD s late."""
    tasks: set[asyncio.Task[None]] = set()

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, hold: float) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            await asyncio.sleep(hold)
        except OSError:
            pass
        finally:
            dst.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        for t in (pump(reader, up_writer, 0.0), pump(up_reader, writer, HOLD)):
            task = asyncio.create_task(t)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def terminate_backends(url: str) -> None:
    """End every other backend of `url`'s database and wait until they are gone."""
    conn = await asyncpg.connect(url)
    try:
        ended = await conn.fetch(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert ended, "reporting held no connection to end"
        pids = [r["pid"] for r in ended]

        async def gone() -> bool:
            left = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
            )
            return bool(left == 0)

        await wait_until(gone, 10, 0.05, "the backends ended")
    finally:
        await conn.close()
    await asyncio.sleep(0.3)  # the FATAL error reaches reporting; the close is held back


async def test_a_connection_postgres_ended_answers_503_with_retry_after(
    infra: Infrastructure,
) -> None:
    p = f"pt{uuid.uuid4().hex[:6]}"
    direct = await infra.fresh_database(f"reporting_{p}")
    parts = urllib.parse.urlsplit(direct)
    assert parts.hostname is not None
    assert parts.port is not None
    async with eof_holding_relay(parts.hostname, parts.port) as port:
        host = parts.netloc.rsplit("@", 1)
        netloc = f"{host[0]}@127.0.0.1:{port}" if len(host) == 2 else f"127.0.0.1:{port}"
        relayed = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        # no Kafka side (no relay holding a connection): only the requests use the pool,
        # one at a time, so the connection PostgreSQL ends is the one the next one gets
        settings = reporting_settings(infra, relayed).model_copy(
            update={"kafka_bootstrap_servers": "127.0.0.1:9", "kafka_intake": False}
        )
        units = build_city(p, counties=1, townships_per_county=1, branches_per_township=2)
        branch = next(u["id"] for u in units if u["level"] == "branch")
        data = {"activity_id": f"{p}-1", "date": "2026-07-26", "members": 30, "attendees": 10}
        event = cloudevent(PD, branch, data, id=f"{p}-1")
        async with build_adapters(settings) as adapters:
            app = build_app(settings, adapters)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                    base_url="http://reporting",
                    headers={"Authorization": f"Bearer {ADMIN}"},
                ) as client,
            ):
                assert (await client.put("/v1/orgunits", json=units)).status_code == 200
                token = await adapters.tokens.create(p, "terminated", ["report"])

                # the intake's own storage: the registry version read, then the batch
                await terminate_backends(direct)
                r = await client.post("/v1/events", json=event)
                assert r.status_code == 503, r.text
                assert r.headers["Retry-After"] == "1"
                assert r.json()["errors"][0]["reason"] == "unavailable"

                # a token looked up on such a connection (the auth dependency, before
                # any adapter)
                await terminate_backends(direct)
                r = await client.post(
                    "/v1/events", json=event, headers={"Authorization": f"Bearer {token}"}
                )
                assert r.status_code == 503, r.text
                assert r.headers["Retry-After"] == "1"

                # the pool dropped the broken connections: the retry is taken in, and the
                # 503s had stored nothing (accepted, not a duplicate)
                r = await client.post("/v1/events", json=event)
                assert r.status_code == 202, r.text
                assert r.json()["results"][0]["status"] == "accepted"
