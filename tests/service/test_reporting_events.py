"""POST /v1/events through the real app, PostgreSQL and broker: statuses, errors, topics."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
from tests.service.reporting_support import (
    ReportingService,
    fresh_service,
    headers_of,
    id_of,
    value_of,
)
from tests.support.events import cloudevent
from tests.support.tree import build_city

from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def reporting(infra: Infrastructure) -> AsyncIterator[ReportingService]:
    """Reporting in-process for this module."""
    async with fresh_service(infra) as service:
        yield service


PD = "huibao.party_day.held.v1"
LESSON = "huibao.lesson.delivered.v1"
P = "rpev"
UNITS = build_city(P, counties=2, townships_per_county=2, branches_per_township=3)
BRANCHES = [u["id"] for u in UNITS if u["level"] == "branch"]
B1, B2, B3 = BRANCHES[:3]
TOWNSHIP = f"{P}.c1.t1"


def pd(
    activity: str, revision: int = 1, attendees: int = 10, date: str = "2026-07-26", **more: Any
) -> dict[str, Any]:
    return {
        "activity_id": activity,
        "revision": revision,
        "date": date,
        "members": 30,
        "attendees": attendees,
        "theme": "学习党章",
        **more,
    }


@pytest.fixture(scope="module", autouse=True)
async def _tree(reporting: ReportingService) -> None:
    r = await reporting.client.put("/v1/orgunits", json=UNITS)
    assert r.status_code == 200, r.text


async def test_single_event_accepted_then_duplicate_and_published(
    reporting: ReportingService,
) -> None:
    ev = cloudevent(
        PD, B1, pd(f"{P}-pd-b1", agenda=["oath_renewal"]), id="s1", time="2026-07-26T18:00:00+08:00"
    )
    r = await reporting.client.post("/v1/events", json=ev)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1
    assert body["results"] == [
        {"index": 0, "id": "s1", "source": "/tests", "status": "accepted", "errors": []}
    ]
    r = await reporting.client.post(
        "/v1/events",
        content=orjson.dumps(ev),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "duplicate"

    [rec] = await reporting.tap.wait_for("huibao.activity.accepted", lambda r: id_of(r) == "s1")
    assert rec.key == B1.encode()
    assert headers_of(rec)["content-type"] == "application/cloudevents+json"
    out = value_of(rec)
    assert out["data"]["activity_id"] == f"{P}-pd-b1"
    assert out["data"]["agenda"] == ["oath_renewal"]
    assert out["data"]["retracted"] is False
    received = dt.datetime.fromisoformat(out["huibaoreceived"])
    assert received.tzinfo is not None
    assert out["time"] == "2026-07-26T18:00:00+08:00"


async def test_a_rejected_single_event_names_the_field(reporting: ReportingService) -> None:
    ev = cloudevent(PD, B2, pd(f"{P}-bad", attendees=31), id="s2")
    r = await reporting.client.post("/v1/events", json=ev)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "field": "data.attendees",
            "reason": "invalid_field",
            "message": "attendees cannot exceed members",
        }
    ]
    [rec] = await reporting.tap.wait_for("huibao.activity.rejected", lambda r: id_of(r) == "s2")
    h = headers_of(rec)
    assert (h["huibao_reason"], h["huibao_channel"]) == ("invalid_field", "http")
    assert orjson.loads(h["huibao_errors"])[0]["field"] == "data.attendees"


async def test_a_batch_answers_per_event(reporting: ReportingService) -> None:
    good = cloudevent(PD, B2, pd(f"{P}-pd-b2"), id="b-1")
    events = [
        good,
        good,  # the same message twice: a duplicate
        cloudevent(PD, B2, pd(f"{P}-pd-b2", revision=2, attendees=12), id="b-2"),  # correction
        cloudevent(PD, B2, pd(f"{P}-pd-b2", revision=2), id="b-3"),  # same revision again
        cloudevent(PD, B2, pd(f"{P}-pd-b2-again"), id="b-4"),  # a second Party Day this month
        cloudevent(PD, TOWNSHIP, pd(f"{P}-pd-t"), id="b-5"),  # a township holds no Party Day
        cloudevent(PD, f"{P}.nowhere", pd(f"{P}-pd-x"), id="b-6"),
        cloudevent("huibao.party_day.held.v9", B2, pd(f"{P}-pd-y"), id="b-7"),
        {"specversion": "1.0", "id": "b-8"},
        cloudevent(
            LESSON,
            B2,
            {
                "activity_id": f"{P}-pd-b2",
                "date": "2026-07-10",
                "speaker_role": "expert",
                "topic": "党课",
                "audience": 3,
            },
            id="b-9",
        ),  # the Party Day's activity id reused for a lesson
    ]
    r = await reporting.client.post(
        "/v1/events",
        content=orjson.dumps(events),
        headers={"Content-Type": "application/cloudevents-batch+json"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    got = [(x["status"], [(e["field"], e["reason"]) for e in x["errors"]]) for x in body["results"]]
    assert got == [
        ("accepted", []),
        ("duplicate", []),
        ("accepted", []),
        ("rejected", [("data.revision", "stale_revision")]),
        ("rejected", [("data.activity_id", "conflicting_activity")]),
        ("rejected", [("subject", "wrong_level")]),
        ("rejected", [("subject", "unknown_unit")]),
        ("rejected", [("type", "unknown_type")]),
        ("rejected", got[8][1]),
        ("rejected", [("data.activity_id", "conflicting_activity")]),
    ]
    assert ("data", "invalid_envelope") in got[8][1]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 7)
    assert "correction" in body["results"][4]["errors"][0]["message"]
    accepted = await reporting.tap.wait_for(
        "huibao.activity.accepted", lambda r: id_of(r) in ("b-1", "b-2"), count=2
    )
    assert [value_of(r)["data"]["revision"] for r in accepted] == [1, 2]


async def test_dry_run_validates_and_stores_nothing(reporting: ReportingService) -> None:
    ev = cloudevent(PD, B3, pd(f"{P}-pd-b3"), id="dry-1")
    r = await reporting.client.post("/v1/events", params={"dry_run": "true"}, json=ev)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "accepted"
    r = await reporting.client.post(
        "/v1/events",
        params={"dry_run": "true"},
        json=[cloudevent(PD, B3, pd(f"{P}-pd-b3", attendees=99))],
    )
    assert r.json()["results"][0]["errors"][0]["field"] == "data.attendees"
    # stored nothing: the real submission is accepted, not a duplicate
    r = await reporting.client.post("/v1/events", json=ev)
    assert r.status_code == 202, r.text


async def test_future_dates_are_refused(reporting: ReportingService) -> None:
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).date().isoformat()
    r = await reporting.client.post(
        "/v1/events",
        json=cloudevent(
            LESSON,
            B3,
            {
                "activity_id": f"{P}-ls-f",
                "date": tomorrow,
                "speaker_role": "expert",
                "topic": "党课",
                "audience": 5,
            },
        ),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["reason"] == "future_date"


async def test_a_token_reports_only_inside_its_subtree(reporting: ReportingService) -> None:
    r = await reporting.client.post("/v1/tokens", json={"unit": TOWNSHIP, "label": "镇平台"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    outside = BRANCHES[-1]
    async with reporting.as_token(token) as client:
        r = await client.post("/v1/events", json=cloudevent(PD, outside, pd(f"{P}-pd-out")))
        assert r.status_code == 403, r.text
        assert r.json()["errors"][0]["reason"] == "out_of_scope"
        inside = cloudevent(
            LESSON,
            B3,
            {
                "activity_id": f"{P}-ls-in",
                "date": "2026-07-11",
                "speaker_role": "branch_secretary",
                "topic": "我来讲党课",
                "audience": 20,
            },
        )
        r = await client.post("/v1/events", json=[inside, cloudevent(PD, outside, pd(f"{P}-o2"))])
        assert r.status_code == 200
        assert [x["status"] for x in r.json()["results"]] == ["accepted", "rejected"]
        r = await client.post("/v1/tokens", json={"unit": TOWNSHIP})
        assert r.status_code == 403
    r = await reporting.client.delete(f"/v1/tokens/{_hash(token)}")
    assert r.status_code == 204
    async with reporting.as_token(token) as client:
        r = await client.post("/v1/events", json=inside)
        assert r.status_code == 401


def _hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


async def test_requests_without_a_token_are_refused(reporting: ReportingService) -> None:
    async with reporting.as_token("nope") as client:
        r = await client.post("/v1/events", json=cloudevent(PD, B1, pd("x")))
    assert r.status_code == 401


async def test_limits_and_bad_bodies(reporting: ReportingService) -> None:
    c = reporting.client
    r = await c.post(
        "/v1/events", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (r.status_code, r.json()["errors"][0]["reason"]) == (400, "not_json")
    r = await c.post("/v1/events", content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert (r.status_code, r.json()["errors"][0]["reason"]) == (415, "unsupported_media_type")
    many = [cloudevent(PD, B1, pd(f"m{i}")) for i in range(reporting.settings.max_batch_events + 1)]
    r = await c.post("/v1/events", json=many)
    assert (r.status_code, r.json()["errors"][0]["reason"]) == (413, "too_large")
    huge = cloudevent(PD, B1, pd("huge", theme="x" * 100))
    huge["data"]["padding"] = "x" * (reporting.settings.max_event_bytes + 10)
    r = await c.post("/v1/events", json=huge)
    assert r.status_code == 413
    r = await c.post("/v1/events", json=[huge])
    assert r.status_code == 200
    assert r.json()["results"][0]["errors"][0]["reason"] == "too_large"
    r = await c.post(
        "/v1/events",
        content=b"[" + b" " * (reporting.settings.max_body_bytes + 1) + b"]",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    r = await c.post("/v1/events", content=b"{}", headers={"Content-Type": BATCH})
    assert r.status_code == 400


BATCH = "application/cloudevents-batch+json"


async def test_a_full_batch_is_stored_in_one_go(reporting: ReportingService) -> None:
    events = [
        cloudevent(
            LESSON,
            BRANCHES[i % len(BRANCHES)],
            {
                "activity_id": f"{P}-bulk-{i}",
                "date": "2026-07-12",
                "speaker_role": "ordinary_member",
                "topic": "微党课",
                "audience": 7,
            },
            id=f"bulk-{i}",
        )
        for i in range(reporting.settings.max_batch_events)
    ]
    r = await reporting.client.post("/v1/events", json=events)
    assert r.status_code == 200
    assert r.json()["accepted"] == len(events)
    await reporting.tap.wait_for(
        "huibao.activity.accepted",
        lambda r: str(id_of(r)).startswith("bulk-"),
        count=len(events),
    )
