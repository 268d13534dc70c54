"""The contract models refuse every value the stores cannot hold, naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from huibao_contracts.activities import LessonDelivered, TrainingHeld
from huibao_contracts.envelope import CloudEvent
from huibao_contracts.orgunits import OrgUnit, OrgUnitChange
from huibao_contracts.periods import InvalidPeriodError, Period

ENVELOPE = {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t", "subject": "br-1"}
LESSON = {
    "activity_id": "a-1",
    "date": "2026-05-26",
    "speaker_role": "expert",
    "topic": "t",
    "audience": 3,
}


def fields_of(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


@pytest.mark.parametrize(
    "time",
    ["2026-05-26T10:00:00+16:00", "2026-05-26T10:00:00-16:00", "2026-05-26T10:00:00+23:59",
     "9999-12-31T23:00:00-15:00", "0999-01-01T00:00:00Z"],
)  # fmt: skip
def test_instants_postgresql_cannot_store_are_refused_on_time(time: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate({**ENVELOPE, "data": {}, "time": time})
    assert fields_of(caught.value) == ["time"]


@pytest.mark.parametrize("time", ["2026-05-26T10:00:00+15:59", "2026-05-26T10:00:00-15:59"])
def test_offsets_up_to_15_59_are_accepted(time: str) -> None:
    event = CloudEvent.model_validate({**ENVELOPE, "data": {}, "time": time})
    assert event.time is not None


@pytest.mark.parametrize("name", ["id", "source", "type", "tracestate", "dataschema"])
def test_nul_in_envelope_text_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate({**ENVELOPE, "data": {}, name: "a\x00b"})
    assert fields_of(caught.value) == [name]


@pytest.mark.parametrize("value", ["x\x00", 2**31, -(2**31) - 1])
def test_extension_values_must_be_storable(value: Any) -> None:
    with pytest.raises(ValidationError, match="partitionkey"):
        CloudEvent.model_validate({**ENVELOPE, "data": {}, "partitionkey": value})


@pytest.mark.parametrize("date", ["9999-12-31", "0999-12-31", "0001-01-01"])
def test_activity_dates_beyond_period_arithmetic_are_refused(date: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LessonDelivered.model_validate({**LESSON, "date": date})
    assert fields_of(caught.value) == ["date"]


def test_nul_in_payload_text_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        LessonDelivered.model_validate({**LESSON, "topic": "t\x00"})
    assert fields_of(caught.value) == ["topic"]


@pytest.mark.parametrize("hours", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(hours: float) -> None:
    data = {**LESSON, "target_group": "secretaries", "participants": 1, "hours": hours}
    del data["speaker_role"], data["topic"], data["audience"]
    with pytest.raises(ValidationError, match="finite") as caught:
        TrainingHeld.model_validate(data)
    assert fields_of(caught.value) == ["hours"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "城关\x00镇"), ("opened", "9999-01-01"), ("closed", "0000-01-01")],
)
def test_org_units_refuse_unstorable_values(field: str, value: str) -> None:
    unit = {"id": "br-1", "name": "n", "level": "branch", "parent": "tw-1", field: value}
    with pytest.raises(ValidationError) as caught:
        OrgUnit.model_validate(unit)
    assert fields_of(caught.value) == [field]


def test_org_unit_changes_refuse_a_seq_beyond_bigint() -> None:
    unit = {"id": "c", "name": "n", "level": "city"}
    change = {"seq": 2**63, "kind": "upsert", "effective": None, "unit": unit, "path": ["c"]}
    with pytest.raises(ValidationError) as caught:
        OrgUnitChange.model_validate(change)
    assert fields_of(caught.value) == ["seq"]


@pytest.mark.parametrize("text", ["9999-12", "9999", "9999-Q4", "0000-Q1", "0000", "0999-01"])
def test_periods_beyond_the_arithmetic_are_not_periods(text: str) -> None:
    with pytest.raises(InvalidPeriodError, match="year"):
        Period.parse(text)


@pytest.mark.parametrize("text", ["1000-01", "9998-12", "9998-Q4", "9998"])
def test_the_edge_periods_have_a_next_and_a_previous(text: str) -> None:
    period = Period.parse(text)
    assert period.next().first_day > period.last_day > period.previous().first_day
