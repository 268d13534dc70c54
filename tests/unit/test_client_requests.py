"""huibao-client without a server: the requests its core builds (method, URL, headers,
body) and how it reads answers, errors, 503 + Retry-After and timeouts (httpx's
MockTransport answers in-process)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from huibao_client import (
    ApiError,
    AsyncHuibaoClient,
    AuthenticationError,
    EventStatus,
    HuibaoClient,
    HuibaoConnectionError,
    HuibaoTimeoutError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RetryPolicy,
    ServiceUnavailableError,
    UnexpectedResponseError,
    new_event,
)
from huibao_client.kafka import kafka_record
from huibao_client.rejects import rejected_record
from huibao_contracts.activities import LessonDelivered, PartyDayHeld, SpeakerRole
from huibao_contracts.cycles import CycleKind
from huibao_contracts.envelope import CloudEvent
from huibao_contracts.orgunits import Level, OrgUnit
from huibao_contracts.periods import Period
from huibao_contracts.rejects import FieldError, Reason

REPORTING, ROLLUP, SCHEDULER = "http://r.test", "http://q.test/base/", "http://s.test"
TZ = dt.timezone(dt.timedelta(hours=8))


def party_day(n: int = 1, attendees: int = 20) -> CloudEvent:
    payload = PartyDayHeld(
        activity_id=f"pd-{n}", date=dt.date(2026, 5, 26), members=25, attendees=attendees
    )
    return new_event(
        payload,
        subject="br-1",
        source="/t",
        id=f"e-{n}",
        time=dt.datetime(2026, 5, 26, 17, tzinfo=TZ),
    )


def result(
    index: int, status: str, errors: list[dict[str, str]] | None = None
) -> dict[str, object]:
    return {
        "index": index,
        "id": f"e-{index}",
        "source": "/t",
        "status": status,
        "errors": errors or [],
    }


def answer(*results: dict[str, object]) -> dict[str, object]:
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("accepted", "duplicate")}
    rejected = sum(1 for r in results if r["status"] == "rejected")
    return {
        "results": list(results),
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": rejected,
    }


class Recorder:
    """A MockTransport handler answering from a list and keeping every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        nxt = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(nxt, Exception):
            raise nxt
        return nxt


