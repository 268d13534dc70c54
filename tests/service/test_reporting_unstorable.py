"""Values PostgreSQL cannot hold never stop the intake (issue 13, point 1).

First line: validation refuses them by field. Second line: a value PostgreSQL refuses
although it validated fails only its own event (reason `unstorable`), over HTTP and Kafka,
and a dry run answers what a real run would. The second line is shown by widening one
limit of the contract types in this process (the in-process app validates with them), so
that PostgreSQL itself refuses the value, as it would for a gap in validation.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
import pytest
from tests.service.reporting_support import fresh_service, headers_of, value_of
from tests.support.events import cloudevent
from tests.support.tree import build_city

from huibao_contracts import storable
from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack]

PD = "huibao.party_day.held.v1"
LESSON = "huibao.lesson.delivered.v1"
ACCEPTED, REJECTED = "huibao.activity.accepted", "huibao.activity.rejected"
STRUCTURED = [("content-type", b"application/cloudevents+json")]


def pd(activity: str, **extra: Any) -> dict[str, Any]:
    return {"activity_id": activity, "date": "2026-05-26", "members": 30, "attendees": 9, **extra}


def lesson(activity: str, **extra: Any) -> dict[str, Any]:
    return {
        "activity_id": activity,
        "date": "2026-05-20",
        "speaker_role": "expert",
        "topic": "党章",
        "audience": 40,
        **extra,
    }


async def test_validation_refuses_every_unstorable_value_by_field(infra: Infrastructure) -> None:
    p = f"us{uuid.uuid4().hex[:6]}"
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=2)
    b1, b2 = (u["id"] for u in units if u["level"] == "branch")
    bad = [
        (cloudevent(PD, b1, pd(f"{p}-1"), time="2026-05-26T10:00:00+16:00"), "time"),
        (cloudevent(PD, b1, pd(f"{p}-2"), time="2026-05-26T10:00:00-16:30"), "time"),
        (cloudevent(PD, b1, pd(f"{p}-3", date="9999-12-31")), "data.date"),
        (cloudevent(PD, b1, pd(f"{p}-4", date="0999-12-31")), "data.date"),
        (cloudevent(LESSON, b1, lesson(f"{p}-5", topic="a\x00b")), "data.topic"),
        ({**cloudevent(PD, b1, pd(f"{p}-6")), "partitionkey": 2**40}, "partitionkey"),
        ({**cloudevent(PD, b1, pd(f"{p}-7")), "source": "/s\x00"}, "source"),
    ]
    good = cloudevent(PD, b2, pd(f"{p}-ok"), time="2026-05-26T10:00:00-15:59")
    async with fresh_service(infra) as service:
        assert (await service.client.put("/v1/orgunits", json=units)).status_code == 200
        name = [{**units[-1], "name": "支部\x00"}]
        r = await service.client.put("/v1/orgunits", json=name)
        assert r.status_code == 422, r.text
        assert "name" in r.json()["errors"][0]["field"], r.text
        for dry_run in (True, False):
            r = await service.client.post(
                "/v1/events",
                json=[e for e, _ in bad] + [good],
                params={"dry_run": str(dry_run).lower()},
            )
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            for (_, field), result in zip(bad, results, strict=False):
                assert result["status"] == "rejected", result
                assert result["errors"][0]["field"] == field, result
                assert result["errors"][0]["reason"] in ("invalid_field", "invalid_envelope")
            assert results[-1]["status"] == "accepted", results[-1]
        single = await service.client.post("/v1/events", json=bad[0][0])
        assert single.status_code == 422, single.text
        assert single.json()["errors"][0]["field"] == "time"


async def test_a_value_postgresql_refuses_rejects_only_its_event(
    infra: Infrastructure, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a gap in validation: offsets of up to 30 hours pass, PostgreSQL refuses ±16:00 and more
    monkeypatch.setattr(storable, "MAX_UTC_OFFSET", dt.timedelta(hours=30))
    p = f"un{uuid.uuid4().hex[:6]}"
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=3)
    b1, b2, b3 = (u["id"] for u in units if u["level"] == "branch")

    def poison(activity: str, unit: str = b1) -> dict[str, Any]:
        return cloudevent(PD, unit, pd(activity), time="2026-05-26T10:00:00+16:00")

    async with fresh_service(infra) as service:
        client = service.client
        assert (await client.put("/v1/orgunits", json=units)).status_code == 200
        batch = [
            cloudevent(PD, b2, pd(f"{p}-a")),
            poison(f"{p}-x"),
            cloudevent(LESSON, b3, lesson(f"{p}-b")),
        ]
        dry = await client.post("/v1/events", json=batch, params={"dry_run": "true"})
        real = await client.post("/v1/events", json=batch)
        for r in (dry, real):
            assert r.status_code == 200, r.text
            statuses = [x["status"] for x in r.json()["results"]]
            assert statuses == ["accepted", "rejected", "accepted"], r.text
            errors = r.json()["results"][1]["errors"]
            assert [e["reason"] for e in errors] == ["unstorable"], errors
            assert "time zone displacement" in errors[0]["message"]
        single = await client.post("/v1/events", json=poison(f"{p}-y"))
        assert single.status_code == 422, single.text
        assert single.json()["errors"][0]["reason"] == "unstorable"
        # the dry run stored nothing, the real run both good events once
        accepted = await service.tap.wait_for(
            ACCEPTED, lambda r: value_of(r)["data"]["activity_id"].startswith(p), count=2
        )
        assert sorted(value_of(r)["data"]["activity_id"] for r in accepted) == [
            f"{p}-a",
            f"{p}-b",
        ]

        # Kafka: the poison record is refused once, the partition moves on
        late = cloudevent(PD, b1, pd(f"{p}-late"), id=f"{p}-late")
        records = [
            (b1.encode(), orjson.dumps(poison(f"{p}-k")), STRUCTURED),
            (b1.encode(), orjson.dumps(cloudevent(LESSON, b1, lesson(f"{p}-c"))), STRUCTURED),
        ]
        await service.produce(records)
        await service.tap.wait_for(
            ACCEPTED, lambda r: value_of(r)["data"]["activity_id"] == f"{p}-c", within=30
        )
        await service.produce([(b1.encode(), orjson.dumps(late), STRUCTURED)])
        await service.tap.wait_for(ACCEPTED, lambda r: value_of(r)["id"] == f"{p}-late")
        refused = service.tap.matching(
            REJECTED,
            lambda r: headers_of(r).get("huibao_channel") == "kafka" and r.key == b1.encode(),
        )
        assert [headers_of(r)["huibao_reason"] for r in refused] == ["unstorable"]
        assert orjson.loads(refused[0].value)["data"]["activity_id"] == f"{p}-k"
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
