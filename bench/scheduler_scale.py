"""The scheduler at country scale: a monthly Party Day cycle and a quarterly feedback round.

Runs the real scheduler app in-process (its lifespan, runner, PostgreSQL store, outbox and
relay) on a manual clock, against a rollup stand-in that serves the documented query API
over HTTP for a precomputed tree (default 1 city × 20 counties × 25 townships × 200
branches = 100,000 branches; about 5 % of branches miss each month, 5 % report late).
The clock is moved one calendar step at a time and each move is timed (`PUT /v1/clock`
answers once the step has committed), then the time until the relay has published the
outbox to Kafka. The feedback round is also timed phase by phase (rollup walk, report
build, storage) by calling the same components directly.

The stand-in answers from memory, so the walk time is the scheduler's side of the HTTP
conversation plus a cheap server; against the real rollup add its query time.

    .venv/bin/python bench/scheduler_scale.py                       # embedded PostgreSQL + Tansu
    .venv/bin/python bench/scheduler_scale.py --branches 7000 --skip-month
    DATABASE_URL=... KAFKA_BOOTSTRAP_SERVERS=... .venv/bin/python bench/scheduler_scale.py
"""

from __future__ import annotations

import argparse
import asyncio
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

from huibao_contracts.metrics import PUBLIC
from huibao_contracts.periods import Period
from huibao_platform.clock import ManualClock
from huibao_platform.logs import configure_logging
from huibao_scheduler.adapters.rollup import RollupClient
from huibao_scheduler.bootstrap import Seams, build_app
from huibao_scheduler.domain.feedback import build_reports
from huibao_scheduler.settings import SchedulerSettings
from huibao_stack.infra import Infrastructure

SH = ZoneInfo("Asia/Shanghai")
ADMIN = "bench-admin"
MONTHS = tuple(f"2030-{m:02d}" for m in range(4, 11))
QUARTERS = ("2030-Q2", "2030-Q3")


# --- the rollup stand-in ---------------------------------------------------------------------


class Figures:
    """A tree and every unit's metrics for the months and quarters the bench needs."""

    def __init__(self, counties: int, townships: int, branches: int) -> None:
        self.units: dict[str, dict[str, Any]] = {}
        self.kids: dict[str, list[str]] = {}
        self.root = "bx"
        self._add("bx", "示范市", "city", None)
        for c in range(1, counties + 1):
            cid = f"bx.c{c}"
            self._add(cid, f"第{c}县", "county", "bx")
            for t in range(1, townships + 1):
                tid = f"{cid}.t{t}"
                self._add(tid, f"第{c}县第{t}镇", "township", cid)
                for b in range(1, branches + 1):
                    self._add(f"{tid}.b{b}", f"第{c}县第{t}镇第{b}村党支部", "branch", tid)
        self.metrics: dict[tuple[str, str], dict[str, float | None]] = {}
        self.missing: dict[str, list[str]] = {m: [] for m in MONTHS}
        for month in MONTHS:
            self._month(month)
        for quarter in QUARTERS:
            for uid in self.units:
                rows = [self.metrics[(uid, str(m))] for m in Period.parse(quarter).months()]
                self.metrics[(uid, quarter)] = _rates(_sum(rows))

    def _add(self, uid: str, name: str, level: str, parent: str | None) -> None:
        path = [*self.units[parent]["path"], uid] if parent else [uid]
        self.units[uid] = {"id": uid, "name": name, "level": level, "parent": parent, "path": path}
        if parent:
            self.kids.setdefault(parent, []).append(uid)

    def _month(self, month: str) -> None:
        def visit(uid: str) -> dict[str, float | None]:
            if self.units[uid]["level"] == "branch":
                roll = zlib.crc32(f"{uid}/{month}".encode()) % 100
                m: dict[str, float | None] = dict.fromkeys(PUBLIC, 0)
                m["party_day.expected"] = 1
                m["orgunits.branches"] = 1
                m["members.total"] = 30
                if roll >= 5:
                    m["party_day.held"] = 1
                    m["party_day.on_time" if roll >= 10 else "party_day.late"] = 1
                    m["party_day.attendees"] = 25 + roll % 5
                    m["lesson.delivered"] = roll % 3
                else:
                    self.missing[month].append(uid)
                out = _rates(m)
            else:
                out = _rates(_sum([visit(k) for k in self.kids.get(uid, [])]))
            self.metrics[(uid, month)] = out
            return out

        visit(self.root)

    def node(self, uid: str) -> dict[str, Any]:
        u = self.units[uid]
        return {"id": uid, "name": u["name"], "level": u["level"], "parent": u["parent"]}