def client(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> HuibaoClient:
    return HuibaoClient(
        REPORTING,
        rollup_url=ROLLUP,
        scheduler_url=SCHEDULER,
        token="tok-1",
        transport=httpx.MockTransport(handler),
        **kw,  # type: ignore[arg-type]
    )


def test_batch_request_and_per_event_answers() -> None:
    bad = {"field": "data.attendees", "reason": "invalid_field", "message": "attendees cannot"}
    rec = Recorder(
        httpx.Response(200, json=answer(result(0, "accepted"), result(1, "rejected", [bad])))
    )
    with client(rec) as huibao:
        out = huibao.send_batch(
            [party_day(1), {"specversion": "1.0", "id": "raw", "x": 1}], dry_run=True
        )
    (req,) = rec.requests
    assert req.method == "POST"
    assert str(req.url) == f"{REPORTING}/v1/events?dry_run=true"
    assert req.headers["content-type"] == "application/cloudevents-batch+json"
    assert req.headers["authorization"] == "Bearer tok-1"
    assert req.headers["user-agent"].startswith("huibao-client/")
    sent = json.loads(req.content)
    assert sent[0]["type"] == "huibao.party_day.held.v1"
    assert sent[0]["time"] == "2026-05-26T17:00:00+08:00"
    assert sent[0]["data"] == {
        "activity_id": "pd-1",
        "revision": 1,
        "date": "2026-05-26",
        "retracted": False,
        "members": 25,
        "attendees": 20,
        "theme": "",
        "agenda": [],
    }
    assert "dataschema" not in sent[0]  # absent attributes are left out
    assert sent[1] == {"specversion": "1.0", "id": "raw", "x": 1}  # a mapping goes as given
    assert [r.status for r in out.results] == [EventStatus.ACCEPTED, EventStatus.REJECTED]
    assert out.accepted == 1
    assert out.rejected == 1
    assert out.duplicates == 0
    assert out.refused[0].errors == (
        FieldError(field="data.attendees", reason=Reason.INVALID_FIELD, message="attendees cannot"),
    )
    assert not out.refused[0].ok
    assert out.results[0].ok


def test_single_event_refused_is_an_answer_not_an_exception() -> None:
    err = {"field": "subject", "reason": "unknown_unit", "message": "no unit br-1"}
    body = {**answer(result(0, "rejected", [err])), "errors": [err]}
    rec = Recorder(httpx.Response(422, json=body))
    with client(rec) as huibao:
        got = huibao.send_event(party_day(1))
    assert rec.requests[0].headers["content-type"] == "application/cloudevents+json"
    assert "dry_run" not in str(rec.requests[0].url)
    assert got.status is EventStatus.REJECTED
    assert got.reasons == (Reason.UNKNOWN_UNIT,)


def test_http_errors_raise_with_the_error_body() -> None:
    missing = {"field": "token", "reason": "missing_scope", "message": "needs `report`"}
    rec = Recorder(
        httpx.Response(
            401,
            json={
                "errors": [
                    {"field": "token", "reason": "unauthenticated", "message": "unknown token"}
                ]
            },
        ),
        httpx.Response(403, json={"errors": [missing]}),
        httpx.Response(413, text="<html>proxy says no</html>"),
    )
    with client(rec) as huibao:
        with pytest.raises(AuthenticationError) as e401:
            huibao.send_event(party_day(1))
        with pytest.raises(PermissionDeniedError) as e403:  # 403 without results: an error
            huibao.send_event(party_day(1))
        with pytest.raises(PayloadTooLargeError) as e413:
            huibao.send_batch([party_day(1)])
    assert e401.value.status == 401
    assert e401.value.reasons == ("unauthenticated",)
    assert e403.value.errors[0].model_dump() == missing
    assert "missing_scope" in str(e403.value)
    assert e413.value.errors[0].reason == "http_error"
    assert "proxy says no" in e413.value.errors[0].message


def test_503_with_retry_after_is_retried_within_bounds() -> None:
    unavailable = httpx.Response(
        503,
        headers={"Retry-After": "0"},
        json={"errors": [{"field": "service", "reason": "unavailable", "message": "db"}]},
    )
    ok = httpx.Response(200, json={"created": 2, "updated": 0, "unchanged": 1})
    rec = Recorder(unavailable, unavailable, ok)
    with client(rec) as huibao:
        assert huibao.import_orgunits([]).created == 2
    assert len(rec.requests) == 3
    assert rec.requests[0].content == rec.requests[2].content  # the same request again

    always = Recorder(unavailable)
    huibao = client(always, retry=RetryPolicy(max_retries=2))
    with huibao, pytest.raises(ServiceUnavailableError) as e:
        huibao.summary("city", "2026-05")
    assert len(always.requests) == 3  # the first try and two retries, no more
    assert e.value.retry_after == 0.0


@pytest.mark.parametrize(
    "headers", [{}, {"Retry-After": "60"}, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}]
)
def test_503_without_a_usable_retry_after_is_not_retried(headers: dict[str, str]) -> None:
    rec = Recorder(httpx.Response(503, headers=headers, json={"errors": []}))
    with (
        client(rec, retry=RetryPolicy(max_retries=5, max_delay=10)) as huibao,
        pytest.raises(ServiceUnavailableError),
    ):
        huibao.summary("city", "2026-05")
    assert len(rec.requests) == 1


def test_other_errors_are_never_retried() -> None:
    rec = Recorder(httpx.Response(500, headers={"Retry-After": "0"}, text="boom"))
    with client(rec) as huibao, pytest.raises(ApiError) as e:
        huibao.summary("city", "2026-05")
    assert type(e.value) is ApiError
    assert len(rec.requests) == 1


def test_timeouts_and_connection_failures() -> None:
    with (
        client(Recorder(httpx.ReadTimeout("slow")), timeout=0.5) as huibao,
        pytest.raises(HuibaoTimeoutError),
    ):
        huibao.cycles()
    with (
        client(Recorder(httpx.ConnectError("refused"))) as huibao,
        pytest.raises(HuibaoConnectionError, match="ConnectError"),
    ):
        huibao.cycles()
    rec = Recorder(httpx.Response(200, json={"now": "2026-06-01T00:00:00+08:00", "items": []}))
    with client(rec, timeout=0.5) as huibao:
        huibao.cycles()
    assert rec.requests[0].extensions["timeout"]["read"] == 0.5  # the timeout travels along


