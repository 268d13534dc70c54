"""The Kafka intake: both CloudEvents modes, rejects with reasons, poison records, offsets."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import ConsumerRecord
from tests.service.reporting_support import (
    TopicTap,
    headers_of,
    id_of,
    reporting_settings,
    running,
    value_of,
)
from tests.support.events import cloudevent
from tests.support.tree import build_city

from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack]

PD = "huibao.party_day.held.v1"
STRUCTURED = [("content-type", b"application/cloudevents+json")]
ACCEPTED, REJECTED = "huibao.activity.accepted", "huibao.activity.rejected"


def pd(activity: str, attendees: int = 10) -> dict[str, object]:
    return {"activity_id": activity, "date": "2026-07-26", "members": 30, "attendees": attendees}


def binary(event: dict[str, object]) -> tuple[bytes, list[tuple[str, bytes]]]:
    headers = [(f"ce_{k}", str(v).encode()) for k, v in event.items() if k != "data"]
    return orjson.dumps(event["data"]), headers


async def test_kafka_intake_accepts_both_modes_and_rejects_the_rest(infra: Infrastructure) -> None:
    p = f"kf{uuid.uuid4().hex[:6]}"
    url = await infra.fresh_database(f"reporting_{p}")
    settings = reporting_settings(infra, url, max_event_bytes=4096)
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=4)
    b1, b2, b3, b4 = (u["id"] for u in units if u["level"] == "branch")
    structured = cloudevent(PD, b1, pd(f"{p}-1"), id=f"{p}-s", source="/gw")
    bin_event = cloudevent(PD, b2, pd(f"{p}-2"), id=f"{p}-b", source="/gw")
    bin_value, bin_headers = binary(bin_event)
    records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (b1.encode(), orjson.dumps(structured), STRUCTURED),
        (b1.encode(), orjson.dumps(structured), STRUCTURED),  # duplicate
        (b2.encode(), bin_value, [*bin_headers, ("content-type", b"application/json")]),
        (
            b3.encode(),
            b"\x00not json at all",
            [("content-type", b"application/json"), ("x-odd", b"\xff\xfe")],
        ),
        (
            b3.encode(),
            orjson.dumps(cloudevent("huibao.nope.v1", b3, pd("x"), id=f"{p}-t")),
            STRUCTURED,
        ),
        (b3.encode(), orjson.dumps(cloudevent(PD, f"{p}.ghost", pd("y"), id=f"{p}-u")), STRUCTURED),
        (
            b3.encode(),
            orjson.dumps(cloudevent(PD, b3, pd("z", attendees=99), id=f"{p}-f")),
            STRUCTURED,
        ),
        (b3.encode(), b"{" + b" " * 5000 + b"}", STRUCTURED),
        (None, b"", []),
        (b4.encode(), orjson.dumps(cloudevent(PD, b4, pd(f"{p}-4"), id=f"{p}-after")), STRUCTURED),
    ]
    async with running(settings) as service:
        assert (await service.client.put("/v1/orgunits", json=units)).status_code == 200
        await service.produce(records)
        accepted = await service.tap.wait_for(
            ACCEPTED, lambda r: str(id_of(r)).startswith(p), count=3
        )
        assert sorted(value_of(r)["id"] for r in accepted) == sorted(
            [f"{p}-s", f"{p}-b", f"{p}-after"]
        )
        from_binary = next(value_of(r) for r in accepted if value_of(r)["id"] == f"{p}-b")
        assert from_binary["subject"] == b2
        assert from_binary["data"]["attendees"] == 10
        assert "huibaoreceived" in from_binary

        def ours(r: ConsumerRecord[bytes, bytes]) -> bool:
            return r.key in (b3.encode(), None) and headers_of(r).get("huibao_channel") == "kafka"

        rejected = await service.tap.wait_for(REJECTED, ours, count=6)
        reasons = sorted(headers_of(r)["huibao_reason"] for r in rejected)
        assert reasons == sorted(
            ["not_json", "unknown_type", "unknown_unit", "invalid_field", "too_large", "not_json"]
        )
        garbage = next(r for r in rejected if r.value == b"\x00not json at all")
        assert headers_of(garbage)["content-type"] == "application/json"  # original headers kept
        invalid = next(r for r in rejected if headers_of(r)["huibao_reason"] == "invalid_field")
        assert orjson.loads(headers_of(invalid)["huibao_errors"])[0]["field"] == "data.attendees"
        assert orjson.loads(invalid.value)["id"] == f"{p}-f"  # the original bytes

    # offsets were committed: a restart with the same group re-reads nothing
    async with running(settings) as again:
        late = cloudevent(PD, b3, pd(f"{p}-3"), id=f"{p}-late")
        await again.produce([(b3.encode(), orjson.dumps(late), STRUCTURED)])
        await again.tap.wait_for(ACCEPTED, lambda r: id_of(r) == f"{p}-late")
        await asyncio.sleep(1.0)
        all_rejected = again.tap.matching(REJECTED, lambda r: r.key == b3.encode())
        assert len(all_rejected) == 5
        assert len(again.tap.matching(ACCEPTED, lambda r: id_of(r) == f"{p}-s")) == 1


async def test_accepted_events_wait_in_the_outbox_while_kafka_is_away(
    infra: Infrastructure,
) -> None:
    """With the relay not started, accepted events stay in PostgreSQL; they drain later."""
    p = f"ob{uuid.uuid4().hex[:6]}"
    url = await infra.fresh_database(f"reporting_{p}")
    broken = reporting_settings(infra, url).model_copy(
        update={"kafka_bootstrap_servers": "127.0.0.1:9", "kafka_intake": False}
    )
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=2)
    import httpx
    from tests.service.reporting_support import ADMIN

    from huibao_reporting.bootstrap import build_adapters, build_app

    async with build_adapters(broken) as adapters:
        app = build_app(broken, adapters)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://r",
                headers={"Authorization": f"Bearer {ADMIN}"},
            ) as client,
        ):
            assert (await client.put("/v1/orgunits", json=units)).status_code == 200
            events = [
                cloudevent(PD, u["id"], pd(f"{p}-{i}"), id=f"{p}-{i}")
                for i, u in enumerate(x for x in units if x["level"] == "branch")
            ]
            r = await client.post("/v1/events", json=events)
            assert r.json()["accepted"] == 2
            assert (await client.get("/health/ready")).status_code == 503
    tap = TopicTap(infra.bootstrap_servers, (ACCEPTED, "huibao.orgunit.changes"))
    await tap.start()
    try:
        async with running(reporting_settings(infra, url)):
            got = await tap.wait_for(ACCEPTED, lambda r: str(id_of(r)).startswith(p), count=2)
            assert {value_of(r)["id"] for r in got} == {f"{p}-0", f"{p}-1"}
            changes = tap.matching("huibao.orgunit.changes", lambda r: r.key.startswith(p.encode()))
            assert len(changes) == len(units)
    finally:
        await tap.stop()


async def test_health_and_metrics(infra: Infrastructure) -> None:
    url = await infra.fresh_database(f"reporting_h{uuid.uuid4().hex[:6]}")
    async with running(reporting_settings(infra, url)) as service:
        r = await service.client.get("/health/ready")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"postgres": True, "kafka": True, "progress": True}
        await service.client.post("/v1/events", json=[{"bad": 1}])
        metrics = (await service.client.get("/metrics")).text
        assert (
            'huibao_intake_events_total{channel="http",outcome="rejected",reason="invalid_envelope"}'
            in metrics
        )
        assert "huibao_outbox_backlog" in metrics
