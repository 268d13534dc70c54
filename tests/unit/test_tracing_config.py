"""Tracing off by default: no endpoint, no provider, no header; and trace contexts parsed."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from pydantic import ValidationError

from huibao_platform import tracing
from huibao_platform.settings import CommonSettings

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_without_an_endpoint_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "HUIBAO_TRACING_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    settings = CommonSettings()
    assert settings.tracing_endpoint is None
    assert tracing.configure(settings, "huibao-test") is False
    assert tracing.enabled() is False
    # the API's proxy: every span is the no-op one, nothing is exported
    provider = trace.get_tracer_provider()
    assert type(provider).__module__.startswith("opentelemetry.trace"), provider
    assert not type(provider).__module__.startswith("opentelemetry.sdk")
    with tracing.batch_span("x", trace.SpanKind.INTERNAL, dict) as span:
        assert span is None
        assert tracing.inject() is None


def test_exporter_none_keeps_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    settings = CommonSettings()
    assert settings.tracing_endpoint == "http://127.0.0.1:4318"
    assert tracing.configure(settings, "huibao-test") is False
    assert tracing.enabled() is False


def test_an_endpoint_must_be_an_http_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
    with pytest.raises(ValidationError, match=r"tracing_endpoint|OTEL_EXPORTER_OTLP_ENDPOINT"):
        CommonSettings()


def test_extract_reads_strings_and_headers() -> None:
    ctx = tracing.extract(TP)
    assert ctx is not None
    assert ctx.is_remote
    assert f"{ctx.trace_id:032x}" == TP.split("-")[1]
    assert tracing.format_traceparent(ctx) == TP
    assert tracing.extract([("content-type", b"x"), ("ce_traceparent", TP.encode())]) == ctx
    assert tracing.extract({"Traceparent": TP}) == ctx
    for bad in (
        "",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        TP + "-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ):
        assert tracing.extract(bad) is None, bad
        assert tracing.valid_traceparent(bad) is None, bad
    assert tracing.valid_traceparent(TP.upper()) == TP
    assert tracing.extract([("traceparent", None)]) is None
    assert tracing.extract(None) is None


def test_links_are_distinct_and_capped() -> None:
    ctx = tracing.extract(TP)
    many = [tracing.extract(f"00-{i + 1:032x}-{i + 1:016x}-01") for i in range(500)]
    assert len(tracing.links([ctx, ctx, None])) == 1
    assert len(tracing.links(many)) == tracing.MAX_LINKS
