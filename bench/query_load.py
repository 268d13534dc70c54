"""A cheap open-loop HTTP/1.1 load generator for the query API.

Request i is *scheduled* at `t0 + i / rate`, whatever happened to the requests before it,
and its latency is measured from that scheduled instant to the last byte of its answer.
When the server (or this client) falls behind, requests wait in a backlog for a free
connection and that wait is counted: coordinated omission is not hidden (the approach of
wrk2). Requests go over a few keep-alive connections (one request at a time each), as
bytes written and parsed by hand in an `asyncio.Protocol` (GET only, `Content-Length` or
chunked answers): no streams, tasks or timers per request, so the client costs a fraction
of what a full-featured client does; `client_cpu_us_per_request` says how much.

Use it from code:

    result = await run_load("http://127.0.0.1:8002", token, paths, rate=500, duration=15)

or from the shell (paths as arguments, or one a line in a file with `--paths-file`):

    python -m bench.query_load --url http://127.0.0.1:8002 --token T --rate 500 \\
        --duration 15 /v1/nodes/bcity/summary?period=2026-07

Each path may be given as `label=path` (or as a `(label, path)` tuple from code); the
default label is the last segment of the path (`summary`, `children`). Latency figures
are in milliseconds, over the answers with a 2xx status; other statuses, timeouts and
broken connections count as errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PathSpec = str | tuple[str, str]


def pct(values: Sequence[float], q: float) -> float | None:
    """The q-quantile of `values` by nearest rank (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def label_of(path: str) -> str:
    """The default label of a path: its last segment without the query string."""
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "/"


class ProtocolError(Exception):
    """The server answered something this client cannot parse."""


@dataclass
class _Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    timeouts: int = 0
    error_samples: list[str] = field(default_factory=list)
    body_bytes: int = 0

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


_Item = tuple[float, str, bytes, bool]
"""(scheduled instant, label, raw request, recorded) of one request."""


class _Load:
    """The shared state: a backlog of late requests and the connections that serve it."""

    def __init__(self, host: str, port: int, stats: _Stats, timeout: float) -> None:
        self.host, self.port = host, port
        self.stats = stats
        self.timeout = timeout
        self.backlog: deque[_Item] = deque()
        self.idle: deque[_Connection] = deque()
        self.conns: list[_Connection] = []
        self.outstanding = 0

    def submit(self, item: _Item) -> None:
        """Send now on an idle connection, else queue (the wait counts in the latency)."""
        self.outstanding += 1
        while self.idle:
            conn = self.idle.popleft()
            if conn.transport is not None:
                conn.send(item)
                return
        self.backlog.append(item)

    def free(self, conn: _Connection) -> None:
        """`conn` finished a request: give it the oldest waiting one, or park it."""
        if self.backlog:
            conn.send(self.backlog.popleft())
        else:
            self.idle.append(conn)

    def done(self, item: _Item, status: int | None, size: int, error: str | None) -> None:
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
        loop = asyncio.get_running_loop()
        for _ in range(count):
            conn = _Connection(self)
            await loop.create_connection(conn.itself, self.host, self.port)
            self.conns.append(conn)
            self.idle.append(conn)

    def reopen(self, conn: _Connection) -> None:
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
        for conn in self.conns:
            conn.closing = True
            if conn.transport is not None:
                conn.transport.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time, parsed as bytes arrive."""

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.current: _Item | None = None
        self.sent_at = 0.0
        self.closing = False
        self.reconnecting: asyncio.Future[None] | None = None

    def itself(self) -> _Connection:
        """The protocol factory of a (re)connection: this same object."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf.clear()

    def send(self, item: _Item) -> None:
        assert self.transport is not None
        self.current = item
        self.sent_at = time.perf_counter()
        self.transport.write(item[2])

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.current is None:
            return
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        try:
            status, length, chunked, keep = _parse_head(bytes(buf[:head_end]))
        except (ValueError, ProtocolError) as e:
            self.fail(f"{type(e).__name__}: {e}")
            return
        body_at = head_end + 4
        if chunked:
            end = buf.find(b"\r\n0\r\n\r\n", body_at - 2)
            if end < 0:
                return
            total = end + 7
            size = total - body_at
        elif length >= 0:
            total = body_at + length
            if len(buf) < total:
                return
            size = length
        else:
            self.fail("answer without a length")
            return
        del buf[:total]
        item, self.current = self.current, None
        self.load.done(item, status, size, None)
        if keep and self.transport is not None and not self.closing:
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
        if item is not None:
            self.load.done(item, None, 0, f"connection lost: {exc}")
        if not self.closing:
            self.load.reopen(self)


def _parse_head(head: bytes) -> tuple[int, int, bool, bool]:
    """(status, content length or -1, chunked, keep-alive) of a response head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad status line {lines[0]!r}")
    length = -1
    chunked = False
    keep = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    return int(parts[1]), length, chunked, keep


def _requests(host: str, token: str | None, paths: Sequence[PathSpec]) -> list[tuple[str, bytes]]:
    out = []
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    for p in paths:
        label, path = p if isinstance(p, tuple) else (label_of(p), p)
        raw = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: application/json\r\n\r\n"
        out.append((label, raw.encode()))
    return out


async def run_load(
    base_url: str,
    token: str | None,
    paths: Sequence[PathSpec],
    rate: float,
    duration: float,
    *,
    connections: int = 8,
    timeout: float = 10.0,  # noqa: ASYNC109 (a per-request limit, not the call's)
    warmup: float = 0.0,
) -> dict[str, Any]:
    """Send GET `paths` round-robin at `rate` per second for `duration` seconds.

    `connections` keep-alive connections serve the scheduled requests one at a time each; a
    request finding no idle connection waits in a backlog, and that wait is part of its
    latency. `warmup` seconds of the same load run first and are not recorded. The result
    holds the achieved rate, latency percentiles overall and per label, statuses, errors and
    this process's CPU time per request (user + system, whatever else the process did then).
    """
    if rate <= 0 or duration <= 0 or not paths:
        raise ValueError("rate, duration and paths must be positive / non-empty")
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    prefix = url.path.rstrip("/")
    reqs = _requests(
        f"{host}:{port}",
        token,
        [(p[0], prefix + p[1]) if isinstance(p, tuple) else prefix + p for p in paths],
    )
    stats = _Stats()
    load = _Load(host, port, stats, timeout)
    await load.open(connections)
    clock = time.perf_counter
    late_max = 0.0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = clock()
    measure_from = started + warmup
    end = measure_from + duration
    sent = 0
    i = 0
    try:
        while (now := clock()) < end:
            due_count = int((now - started) * rate) + 1
            while i < due_count:
                due = started + i / rate
                if due >= end:
                    break
                recorded = due >= measure_from
                if recorded:
                    late_max = max(late_max, now - due)
                    sent += 1
                label, raw = reqs[i % len(reqs)]
                load.submit((due, label, raw, recorded))
                i += 1
            load.expire(now)
            await asyncio.sleep(max(0.0, started + i / rate - clock()))
        sent_at = clock()
        drain_until = sent_at + timeout + 1
        while load.outstanding > 0 and (now := clock()) < drain_until:
            load.expire(now)
            await asyncio.sleep(0.005)
    finally:
        load.close()
    finished = clock()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    all_lat = [x for v in stats.latencies.values() for x in v]
    ok = len(all_lat)
    result: dict[str, Any] = {
        "target_rate": rate,
        "duration_s": duration,
        "connections": connections,
        "sent": sent,
        "ok": ok,
        "achieved_rate": round(ok / max(1e-9, finished - measure_from), 1),
        "send_window_s": round(sent_at - measure_from, 3),
        "errors": stats.errors + max(0, sent - ok - stats.errors),
        "timeouts": stats.timeouts,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "p50_ms": _r(pct(all_lat, 0.5)),
        "p90_ms": _r(pct(all_lat, 0.9)),
        "p99_ms": _r(pct(all_lat, 0.99)),
        "max_ms": _r(max(all_lat) if all_lat else None),
        "scheduler_late_max_ms": round(late_max * 1000, 2),
        "client_cpu_s": round(cpu, 3),
        "client_cpu_us_per_request": round(cpu / max(1, i) * 1e6, 1),
        "mean_body_bytes": round(stats.body_bytes / ok) if ok else None,
        "by_label": {
            label: {
                "n": len(v),
                "p50_ms": _r(pct(v, 0.5)),
                "p99_ms": _r(pct(v, 0.99)),
                "max_ms": _r(max(v)),
            }
            for label, v in sorted(stats.latencies.items())
        },
    }
    if stats.error_samples:
        result["error_samples"] = stats.error_samples
    return result


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _parse_paths(items: Sequence[str]) -> list[PathSpec]:
    out: list[PathSpec] = []
    for raw in items:
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        label, sep, path = item.partition("=")
        out.append((label, path) if sep and label and not label.startswith("/") else item)
    return out


def mix_paths(tree: Any, months: Sequence[str], count: int, seed: int) -> list[PathSpec]:
    """The benchmark's query mix (`bench.run.query_mix`: summary and children alternately;
    city, county, township, township) as `count` labelled paths."""
    from bench.run import query_mix

    pick = query_mix(tree, list(months), seed)
    out: list[PathSpec] = []
    for i in range(count):
        kind, node, period = pick(i)
        if kind == "summary":
            out.append((kind, f"/v1/nodes/{node}/summary?period={period}"))
        else:
            out.append(
                (kind, f"/v1/nodes/{node}/children?period={period}&metric=party_day.held&limit=100")
            )
    return out


def _loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


async def _load_events(http: Any, stack: Any, tree: Any, work: Any) -> dict[str, Any]:
    """Produce the workload onto the submitted topic; wait until the city's totals match."""
    from bench import run as bench

    producer = await bench.new_producer(stack.bootstrap_servers)
    started = time.perf_counter()
    try:
        await bench.produce_all(producer, bench.serialise(work.events))
    finally:
        await producer.stop()
    want = {m: work.expected.of(tree.root, m) for m in work.months}
    roll = stack.urls["rollup"]

    async def visible() -> bool:
        got = [await bench.summary(http, roll, tree.root, m) for m in work.months]
        return all(bench.checked(g) == want[m] for g, m in zip(got, work.months, strict=True))

    await bench.wait_until("the workload", visible, 600)
    elapsed = time.perf_counter() - started
    return {"events": len(work.events), "events_per_s": round(len(work.events) / elapsed)}


