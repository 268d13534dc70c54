"""The pieces the per-unit steps stream with: the tree walk and the notification records."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from huibao_contracts import topics
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import NOTIFICATION_TYPE, Notification
from huibao_contracts.periods import Period
from huibao_scheduler.adapters import publisher
from huibao_scheduler.domain import messages
from huibao_scheduler.domain.units import Unit
from huibao_scheduler.service_layer.tree_walk import walk

TREE = {"r": ["a", "b"], "a": ["a1", "a2"], "b": ["b1"], "a1": [], "a2": ["a2x"], "b1": []}


async def test_walk_visits_every_node_once_at_most_workers_at_a_time() -> None:
    seen: list[str] = []
    busy = 0
    most = 0

    async def visit(node: str) -> list[str]:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.001)
        seen.append(node)
        busy -= 1
        return TREE.get(node, [])

    await walk(["r"], visit, workers=3)
    assert sorted(seen) == sorted({*TREE, "a2x"})
    assert most <= 3


async def test_walk_stops_at_the_first_failing_visit_and_raises_it() -> None:
    visited: list[str] = []

    async def visit(node: str) -> list[str]:
        if node == "a":
            raise RuntimeError("rollup down")
        await asyncio.sleep(0.01)
        visited.append(node)
        return TREE.get(node, [])

    with pytest.raises(RuntimeError, match="rollup down"):
        await walk(["r"], visit, workers=2)
    assert "a1" not in visited
    assert "a2x" not in visited


def _slow_record(n: Notification, step: str, time: dt.datetime) -> bytes:
    """The record as the `CloudEvent` model writes it (the reference for the fast path)."""
    return publisher._record(
        topic=topics.NOTIFICATIONS,
        key=n.to,
        event_id=f"{n.kind.value}/{n.period}/{step}/{n.to}",
        type_=NOTIFICATION_TYPE,
        subject=n.to,
        time=time,
        data=n,
    ).value


@pytest.mark.parametrize(
    "time",
    [
        dt.datetime(2026, 7, 24, 9, tzinfo=ZoneInfo("Asia/Shanghai")),
        dt.datetime(2026, 7, 24, 1, 2, 3, 456, tzinfo=dt.UTC),
    ],
)
def test_notification_records_are_the_cloudevent_json_byte_for_byte(time: dt.datetime) -> None:
    rules, month = CalendarRules(), Period.parse("2026-07")
    branch = Unit("c.t.b1", "城关镇第一村党支部", "branch", "c.t", ("c", "c.t", "c.t.b1"))
    county = Unit("c", "清源县", "county", None, ("c",))
    notes = [
        *messages.upcoming_all(rules, month, [branch]),
        *messages.not_reported_all(rules, month, [branch]),
        *messages.escalations(month, [branch]),
        messages.dispatch(
            month, county, {"party_day.expected": 3, "party_day.attendance_rate": 0.9123}
        ),
        messages.feedback_issued(Period.parse("2026-Q3"), county, 2),
    ]
    for n in notes:
        fast = publisher.notification_record(n, "step", time)
        assert fast.value == _slow_record(n, "step", time)
        assert fast.key == n.to.encode()
        assert fast.topic == topics.NOTIFICATIONS


def test_batch_reminders_equal_one_by_one() -> None:
    rules, month = CalendarRules(), Period.parse("2026-07")
    units = [Unit(f"t.b{i}", f"第{i}村党支部", "branch", "t", ("t", f"t.b{i}")) for i in range(3)]
    assert messages.upcoming_all(rules, month, units) == [
        messages.upcoming(rules, month, u) for u in units
    ]
    assert messages.upcoming(rules, month, units[0]).text.startswith(
        "第0村党支部：2026年7月主题党日为"
    )
