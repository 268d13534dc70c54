"""The scheduler at country scale: a monthly Party Day cycle and a quarterly feedback round.

Runs the real scheduler app in-process (its lifespan, runner, PostgreSQL store, outbox and
relay) on a manual clock, against a rollup stand-in that serves the documented query API
over HTTP from its own process for a regular tree (default 1 city × 20 counties × 25
townships × 200 branches = 100,000 branches; about 5 % of branches miss each month, 5 %
report late). The stand-in derives every unit from its id, so it serves millions of
branches (`--total 1000000`). The clock is moved one calendar step at a time and each move
is timed (`PUT /v1/clock` answers once the step has committed), then the time until the
relay has published the outbox to Kafka; each line also gives the peak RSS of this process
(the scheduler, its relay and the bench driver) during that step, and the load average.

The stand-in answers from memory, so the walk time is the scheduler's side of the HTTP
conversation plus a cheap server; against the real rollup add its query time.

    .venv/bin/python -m bench.scheduler_scale                       # embedded PostgreSQL + Tansu
    .venv/bin/python -m bench.scheduler_scale --total 1000000
    .venv/bin/python -m bench.scheduler_scale --branches 7000 --skip-month
    DATABASE_URL=... KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python -m bench.scheduler_scale
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shutil
import socket
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.support.waits import wait_until

from bench.common import ROOT
from bench.settings import BenchSettings
from huibao_contracts.metrics import PUBLIC
from huibao_contracts.periods import Period
from huibao_platform.clock import ManualClock
from huibao_platform.kafka import create_topics
from huibao_platform.logs import configure_logging
from huibao_platform.settings import TopicSettings
from huibao_scheduler.bootstrap import build_adapters, build_app
from huibao_scheduler.settings import SchedulerSettings
from huibao_stack.infra import Infrastructure

SH = ZoneInfo("Asia/Shanghai")
ADMIN = "bench-admin"
MONTHS = tuple(f"2030-{m:02d}" for m in range(4, 11))
QUARTERS = ("2030-Q2", "2030-Q3")


# --- the rollup stand-in ---------------------------------------------------------------------


class Figures:
    """A regular tree and every unit's metrics, computed on demand from the unit ids.

    Units are named by their position (`bx.c3.t4.b5`): nothing per branch is held, so the
    stand-in serves a tree of millions of branches. A branch's month is drawn from a hash of
    its id and the month; the figures of the counties, townships and the city are summed once
    at start for the months the bench reads.
    """

    def __init__(self, counties: int, townships: int, branches: int) -> None:
        self.counties, self.townships, self.branches = counties, townships, branches
        self.root = "bx"
        self.metrics: dict[tuple[str, str], dict[str, float | None]] = {}
        self.missing: dict[str, list[str]] = {m: [] for m in MONTHS}
        for month in MONTHS:
            self._month(month)
        for quarter in QUARTERS:
            for uid in [k for k, p in self.metrics if p == MONTHS[0]]:
                rows = [self.metrics[(uid, str(m))] for m in Period.parse(quarter).months()]
                self.metrics[(uid, quarter)] = _rates(_sum(rows))

    @property
    def total_units(self) -> int:
        c, t, b = self.counties, self.townships, self.branches
        return 1 + c + c * t + c * t * b

    def _month(self, month: str) -> None:
        city: list[dict[str, float | None]] = []
        for c in range(1, self.counties + 1):
            cid = f"bx.c{c}"
            county = []
            for t in range(1, self.townships + 1):
                tid = f"{cid}.t{t}"
                outcomes: dict[int, int] = {}
                for b in range(1, self.branches + 1):
                    key = _outcome(f"{tid}.b{b}", month)
                    outcomes[key] = outcomes.get(key, 0) + 1
                    if key == 0:
                        self.missing[month].append(f"{tid}.b{b}")
                total: dict[str, float | None] = dict.fromkeys(PUBLIC, 0)
                for key, n in outcomes.items():
                    for name, value in _MONTH[key][0].items():
                        if value is not None and name not in _RATES:
                            total[name] = (total[name] or 0) + n * value
                self.metrics[(tid, month)] = _rates(total)
                county.append(self.metrics[(tid, month)])
            self.metrics[(cid, month)] = _rates(_sum(county))
            city.append(self.metrics[(cid, month)])
        self.metrics[(self.root, month)] = _rates(_sum(city))

    @staticmethod
    def branch(uid: str, period: str) -> tuple[dict[str, float | None], orjson.Fragment]:
        """A branch's metrics for a month or a quarter, and their JSON (shared, cached)."""
        if "Q" not in period:
            return _MONTH[_outcome(uid, period)]
        keys = tuple(_outcome(uid, str(m)) for m in Period.parse(period).months())
        if keys not in _QUARTER:
            m = _rates(_sum([_MONTH[k][0] for k in keys]))
            _QUARTER[keys] = (m, orjson.Fragment(orjson.dumps(m)))
        return _QUARTER[keys]

    def figures(self, uid: str, period: str) -> dict[str, float | None]:
        if uid.count(".") == 3:
            return self.branch(uid, period)[0]
        return self.metrics[(uid, period)]

    def listed(self, uid: str, period: str) -> tuple[dict[str, float | None], Any]:
        """A unit's metrics and what to put in a listing for them (cached JSON for branches)."""
        if uid.count(".") == 3:
            return self.branch(uid, period)
        m = self.metrics[(uid, period)]
        return m, m

    def node(self, uid: str) -> dict[str, Any]:
        parts = uid.split(".")
        level = ("city", "county", "township", "branch")[len(parts) - 1]
        nums = [p[1:] for p in parts[1:]]
        name = (
            "示范市"
            if not nums
            else "".join(f"第{n}{s}" for n, s in zip(nums, ("县", "镇", "村党支部"), strict=False))
        )
        parent = ".".join(parts[:-1]) or None
        return {"id": uid, "name": name, "level": level, "parent": parent}

    def path(self, uid: str) -> list[str]:
        parts = uid.split(".")
        return [".".join(parts[: i + 1]) for i in range(len(parts))]

    def kids(self, uid: str) -> list[str]:
        depth = uid.count(".")
        if depth == 3:
            return []
        n, tag = ((self.counties, "c"), (self.townships, "t"), (self.branches, "b"))[depth]
        return [f"{uid}.{tag}{i}" for i in range(1, n + 1)]


