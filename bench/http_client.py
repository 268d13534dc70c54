"""The connections of the open-loop load generator (bench/http_load.py): a few keep-alive
HTTP/1.1 connections, one request at a time each, and a backlog of the requests that
found none idle. Each connection is an `asyncio.Protocol` whose answers httptools (llhttp,
the parser uvicorn serves with) parses as bytes arrive: no streams, tasks or timers per
request, so the client costs little of the CPU it shares with the server it measures.

A request whose kept-alive connection closes before any byte of its answer arrived (the
server's idle timeout meeting it) is sent again; any other broken connection, a timeout,
an unparsable answer, or one that is ended by closing the connection (no length, not
chunked) counts as an error.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import httptools

from bench.query_mix import PathSpec


def label_of(path: str) -> str:
    """The default label of a path: its last segment without the query string."""
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "/"


@dataclass
class Stats:
    """What the answers came to: latencies (ms) by label, statuses, errors, body bytes."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    timeouts: int = 0
    error_samples: list[str] = field(default_factory=list)
    body_bytes: int = 0

    def error(self, what: str) -> None:
        """Count an error; keep the first few."""
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


Item = tuple[float, str, bytes, bool]
"""(scheduled instant, label, raw request, recorded) of one request."""


class Load:
    """The shared state: a backlog of late requests and the connections that serve it."""

    def __init__(self, host: str, port: int, stats: Stats, timeout: float) -> None:
        self.host, self.port = host, port
        self.stats = stats
        self.timeout = timeout
        self.backlog: deque[Item] = deque()
        self.idle: deque[Connection] = deque()
        self.conns: list[Connection] = []
        self.outstanding = 0
        self.retries = 0

    def submit(self, item: Item) -> None:
        """Send now on an idle connection, else queue (the wait counts in the latency)."""
        self.outstanding += 1
        self._dispatch(item, first=False)

    def retry(self, item: Item) -> None:
        """Send `item` again, before any waiting one: its connection closed unanswered."""
        self.retries += 1
        self._dispatch(item, first=True)

    def _dispatch(self, item: Item, first: bool) -> None:
        while self.idle:
            conn = self.idle.popleft()
            conn.parked = False
            if conn.transport is not None and conn.current is None:
                conn.send(item)
                return
        if first:
            self.backlog.appendleft(item)
        else:
            self.backlog.append(item)

    def free(self, conn: Connection) -> None:
        """`conn` is ready: give it the oldest waiting request, or park it (once)."""
        if self.backlog:
            conn.send(self.backlog.popleft())
        elif not conn.parked:
            conn.parked = True
            self.idle.append(conn)

    def done(self, item: Item, status: int | None, size: int, error: str | None) -> None:
        """`item` was answered with `status` (None: failed with `error`)."""
        self.outstanding -= 1
        due, label, _, recorded = item
        if not recorded:
            return
        stats = self.stats
        if status is None:
            if error == "timeout":
                stats.timeouts += 1
            stats.error(error or "error")
            return
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            stats.latencies.setdefault(label, []).append((time.perf_counter() - due) * 1000)
            stats.body_bytes += size
        else:
            stats.error(f"status {status} on {label}")

    async def open(self, count: int) -> None:
        """Connect `count` connections and park them idle."""
        loop = asyncio.get_running_loop()
        for _ in range(count):
            conn = Connection(self)
            await loop.create_connection(conn.itself, self.host, self.port)
            self.conns.append(conn)
            self.free(conn)

    def reopen(self, conn: Connection) -> None:
        """Connect `conn` again in the background (the server closed it or it failed)."""

        async def again() -> None:
            loop = asyncio.get_running_loop()
            try:
                await loop.create_connection(conn.itself, self.host, self.port)
            except OSError as e:
                self.stats.error(f"connect: {e}")
                await asyncio.sleep(0.1)
                self.reopen(conn)
                return
            self.free(conn)

        conn.reconnecting = asyncio.ensure_future(again())

    def expire(self, now: float) -> None:
        """Abort connections whose request has waited longer than the timeout."""
        for conn in self.conns:
            if conn.current is not None and now - conn.sent_at > self.timeout:
                conn.fail("timeout")

    def close(self) -> None:
        """Close every connection and stop reconnecting."""
        for conn in self.conns:
            conn.closing = True
            if conn.reconnecting is not None:
                conn.reconnecting.cancel()
            if conn.transport is not None:
                conn.transport.close()


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time; httptools parses the
    answer as bytes arrive and calls the `on_*` methods."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.current: Item | None = None
        self.sent_at = 0.0
        self.closing = False
        self.parked = False
        self.reconnecting: asyncio.Future[None] | None = None
        self._size = 0
        self._complete = 0
        self._status = 0
        self._keep = True
        self._served = 0  # answers on this transport
        self._answering = False  # bytes of the current request's answer have arrived

    def itself(self) -> Connection:
        """The protocol factory of a (re)connection: this same object."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.parser = httptools.HttpResponseParser(self)
        self._served = 0

    def send(self, item: Item) -> None:
        assert self.transport is not None
        self.current = item
        self._answering = False
        self.sent_at = time.perf_counter()
        self.transport.write(item[2])

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._size = 0

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        self._keep = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)

    def on_message_complete(self) -> None:
        self._complete += 1

    def data_received(self, data: bytes) -> None:
        if self.current is None:
            self.fail("bytes with no request outstanding")
            return
        self._complete = 0
        self._answering = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self.fail(f"{type(e).__name__}: {e}")
            return
        if not self._complete:
            return
        if self._complete > 1:
            self.fail("more than one answer to one request")
            return
        item, self.current = self.current, None
        self._served += 1
        self.load.done(item, self._status, self._size, None)
        if self._keep and self.transport is not None and not self.closing:
            self.load.free(self)
        elif self.transport is not None:
            self.transport.close()  # connection_lost reconnects

    def fail(self, error: str) -> None:
        item, self.current = self.current, None
        if item is not None:
            self.load.done(item, None, 0, error)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        item, self.current = self.current, None
        if item is not None and self._served and not self._answering and not self.closing:
            # a kept-alive connection the server closed as the request went out (its idle
            # timeout): nothing of it was processed, so send it again, as clients do
            self.load.retry(item)
        elif item is not None:
            self.load.done(item, None, 0, f"connection lost: {exc}")
        if not self.closing:
            self.load.reopen(self)


def requests(host: str, token: str | None, paths: Sequence[PathSpec]) -> list[tuple[str, bytes]]:
    """(label, raw GET request) of each path."""
    out = []
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    for p in paths:
        label, path = p if isinstance(p, tuple) else (label_of(p), p)
        raw = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: application/json\r\n\r\n"
        out.append((label, raw.encode()))
    return out