def _sum(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(PUBLIC, 0)
    for r in rows:
        for k, v in r.items():
            if v is not None and k not in ("party_day.attendance_rate", "feedback.resolution_rate"):
                out[k] = (out[k] or 0) + v
    return out


def _rates(m: dict[str, float | None]) -> dict[str, float | None]:
    members = 30 * (m.get("party_day.held") or 0)  # every branch has 30 members
    attendees = m.get("party_day.attendees") or 0
    m["party_day.attendance_rate"] = round(attendees / members, 6) if members else None
    m["feedback.resolution_rate"] = None
    return m


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def stand_in(f: Figures) -> Starlette:
    """The rollup query API shapes the scheduler reads, from `f`."""

    async def roots(_: Request) -> Response:
        return _json({"items": [f.node(f.root)]})

    async def summary(request: Request) -> Response:
        uid, period = request.path_params["uid"], request.query_params["period"]
        return _json({"node": f.node(uid), "period": period, "metrics": f.metrics[(uid, period)]})

    async def children(request: Request) -> Response:
        uid, q = request.path_params["uid"], request.query_params
        period, metric = q["period"], q["metric"]
        limit, offset = int(q.get("limit", 100)), int(q.get("offset", 0))
        kids = f.kids.get(uid, [])
        items = [
            {
                **f.node(k),
                "value": f.metrics[(k, period)][metric],
                "rank": 1,
                "metrics": f.metrics[(k, period)],
            }
            for k in kids[offset : offset + limit]
        ]
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
        missing = [b for b in f.missing[period] if uid in f.units[b]["path"]]
        m = f.metrics[(uid, period)]
        page = [
            {"id": b, "name": f.units[b]["name"], "parent": f.units[b]["parent"],
             "path": f.units[b]["path"]}
            for b in missing[offset : offset + limit]
        ]  # fmt: skip
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


@asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# --- timing ----------------------------------------------------------------------------------


@contextmanager
def timed(label: str, figures: dict[str, float]) -> Iterator[None]:
    start, cpu = time.perf_counter(), time.process_time()
    yield
    figures[label] = time.perf_counter() - start
    used = time.process_time() - cpu
    sys.stdout.write(f"  {label:<44} {figures[label]:8.2f} s  (this process's CPU {used:.2f} s)\n")
    sys.stdout.flush()


async def drained(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        while await conn.fetchval(  # noqa: ASYNC110 (polling the relay's progress)
            "SELECT EXISTS (SELECT 1 FROM scheduler.outbox)"
        ):
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def move(client: httpx.AsyncClient, to: dt.datetime) -> list[str]:
    r = await client.put("/v1/clock", json={"now": to.isoformat()})
    r.raise_for_status()
    body = r.json()
    if body["pending"] or body["error"]:
        raise RuntimeError(f"steps failed at {to}: {body['error']}")
    return [f"{t['period']}:{t['step']}" for t in body["transitions"]]


async def phases(f: Figures, rollup_url: str, figures: dict[str, float]) -> None:
    """The feedback round phase by phase (no PostgreSQL): walk, build."""
    client = RollupClient(rollup_url, ADMIN, page_size=1000, concurrency=8)
    quarter = Period.parse("2030-Q3")
    periods = [str(quarter), str(quarter.previous()), *(str(m) for m in quarter.months())]
    try:
        with timed("feedback: rollup walk (5 periods)", figures):
            tree = await client.walk(await client.roots(), periods)
    finally:
        await client.aclose()
    with timed("feedback: build reports", figures):
        reports = build_reports(tree, quarter, dt.datetime(2030, 10, 10, tzinfo=SH))
    sys.stdout.write(f"  ({len(reports):,} reports)\n")


async def run(args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    t0 = time.perf_counter()
    f = Figures(args.counties, args.townships, args.branches)
    n = sum(1 for u in f.units.values() if u["level"] == "branch")
    sys.stdout.write(
        f"tree: {len(f.units):,} units, {n:,} branches (stand-in built in"
        f" {time.perf_counter() - t0:.1f} s)\n"
    )
    run_dir = Path(tempfile.mkdtemp(prefix="huibao-bench-"))
    infra = Infrastructure(
        run_dir,
        database_url=os.environ.get("DATABASE_URL") or None,
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
    )
    await infra.start()
    try:
        url = await infra.fresh_database("scheduler_bench")
        async with serve(stand_in(f)) as rollup_url:
            await phases(f, rollup_url, figures)
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
            app = build_app(settings, ManualClock(start), Seams(ticker=False, replica="bench"))
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport,
                    base_url="http://scheduler",
                    headers={"Authorization": f"Bearer {ADMIN}"},
                    timeout=600,
                ) as client:
                    if not args.skip_month:
                        await month(client, url, figures)
                    await feedback(client, url, figures)
    finally:
        await infra.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return figures


async def month(client: httpx.AsyncClient, url: str, figures: dict[str, float]) -> None:
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
        with timed(label, figures):
            ran = await move(client, to)
        with timed("  relayed to Kafka", figures):
            await drained(url)
        figures[f"{label}  relayed to Kafka"] = figures.pop("  relayed to Kafka")
        sys.stdout.write(f"    ran {ran}\n")


async def feedback(client: httpx.AsyncClient, url: str, figures: dict[str, float]) -> None:
    """Everything up to 2030-10-09 first, then the 2030-Q3 feedback round alone."""
    await move(client, dt.datetime(2030, 10, 9, tzinfo=SH))
    await drained(url)
    sys.stdout.write("quarterly feedback 2030-Q3 (through the runner):\n")
    with timed("feedback: issued + closed (walk, build, store)", figures):
        ran = await move(client, dt.datetime(2030, 10, 10, tzinfo=SH))
    sys.stdout.write(f"    ran {ran}\n")
    with timed("feedback: relayed to Kafka", figures):
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
    parser.add_argument("--skip-month", action="store_true", help="only the feedback round")
    args = parser.parse_args()
    configure_logging("scheduler-bench", "warning", "console")
    figures = asyncio.run(run(args))
    sys.stdout.write("summary (s):\n")
    for label, seconds in figures.items():
        sys.stdout.write(f"  {label:<60} {seconds:8.2f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
