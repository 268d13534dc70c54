"""Operations: the services' logs are JSON, one canonical line per request and per batch,
with the request's trace context and event ids bound, and never a member or a token.

Reads the log files the `stack` fixture's services write (`ServiceProcess.log_path`).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.events import cloudevent
from tests.support.logs import action, read_log
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

POINTS = "huibao.points.awarded.v1"
LESSON = "huibao.lesson.delivered.v1"
INVALID_HTTP = "Invalid HTTP request received."
"""What uvicorn logs (standard library logging) for bytes that are not HTTP."""
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the file, parsed (ECS names); fails on the first that is not JSON."""
    return read_log(path)


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

    # a library's own line (uvicorn through the standard library): bytes that are not HTTP
    for name, url in stack.urls.items():
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"NOT HTTP {p}\r\n\r\n".encode())
        await writer.drain()
        await reader.read()  # uvicorn answers 400 and closes
        writer.close()
        path = stack.service(name).log_path

        def told(path: Path = path) -> bool:
            return INVALID_HTTP in path.read_text(encoding="utf-8")

        await wait_until(told, timeout=10, message=f"{name} logged the invalid request")

    logs = {name: log_lines(stack.service(name).log_path) for name in stack.urls}
    reporting, rollup = logs["reporting"], logs["rollup"]

    # no member reference and no token anywhere, in any service's log
    for name, path in ((n, stack.service(n).log_path) for n in stack.urls):
        text = path.read_text(encoding="utf-8")
        assert member not in text, f"{name} logged a member reference"
        assert token not in text, f"{name} logged a bearer token"
        assert stack.admin_token not in text, f"{name} logged the admin token"

    # one canonical line per request: method, route template, status, duration
    requests = [line for lines in logs.values() for line in lines if action(line) == "http_request"]
    assert requests
    for line in requests:
        assert {
            "http.request.method",
            "huibao.route",
            "http.response.status_code",
            "event.duration",
            "http.request.id",
        } <= line.keys(), line
        assert isinstance(line["event.duration"], int), line  # ECS: nanoseconds
        assert p not in line["huibao.route"], f"a raw id in a route: {line}"
        assert line["huibao.route"] not in ("other",), line
    routes = {line["huibao.route"] for line in requests}
    assert {"/v1/orgunits", "/v1/events", "/v1/nodes/{id}/summary"} <= routes, routes
    [traced] = [line for line in reporting if line.get("huibao.traceparent") == TRACEPARENT]
    assert action(traced) == "http_request"
    assert traced["message"] == "http_request"
    assert traced["trace.id"] == TRACEPARENT.split("-")[1]
    assert traced["huibao.route"] == "/v1/events"
    assert traced["http.response.status_code"] == 202
    assert traced["event.id"] == f"{p}-single"
    assert traced["huibao.accepted"] == 1
    assert traced["organization.id"] == p
    assert traced["service.name"] == "reporting"
    assert traced["log.logger"] == "http"
    [batch_line] = [
        line
        for line in reporting
        if action(line) == "http_request"
        and line.get("organization.id") == p  # this test's token: other tests post batches too
        and line.get("huibao.reject_reasons")
        and line["huibao.events"] == 3
    ]
    assert batch_line["huibao.reject_reasons"] == {"invalid_field": 1}
    assert [batch_line[f"huibao.{k}"] for k in ("accepted", "duplicates", "rejected")] == [1, 1, 1]
    assert "trace.id" not in batch_line  # nothing leaks from one request to the next

    # one line per consumed batch: reporting's Kafka intake and the rollup's apply
    kafka_batches = [line for line in reporting if action(line) == "kafka_batch"]
    assert kafka_batches
    for line in kafka_batches:
        keys = {"huibao.records", "huibao.partitions", "event.duration", "huibao.events"}
        assert keys <= line.keys(), line
    assert sum(line.get("huibao.rejected", 0) for line in kafka_batches) >= 1
    applied = [line for line in rollup if action(line) == "batch_applied"]
    assert applied
    for line in applied:
        assert {"huibao.records", "huibao.partitions", "event.duration"} <= line.keys(), line
        assert isinstance(line["huibao.partitions"], list)
        assert line["log.logger"].startswith("huibao_rollup.")

    # the launcher's own line in each service's file: JSON, the same field names
    for name, lines in logs.items():
        starts = [line for line in lines if action(line) == "child_starting"]
        assert starts, f"no launcher line in {name}'s log"
        for line in starts:
            assert line["service.name"] == "launcher", line
            assert line["log.logger"] == "huibao_stack.processes", line
            assert line["huibao.child"].startswith(name), line
        assert lines[0] in starts, f"{name}'s log does not start with the launcher's line"
        # every other line is the service's own, under its name
        assert {line["service.name"] for line in lines} == {"launcher", name}, name
    # the libraries' lines are there too, named by their logger, with no event.action
    for name, lines in logs.items():
        [invalid, *_] = [line for line in lines if line["message"] == INVALID_HTTP]
        assert (invalid["log.logger"], invalid["log.level"]) == ("uvicorn.error", "warning")
        assert invalid["service.name"] == name
        assert "event.action" not in invalid, invalid
    for line in (line for lines in logs.values() for line in lines):
        if not line["log.logger"].startswith(("huibao", "http", "auth")):
            assert "event.action" not in line, line
        if "error.type" in line:  # an exception someone logged: in the error fields
            assert line["error.stack_trace"].startswith("Traceback"), line
