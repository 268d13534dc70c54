"""The contract models refuse bad input with the field named."""

import pytest
from pydantic import ValidationError

from huibao_contracts.activities import ACTIVITY_TYPES, PartyDayHeld
from huibao_contracts.envelope import CloudEvent
from huibao_contracts.metrics import BY_NAME, PUBLIC
from huibao_contracts.orgunits import Level, OrgUnit

FIXED_METRICS = [
    "party_day.expected",
    "party_day.held",
    "party_day.on_time",
    "party_day.late",
    "party_day.attendees",
    "party_day.attendance_rate",
    "lesson.delivered",
    "lesson.audience",
    "training.sessions",
    "training.participants",
    "outreach.sessions",
    "outreach.audience",
    "volunteer.volunteers",
    "volunteer.served",
    "feedback.collected",
    "feedback.resolved",
    "feedback.resolution_rate",
    "screening.held",
    "orgunits.branches",
    "members.total",
]


def test_the_fixed_metric_names_are_all_in_the_catalogue() -> None:
    assert set(FIXED_METRICS) <= set(PUBLIC)
    assert BY_NAME["party_day.attendance_rate"].denominator == "party_day.members"


def test_every_design_type_is_registered() -> None:
    for name in [
        "party_day.held",
        "lesson.delivered",
        "training.held",
        "outreach.held",
        "volunteer.served",
        "feedback.collected",
        "feedback.resolved",
        "screening.held",
        "points.awarded",
    ]:
        assert f"huibao.{name}.v1" in ACTIVITY_TYPES


def test_attendees_cannot_exceed_members() -> None:
    with pytest.raises(ValidationError, match="attendees cannot exceed members"):
        PartyDayHeld(activity_id="a1", date="2026-07-26", members=10, attendees=11)  # type: ignore[arg-type]


def test_unknown_fields_are_refused_by_name() -> None:
    with pytest.raises(ValidationError) as e:
        PartyDayHeld.model_validate(
            {
                "activity_id": "a1",
                "date": "2026-07-26",
                "members": 3,
                "attendees": 2,
                "colour": "red",
            }
        )
    assert e.value.errors()[0]["loc"] == ("colour",)


def test_org_unit_id_pattern_and_parent_rules() -> None:
    OrgUnit(id="cn-qy.tw_03", name="城关镇", level=Level.TOWNSHIP, parent="cn-qy")
    with pytest.raises(ValidationError, match="pattern"):
        OrgUnit(id="-bad", name="x", level=Level.CITY)
    with pytest.raises(ValidationError, match="parent is required"):
        OrgUnit(id="b1", name="x", level=Level.BRANCH)


def test_cloudevent_needs_timezone_aware_time_and_version_1_0() -> None:
    base = {"id": "1", "source": "/s", "type": "t", "subject": "b1", "data": {}}
    CloudEvent.model_validate({**base, "specversion": "1.0", "time": "2026-07-26T10:00:00+08:00"})
    with pytest.raises(ValidationError) as e:
        CloudEvent.model_validate({**base, "specversion": "0.3"})
    assert e.value.errors()[0]["loc"] == ("specversion",)
    with pytest.raises(ValidationError) as e:
        CloudEvent.model_validate({**base, "specversion": "1.0", "time": "2026-07-26T10:00:00"})
    assert e.value.errors()[0]["loc"] == ("time",)
