"""OpenTelemetry traces from HTTP intake through the outbox and Kafka to the rollup's queries.

Off unless configured: without an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, read by
`CommonSettings.tracing_endpoint`) no SDK provider is installed, `enabled()` is False and
every helper here returns at once, so a service pays one boolean test per request or batch
and nothing per event. `configure()` (called once by `serve()`) installs the SDK's
`TracerProvider` with a batching OTLP/HTTP exporter.

The W3C trace context rides on Kafka records as the `traceparent` header (the CloudEvents
distributed-tracing extension: a binary-mode event carries it as `ce_traceparent`, a
structured one as its `traceparent` attribute). Spans follow the OpenTelemetry semantic
conventions for HTTP servers and messaging: one SERVER span per HTTP request, one span per
intake batch, one PRODUCER span per outbox relay round, one CONSUMER span per rollup batch.
Batches are never traced per event (20,000 events/s): their spans carry links to the
events' own contexts instead (at most `MAX_LINKS`, distinct ones first).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, Status, StatusCode, TraceFlags
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huibao_platform.settings import CommonSettings

SpanContext = trace.SpanContext
"""A span's identity (re-exported: the services import tracing names from here only)."""
SpanKind = trace.SpanKind

TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
"""A W3C `traceparent` (version, trace id, parent span id, flags)."""
MAX_LINKS = 32
"""Links per batch span: the first 32 distinct contexts of a batch (each link costs a few
microseconds; the SDK would keep 128, `OTEL_SPAN_LINK_COUNT_LIMIT`)."""
TRACER_NAME = "huibao"
FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""`FastAPI(telemetry=...)` of every service: FastAPI's native spans stay off, since
`TracingMiddleware` makes the request's span (it also covers the rollup's fast-path
answers, which never reach FastAPI's router); without this each request would be traced
twice once a provider is installed."""

_state: dict[str, Any] = {"enabled": False, "provider": None}


def enabled() -> bool:
    """True once `configure()` installed an exporting provider."""
    return bool(_state["enabled"])


def configure(settings: CommonSettings, service: str, version: str = "unknown") -> bool:
    """Install the SDK's provider exporting to the configured OTLP endpoint, once; without
    one (or with `OTEL_TRACES_EXPORTER=none`) install nothing. True when tracing is on."""
    if _state["enabled"]:
        return True
    endpoint = settings.tracing_endpoint
    if not endpoint or settings.tracing_exporter == "none":
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.version": version}),
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
    )
    url = endpoint.rstrip("/") + "/v1/traces"  # the OTLP/HTTP signal path of a base endpoint
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    install(provider)
    return True


def install(provider: Any) -> None:
    """Make `provider` (an SDK `TracerProvider`) the global one and turn tracing on
    (`configure` does it; the overhead benchmark passes one that exports nowhere)."""
    trace.set_tracer_provider(provider)
    _state.update(enabled=True, provider=provider)


def shutdown() -> None:
    """Flush and stop the exporter (at the end of `serve()`)."""
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()
    _state.update(enabled=False, provider=None)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def span_context(traceparent: str | bytes | None) -> SpanContext | None:
    """The remote context a `traceparent` names, or None when it is absent or malformed
    (an all-zero id or version ff is malformed too)."""
    if traceparent is None:
        return None
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("ascii", "replace")
    m = TRACEPARENT.match(traceparent.strip().lower())
    if m is None or m[1] == "ff":
        return None
    trace_id, span_id = int(m[2], 16), int(m[3], 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(m[4], 16)))


_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def valid_traceparent(traceparent: str | None) -> str | None:
    """`traceparent` in lower case when it is a valid W3C one (as `span_context` judges),
    else None; cheaper than parsing it when it is only passed on."""
    if not traceparent:
        return None
    tp = traceparent.strip().lower()
    m = TRACEPARENT.match(tp)
    if m is None or m[1] == "ff" or m[2] == _ZERO_TRACE or m[3] == _ZERO_SPAN:
        return None
    return tp


def extract(
    carrier: str | bytes | Mapping[str, str] | Iterable[tuple[str, str | bytes | None]] | None,
) -> SpanContext | None:
    """The context of a `traceparent` string, or of the `traceparent` / `ce_traceparent`
    entry of HTTP or Kafka headers (a mapping or (name, value) pairs, any case)."""
    if carrier is None or isinstance(carrier, str | bytes):
        return span_context(carrier)
    pairs = carrier.items() if isinstance(carrier, Mapping) else carrier
    for name, value in pairs:
        if name.lower() in ("traceparent", "ce_traceparent"):
            return span_context(value)
    return None


def format_traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def inject() -> str | None:
    """The `traceparent` of the current span, to put on an outgoing record; None when
    tracing is off or there is no sampled-or-not valid span."""
    if not _state["enabled"]:
        return None
    ctx = trace.get_current_span().get_span_context()
    return format_traceparent(ctx) if ctx.is_valid else None


def links(contexts: Iterable[SpanContext | None]) -> list[Link]:
    """Links to the distinct valid contexts, at most `MAX_LINKS`."""
    seen: dict[tuple[int, int], Link] = {}
    for c in contexts:
        if c is not None and (c.trace_id, c.span_id) not in seen:
            seen[(c.trace_id, c.span_id)] = Link(c)
            if len(seen) >= MAX_LINKS:
                break
    return list(seen.values())


@contextlib.contextmanager
def batch_span(
    name: str,
    kind: SpanKind,
    attributes: Callable[[], dict[str, Any]],
    contexts: Callable[[], Iterable[SpanContext | None]] = lambda: (),
) -> Iterator[Span | None]:
    """A span over one batch, current while the block runs, linked to the contexts of the
    batch's events; `attributes` and `contexts` are only called when tracing is on. Yields
    None when it is off."""
    if not _state["enabled"]:
        yield None
        return
    with tracer().start_as_current_span(
        name, kind=kind, attributes=attributes(), links=links(contexts())
    ) as span:
        yield span


def messaging_attributes(
    operation: str, destination: str, count: int, **extra: Any
) -> dict[str, Any]:
    """Messaging semantic-convention attributes of a Kafka batch span."""
    attrs: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
        "messaging.batch.message_count": count,
    }
    attrs.update(extra)
    return attrs


class TracingMiddleware:
    """A SERVER span per HTTP request (HTTP semantic conventions), the child of the
    request's `traceparent` when it has a valid one; a no-op when tracing is off."""

    def __init__(self, app: ASGIApp, route_of: Callable[[Scope], str]) -> None:
        self.app = app
        self._route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _state["enabled"] or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = None
        for name, value in scope.get("headers", ()):
            if name == b"traceparent":
                parent = span_context(value)
                break
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None
        method = str(scope.get("method", "GET"))
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.path": str(scope.get("path", "")),
            "url.scheme": str(scope.get("scheme", "http")),
            "network.protocol.version": str(scope.get("http_version", "1.1")),
        }
        if server := scope.get("server"):
            attrs["server.address"], attrs["server.port"] = server[0], server[1]
        span = tracer().start_span(
            method, context=ctx or otel_context.Context(), kind=SpanKind.SERVER, attributes=attrs
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception as e:
            span.record_exception(e)
            raise
        finally:
            route = self._route_of(scope)
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(status))
            span.end()
            otel_context.detach(token)
