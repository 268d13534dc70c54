"""CloudEvents conformance, proven with the official `cloudevents` Python SDK (2.x).

Events the SDK builds — Kafka binary mode, Kafka structured mode, HTTP structured mode, with
both its current API (`cloudevents.core`) and its 1.x API (`cloudevents.v1`) — are accepted
by the running stack and visible in the rollup; what Huibao publishes on
`huibao.activity.accepted` (and, for refusals, on `huibao.activity.rejected`) parses with
the SDK's Kafka `from_structured` / `from_binary`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1 import conversion as v1_conversion
from cloudevents.v1 import http as v1_http
from cloudevents.v1 import kafka as v1_kafka
from tests.support.events import client_for
from tests.support.topics import Record, headers_dict, wait_for_records
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts import topics

pytestmark = [pytest.mark.stack]

PD = "huibao.party_day.held.v1"
MONTH = "2026-10"
SOURCE = "/platforms/sdk-conformance"


def party_day(branch: str, attendees: int, members: int = 40) -> dict[str, Any]:
    return {
        "activity_id": f"pd-{branch}-{MONTH}",
        "date": f"{MONTH}-26",
        "members": members,
        "attendees": attendees,
        "theme": "学习贯彻党的二十届四中全会精神",
        "agenda": ["oath_renewal", "collective_study"],
    }


def attributes(branch: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"sdk-{uuid.uuid4().hex}",
        "source": SOURCE,
        "type": PD,
        "subject": branch,
        "time": dt.datetime(2026, 10, 26, 18, 0, tzinfo=dt.UTC),
        "datacontenttype": "application/json",
        **extra,
    }


def by_subject(event: Any) -> str:
    subject: str = event.get_subject()
    return subject


async def setup_tree(stack: Any, prefix: str, branches: int) -> list[str]:
    units = build_city(prefix, counties=1, townships_per_county=1, branches_per_township=branches)
    async with client_for(stack) as huibao:
        assert (await huibao.import_orgunits(units)).created == len(units)
    return [u["id"] for u in units if u["level"] == "branch"]


def auth(stack: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.admin_token}"}


async def township_summary(stack: Any, node: str) -> dict[str, Any]:
    async with client_for(stack) as huibao:
        return dict((await huibao.summary(node, MONTH)).metrics)


async def publish(stack: Any, messages: list[tuple[bytes | None, bytes, dict[str, bytes]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.bootstrap_servers)
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(
                topics.ACTIVITY_SUBMITTED, value=value, key=key, headers=list(headers.items())
            )
    finally:
        await producer.stop()


def _bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


async def test_events_built_by_the_sdk_are_accepted_and_roll_up(stack: Any) -> None:
    p = f"sdk{uuid.uuid4().hex[:6]}"
    b = await setup_tree(stack, p, branches=6)
    township = f"{p}.c1.t1"
    fmt = JSONFormat()

    # the SDK's current API: Kafka binary and structured mode, key = subject
    core_binary = ce_kafka.to_binary(
        CloudEvent(attributes(b[0]), party_day(b[0], 31)), fmt, key_mapper=by_subject
    )
    core_structured = ce_kafka.to_structured(
        CloudEvent(attributes(b[1]), party_day(b[1], 32)), fmt, key_mapper=by_subject
    )
    # the SDK's 1.x API (`cloudevents.v1`), key from the `partitionkey` attribute in binary mode
    legacy_binary = v1_kafka.to_binary(
        v1_http.CloudEvent(
            {**attributes(b[2], partitionkey=b[2]), "time": "2026-10-26T18:00:00+08:00"},
            party_day(b[2], 33),
        )
    )
    legacy_structured = v1_kafka.to_structured(
        v1_http.CloudEvent(
            {**attributes(b[3]), "time": "2026-10-26T18:00:00+08:00"}, party_day(b[3], 34)
        ),
        key_mapper=lambda e: e["subject"],
    )
    assert "ce_specversion" in core_binary.headers
    assert core_structured.headers["content-type"] == b"application/cloudevents+json"
    await publish(
        stack,
        [
            (_bytes(m.key), _bytes(m.value) or b"", dict(m.headers))
            for m in (core_binary, core_structured, legacy_binary, legacy_structured)
        ],
    )

    # HTTP structured mode, both APIs
    http_core = ce_http.to_structured(CloudEvent(attributes(b[4]), party_day(b[4], 35)), fmt)
    legacy_headers, legacy_body = v1_conversion.to_structured(
        v1_http.CloudEvent(
            {**attributes(b[5]), "time": "2026-10-26T18:00:00+08:00"}, party_day(b[5], 36)
        )
    )
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        for headers, body in ((http_core.headers, http_core.body), (legacy_headers, legacy_body)):
            r = await client.post(
                f"{stack.urls['reporting']}/v1/events", content=body, headers=dict(headers)
            )
            assert r.status_code == 202, r.text
            assert r.json()["results"][0]["status"] == "accepted"

    async def all_six() -> dict[str, Any] | None:
        m = await township_summary(stack, township)
        return m if m["party_day.held"] == 6 else None

    metrics = await wait_until(all_six, timeout=30, message="six SDK-built Party Days rolled up")
    assert metrics["party_day.attendees"] == 31 + 32 + 33 + 34 + 35 + 36


async def test_what_huibao_emits_parses_with_the_sdk(stack: Any) -> None:
    p = f"sdo{uuid.uuid4().hex[:6]}"
    b1, b2 = await setup_tree(stack, p, branches=2)
    fmt = JSONFormat()
    good = CloudEvent(attributes(b1), party_day(b1, 20))
    bad = CloudEvent(attributes(b2), party_day(b2, 50))  # attendees > members
    await publish(
        stack,
        [
            (b1.encode(), m.value, m.headers)
            for m in (
                ce_kafka.to_binary(good, fmt, key_mapper=by_subject),
                ce_kafka.to_binary(bad, fmt, key_mapper=by_subject),
            )
        ],
    )
    boot = stack.infra.bootstrap_servers

    def has_id(ident: str) -> Any:
        def pred(r: Record) -> bool:
            return ident.encode() in (r.value or b"") or headers_dict(r).get("ce_id") == (
                ident.encode()
            )

        return pred

    [accepted] = await wait_for_records(boot, topics.ACTIVITY_ACCEPTED, has_id(good.get_id()))
    message = ce_kafka.KafkaMessage(headers_dict(accepted), accepted.key, accepted.value or b"")
    for parsed in (
        ce_kafka.from_structured(message, fmt),
        ce_kafka.from_kafka(message, fmt),  # auto-detects structured mode
    ):
        assert parsed.get_specversion() == "1.0"
        assert parsed.get_id() == good.get_id()
        assert parsed.get_source() == SOURCE
        assert parsed.get_type() == PD
        assert parsed.get_subject() == b1
        assert parsed.get_time() == good.get_time()
        assert parsed.get_extension("partitionkey") == b1  # the record key is the unit
        received = dt.datetime.fromisoformat(parsed.get_extension("huibaoreceived"))
        assert received.tzinfo is not None
        data = parsed.get_data()
        assert isinstance(data, dict)
        assert data["attendees"] == 20
        assert data["revision"] == 1  # normalised: defaults filled in
        assert data["retracted"] is False
    legacy = v1_kafka.from_structured(
        v1_kafka.KafkaMessage(headers_dict(accepted), accepted.key, accepted.value or b"")
    )
    assert legacy["id"] == good.get_id()
    assert legacy["huibaoreceived"]
    legacy_data = legacy.get_data()
    assert legacy_data is not None
    assert legacy_data["members"] == 40

    # a refusal keeps the original record: the SDK reads it back exactly as it was sent
    [rejected] = await wait_for_records(boot, topics.ACTIVITY_REJECTED, has_id(bad.get_id()))
    hdrs = headers_dict(rejected)
    assert hdrs["huibao_reason"] == b"invalid_field"
    assert orjson.loads(hdrs["huibao_errors"])[0]["field"] == "data.attendees"
    original = ce_kafka.from_binary(
        ce_kafka.KafkaMessage(hdrs, rejected.key, rejected.value or b""), fmt
    )
    assert original.get_id() == bad.get_id()
    assert original.get_data() == party_day(b2, 50)


async def test_http_binary_mode_is_refused_with_a_clear_error(stack: Any) -> None:
    """HTTP intake takes structured and batch JSON only; binary mode gets a 4xx, never a 500."""
    p = f"sdh{uuid.uuid4().hex[:6]}"
    [b1] = await setup_tree(stack, p, branches=1)
    message = ce_http.to_binary(CloudEvent(attributes(b1), party_day(b1, 20)), JSONFormat())
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        r = await client.post(
            f"{stack.urls['reporting']}/v1/events",
            content=message.body,
            headers=dict(message.headers),
        )
    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"specversion", "id", "source", "type", "subject"} <= fields


async def test_structured_event_with_an_extension_attribute_is_accepted(stack: Any) -> None:
    """The SDKs' way to set the Kafka key is the `partitionkey` extension attribute; in
    structured mode it travels inside the JSON event. CloudEvents consumers are expected to
    tolerate extension attributes they do not know (binary mode already ignores them)."""
    p = f"sdx{uuid.uuid4().hex[:6]}"
    [b1] = await setup_tree(stack, p, branches=1)
    event = CloudEvent(attributes(b1, partitionkey=b1), party_day(b1, 20))
    message = ce_http.to_structured(event, JSONFormat())
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        r = await client.post(
            f"{stack.urls['reporting']}/v1/events",
            content=message.body,
            headers=dict(message.headers),
        )
    assert r.status_code == 202, r.text
