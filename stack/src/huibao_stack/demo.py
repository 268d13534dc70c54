"""`make demo`: a simulated quarter for a demo city through the real pipeline.

Loads the demo city into reporting, then month by month moves the scheduler's clock
through the Party Day cycle and sends the month's reports (over HTTP in batches and
straight onto Kafka, structured and binary mode), waits until the rollup shows them,
and finally prints a table per county and the city total, checked against the totals the
simulation computed on its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from huibao_contracts import topics
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.metrics import BY_NAME
from huibao_contracts.periods import Period
from huibao_stack.demo_activity import Expected, MonthPlan, Outgoing, simulate_quarter
from huibao_stack.demo_city import DemoCity, build_demo_city
from huibao_stack.demo_report import county_table, render_table

HTTP_BATCH = 500


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the running services are."""

    reporting: str
    rollup: str
    scheduler: str
    bootstrap_servers: str
    admin_token: str


class DemoError(RuntimeError):
    """The demo saw something wrong: a service refused input or the totals differ."""


def demo_quarter(today: dt.date | None = None) -> Period:
    """The last full quarter before today: its reports are all in the past."""
    return Period.quarter_of(today or dt.date.today()).previous()


async def run_demo(ep: Endpoints, quarter: Period | None = None) -> Counter[str]:
    """Run the simulated quarter; return the city totals read back from the rollup."""
    q = quarter or demo_quarter()
    cal = CalendarRules()
    city = build_demo_city()
    plans, expected = simulate_quarter(city, q, cal)
    headers = {"Authorization": f"Bearer {ep.admin_token}"}
    started = time.perf_counter()
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        producer = AIOKafkaProducer(bootstrap_servers=ep.bootstrap_servers, linger_ms=5)
        await producer.start()
        try:
            await _load_tree(http, ep, city)
            print(
                f"Loaded {len(city.units)} org units: {len(city.branches)} branches, "
                f"{sum(city.members.values())} members."
            )
            sent = await _run_quarter(http, producer, ep, cal, plans, city)
            await _advance(http, ep, cal.feedback_at(q))
        finally:
            await producer.stop()
        print(
            f"Sent {sent} events in {time.perf_counter() - started:.1f}s; waiting for the rollup…"
        )
        rows = await _wait_for_totals(http, ep, city, q, expected)
        cycles = (await http.get(f"{ep.scheduler}/v1/cycles")).json()
    print()
    print(render_table(rows, title=f"示范市 {q} — Party Day and education activity by county"))
    print()
    _print_cycles(cycles)
    return Counter(rows[-1].totals)


async def _load_tree(http: httpx.AsyncClient, ep: Endpoints, city: DemoCity) -> None:
    r = await http.put(f"{ep.reporting}/v1/orgunits", json=list(city.units))
    if r.status_code >= 300:
        raise DemoError(f"loading the tree failed: {r.status_code} {r.text[:500]}")


async def _advance(http: httpx.AsyncClient, ep: Endpoints, to: dt.datetime) -> list[dict[str, Any]]:
    r = await http.put(f"{ep.scheduler}/v1/clock", json={"now": to.isoformat()})
    if r.status_code >= 300:
        raise DemoError(f"moving the scheduler clock failed: {r.status_code} {r.text[:500]}")
    transitions: list[dict[str, Any]] = r.json().get("transitions", [])
    for t in transitions:
        print(
            f"  {to:%Y-%m-%d %H:%M}  cycle {t.get('kind')} {t.get('period')}: {t.get('step')}"
            + (" (skipped)" if t.get("skipped") else "")
        )
    return transitions


def _timeline(
    cal: CalendarRules, plans: list[MonthPlan]
) -> list[tuple[dt.datetime, int, str, MonthPlan]]:
    """Every clock stop of the quarter in time order; months overlap (July closes in August)."""
    stops = []
    for plan in plans:
        m = plan.month
        stops += [
            (cal.opens_at(m), 0, "open", plan),
            (cal.upcoming_reminder_at(m), 1, "report_on_time", plan),
            (cal.overdue_reminder_at(m), 2, "remind", plan),
            (cal.escalates_at(m), 3, "report_late", plan),
            (cal.closes_at(m), 4, "close", plan),
        ]
    return sorted(stops, key=lambda s: (s[0], s[1]))


async def _run_quarter(
    http: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    ep: Endpoints,
    cal: CalendarRules,
    plans: list[MonthPlan],
    city: DemoCity,
) -> int:
    sent = 0
    for at, _, action, plan in _timeline(cal, plans):
        if action == "open":
            print(f"— {plan.month}: Party Day on {cal.party_day_date(plan.month)}")
        await _advance(http, ep, at)
        if action == "report_on_time":
            await _send(http, producer, ep, plan.on_time)
            await _wait_for_held(http, ep, city, plan.month, plan.on_time)
            sent += len(plan.on_time)
        elif action == "report_late":
            await _send(http, producer, ep, plan.late)
            sent += len(plan.late)
    return sent


