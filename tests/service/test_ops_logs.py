"""Operations: the services' logs are JSON, one canonical line per request and per batch,
with the request's trace context and event ids bound, and never a member or a token.

Reads the log files the `stack` fixture's services write (`ServiceProcess.log_path`).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

POINTS = "huibao.points.awarded.v1"
LESSON = "huibao.lesson.delivered.v1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
LAUNCHER_MARK = "--- "
"""Lines the launcher writes into a service's log when it starts it (not the service's)."""


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every line the service wrote, parsed; fails on the first line that is not JSON."""
    lines = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith(LAUNCHER_MARK):
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pytest.fail(f"{path.name}:{n} is not JSON: {raw[:300]}")
        assert isinstance(line, dict), f"{path.name}:{n} is not a JSON object: {raw[:300]}"
        assert {"event", "level", "timestamp", "service"} <= line.keys(), f"{path.name}:{n}"
        lines.append(line)
    return lines


def lesson(activity: str, audience: int) -> dict[str, Any]:
    return {
        "activity_id": activity,
        "date": "2026-06-10",
        "speaker_role": "branch_secretary",
        "topic": "党课",
        "audience": audience,
    }


def points(activity: str, member: str, amount: int) -> dict[str, Any]:
    return {
        "activity_id": activity,
        "date": "2026-06-12",
        "member": member,
        "points": amount,
        "reason": "志愿服务",
    }


async def test_logs_are_json_canonical_and_free_of_members_and_tokens(
    stack: EmbeddedStack,
) -> None:
    p = f"opl{uuid.uuid4().hex[:6]}"
    member = f"m_{uuid.uuid4().hex[:16]}"  # pseudonymous by contract, still never logged
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=2)
    b1, b2 = (u["id"] for u in units if u["level"] == "branch")
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.put(f"{rep}/v1/orgunits", json=units, headers=admin)
        assert r.status_code == 200, r.text
        r = await client.post(f"{rep}/v1/tokens", json={"unit": p, "label": "ops"}, headers=admin)
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}

        # a single event over HTTP, with a W3C trace context: its id is bound to the line
        single = cloudevent(POINTS, b1, points(f"{p}-pt-1", member, 7), id=f"{p}-single")
        r = await client.post(
            f"{rep}/v1/events", json=single, headers={**auth, "traceparent": TRACEPARENT}
        )
        assert r.status_code == 202, r.text
        # a batch: accepted, duplicate, and a rejected points award naming the member
        batch = [
            cloudevent(LESSON, b2, lesson(f"{p}-ls-1", 30), id=f"{p}-b1"),
            single,
            cloudevent(POINTS, b2, points(f"{p}-pt-bad", member, 5000), id=f"{p}-bad"),
        ]
        r = await client.post(f"{rep}/v1/events", json=batch, headers=auth)
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == ["accepted", "duplicate", "rejected"]

    # the Kafka channel: one accepted points award, one rejected
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.bootstrap_servers)
    await producer.start()
    try:
        for ev in (
            cloudevent(POINTS, b2, points(f"{p}-pt-2", member, 3), id=f"{p}-k1", source="/gw"),
            cloudevent(POINTS, b2, points(f"{p}-pt-3", member, -9999), id=f"{p}-k2"),
        ):
            await producer.send_and_wait(
                "huibao.activity.submitted",
                key=b2.encode(),
                value=orjson.dumps(ev),
                headers=[("content-type", b"application/cloudevents+json")],
            )
    finally:
        await producer.stop()

    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:

        async def all_points_in() -> bool:
            r = await c.get(f"{roll}/v1/nodes/{p}/summary", params={"period": "2026-06"})
            return r.status_code == 200 and r.json()["metrics"]["points.awarded"] == 10

        await wait_until(all_points_in, timeout=30)

    logs = {name: log_lines(stack.service(name).log_path) for name in stack.urls}
    reporting, rollup = logs["reporting"], logs["rollup"]

    # no member reference and no token anywhere, in any service's log
    for name, path in ((n, stack.service(n).log_path) for n in stack.urls):
        text = path.read_text(encoding="utf-8")
        assert member not in text, f"{name} logged a member reference"
        assert token not in text, f"{name} logged a bearer token"
        assert stack.admin_token not in text, f"{name} logged the admin token"

    # one canonical line per request: method, route template, status, duration
    requests = [
        line for lines in logs.values() for line in lines if line["event"] == "http_request"
    ]
    assert requests
    for line in requests:
        assert {"method", "route", "status", "duration_ms", "request_id"} <= line.keys(), line
        assert p not in line["route"], f"a raw id in a route: {line}"
        assert line["route"] not in ("other",), line
    routes = {line["route"] for line in requests}
    assert {"/v1/orgunits", "/v1/events", "/v1/nodes/{id}/summary"} <= routes, routes
    [traced] = [line for line in reporting if line.get("traceparent") == TRACEPARENT]
    assert traced["event"] == "http_request"
    assert traced["route"] == "/v1/events"
    assert traced["status"] == 202
    assert traced["event_id"] == f"{p}-single"
    assert traced["accepted"] == 1
    assert traced["principal"] == p
    [batch_line] = [
        line
        for line in reporting
        if line["event"] == "http_request" and line.get("reject_reasons") and line["events"] == 3
    ]
    assert batch_line["reject_reasons"] == {"invalid_field": 1}
    assert (batch_line["accepted"], batch_line["duplicates"], batch_line["rejected"]) == (1, 1, 1)
    assert "traceparent" not in batch_line  # nothing leaks from one request to the next

    # one line per consumed batch: reporting's Kafka intake and the rollup's apply
    kafka_batches = [line for line in reporting if line["event"] == "kafka_batch"]
    assert kafka_batches
    for line in kafka_batches:
        assert {"records", "partitions", "duration_ms", "events"} <= line.keys(), line
    assert sum(line.get("rejected", 0) for line in kafka_batches) >= 1
    applied = [line for line in rollup if line["event"] == "batch_applied"]
    assert applied
    for line in applied:
        assert {"records", "partitions", "duration_ms"} <= line.keys(), line
        assert isinstance(line["partitions"], list)
