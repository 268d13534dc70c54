"""Tracing: one trace from the HTTP request (or the Kafka record's `ce_traceparent`) through
the intake, the outbox relay's publish and the rollup's batch apply, and a query span.

Reporting and the rollup run as processes exporting over OTLP/HTTP to a small receiver this
test runs on 127.0.0.1; the spans are decoded with opentelemetry-proto.
"""

from __future__ import annotations

import gzip
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

POINTS = "huibao.points.awarded.v1"
HTTP_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HTTP_PARENT = "00f067aa0ba902b7"
KAFKA_TRACE = "0af7651916cd43dd8448eb211c80319c"
KAFKA_PARENT = "b7ad6b7169203331"


@dataclass(frozen=True)
class Got:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


class Receiver:
    """An OTLP/HTTP trace receiver: keeps every span posted to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[Got] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.add(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        for rs in request.resource_spans:
            res = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got = Got(
                        str(res.get("service.name")),
                        s.name,
                        s.kind,
                        s.trace_id.hex(),
                        s.span_id.hex(),
                        s.parent_span_id.hex(),
                        {a.key: _value(a.value) for a in s.attributes},
                        [(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                    )
                    with self.lock:
                        self.spans.append(got)

    def all(self) -> list[Got]:
        with self.lock:
            return list(self.spans)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def points(activity: str, amount: int) -> dict[str, Any]:
    member = f"m_{uuid.uuid4().hex[:16]}"
    return {
        "activity_id": activity,
        "date": "2026-06-12",
        "member": member,
        "points": amount,
        "reason": "志愿服务",
    }


async def test_one_trace_from_intake_through_kafka_to_the_rollup(receiver: Receiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    stack = EmbeddedStack(
        services=("reporting", "rollup"),
        service_env={"reporting": env, "rollup": env},
        parallel_start=True,
    )
    await stack.start()
    try:
        p = f"tr{uuid.uuid4().hex[:6]}"
        units = build_city(p, counties=1, townships_per_county=1, branches_per_township=2)
        b1, b2 = (u["id"] for u in units if u["level"] == "branch")
        rep, roll = stack.urls["reporting"], stack.urls["rollup"]
        admin = {"Authorization": f"Bearer {stack.admin_token}"}
        async with httpx.AsyncClient(timeout=30, headers=admin) as client:
            r = await client.put(f"{rep}/v1/orgunits", json=units)
            assert r.status_code == 200, r.text
            event = cloudevent(POINTS, b1, points(f"{p}-1", 7), id=f"{p}-http")
            r = await client.post(
                f"{rep}/v1/events",
                json=event,
                headers={"traceparent": f"00-{HTTP_TRACE}-{HTTP_PARENT}-01"},
            )
            assert r.status_code == 202, r.text

            # binary mode: the trace context rides in ce_traceparent
            kafka_event = cloudevent(POINTS, b2, points(f"{p}-2", 3), id=f"{p}-kafka")
            headers = [(f"ce_{k}", str(v).encode()) for k, v in kafka_event.items() if k != "data"]
            headers.append(("ce_traceparent", f"00-{KAFKA_TRACE}-{KAFKA_PARENT}-01".encode()))
            producer = AIOKafkaProducer(bootstrap_servers=stack.infra.bootstrap_servers)
            await producer.start()
            try:
                await producer.send_and_wait(
                    "huibao.activity.submitted",
                    key=b2.encode(),
                    value=orjson.dumps(kafka_event["data"]),
                    headers=headers,
                )
            finally:
                await producer.stop()

            async def both_in() -> bool:
                r = await client.get(f"{roll}/v1/nodes/{p}/summary", params={"period": "2026-06"})
                return r.status_code == 200 and r.json()["metrics"]["points.awarded"] == 10

            await wait_until(both_in, timeout=30)

        def by(service: str, name: str) -> list[Got]:
            return [s for s in receiver.all() if s.service == service and s.name == name]

        def linked(spans: list[Got], trace_id: str) -> list[Got]:
            return [s for s in spans if any(t == trace_id for t, _ in s.links)]

        def complete() -> bool:
            process = by("huibao-rollup", "process huibao.activity.accepted")
            return (
                bool(linked(process, HTTP_TRACE))
                and bool(linked(process, KAFKA_TRACE))
                and bool(by("huibao-rollup", "GET /v1/nodes/{id}/summary"))
            )

        await wait_until(complete, timeout=20, message="the spans reached the receiver")

        # HTTP: the request's span is the child of its traceparent; the intake span its child

        [server] = [
            s for s in by("huibao-reporting", "POST /v1/events") if s.trace_id == HTTP_TRACE
        ]
        assert server.parent == HTTP_PARENT
        assert server.kind == 2  # SERVER
        assert server.attributes["http.route"] == "/v1/events"
        assert server.attributes["http.request.method"] == "POST"
        assert server.attributes["http.response.status_code"] == 202
        [intake] = [s for s in by("huibao-reporting", "intake http") if s.trace_id == HTTP_TRACE]
        assert intake.parent == server.span_id
        # Kafka: the intake batch links to the record's own context
        [kafka_intake] = linked(by("huibao-reporting", "intake kafka"), KAFKA_TRACE)
        assert (KAFKA_TRACE, KAFKA_PARENT) in kafka_intake.links

        # the relay's publish links to each stored event's context
        publish = by("huibao-reporting", "publish huibao.activity.accepted")
        assert any((HTTP_TRACE, intake.span_id) in s.links for s in publish)
        assert any((KAFKA_TRACE, KAFKA_PARENT) in s.links for s in publish)
        for s in publish:
            assert s.kind == 4  # PRODUCER
            assert s.attributes["messaging.system"] == "kafka"
            assert s.attributes["messaging.operation.type"] == "publish"
            assert s.attributes["messaging.destination.name"] == "huibao.activity.accepted"

        # the rollup's batch apply links to the same contexts, carried in the record headers
        process = by("huibao-rollup", "process huibao.activity.accepted")
        assert any((HTTP_TRACE, intake.span_id) in s.links for s in process)
        assert any((KAFKA_TRACE, KAFKA_PARENT) in s.links for s in process)
        for s in process:
            assert s.kind == 5  # CONSUMER
            assert s.attributes["messaging.operation.type"] == "process"
            assert s.attributes["messaging.batch.message_count"] >= 1

        # the query: a SERVER span with the route template, never the raw path
        queries = by("huibao-rollup", "GET /v1/nodes/{id}/summary")
        assert all(q.attributes["http.route"] == "/v1/nodes/{id}/summary" for q in queries)
        assert any(q.attributes["http.response.status_code"] == 200 for q in queries)
    finally:
        await stack.stop()
