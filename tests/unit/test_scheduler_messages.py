"""Notification texts and the monthly dispatch summary."""

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.cycles import NotificationKind
from huibao_contracts.periods import Period
from huibao_scheduler.domain import messages
from huibao_scheduler.domain.units import Unit

JULY = Period.parse("2026-07")
BRANCH = Unit("br-1", "城关镇第一村党支部", "branch", "tw-1")


def test_upcoming_reminder_names_the_party_day_and_the_deadline() -> None:
    n = messages.upcoming(CalendarRules(), JULY, BRANCH)
    assert n.kind is NotificationKind.UPCOMING
    assert n.to == "br-1"
    assert n.text == (
        "城关镇第一村党支部：2026年7月主题党日为7月26日，请按时组织开展，并于7月29日24时前上报。"
    )


def test_not_reported_reminder() -> None:
    n = messages.not_reported(CalendarRules(), JULY, BRANCH)
    assert n.kind is NotificationKind.NOT_REPORTED
    assert "尚未上报" in n.text
    assert "7月29日24时" in n.text


def test_escalation_goes_to_each_parent_with_its_missing_children() -> None:
    missing = [
        Unit("b2", "二村", "branch", "tw-1"),
        Unit("b1", "一村", "branch", "tw-1"),
        Unit("b9", "九村", "branch", "tw-2"),
        Unit("x", "孤儿", "branch", None),
    ]
    got = messages.escalations(JULY, missing)
    assert [(n.to, n.details["count"]) for n in got] == [("tw-1", 2), ("tw-2", 1)]
    assert got[0].text == (
        "下属2个党支部逾期未上报2026年7月主题党日情况：一村、二村。请督促尽快补报。"
    )
    assert got[0].details["missing"] == [{"id": "b1", "name": "一村"}, {"id": "b2", "name": "二村"}]


def test_dispatch_summary_counts_and_rate() -> None:
    metrics = {
        "party_day.expected": 10,
        "party_day.held": 8,
        "party_day.on_time": 7,
        "party_day.late": 1,
        "party_day.attendance_rate": 0.9234,
    }
    n = messages.dispatch(JULY, Unit("cn-1", "清源县", "county"), metrics)
    assert n.kind is NotificationKind.DISPATCH
    assert n.details == {
        "expected": 10,
        "held": 8,
        "on_time": 7,
        "late": 1,
        "missing": 2,
        "unexpected": 0,
        "attendance_rate": 0.9234,
    }
    assert n.text == (
        "清源县2026年7月主题党日调度：应开展10个，已开展8个（按时7个、逾期1个），"
        "未开展2个，参会率92.3%。"
    )
