"""Person-hours by the class-hour rule, and rates divided from sums at the node (issue 15.3)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import huibao_dashboard
from huibao_contracts.activities import TRAINING_TYPE, TrainingDuration, TrainingHeld
from huibao_contracts.calendar import CalendarRules
from huibao_contracts.class_hours import DEFAULT_CLASS_HOURS, ClassHourRules
from huibao_contracts.metrics import BY_NAME, PUBLIC, SUMS, MetricKind
from huibao_contracts.orgunits import OrgUnitChange
from huibao_contracts.rejects import Reason
from huibao_reporting.domain.events import ParsedEvent, parse_event
from huibao_rollup.domain import contribution as contrib
from huibao_rollup.domain.aggregation import SLOTS, Fold
from huibao_rollup.domain.model import ActivityEvent
from huibao_rollup.domain.tree import Tree, UnitVersion
from huibao_rollup.domain.views import public_metrics, ratio
from huibao_rollup.settings import RollupSettings


def city() -> Tree:
    """City c; county k1 with branch b1, county k2 with branch b3."""
    tree = Tree()
    units = [
        ("c", "city", None),
        ("k1", "county", "c"),
        ("k2", "county", "c"),
        ("t1", "township", "k1"),
        ("t2", "township", "k2"),
        ("b1", "branch", "t1"),
        ("b3", "branch", "t2"),
    ]
    for seq, (uid, level, parent) in enumerate(units, start=1):
        u = {"id": uid, "name": uid, "level": level, "parent": parent, "members": 10}
        change = {"seq": seq, "kind": "upsert", "effective": None, "unit": u, "path": [uid]}
        tree.apply(UnitVersion.of(OrgUnitChange.model_validate(change)))
    return tree


TRAINING = {"target_group": "secretaries", "participants": 30, "hours": 3}


def training(**data: Any) -> dict[str, Any]:
    return TrainingHeld.model_validate(
        {"activity_id": "t", "date": "2026-06-02", **TRAINING, **data}
    ).model_dump(mode="json")


@pytest.mark.parametrize(
    ("duration", "hours", "days", "expected"),
    [
        (TrainingDuration.HOURS, Decimal(3), 1, Decimal(3)),
        (TrainingDuration.HOURS, Decimal("2.5"), 1, Decimal("2.5")),
        (TrainingDuration.HALF_DAY, Decimal(3), 1, Decimal(4)),
        (TrainingDuration.HALF_DAY, Decimal(3), 3, Decimal(12)),
        (TrainingDuration.FULL_DAY, Decimal(6), 1, Decimal(8)),
        (TrainingDuration.FULL_DAY, Decimal(6), 2, Decimal(16)),
    ],
)
def test_class_hours_count_1_per_hour_4_per_half_day_8_per_full_day(
    duration: TrainingDuration, hours: Decimal, days: int, expected: Decimal
) -> None:
    assert DEFAULT_CLASS_HOURS.class_hours(duration, hours, days) == expected


def test_the_rule_is_configuration_read_from_the_rollup_settings() -> None:
    settings = RollupSettings(
        class_hours_per_hour=Decimal("0.75"),
        class_hours_per_half_day=Decimal(3),
        class_hours_per_full_day=Decimal(6),
    )
    rules = settings.class_hours
    assert rules == ClassHourRules(
        per_hour=Decimal("0.75"), per_half_day=Decimal(3), per_full_day=Decimal(6)
    )
    assert contrib.person_hours(training(hours=2), rules) == 45
    assert contrib.person_hours(training(duration="full_day", days=2), rules) == 360
    assert RollupSettings().class_hours == DEFAULT_CLASS_HOURS


def test_person_hours_are_participants_times_class_hours_exactly() -> None:
    assert contrib.person_hours(training(), DEFAULT_CLASS_HOURS) == 90
    assert contrib.person_hours(training(duration="half_day"), DEFAULT_CLASS_HOURS) == 120
    assert contrib.person_hours(training(duration="full_day", days=3), DEFAULT_CLASS_HOURS) == 720
    # 3 × 0.1 is 0.30000000000000004 in floats; the rule is decimal
    assert contrib.person_hours(training(participants=3, hours=0.1), DEFAULT_CLASS_HOURS) == 0.3


def test_an_old_training_payload_without_duration_is_accepted_and_counted_in_hours() -> None:
    old = {"activity_id": "t", "date": "2026-06-02", **TRAINING}
    model = TrainingHeld.model_validate(old)
    assert (model.duration, model.days) == (TrainingDuration.HOURS, 1)
    got = contrib.contribution(TRAINING_TYPE, old, retracted=False, on_time=None)
    assert got["training.person_hours"] == 90
    assert got["training.hours"] == 3


def test_days_without_a_day_duration_is_refused() -> None:
    with pytest.raises(ValidationError, match="days needs duration half_day or full_day"):
        training(days=2)


def test_new_sums_are_appended_after_the_existing_slots() -> None:
    before = SLOTS.index("party_day.unexpected")
    for name in ("training.person_hours", "volunteer.hours", "outreach.good"):
        assert SLOTS.index(name) > before
    assert SLOTS[: before + 1] == SUMS[: before + 1]
    assert {"lesson.minutes", "screening.audience", "volunteer.hours"} <= set(PUBLIC)


def test_volunteer_hours_lesson_minutes_screening_audience_are_sums_of_their_fields() -> None:
    vol = contrib.contribution(
        "huibao.volunteer.served.v1",
        {"volunteers": 4, "served": 20, "hours": 12.5},
        retracted=False,
        on_time=None,
    )
    assert vol["volunteer.hours"] == 12.5
    lesson = contrib.contribution(
        "huibao.lesson.delivered.v1",
        {"audience": 30, "duration_minutes": 50},
        retracted=False,
        on_time=None,
    )
    assert lesson["lesson.minutes"] == 50
    screening = contrib.contribution(
        "huibao.screening.held.v1", {"audience": 60}, retracted=False, on_time=None
    )
    assert screening["screening.audience"] == 60


def test_every_rate_is_a_ratio_of_the_catalogue() -> None:
    for name, (num, den) in {
        "party_day.reporting_rate": ("party_day.held", "party_day.expected"),
        "party_day.on_time_rate": ("party_day.on_time", "party_day.held"),
        "outreach.attendance_rate": ("outreach.present", "outreach.expected"),
        "outreach.satisfaction_rate": ("outreach.satisfied", "outreach.responses"),
        "outreach.good_rate": ("outreach.good", "outreach.responses"),
    }.items():
        metric = BY_NAME[name]
        assert (metric.kind, metric.numerator, metric.denominator) == (MetricKind.RATIO, num, den)


def test_a_zero_denominator_gives_no_rate() -> None:
    assert ratio(Decimal(0), Decimal(0)) is None
    assert ratio(Decimal(3), 0) is None
    got = public_metrics({}, {"party_day.expected": 0})
    for name in (
        "party_day.reporting_rate",
        "party_day.on_time_rate",
        "outreach.attendance_rate",
        "outreach.satisfaction_rate",
        "outreach.good_rate",
    ):
        assert got[name] is None


def test_rates_divide_sums_not_average_the_childrens_rates() -> None:
    """Two outreach lectures under two counties: 9/10 and 1/30 present. The city's rate is
    10/40 = 0.25, not the mean of 0.9 and 0.0333 (0.4667)."""
    fold = Fold(CalendarRules(), city(), {})
    for aid, unit, present, expected, responses, good in (
        ("o1", "b1", 9, 10, 8, 8),
        ("o2", "b3", 1, 30, 2, 0),
    ):
        data = {
            "activity_id": aid,
            "revision": 1,
            "date": "2026-06-02",
            "audience": present,
            "expected": expected,
            "present": present,
            "responses": responses,
            "satisfied": responses,
            "good": good,
        }
        fold.apply(
            ActivityEvent(
                source="/t",
                id=aid,
                type="huibao.outreach.held.v1",
                unit=unit,
                time=None,
                received=dt.datetime(2026, 6, 2, tzinfo=dt.UTC),
                data=data,
            )
        )
    sums: dict[str, dict[str, Decimal]] = {}
    for (node, period, metric, _), value in fold.deltas.changed():
        if period == "2026-06":
            sums.setdefault(node, {})[metric] = value
    city_rates = public_metrics(sums["c"], {})
    assert public_metrics(sums["k1"], {})["outreach.attendance_rate"] == 0.9
    assert public_metrics(sums["k2"], {})["outreach.attendance_rate"] == round(1 / 30, 6)
    assert city_rates["outreach.attendance_rate"] == 0.25
    assert city_rates["outreach.good_rate"] == 0.8
    assert city_rates["outreach.satisfaction_rate"] == 1


def test_reporting_rate_divides_held_by_the_tree_expected() -> None:
    got = public_metrics(
        {"party_day.held": Decimal(3), "party_day.on_time": Decimal(2)},
        {"party_day.expected": 4},
    )
    assert got["party_day.reporting_rate"] == 0.75
    assert got["party_day.on_time_rate"] == round(2 / 3, 6)


def test_the_dashboard_labels_every_public_metric_in_chinese_and_english() -> None:
    i18n = (Path(huibao_dashboard.__file__).parent / "static" / "i18n.js").read_text("utf-8")
    zh, en = i18n.split("\n  en: {", 1)
    for name, block in (("zh", zh), ("en", en)):
        labels = set(re.findall(r'"m\.([a-z_.]+)":', block))
        assert set(PUBLIC) <= labels, (name, sorted(set(PUBLIC) - labels))


def test_reporting_refuses_days_without_a_day_duration_naming_the_field() -> None:
    data: dict[str, Any] = {"activity_id": "tr-1", "date": "2026-07-06", **TRAINING, "days": 2}
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/p",
        "type": TRAINING_TYPE,
        "subject": "b",
        "data": data,
    }
    refused = parse_event(body)
    assert isinstance(refused, list), refused
    assert [(e.field, e.reason) for e in refused] == [("data.days", Reason.INVALID_FIELD)]
    body["data"] = {**data, "duration": "full_day"}
    assert isinstance(parse_event(body), ParsedEvent)
