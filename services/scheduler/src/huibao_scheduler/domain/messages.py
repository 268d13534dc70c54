"""Notification texts, in Chinese, and the monthly dispatch summary: pure functions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import Notification, NotificationKind
from huibao_contracts.periods import Period
from huibao_scheduler.domain.units import Completeness, Metrics, Unit

_ESCALATION_NAMES_IN_TEXT = 20


def month_label(month: Period) -> str:
    """`2026年7月`."""
    return f"{month.year}年{month.index}月"


def _day_label(day: dt.date) -> str:
    return f"{day.month}月{day.day}日"


def _deadline_label(rules: CalendarRules, month: Period) -> str:
    last_on_time_day = rules.local_date(rules.deadline(month)) - dt.timedelta(days=1)
    return f"{_day_label(last_on_time_day)}24时"


def upcoming(rules: CalendarRules, month: Period, unit: Unit) -> Notification:
    """The reminder every branch receives before the Party Day."""
    return upcoming_all(rules, month, [unit])[0]


def upcoming_all(rules: CalendarRules, month: Period, units: Iterable[Unit]) -> list[Notification]:
    """`upcoming` for each of `units`, the month's dates worked out once."""
    day, deadline = rules.party_day_date(month), rules.deadline(month)
    rest = (
        f"：{month_label(month)}主题党日为{_day_label(day)}，"
        f"请按时组织开展，并于{_deadline_label(rules, month)}前上报。"
    )
    details = {"party_day": day.isoformat(), "deadline": deadline.isoformat()}
    return _to_each(NotificationKind.UPCOMING, month, units, rest, details)


def not_reported(rules: CalendarRules, month: Period, unit: Unit) -> Notification:
    """The reminder a branch that has not reported yet receives before the deadline."""
    return not_reported_all(rules, month, [unit])[0]


def not_reported_all(
    rules: CalendarRules, month: Period, units: Iterable[Unit]
) -> list[Notification]:
    """`not_reported` for each of `units`, the month's deadline worked out once."""
    rest = (
        f"：{month_label(month)}主题党日情况尚未上报，"
        f"截止时间为{_deadline_label(rules, month)}，请尽快上报。"
    )
    details = {"deadline": rules.deadline(month).isoformat()}
    return _to_each(NotificationKind.NOT_REPORTED, month, units, rest, details)


def _to_each(
    kind: NotificationKind,
    month: Period,
    units: Iterable[Unit],
    rest: str,
    details: dict[str, str],
) -> list[Notification]:
    """One notification of `kind` per unit: its name, then `rest`; `details` shared."""
    return [
        Notification(kind=kind, to=u.id, period=str(month), text=u.name + rest, details=details)
        for u in units
    ]


def escalations(month: Period, missing: Iterable[Unit]) -> list[Notification]:
    """One notification per parent, listing its children that missed the deadline."""
    by_parent: dict[str, list[Unit]] = defaultdict(list)
    for unit in missing:
        if unit.parent is not None:
            by_parent[unit.parent].append(unit)
    out: list[Notification] = []
    for parent in sorted(by_parent):
        units = sorted(by_parent[parent], key=lambda u: u.id)
        names = "、".join(u.name for u in units[:_ESCALATION_NAMES_IN_TEXT])
        more = f"等{len(units)}个" if len(units) > _ESCALATION_NAMES_IN_TEXT else ""
        text = (
            f"下属{len(units)}个党支部逾期未上报{month_label(month)}主题党日情况：{names}{more}。"
            "请督促尽快补报。"
        )
        out.append(
            Notification(
                kind=NotificationKind.ESCALATION,
                to=parent,
                period=str(month),
                text=text,
                details={
                    "missing": [{"id": u.id, "name": u.name} for u in units],
                    "count": len(units),
                },
            )
        )
    return out


def _rate_label(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def dispatch(month: Period, unit: Unit, metrics: Metrics) -> Notification:
    """The monthly dispatch summary of a county or the city, sent when the cycle closes."""
    c = Completeness.from_metrics(str(month), metrics)
    rate = metrics.get("party_day.attendance_rate")
    text = (
        f"{unit.name}{month_label(month)}主题党日调度：应开展{c.expected}个，已开展{c.held}个"
        f"（按时{c.on_time}个、逾期{c.late}个），未开展{c.missing}个，参会率{_rate_label(rate)}。"
    )
    if c.unexpected:
        text += f"另有{c.unexpected}个非应开展单位上报。"
    return Notification(
        kind=NotificationKind.DISPATCH,
        to=unit.id,
        period=str(month),
        text=text,
        details={
            "expected": c.expected,
            "held": c.held,
            "on_time": c.on_time,
            "late": c.late,
            "missing": c.missing,
            "unexpected": c.unexpected,
            "attendance_rate": rate,
        },
    )


def feedback_issued(quarter: Period, unit: Unit, attention: int) -> Notification:
    """Tells a unit that its quarterly feedback is ready."""
    text = f"{unit.name}：{quarter.year}年第{quarter.index}季度工作反馈已生成"
    text += f"，{attention}个下级单位需要关注。" if attention else "。"
    return Notification(
        kind=NotificationKind.FEEDBACK,
        to=unit.id,
        period=str(quarter),
        text=text,
        details={"attention": attention},
    )