async def _hold(
    file: str, stack: Any, targets: dict[str, str], token: str, paths: list[PathSpec]
) -> None:
    """For profiling by hand: write where things are to `file`, wait for `file`.done."""
    pids = {n: p.pid for n, p in zip(targets, stack.replicas("rollup"), strict=False)}
    hold = {
        "targets": targets,
        "pids": pids,
        "token": token,
        "paths": paths[:200],
        "bootstrap": stack.bootstrap_servers,
        "database_url": stack.database_url,
    }
    done = Path(file + ".done")
    await asyncio.to_thread(Path(file).write_text, json.dumps(hold), "utf-8")
    while not await asyncio.to_thread(done.exists):  # noqa: ASYNC110 (a file, not an event)
        await asyncio.sleep(1)


async def stack_run(args: argparse.Namespace) -> dict[str, Any]:
    """`--city N`: an embedded stack (reporting + rollup), a city of N branches and a month
    workload through the pipeline, then the query mix idle and while events are produced
    (`--ingest-rate`), against the applying rollup and a query-only replica."""
    import datetime as dt

    import httpx

    from bench import run as bench
    from bench.generate import city_tree, month_workload, months_before
    from huibao_stack.stack import EmbeddedStack

    today = dt.date.today()
    tree = city_tree(args.city, seed=7)
    months = months_before(today, args.months)
    work = month_workload(
        tree, months, seed=7, not_after=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    )
    paths = mix_paths(tree, months, 4000, seed=7)
    out: dict[str, Any] = {"branches": len(tree.branches), "months": months}
    stack = EmbeddedStack(services=("reporting", "rollup"))
    await stack.start()
    try:
        token = stack.admin_token
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=300
        ) as http:
            out["tree_load"] = await bench.load_tree(http, stack, tree, 600)
            out["events"] = await _load_events(http, stack, tree, work)
        targets = {"applier": stack.urls["rollup"]}
        if args.replica:
            reader = await stack.add_replica("rollup", env={"HUIBAO_CONSUME_EVENTS": "false"})
            targets["query_only"] = reader.url
        if args.hold:
            await _hold(args.hold, stack, targets, token, paths)

        async def measure(url: str) -> dict[str, Any]:
            res = await run_load(
                url,
                token,
                paths,
                args.rate,
                args.duration,
                connections=args.connections,
                warmup=args.warmup,
            )
            res["loadavg_after"] = _loadavg()
            return res

        for name, url in targets.items():
            out[f"idle/{name}"] = await measure(url)
        if args.ingest_rate > 0:
            producer = await bench.new_producer(stack.bootstrap_servers)
            load_day = max(today.replace(day=1), today - dt.timedelta(days=1))
            feed = bench.LoadProducer(producer, tree, load_day, probe_branch=tree.branches[0])
            try:
                for name, url in targets.items():
                    ingest = asyncio.create_task(
                        feed.run(args.ingest_rate, args.duration + args.warmup + 5, None)
                    )
                    await asyncio.sleep(2)
                    res = await measure(url)
                    res["ingest_rate"] = args.ingest_rate
                    out[f"ingesting/{name}"] = res
                    await ingest
            finally:
                await producer.stop()
    finally:
        await stack.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: run the load and print the result as JSON."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.query_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("paths", nargs="*", help="request paths (`label=path` to name them)")
    ap.add_argument("--url", help="base URL, e.g. http://127.0.0.1:8002")
    ap.add_argument(
        "--city",
        type=int,
        default=0,
        help="instead of --url: start an embedded stack with a city of this many branches",
    )
    ap.add_argument("--months", type=int, default=3, help="--city: months of workload")
    ap.add_argument("--ingest-rate", type=float, default=0, help="--city: events/s meanwhile")
    ap.add_argument("--replica", action="store_true", help="--city: also a query-only rollup")
    ap.add_argument(
        "--hold",
        default=None,
        help="--city: write targets, pids, token and paths to this JSON file after loading,"
        " and wait until FILE.done exists (to profile by hand)",
    )
    ap.add_argument("--token", default=None, help="bearer token")
    ap.add_argument("--paths-file", default=None, help="a file of paths, one a line")
    ap.add_argument("--rate", type=float, default=500.0, help="requests per second")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds measured")
    ap.add_argument("--warmup", type=float, default=0.0, help="seconds run before measuring")
    ap.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = ap.parse_args(argv)
    if args.city:
        json.dump(asyncio.run(stack_run(args)), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not args.url:
        ap.error("--url or --city is required")
    items = list(args.paths)
    if args.paths_file:
        with open(args.paths_file, encoding="utf-8") as f:
            items += f.read().splitlines()
    paths = _parse_paths(items)
    if not paths:
        ap.error("no paths given")
    result = asyncio.run(
        run_load(
            args.url,
            args.token,
            paths,
            args.rate,
            args.duration,
            connections=args.connections,
            timeout=args.timeout,
            warmup=args.warmup,
        )
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