_RATES = ("party_day.attendance_rate", "feedback.resolution_rate")


def _outcome(uid: str, month: str) -> int:
    """A branch's month, drawn from a hash: 0 missing, 5-9 late, 10-24 on time (with the
    attendance and lessons the roll gives)."""
    roll = zlib.crc32(f"{uid}/{month}".encode()) % 100
    return 0 if roll < 5 else roll if roll < 10 else 10 + roll % 15


def _month_of(key: int) -> dict[str, float | None]:
    m: dict[str, float | None] = dict.fromkeys(PUBLIC, 0)
    m["party_day.expected"] = 1
    m["orgunits.branches"] = 1
    m["members.total"] = 30
    if key:
        m["party_day.held"] = 1
        m["party_day.on_time" if key >= 10 else "party_day.late"] = 1
        m["party_day.attendees"] = 25 + key % 5
        m["lesson.delivered"] = key % 3
    return _rates(m)


def _fragment(m: dict[str, float | None]) -> tuple[dict[str, float | None], orjson.Fragment]:
    return m, orjson.Fragment(orjson.dumps(m))


def _sum(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(PUBLIC, 0)
    for r in rows:
        for k, v in r.items():
            if v is not None and k not in _RATES:
                out[k] = (out[k] or 0) + v
    return out


def _rates(m: dict[str, float | None]) -> dict[str, float | None]:
    members = 30 * (m.get("party_day.held") or 0)  # every branch has 30 members
    attendees = m.get("party_day.attendees") or 0
    m["party_day.attendance_rate"] = round(attendees / members, 6) if members else None
    m["feedback.resolution_rate"] = None
    return m


_MONTH = {k: _fragment(_month_of(k)) for k in (0, *range(5, 25))}
_QUARTER: dict[tuple[int, ...], tuple[dict[str, float | None], orjson.Fragment]] = {}


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def stand_in(f: Figures) -> Starlette:
    """The rollup query API shapes the scheduler reads, from `f`."""

    async def roots(_: Request) -> Response:
        return _json({"items": [f.node(f.root)]})

    async def summary(request: Request) -> Response:
        uid, period = request.path_params["uid"], request.query_params["period"]
        return _json({"node": f.node(uid), "period": period, "metrics": f.figures(uid, period)})

    async def children(request: Request) -> Response:
        uid, q = request.path_params["uid"], request.query_params
        period, metric = q["period"], q["metric"]
        limit, offset = int(q.get("limit", 100)), int(q.get("offset", 0))
        kids = f.kids(uid)
        items = []
        for k in kids[offset : offset + limit]:
            m, listed = f.listed(k, period)
            items.append({**f.node(k), "value": m[metric], "rank": 1, "metrics": listed})
        return _json(
            {
                "node": f.node(uid),
                "period": period,
                "metric": metric,
                "total": len(kids),
                "offset": offset,
                "limit": limit,
                "items": items,
            }
        )

    async def completeness(request: Request) -> Response:
        uid, q = request.path_params["uid"], request.query_params
        period = q["period"]
        limit, offset = int(q.get("limit", 100)), int(q.get("offset", 0))
        missing = [b for b in f.missing[period] if b.startswith(f"{uid}.")]
        m = f.figures(uid, period)
        page = [
            {"id": b, "name": f.node(b)["name"], "parent": f.node(b)["parent"], "path": f.path(b)}
            for b in missing[offset : offset + limit]
        ]
        return _json(
            {
                "node": f.node(uid),
                "cycle": "party_day",
                "period": period,
                "expected": m["party_day.expected"],
                "held": m["party_day.held"],
                "on_time": m["party_day.on_time"],
                "late": m["party_day.late"],
                "missing": len(missing),
                "missing_units": {
                    "total": len(missing),
                    "offset": offset,
                    "limit": limit,
                    "items": page,
                },
                "late_units": {"total": 0, "offset": 0, "limit": limit, "items": []},
            }
        )

    return Starlette(
        routes=[
            Route("/v1/roots", roots),
            Route("/v1/nodes/{uid}/summary", summary),
            Route("/v1/nodes/{uid}/children", children),
            Route("/v1/nodes/{uid}/completeness", completeness),
        ]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_forever(args: argparse.Namespace) -> None:
    """The stand-in's own process (`--serve PORT`): build the figures, then serve them."""
    f = Figures(args.counties, args.townships, args.branches)
    uvicorn.run(stand_in(f), host="127.0.0.1", port=args.serve, log_config=None, access_log=False)


@asynccontextmanager
async def serve(args: argparse.Namespace) -> AsyncIterator[str]:
    """Run the stand-in in a child process (its memory is not the scheduler's); yields its URL."""
    port = free_port()
    shape = ["--counties", str(args.counties), "--townships", str(args.townships)]
    shape += ["--branches", str(args.branches)]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scheduler_scale", "--serve", str(port), *shape, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as probe:

            async def up_or_gone() -> bool:
                gone = child.returncode is not None
                return gone or (await probe.get("/v1/roots")).status_code == 200

            await wait_until(up_or_gone, timeout=600, interval=0.2, message="the stand-in")
            if child.returncode is not None:
                raise RuntimeError(f"the stand-in exited with {child.returncode}")
        yield url
    finally:
        if child.returncode is None:
            child.terminate()
            await child.wait()


# --- timing and memory -----------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_mib() -> float:
    """This process's peak RSS since the last `reset_peak` (VmHWM), MiB."""
    return _status_kib("VmHWM") / 1024


@contextmanager
def timed(label: str, figures: dict[str, float], peaks: dict[str, float]) -> Iterator[None]:
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    yield
    figures[label] = time.perf_counter() - start
    peaks[label] = peak_mib()
    used = time.process_time() - cpu
    sys.stdout.write(
        f"  {label:<44} {figures[label]:8.2f} s  (this process's CPU {used:.2f} s,"
        f" peak RSS {peaks[label]:.0f} MiB, load {os.getloadavg()[0]:.2f})\n"
    )
    sys.stdout.flush()


async def drained(url: str) -> None:
    conn = await asyncpg.connect(url)

    async def empty() -> bool:
        return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM scheduler.outbox)")

    try:
        await wait_until(empty, timeout=3600, interval=0.1, message="the scheduler's outbox")
    finally:
        await conn.close()


async def move(client: httpx.AsyncClient, to: dt.datetime) -> list[str]:
    r = await client.put("/v1/clock", json={"now": to.isoformat()})
    r.raise_for_status()
    body = r.json()
    if body["pending"] or body["error"]:
        raise RuntimeError(f"steps failed at {to}: {body['error']}")
    return [f"{t['period']}:{t['step']}" for t in body["transitions"]]


async def run(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    figures: dict[str, float] = {}
    peaks: dict[str, float] = {}
    c, t, b = args.counties, args.townships, args.branches
    sys.stdout.write(
        f"tree: {1 + c + c * t + c * t * b:,} units, {c * t * b:,} branches"
        f" ({c} counties x {t} townships x {b} branches); load {os.getloadavg()}\n"
    )
    run_dir = Path(tempfile.mkdtemp(prefix="huibao-bench-"))
    external = BenchSettings()
    infra = Infrastructure(
        run_dir, database_url=external.database_url, bootstrap_servers=external.bootstrap_servers
    )
    await infra.start()
    try:
        url = await infra.fresh_database("scheduler_bench")
        t0 = time.perf_counter()
        async with serve(args) as rollup_url:
            sys.stdout.write(f"stand-in ready in {time.perf_counter() - t0:.1f} s\n")
            settings = SchedulerSettings(
                DATABASE_URL=url,
                KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers,
                admin_token=ADMIN,
                rollup_url=rollup_url,
                clock="manual",
                first_period="2030-07" if not args.skip_month else "2030-09",
                topic_prefix=f"bench{os.getpid()}.",
                rollup_timeout=120,
            )
            start = dt.datetime(2030, 7, 1, tzinfo=SH)
            if args.skip_month:
                start = dt.datetime(2030, 9, 1, tzinfo=SH)
            topic_settings = TopicSettings(
                KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers, topic_prefix=settings.topic_prefix
            )
            await create_topics(topic_settings)  # as `huibao topics` would
            adapters = build_adapters(settings, clock=ManualClock(start), replica="bench")
            async with adapters as given:
                app = build_app(settings, given, ticker=False)
                async with app.router.lifespan_context(app):
                    transport = httpx.ASGITransport(app=app)
                    async with httpx.AsyncClient(
                        transport=transport,
                        base_url="http://scheduler",
                        headers={"Authorization": f"Bearer {ADMIN}"},
                        timeout=3600,
                    ) as client:
                        if not args.skip_month:
                            await month(client, url, figures, peaks)
                        await feedback(client, url, figures, peaks)
    finally:
        await infra.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return figures, peaks


async def month(
    client: httpx.AsyncClient, url: str, figures: dict[str, float], peaks: dict[str, float]
) -> None:
    """July 2030, step by step (the clock moves to each step's due instant)."""
    sys.stdout.write("monthly Party Day cycle 2030-07:\n")
    await move(client, dt.datetime(2030, 7, 1, tzinfo=SH))
    steps = (
        ("upcoming reminder (every branch)", dt.datetime(2030, 7, 24, 9, tzinfo=SH)),
        ("overdue reminder (missing branches)", dt.datetime(2030, 7, 28, 9, tzinfo=SH)),
        ("deadline + escalation (to parents)", dt.datetime(2030, 7, 30, tzinfo=SH)),
        ("next month opens", dt.datetime(2030, 8, 1, tzinfo=SH)),
        ("close + dispatch (counties, city)", dt.datetime(2030, 8, 8, tzinfo=SH)),
    )
    for label, to in steps:
        with timed(label, figures, peaks):
            ran = await move(client, to)
        with timed(f"{label}  relayed to Kafka", figures, peaks):
            await drained(url)
        sys.stdout.write(f"    ran {ran}\n")


async def feedback(
    client: httpx.AsyncClient, url: str, figures: dict[str, float], peaks: dict[str, float]
) -> None:
    """Everything up to 2030-10-09 first, then the 2030-Q3 feedback round alone."""
    await move(client, dt.datetime(2030, 10, 9, tzinfo=SH))
    await drained(url)
    sys.stdout.write("quarterly feedback 2030-Q3 (through the runner):\n")
    with timed("feedback: issued + closed (walk, build, store)", figures, peaks):
        ran = await move(client, dt.datetime(2030, 10, 10, tzinfo=SH))
    sys.stdout.write(f"    ran {ran}\n")
    with timed("feedback: relayed to Kafka", figures, peaks):
        await drained(url)
    conn = await asyncpg.connect(url)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM scheduler.feedback")
        size = await conn.fetchval("SELECT pg_total_relation_size('scheduler.feedback')")
    finally:
        await conn.close()
    sys.stdout.write(f"    {stored:,} reports stored, table {size / 1e6:.0f} MB\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counties", type=int, default=20)
    parser.add_argument("--townships", type=int, default=25, help="per county")
    parser.add_argument("--branches", type=int, default=200, help="per township")
    parser.add_argument(
        "--total",
        type=int,
        default=None,
        help="total branches: sets --counties to total / (townships x branches)",
    )
    parser.add_argument("--skip-month", action="store_true", help="only the feedback round")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.total is not None:
        args.counties = max(1, args.total // (args.townships * args.branches))
    if args.serve is not None:
        serve_forever(args)
        return 0
    configure_logging("scheduler-bench", "warning", "console")
    figures, peaks = asyncio.run(run(args))
    sys.stdout.write(f"summary (s, peak RSS of the scheduler's process; load {os.getloadavg()}):\n")
    for label, seconds in figures.items():
        sys.stdout.write(f"  {label:<60} {seconds:8.2f} s  {peaks[label]:6.0f} MiB\n")
    top = max(peaks.values(), default=0.0)
    sys.stdout.write(f"  peak RSS over the timed steps (VmHWM reset per step): {top:.0f} MiB\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
