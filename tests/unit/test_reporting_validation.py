"""Event validation of reporting: envelope, type, payload, registry, dates, scope, revisions."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from huibao_contracts.orgunits import OrgUnit
from huibao_contracts.rejects import Reason
from huibao_reporting.adapters.kafka_records import submission_from_record
from huibao_reporting.domain.checks import IntakeRules, check_event
from huibao_reporting.domain.decisions import IntakeState, Status, decide
from huibao_reporting.domain.events import ParsedEvent, normalised, parse_event
from huibao_reporting.domain.registry import RegistryView, record_of

PD = "huibao.party_day.held.v1"
LESSON = "huibao.lesson.delivered.v1"
NOW = dt.datetime(2026, 8, 10, 4, 0, tzinfo=dt.UTC)
RULES = IntakeRules(timezone=ZoneInfo("Asia/Shanghai"))

VIEW = RegistryView(
    record_of(u)
    for u in [
        OrgUnit(id="c", name="市", level="city"),  # type: ignore[arg-type]
        OrgUnit(id="t", name="镇", level="township", parent="c"),  # type: ignore[arg-type]
        OrgUnit(id="b", name="支部", level="branch", parent="t", members=30),  # type: ignore[arg-type]
        OrgUnit(id="b2", name="支部二", level="branch", parent="c"),  # type: ignore[arg-type]
        OrgUnit(
            id="old",
            name="旧支部",
            level="branch",  # type: ignore[arg-type]
            parent="t",
            closed=dt.date(2026, 7, 1),
        ),
    ]
)


def event(data: dict[str, Any] | None = None, **env: Any) -> dict[str, Any]:
    body = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/p",
        "type": PD,
        "subject": "b",
        "time": "2026-07-26T18:00:00+08:00",
        "data": {
            "activity_id": "pd-1",
            "date": "2026-07-26",
            "members": 30,
            "attendees": 28,
            **(data or {}),
        },
    }
    body.update(env)
    return body


def parsed(**kw: Any) -> ParsedEvent:
    result = parse_event(event(**kw))
    assert isinstance(result, ParsedEvent), result
    return result


def reasons(result: object) -> list[tuple[str, Reason]]:
    assert isinstance(result, list), result
    return [(e.field, e.reason) for e in result]


def test_a_valid_event_parses_and_is_normalised() -> None:
    e = parsed()
    out = normalised(e, NOW)
    assert out["data"]["agenda"] == []
    assert out["data"]["revision"] == 1
    assert out["huibaoreceived"] == NOW.isoformat()
    assert out["subject"] == "b"
    assert "traceparent" not in out


def test_the_received_extension_reads_back_through_the_contract() -> None:
    """What reporting writes is what the rollup's reader (the contract's model) reads."""
    import orjson

    from huibao_contracts.accepted import validate_accepted
    from huibao_contracts.envelope import RECEIVED_EXTENSION, AcceptedExtensions

    assert RECEIVED_EXTENSION in AcceptedExtensions.model_fields
    read = validate_accepted(orjson.dumps(normalised(parsed(), NOW)))
    assert not isinstance(read, list), read
    assert read.huibaoreceived == NOW


def test_envelope_type_and_payload_errors_name_the_field() -> None:
    assert reasons(parse_event([1])) == [("event", Reason.INVALID_ENVELOPE)]
    assert ("specversion", Reason.INVALID_ENVELOPE) in reasons(
        parse_event(event(specversion="0.3"))
    )
    assert reasons(parse_event(event(type="huibao.nope.v1"))) == [("type", Reason.UNKNOWN_TYPE)]
    assert reasons(parse_event(event({"attendees": 31}))) == [
        ("data.attendees", Reason.INVALID_FIELD)
    ]
    assert reasons(parse_event(event({"members": -1, "attendees": 0}))) == [
        ("data.members", Reason.INVALID_FIELD)
    ]
    assert reasons(parse_event(event({"theme": "长" * 201}))) == [
        ("data.theme", Reason.INVALID_FIELD)
    ]
    assert reasons(parse_event(event(subject="bad id!"))) == [("subject", Reason.INVALID_ENVELOPE)]
    assert reasons(parse_event(event(time="2026-07-26T18:00:00"))) == [
        ("time", Reason.INVALID_ENVELOPE)
    ]


def test_registry_checks() -> None:
    assert check_event(parsed(), VIEW, NOW, RULES) == []
    assert reasons(check_event(parsed(subject="zz"), VIEW, NOW, RULES)) == [
        ("subject", Reason.UNKNOWN_UNIT)
    ]
    assert reasons(check_event(parsed(subject="t"), VIEW, NOW, RULES)) == [
        ("subject", Reason.WRONG_LEVEL)
    ]
    assert reasons(check_event(parsed(subject="old"), VIEW, NOW, RULES)) == [
        ("subject", Reason.UNIT_INACTIVE)
    ]


def test_any_level_may_report_a_lesson() -> None:
    lesson = parse_event(
        event(type=LESSON, subject="t", data=None)
        | {
            "data": {
                "activity_id": "ls-1",
                "date": "2026-07-10",
                "speaker_role": "expert",
                "topic": "党课",
                "audience": 40,
            }
        }
    )
    assert isinstance(lesson, ParsedEvent)
    assert check_event(lesson, VIEW, NOW, RULES) == []


def test_future_dates_beyond_the_skew_are_refused() -> None:
    # 2026-08-10 12:00 in Shanghai: today's date is fine, tomorrow is not
    assert check_event(parsed(data={"date": "2026-08-10"}), VIEW, NOW, RULES) == []
    assert reasons(check_event(parsed(data={"date": "2026-08-11"}), VIEW, NOW, RULES)) == [
        ("data.date", Reason.FUTURE_DATE)
    ]
    late_time = (NOW + dt.timedelta(minutes=5)).isoformat()
    assert check_event(parsed(time=late_time), VIEW, NOW, RULES) == []
    too_late = (NOW + dt.timedelta(hours=1)).isoformat()
    assert reasons(check_event(parsed(time=too_late), VIEW, NOW, RULES)) == [
        ("time", Reason.FUTURE_DATE)
    ]


def test_scope_is_the_token_subtree() -> None:
    assert check_event(parsed(), VIEW, NOW, RULES, scope="t") == []
    assert check_event(parsed(), VIEW, NOW, RULES, scope="b") == []
    assert reasons(check_event(parsed(subject="b2"), VIEW, NOW, RULES, scope="t")) == [
        ("subject", Reason.OUT_OF_SCOPE)
    ]


def test_duplicates_revisions_and_conflicts() -> None:
    state = IntakeState()
    assert decide(parsed(), state) == (Status.ACCEPTED, [])
    assert decide(parsed(), state) == (Status.DUPLICATE, [])
    # same revision under another message id: stale
    status, errs = decide(parsed(id="e2"), state)
    assert (status, reasons(errs)) == (Status.REJECTED, [("data.revision", Reason.STALE_REVISION)])
    assert (
        decide(parsed(id="e3", data={"revision": 2, "attendees": 29}), state)[0] is Status.ACCEPTED
    )
    status, errs = decide(parsed(id="e4", data={"revision": 1}), state)
    assert reasons(errs) == [("data.revision", Reason.STALE_REVISION)]
    # the same activity id for another unit or type
    status, errs = decide(parsed(id="e5", subject="b2", data={"revision": 3}), state)
    assert reasons(errs) == [("data.activity_id", Reason.CONFLICTING_ACTIVITY)]
    # a second Party Day of the same branch and month
    status, errs = decide(parsed(id="e6", data={"activity_id": "pd-2"}), state)
    assert reasons(errs) == [("data.activity_id", Reason.CONFLICTING_ACTIVITY)]
    assert "send a correction with activity_id pd-1" in errs[0].message
    # a retraction frees the month
    assert (
        decide(parsed(id="e7", data={"revision": 3, "retracted": True}), state)[0]
        is Status.ACCEPTED
    )
    assert decide(parsed(id="e8", data={"activity_id": "pd-2"}), state)[0] is Status.ACCEPTED


def test_kafka_records_in_both_modes() -> None:
    body = event()
    import orjson

    structured = submission_from_record(
        b"b", orjson.dumps(body), [("content-type", b"application/cloudevents+json")], 65536
    )
    assert isinstance(parse_event(structured.body), ParsedEvent)
    headers = [(f"ce_{k}", str(v).encode()) for k, v in body.items() if k != "data"]
    binary = submission_from_record(
        b"b", orjson.dumps(body["data"]), [*headers, ("content-type", b"application/json")], 65536
    )
    result = parse_event(binary.body)
    assert isinstance(result, ParsedEvent)
    assert result.envelope.id == "e1"
    garbage = submission_from_record(None, b"\xff{", [("x", None)], 65536)
    assert garbage.error is not None
    assert garbage.error.reason is Reason.NOT_JSON
    big = submission_from_record(None, b"1" * 100, [], 50)
    assert big.error is not None
    assert big.error.reason is Reason.TOO_LARGE


def test_a_nul_character_anywhere_is_refused_with_its_path() -> None:
    from huibao_reporting.domain.events import parse_event

    body = {
        "specversion": "1.0",
        "id": "n1",
        "source": "/s",
        "type": "huibao.lesson.delivered.v1",
        "subject": "b1",
        "data": {"activity_id": "a", "date": "2026-07-01", "topic": "x\x00y", "audience": 1},
    }
    errors = parse_event(body)
    assert isinstance(errors, list)
    assert [(e.field, e.reason.value) for e in errors] == [("data.topic", "invalid_field")]
    assert "U+0000" in errors[0].message


def test_a_number_beyond_a_double_spoils_only_its_own_event() -> None:
    import pytest

    from huibao_reporting.domain.events import decode_json, parse_event

    events = decode_json(
        b'[{"specversion":"1.0","id":"i","source":"/s","type":"huibao.training.held.v1",'
        b'"subject":"b1","data":{"activity_id":"a","date":"2026-07-01",'
        b'"target_group":"ordinary","participants":3,"hours":1e400}}, 2]'
    )
    errors = parse_event(events[0])
    assert isinstance(errors, list)
    assert [e.field for e in errors] == ["data.hours"]
    with pytest.raises(ValueError, match="expected a JSON value"):  # NaN is not JSON
        decode_json(b"[NaN]")
