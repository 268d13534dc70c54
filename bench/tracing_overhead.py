"""What tracing costs per event, off (no endpoint: the default) and on (the SDK recording
and batching spans to an exporter that drops them, so the network is not measured).

Times, for batches of `--batch` events that each carry a `traceparent`, the tracing work
of the pipeline as the services do it: the intake batch span with a link per event, the
`huibao.activity.accepted` record with its `traceparent` header, the relay's publish span
linked to the stored headers and the rollup's batch span linked to the record headers.
`accepted_record` is timed whole (its JSON encoding included), the spans alone.

    .venv/bin/python -m bench.tracing_overhead --batch 500 --rounds 200
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from huibao_platform import tracing
from huibao_reporting.domain.events import ParsedEvent, Submission, parse_event
from huibao_reporting.service_layer.intake import accepted_record, event_context
from huibao_reporting.service_layer.ports import AcceptedEvent


class _Drop(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _batch(n: int) -> tuple[list[Submission], list[AcceptedEvent]]:
    subs, accepted = [], []
    now = dt.datetime.now(dt.UTC)
    for i in range(n):
        body = {
            "specversion": "1.0",
            "id": f"bench-{i}",
            "source": "/bench",
            "type": "huibao.points.awarded.v1",
            "subject": "bench.c1.t1.b1",
            "datacontenttype": "application/json",
            "traceparent": f"00-{i + 1:032x}-{i + 1:016x}-01",
            "data": {
                "activity_id": f"a{i}",
                "date": "2026-06-12",
                "member": f"m_{i:016x}",
                "points": 5,
                "reason": "志愿服务",
            },
        }
        parsed = parse_event(body)
        assert isinstance(parsed, ParsedEvent), parsed
        subs.append(Submission(body, b""))
        accepted.append(AcceptedEvent(parsed, now, parsed.payload.model_dump(mode="json")))
    return subs, accepted


def _spans(subs: list[Submission], headers: list[list[tuple[str, str]]]) -> None:
    with tracing.batch_span(
        "intake http", SpanKind.INTERNAL, lambda: {"n": len(subs)}, lambda: map(event_context, subs)
    ):
        pass
    with tracing.batch_span(
        "publish huibao.activity.accepted",
        SpanKind.PRODUCER,
        lambda: tracing.messaging_attributes("publish", "huibao.activity.accepted", len(subs)),
        lambda: (tracing.extract(h) for h in headers),
    ):
        pass
    with tracing.batch_span(
        "process huibao.activity.accepted",
        SpanKind.CONSUMER,
        lambda: tracing.messaging_attributes("process", "huibao.activity.accepted", len(subs)),
        lambda: (tracing.extract(h) for h in headers),
    ):
        pass


def _per_event_ns(fn: Callable[[], object], events: int, rounds: int) -> float:
    fn()  # warm
    start = time.perf_counter_ns()
    for _ in range(rounds):
        fn()
    return (time.perf_counter_ns() - start) / (rounds * events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    subs, accepted = _batch(args.batch)
    results: dict[str, dict[str, float]] = {}
    for mode in ("off", "on"):
        if mode == "on":
            provider = TracerProvider()
            provider.add_span_processor(BatchSpanProcessor(_Drop()))
            tracing.install(provider)
        headers = [list(accepted_record(a).headers) for a in accepted]
        results[mode] = {
            "spans_ns_per_event": _per_event_ns(
                functools.partial(_spans, subs, headers), args.batch, args.rounds
            ),
            "accepted_record_ns_per_event": _per_event_ns(
                lambda: [accepted_record(a) for a in accepted], args.batch, args.rounds
            ),
            "traceparent_header": float(any(k == "traceparent" for k, _ in headers[0])),
        }
    tracing.shutdown()
    print(json.dumps({"batch": args.batch, "rounds": args.rounds, **results}, indent=2))


if __name__ == "__main__":
    main()
