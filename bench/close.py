"""Phase 2, a national sample: the tree is loaded, one month of Party Day reports goes
through the pipeline, and the scheduler's manual clock is moved through the monthly cycle
and the quarterly feedback, each step timed."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

from bench.common import BenchError, load_tree, say
from bench.generate import month_workload, national_sample
from bench.sampling import MemorySampler, watch_stack
from bench.settings import BenchSettings
from bench.throughput import throughput
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.periods import Period
from huibao_stack.stack import EmbeddedStack

FEEDBACK = "quarterly feedback (every unit)"
CLOSE = "monthly close (dispatch)"


def close_month(today: dt.date) -> Period:
    """The last month of the last full quarter: its close and its feedback both lie behind."""
    return Period.quarter_of(today).previous().months()[-1]


async def close_phase(cfg: BenchSettings, sampler: MemorySampler, out: dict[str, Any]) -> None:
    """Run the close phase; its results go into `out["close"]` as they come."""
    cal = CalendarRules()
    month = close_month(dt.date.today())
    quarter = Period.quarter_of(month.first_day)
    tree = national_sample(cfg.scale, seed=cfg.seed)
    work = month_workload(
        tree,
        [str(month)],
        seed=cfg.seed + 1,
        lessons=0,
        screenings=0,
        volunteering=0,
        not_after=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    res: dict[str, Any] = {
        "tree": tree.scale | {"members": tree.total_members, "units": len(tree.units)},
        "month": str(month),
        "quarter": str(quarter),
    }
    out["close"] = res
    say(
        f"national sample: {len(tree.branches)} branches in {tree.scale['counties_sampled']} "
        f"counties (x{tree.scale['factor']:.0f} to the country)"
    )
    start = cal.opens_at(month) - dt.timedelta(hours=1)
    stack = EmbeddedStack(
        clock="manual",
        clock_start=start.isoformat(),
        service_env={
            "scheduler": {"HUIBAO_FIRST_PERIOD": str(month), "HUIBAO_ROLLUP_TIMEOUT": "600"}
        },
    )
    await stack.start()
    try:
        watch_stack(sampler, stack, "national/")
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        async with httpx.AsyncClient(headers=headers, timeout=cfg.timeout) as http:
            res["tree_load"] = await load_tree(http, stack, tree, cfg.timeout)
            say(f"tree loaded: {res['tree_load']}")
            steps: dict[str, Any] = {}
            res["steps"] = steps

            async def move(label: str, to: dt.datetime) -> None:
                steps[label] = await move_clock(http, stack.urls["scheduler"], label, to)

            await move("opened", cal.opens_at(month))
            await move("upcoming_reminder (every branch)", cal.upcoming_reminder_at(month))
            tp = await throughput(http, stack, tree, work, cfg.timeout, sampler, "national/")
            res["throughput"] = {k: v for k, v in tp.items() if k != "checked"}
            say(f"national e2e: {res['throughput']}")
            await move("overdue_reminder (missing branches)", cal.overdue_reminder_at(month))
            await move("deadline + escalation", cal.escalates_at(month))
            await move(CLOSE, cal.closes_at(month))
            await move(FEEDBACK, cal.feedback_at(quarter))
            cycle = [v["seconds"] for k, v in steps.items() if k != FEEDBACK]
            res["monthly_cycle_total_s"] = round(sum(cycle), 2)
            res["monthly_close_s"] = steps[CLOSE]["seconds"]
            res["feedback_s"] = steps[FEEDBACK]["seconds"]
    finally:
        sampler.sample()
        await stack.stop()


async def move_clock(
    http: httpx.AsyncClient, scheduler: str, label: str, to: dt.datetime
) -> dict[str, Any]:
    """Move the scheduler's manual clock to `to`; the seconds it took and its transitions."""
    t = time.perf_counter()
    r = await http.put(f"{scheduler}/v1/clock", json={"now": to.isoformat()})
    took = time.perf_counter() - t
    if r.status_code >= 300:
        raise BenchError(f"PUT /v1/clock {label} → {r.status_code} {r.text[:300]}")
    trans = r.json().get("transitions", [])
    step = {
        "seconds": round(took, 2),
        "transitions": [f"{x.get('kind')}:{x.get('period')}:{x.get('step')}" for x in trans],
    }
    say(f"  {label}: {took:.2f}s {step['transitions']}")
    return step