async def _send(
    http: httpx.AsyncClient, producer: AIOKafkaProducer, ep: Endpoints, batch: list[Outgoing]
) -> None:
    over_http = [o.event for o in batch if o.channel == "http"]
    for i in range(0, len(over_http), HTTP_BATCH):
        chunk = over_http[i : i + HTTP_BATCH]
        r = await http.post(
            f"{ep.reporting}/v1/events",
            content=orjson.dumps(chunk),
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        if r.status_code >= 300:
            raise DemoError(f"batch refused: {r.status_code} {r.text[:500]}")
        body = r.json()
        if body.get("rejected"):
            bad = [x for x in body["results"] if x["status"] == "rejected"][:3]
            raise DemoError(f"{body['rejected']} events rejected, e.g. {bad}")
    for n, o in enumerate(x for x in batch if x.channel == "kafka"):
        ev = o.event
        key = str(ev["subject"]).encode()
        if n % 2 == 0:  # structured mode
            await producer.send(
                topics.ACTIVITY_SUBMITTED,
                key=key,
                value=orjson.dumps(ev),
                headers=[("content-type", b"application/cloudevents+json")],
            )
        else:  # binary mode: attributes in ce_* headers, the payload as the value
            attrs = [
                (f"ce_{k}", str(v).encode())
                for k, v in ev.items()
                if k not in ("data", "datacontenttype")
            ]
            await producer.send(
                topics.ACTIVITY_SUBMITTED,
                key=key,
                value=orjson.dumps(ev["data"]),
                headers=[*attrs, ("content-type", b"application/json")],
            )
    await producer.flush()


async def _wait_for_held(
    http: httpx.AsyncClient, ep: Endpoints, city: DemoCity, month: Period, sent: list[Outgoing]
) -> None:
    """Wait until the month's on-time Party Days are visible, so reminders see them."""
    want = len({o.event["subject"] for o in sent if o.event["type"] == "huibao.party_day.held.v1"})
    deadline = time.monotonic() + 120
    held = -1
    while time.monotonic() < deadline:
        r = await http.get(
            f"{ep.rollup}/v1/nodes/{city.root}/completeness",
            params={"cycle": "party_day", "period": str(month), "limit": 1},
        )
        if r.status_code == 200:
            held = int(r.json()["held"])
            if held >= want:
                return
        await asyncio.sleep(0.2)
    raise DemoError(f"{month}: the rollup shows {held} Party Days held, {want} were sent on time")


async def _wait_for_totals(
    http: httpx.AsyncClient, ep: Endpoints, city: DemoCity, q: Period, expected: Expected
) -> list[Any]:
    deadline = time.monotonic() + 180
    rows: list[Any] = []
    mismatch: list[str] = ["not read yet"]
    while time.monotonic() < deadline:
        rows = await county_table(http, ep.rollup, city.root, q)
        mismatch = _compare(rows, expected)
        if not mismatch:
            return rows
        await asyncio.sleep(0.3)
    raise DemoError("the rollup does not match the simulation: " + "; ".join(mismatch[:8]))


def _compare(rows: list[Any], expected: Expected) -> list[str]:
    problems = []
    want = {**{c: dict(v) for c, v in expected.by_county.items()}}
    for row in rows:
        target = expected.city() if row.node_id is None else want.get(row.node_id, {})
        for metric, value in target.items():
            if BY_NAME[metric].internal:
                continue  # not served by the API; checked through the ratio below
            got = row.totals.get(metric)
            if got is None or abs(float(got) - float(value)) > 1e-9:
                problems.append(f"{row.name} {metric}: rollup {got}, simulated {value}")
        members = target.get("party_day.members", 0)
        if members:
            rate = target["party_day.attendees"] / members
            got_rate = row.totals.get("party_day.attendance_rate")
            if got_rate is None or abs(float(got_rate) - rate) > 1e-6:  # served rounded to 6 places
                problems.append(f"{row.name} attendance rate: rollup {got_rate}, simulated {rate}")
    return problems


def _print_cycles(cycles: Any) -> None:
    items = cycles.get("items", cycles) if isinstance(cycles, dict) else cycles
    if not items:
        return
    print("Scheduler cycles:")
    for c in items:
        print(f"  {c.get('kind'):10} {c.get('period'):8} {c.get('state')}")
