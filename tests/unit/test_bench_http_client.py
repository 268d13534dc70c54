"""The benchmark's open-loop HTTP client (bench/http_load.py) against real TCP servers that
answer in the awkward ways HTTP/1.1 allows: chunked bodies (with the bytes of a last-chunk
inside the data, extensions and trailers), answers split across reads, `Connection: close`,
a server that drops idle connections, errors, garbage and silence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from bench.http_load import run_load
from bench.query_mix import PathSpec

Answer = Callable[[bytes], list[bytes]]
"""The raw request line → the pieces of the answer, written one by one."""

BODY = b'{"metrics": {"a": 1}}'


def length(body: bytes = BODY, status: str = "200 OK", extra: bytes = b"") -> list[bytes]:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n".encode()
    return [head + extra + f"Content-Length: {len(body)}\r\n\r\n".encode() + body]


def chunked(pieces: list[bytes]) -> list[bytes]:
    """A chunked answer whose data holds a fake last-chunk, with an extension and a
    trailer, written one network piece at a time as `pieces` splits it."""
    raw = b"".join(pieces)
    return [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        *[f"{len(p):x};ext=1\r\n".encode() + p + b"\r\n" for p in pieces],
        b"0\r\nX-Trailer: yes\r\n\r\n" if raw else b"0\r\n\r\n",
    ]


@asynccontextmanager
async def server(
    answer: Answer, close_after: int | None = None, delay: float = 0.0, drop: bool = False
) -> AsyncIterator[dict[str, int]]:
    """A TCP server on a free port answering each request with `answer(request line)`,
    `delay` seconds after reading it; after `close_after` answers on a connection it
    closes that connection (with `drop`: once it has read the next request, unanswered)."""
    seen = {"requests": 0, "connections": 0, "dropped": 0}
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        seen["connections"] += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen["requests"] += 1
                if delay:
                    await asyncio.sleep(delay)
                for piece in answer(head.split(b"\r\n", 1)[0]):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
                served += 1
                if close_after is not None and served >= close_after:
                    if drop:
                        await reader.readuntil(b"\r\n\r\n")
                        seen["dropped"] += 1
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    seen["port"] = srv.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        srv.close()
        # the client has closed its connections: the handlers end on their own
        if handlers:
            await asyncio.wait(handlers, timeout=5)


async def load(port: int, paths: Sequence[PathSpec], **kw: float) -> dict[str, Any]:
    rate = kw.pop("rate", 200)
    duration = kw.pop("duration", 0.5)
    return await run_load(
        f"http://127.0.0.1:{port}", "T", paths, rate, duration, connections=2, **kw
    )


async def test_content_length_answers_count_by_label() -> None:
    async with server(lambda _: length()) as srv:
        got = await load(srv["port"], ["/v1/nodes/a/summary", ("kids", "/v1/nodes/a/children")])
    assert got["sent"] == 100
    assert got["ok"] == 100
    assert got["errors"] == 0
    assert got["statuses"] == {"200": 100}
    assert {k: v["n"] for k, v in got["by_label"].items()} == {"summary": 50, "kids": 50}
    assert got["mean_body_bytes"] == len(BODY)
    assert srv["requests"] == 100
    assert srv["connections"] == 2


async def test_chunked_bodies_end_at_their_last_chunk_not_at_look_alike_bytes() -> None:
    # the data itself holds b"\r\n0\r\n\r\n", and the answer arrives in small writes
    pieces = [b'{"x": "', b"\r\n0\r\n\r\n", b'", "y": 1}']
    async with server(lambda _: chunked(pieces)) as srv:
        got = await load(srv["port"], ["/v1/nodes/a/summary"])
    assert got["ok"] == got["sent"] == 100
    assert got["errors"] == 0
    assert got["mean_body_bytes"] == len(b"".join(pieces))  # the body, not its framing


async def test_connection_close_and_dropped_idle_connections_reconnect() -> None:
    closing = length(extra=b"Connection: close\r\n")
    async with server(lambda _: closing) as srv:
        got = await load(srv["port"], ["/s"], rate=100)
    assert got["ok"] == got["sent"] == 50
    assert got["errors"] == 0
    assert srv["connections"] >= 50  # one connection per answer
    # a server that silently closes after every 3 answers (like a keep-alive timeout)
    async with server(lambda _: length(), close_after=3) as srv:
        got = await load(srv["port"], ["/s"], rate=100)
    assert got["errors"] == 0
    assert got["ok"] == got["sent"] == 50
    assert srv["requests"] == 50  # nothing lost, nothing sent twice


async def test_a_request_the_server_dropped_unanswered_on_a_kept_connection_goes_again() -> None:
    # what a keep-alive timeout looks like when it meets a request on its way
    async with server(lambda _: length(), close_after=3, drop=True) as srv:
        got = await load(srv["port"], ["/s"], rate=100)
    assert got["errors"] == 0
    assert got["ok"] == got["sent"] == 50
    assert srv["requests"] == 50  # answered; the dropped ones were read, not answered
    assert got["retried"] == srv["dropped"] > 0


async def test_statuses_garbage_and_silence_are_errors_not_latencies() -> None:
    def mixed(line: bytes) -> list[bytes]:
        if b"/bad" in line:
            return length(b'{"error": "no"}', status="503 Service Unavailable")
        if b"/garbage" in line:
            return [b"HTTP/9 what\r\n\r\n"]
        return length()

    async with server(mixed) as srv:
        got = await load(srv["port"], ["/ok", "/bad", "/garbage", "/ok"], rate=100)
    assert got["sent"] == 50
    assert got["ok"] == 25
    assert got["statuses"] == {"200": 25, "503": 13}
    assert got["errors"] == 25  # 13 statuses + 12 unparsable answers
    assert any("503" in e for e in got["error_samples"])
    assert any("HttpParser" in e for e in got["error_samples"])

    async with server(lambda _: []) as srv:  # reads the request, never answers
        got = await load(srv["port"], ["/s"], rate=20, duration=0.3, timeout=0.2)
    assert got["ok"] == 0
    assert got["sent"] == 6
    assert got["timeouts"] >= 1
    assert got["errors"] == 6


async def test_latency_counts_the_wait_for_a_busy_connection() -> None:
    # one connection, 20 ms of server time per answer, 100 requests/s: the server keeps up
    # with half, the rest queue; open loop, they are still sent on schedule and their
    # latency counts from then, so the queueing shows (coordinated omission not hidden)
    async with server(lambda _: length(), delay=0.02) as srv:
        got = await run_load(
            f"http://127.0.0.1:{srv['port']}", None, ["/s"], 100, 0.5, connections=1
        )
    assert got["sent"] == got["ok"] == 50
    assert got["p99_ms"] > 300 > 20 * 2