def test_query_urls_and_typed_answers() -> None:
    brief = {"id": "c/1", "name": "市", "level": "city", "parent": None}
    rec = Recorder(
        httpx.Response(
            200,
            json={
                "node": brief,
                "period": "2026-Q2",
                "metrics": {"party_day.held": 3, "x.rate": 0.5, "y": None},
            },
        ),
        httpx.Response(
            200,
            json={
                "node": brief,
                "period": "2026-05",
                "metric": "lesson.delivered",
                "total": 1,
                "offset": 0,
                "limit": 10,
                "items": [
                    {
                        "id": "a",
                        "name": "A",
                        "level": "county",
                        "value": 2,
                        "rank": 1,
                        "metrics": {},
                    }
                ],
            },
        ),
        httpx.Response(
            200, json={"node": brief, "metric": "m", "points": [{"period": "2026-01", "value": 1}]}
        ),
    )
    with client(rec) as huibao:
        s = huibao.summary("c/1", Period.parse("2026-Q2"))
        c = huibao.children("c/1", "2026-05", metric="lesson.delivered", limit=10)
        ser = huibao.series("c/1", "m", "2026-01", "2026-03")
    urls = [str(r.url) for r in rec.requests]
    assert urls == [
        "http://q.test/base/v1/nodes/c%2F1/summary?period=2026-Q2",
        "http://q.test/base/v1/nodes/c%2F1/children?period=2026-05&metric=lesson.delivered"
        "&limit=10&offset=0",
        "http://q.test/base/v1/nodes/c%2F1/series?metric=m&from=2026-01&to=2026-03",
    ]
    assert s.metrics == {"party_day.held": 3, "x.rate": 0.5, "y": None}
    assert isinstance(s.metrics["party_day.held"], int)
    assert c.items[0].rank == 1
    assert c.total == 1
    assert ser.points[0].value == 1


def test_scheduler_calls() -> None:
    transition = {
        "kind": "party_day",
        "period": "2026-06",
        "step": "opened",
        "state": "opened",
        "due_at": "2026-06-01T00:00:00+08:00",
        "ran_at": "2026-06-01T00:00:00+08:00",
    }
    rec = Recorder(
        httpx.Response(200, json={"transition": transition}),
        httpx.Response(
            200,
            json={"now": "2026-06-02T00:00:00+08:00", "transitions": [transition], "pending": 0},
        ),
        httpx.Response(200, json={"unexpected": True}),
    )
    with client(rec) as huibao:
        t = huibao.run_cycle(CycleKind.PARTY_DAY, "2026-06")
        clock = huibao.move_clock(dt.datetime(2026, 6, 2, tzinfo=TZ))
        with pytest.raises(UnexpectedResponseError):
            huibao.feedback("br-1", "2026-Q2")
    assert t.step == "opened"
    assert clock.transitions == (t,)
    assert [(r.method, str(r.url)) for r in rec.requests] == [
        ("POST", f"{SCHEDULER}/v1/cycles/party_day/2026-06/run"),
        ("PUT", f"{SCHEDULER}/v1/clock"),
        ("GET", f"{SCHEDULER}/v1/feedback/br-1?quarter=2026-Q2"),
    ]
    assert json.loads(rec.requests[1].content) == {"now": "2026-06-02T00:00:00+08:00"}


def test_orgunit_imports_json_and_csv() -> None:
    rec = Recorder(httpx.Response(200, json={"created": 1, "updated": 0, "unchanged": 0}))
    with client(rec) as huibao:
        huibao.import_orgunits(
            [OrgUnit(id="c", name="市", level=Level.CITY), {"id": "x", "effective": "2026-01-01"}]
        )
        huibao.import_orgunits_csv("id,name,level\nc,市,city\n")
    first, second = rec.requests
    assert first.method == "PUT"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.content) == [
        {"id": "c", "name": "市", "level": "city", "members": 0},
        {"id": "x", "effective": "2026-01-01"},
    ]
    assert second.headers["content-type"] == "text/csv"
    assert second.content == "id,name,level\nc,市,city\n".encode()


async def test_async_client_shares_the_core() -> None:
    rec = Recorder(
        httpx.Response(503, headers={"Retry-After": "0"}, json={"errors": []}),
        httpx.Response(200, json=answer(result(0, "duplicate"))),
    )
    async with AsyncHuibaoClient(
        REPORTING, token="t", transport=httpx.MockTransport(rec)
    ) as huibao:
        got = await huibao.send_event(party_day(1), dry_run=True)
    assert got.status is EventStatus.DUPLICATE
    assert len(rec.requests) == 2
    assert str(rec.requests[0].url) == f"{REPORTING}/v1/events?dry_run=true"


