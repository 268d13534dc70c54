"""The attribute limit: every event the intake accepts gives an accepted record that the
rollup's validation accepts too (reporting adds `huibaoreceived` and a defaulted
`datacontenttype`), and one attribute more is refused by the intake, by name."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from huibao_contracts.accepted import AcceptedCloudEvent, validate_accepted
from huibao_contracts.envelope import MAX_ATTRIBUTES
from huibao_reporting.domain.events import ParsedEvent, normalised, parse_event

LESSON = {
    "activity_id": "ls-1",
    "date": "2026-10-12",
    "speaker_role": "expert",
    "topic": "党课",
    "audience": 1,
}
REQUIRED = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "/tests",
    "type": "huibao.lesson.delivered.v1",
    "subject": "br-1",
    "data": LESSON,
}


def event(extensions: int, **attrs: Any) -> dict[str, Any]:
    return {**REQUIRED, **attrs, **{f"ext{i}": i for i in range(extensions)}}


@pytest.mark.parametrize(
    "attrs",
    [{}, {"huibaoreceived": "1999-01-01T00:00:00+00:00"}, {"datacontenttype": "application/json"}],
)
def test_an_event_at_the_limit_is_accepted_all_the_way(attrs: dict[str, Any]) -> None:
    body = event(MAX_ATTRIBUTES - len(REQUIRED) - len(attrs), **attrs)
    assert len(body) == MAX_ATTRIBUTES
    parsed = parse_event(body)
    assert isinstance(parsed, ParsedEvent), parsed
    record = normalised(parsed, dt.datetime(2026, 10, 12, 9, tzinfo=dt.UTC))
    assert len(record) <= AcceptedCloudEvent.MAX_ATTRIBUTES
    assert isinstance(validate_accepted(orjson.dumps(record)), AcceptedCloudEvent)


def test_one_attribute_more_is_refused() -> None:
    errors = parse_event(event(MAX_ATTRIBUTES - len(REQUIRED) + 1))
    assert isinstance(errors, list)
    assert [(e.field, e.reason.value) for e in errors] == [("event", "invalid_envelope")]
    assert str(MAX_ATTRIBUTES) in errors[0].message
