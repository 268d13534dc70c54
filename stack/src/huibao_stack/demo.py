"""`make demo`: a simulated quarter for a demo city through the real pipeline.

Loads the demo city into reporting, then month by month moves the scheduler's clock
through the Party Day cycle and sends the month's reports (over HTTP in batches and
straight onto Kafka, structured and binary mode), waits until the rollup shows them,
and finally prints a table per county and the city total, checked against the totals the
simulation computed on its own.

It talks to Huibao only through `huibao-client` (`AsyncHuibaoClient` and `KafkaPublisher`),
the package integrators use.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from huibao_client import AsyncHuibaoClient, BatchResult, HuibaoError
from huibao_client.kafka import KafkaPublisher, kafka_record
from huibao_client.models import Cycles
from huibao_contracts.activities import PARTY_DAY_TYPE
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
    started = time.perf_counter()
    huibao = AsyncHuibaoClient(
        ep.reporting,
        rollup_url=ep.rollup,
        scheduler_url=ep.scheduler,
        token=ep.admin_token,
        timeout=60,
    )
    try:
        async with huibao, KafkaPublisher(ep.bootstrap_servers) as publisher:
            await _load_tree(huibao, city)
            print(
                f"Loaded {len(city.units)} org units: {len(city.branches)} branches, "
                f"{sum(city.members.values())} members."
            )
            sent = await _run_quarter(huibao, publisher, cal, plans, city)
            await _advance(huibao, cal.feedback_at(q))
            print(
                f"Sent {sent} events in {time.perf_counter() - started:.1f}s;"
                " waiting for the rollup…"
            )
            rows = await _wait_for_totals(huibao, city, q, expected)
            cycles = await huibao.cycles()
    except HuibaoError as e:
        raise DemoError(f"a service refused the demo: {e}") from e
    print()
    print(render_table(rows, title=f"示范市 {q} — Party Day and education activity by county"))
    print()
    _print_cycles(cycles)
    return Counter(rows[-1].totals)


async def _load_tree(huibao: AsyncHuibaoClient, city: DemoCity) -> None:
    try:
        await huibao.import_orgunits(city.units)
    except HuibaoError as e:
        raise DemoError(f"loading the tree failed: {e}") from e


async def _advance(huibao: AsyncHuibaoClient, to: dt.datetime) -> None:
    try:
        moved = await huibao.move_clock(to)
    except HuibaoError as e:
        raise DemoError(f"moving the scheduler clock failed: {e}") from e
    for t in moved.transitions:
        print(
            f"  {to:%Y-%m-%d %H:%M}  cycle {t.kind} {t.period}: {t.step}"
            + (" (skipped)" if t.skipped else "")
        )


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
    huibao: AsyncHuibaoClient,
    publisher: KafkaPublisher,
    cal: CalendarRules,
    plans: list[MonthPlan],
    city: DemoCity,
) -> int:
    sent = 0
    for at, _, action, plan in _timeline(cal, plans):
        if action == "open":
            print(f"— {plan.month}: Party Day on {cal.party_day_date(plan.month)}")
        await _advance(huibao, at)
        if action == "report_on_time":
            await _send(huibao, publisher, plan.on_time)
            await _wait_for_held(huibao, city, plan.month, plan.on_time)
            sent += len(plan.on_time)
        elif action == "report_late":
            await _send(huibao, publisher, plan.late)
            sent += len(plan.late)
    return sent


async def _send(
    huibao: AsyncHuibaoClient, publisher: KafkaPublisher, batch: list[Outgoing]
) -> None:
    over_http = [o.event for o in batch if o.channel == "http"]
    for i in range(0, len(over_http), HTTP_BATCH):
        answer: BatchResult = await huibao.send_batch(over_http[i : i + HTTP_BATCH])
        if answer.rejected:
            bad = [r.model_dump(mode="json") for r in answer.refused[:3]]
            raise DemoError(f"{answer.rejected} events rejected, e.g. {bad}")
    # Kafka: alternately structured mode and binary mode (attributes in ce_* headers), in
    # order, so that one unit's events keep their order on its partition
    over_kafka = [o.event for o in batch if o.channel == "kafka"]
    await publisher.publish_records(
        [kafka_record(ev, binary=n % 2 == 1) for n, ev in enumerate(over_kafka)]
    )


async def _wait_for_held(
    huibao: AsyncHuibaoClient, city: DemoCity, month: Period, sent: list[Outgoing]
) -> None:
    """Wait until the month's on-time Party Days are visible, so reminders see them."""
    want = len({o.event["subject"] for o in sent if o.event["type"] == PARTY_DAY_TYPE})
    deadline = time.monotonic() + 120
    held = -1
    while time.monotonic() < deadline:
        try:
            held = (await huibao.completeness(city.root, month, limit=1)).held
        except HuibaoError:
            held = -1  # not there yet (the rollup may not know the tree yet)
        if held >= want:
            return
        await asyncio.sleep(0.2)
    raise DemoError(f"{month}: the rollup shows {held} Party Days held, {want} were sent on time")


async def _wait_for_totals(
    huibao: AsyncHuibaoClient, city: DemoCity, q: Period, expected: Expected
) -> list[Any]:
    deadline = time.monotonic() + 180
    rows: list[Any] = []
    mismatch: list[str] = ["not read yet"]
    while time.monotonic() < deadline:
        rows = await county_table(huibao, city.root, q)
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


def _print_cycles(cycles: Cycles) -> None:
    if not cycles.items:
        return
    print("Scheduler cycles:")
    for c in cycles.items:
        print(f"  {c.kind:10} {c.period:8} {c.state}")