def test_new_event_follows_the_payload_type() -> None:
    lesson = LessonDelivered(
        activity_id="ls-1",
        date=dt.date(2026, 5, 3),
        speaker_role=SpeakerRole.EXPERT,
        topic="党课",
        audience=9,
    )
    ev = new_event(lesson, subject="tw-1", source="/t", id="e", partitionkey="tw-1")
    assert ev.type == "huibao.lesson.delivered.v1"
    assert ev.time is None
    assert ev.model_extra == {"partitionkey": "tw-1"}
    not_a_payload: Any = FieldError(field="a", reason=Reason.NOT_JSON, message="m")
    with pytest.raises(TypeError):
        new_event(not_a_payload, subject="x", source="/t", id="e")


def test_kafka_records_structured_and_binary() -> None:
    ev = new_event(
        PartyDayHeld(activity_id="pd", date=dt.date(2026, 5, 26), members=3, attendees=2),
        subject="br-9",
        source="/t",
        id="e-9",
        time=dt.datetime(2026, 5, 26, tzinfo=TZ),
        flag=True,
    )
    structured = kafka_record(ev)
    assert structured.key == b"br-9"
    assert structured.headers == (("content-type", b"application/cloudevents+json"),)
    assert json.loads(structured.value)["id"] == "e-9"
    binary = kafka_record(ev, binary=True)
    headers = dict(binary.headers)
    assert binary.key == b"br-9"
    assert json.loads(binary.value) == ev.data
    assert headers["ce_id"] == b"e-9"
    assert headers["ce_type"] == b"huibao.party_day.held.v1"
    assert headers["ce_time"] == b"2026-05-26T00:00:00+08:00"
    assert headers["ce_flag"] == b"true"  # a CloudEvents Boolean
    assert headers["content-type"] == b"application/json"
    assert "ce_data" not in headers
    assert "ce_datacontenttype" not in headers


@pytest.mark.parametrize("node", ["..", ".", ""])
def test_ids_that_a_url_would_resolve_elsewhere_are_refused_before_sending(node: str) -> None:
    rec = Recorder(httpx.Response(200, json={}))
    with client(rec) as huibao, pytest.raises(ValueError, match="path segment"):
        huibao.summary(node, "2026-05")
    assert rec.requests == []


def test_ids_are_one_percent_encoded_segment() -> None:
    rec = Recorder(httpx.Response(404, json={"errors": []}))
    with client(rec) as huibao, pytest.raises(NotFoundError):
        huibao.feedback("../clock?x=1#y", "2026-Q2")
    assert rec.requests[0].url.raw_path == b"/v1/feedback/..%2Fclock%3Fx%3D1%23y?quarter=2026-Q2"


def test_running_a_cycle_step_is_never_sent_twice() -> None:
    """A 503 may come after the step committed; a repeat would run the step after it."""
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "0"}, json={"errors": []}))
    with client(rec) as huibao, pytest.raises(ServiceUnavailableError):
        huibao.run_cycle(CycleKind.PARTY_DAY, "2026-06")
    assert len(rec.requests) == 1


def test_reject_records_are_read_typed() -> None:
    errors = [{"field": "data.attendees", "reason": "invalid_field", "message": "too many"}]
    headers = [
        ("ce_id", b"e-1"),
        ("huibao_reason", b"invalid_field"),
        ("huibao_errors", json.dumps(errors).encode()),
        ("huibao_channel", b"kafka"),
    ]
    got = rejected_record(b"br-1", b'{"attendees": 31}', headers)
    assert (got.reason, got.channel, got.key, got.value) == (
        "invalid_field",
        "kafka",
        b"br-1",
        b'{"attendees": 31}',
    )
    assert got.errors == (
        FieldError(field="data.attendees", reason=Reason.INVALID_FIELD, message="too many"),
    )
    assert got.headers == (("ce_id", b"e-1"),)  # Huibao's own headers left out
    broken = rejected_record(None, None, [("huibao_errors", b"not json")])
    assert (broken.errors, broken.reason, broken.value) == ((), "", b"")
