"""`huibao status`: what the running services say about themselves, over HTTP.

Each service: `/health/ready` (and the check that fails), `/health/live` (its version),
`/metrics` (consumer lag per group, topic and partition; the outbox backlog); the
scheduler's `GET /v1/cycles`. Nothing is read from PostgreSQL or Kafka directly, so it
shows what the services themselves see.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(slots=True)
class ServiceStatus:
    """What one service answered (`error` when it did not answer at all)."""

    name: str
    url: str
    ready: bool = False
    checks: dict[str, Any] = field(default_factory=dict)
    version: str = "?"
    lag: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)
    """(group, topic) → [(partition, messages behind)]."""
    outbox_backlog: float | None = None
    outbox_oldest_age: float | None = None
    error: str | None = None
    note: str | None = None
    """Something it answered that could not be read (its /metrics, say)."""


@dataclass(slots=True)
class StatusReport:
    """Every service's status, and the scheduler's cycles."""

    services: list[ServiceStatus]
    cycles: list[dict[str, Any]] | None = None
    cycles_error: str | None = None

    @property
    def all_ready(self) -> bool:
        """True when every service answered ready."""
        return all(s.ready for s in self.services)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it is not one (a proxy's page, a stranger)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _read_metrics(text: str, status: ServiceStatus) -> None:
    lag: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "huibao_consumer_lag":
                labels = sample.labels
                key = (labels.get("group", ""), labels.get("topic", ""))
                lag[key].append((int(labels.get("partition", "0")), sample.value))
            elif sample.name == "huibao_outbox_backlog":
                status.outbox_backlog = sample.value
            elif sample.name == "huibao_outbox_oldest_age_seconds":
                status.outbox_oldest_age = sample.value
    status.lag = {k: sorted(v) for k, v in sorted(lag.items())}


async def _service(client: httpx.AsyncClient, name: str, url: str) -> ServiceStatus:
    status = ServiceStatus(name, url)
    try:
        ready, live, metrics = await asyncio.gather(
            client.get(f"{url}/health/ready"),
            client.get(f"{url}/health/live"),
            client.get(f"{url}/metrics"),
        )
    except httpx.HTTPError as e:
        status.error = f"no answer ({type(e).__name__}: {e})" if str(e) else type(e).__name__
        return status
    status.ready = ready.status_code == 200
    checks = _json_object(ready).get("checks")
    status.checks = dict(checks) if isinstance(checks, dict) else {}
    if live.status_code == 200:
        status.version = str(_json_object(live).get("version", "?"))[:40]
    if metrics.status_code == 200:
        try:
            _read_metrics(metrics.text, status)
        except (ValueError, KeyError, TypeError) as e:  # not Prometheus text
            status.note = f"unreadable /metrics ({e})"[:200]
    return status


async def gather(urls: dict[str, str], token: str, *, timeout: float = 5.0) -> StatusReport:  # noqa: ASYNC109
    """Ask every service in `urls` (name → base URL) at once; `token` reads the cycles."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
        services = list(await asyncio.gather(*(_service(client, n, u) for n, u in urls.items())))
        report = StatusReport(services)
        if "scheduler" in urls:
            try:
                r = await client.get(f"{urls['scheduler']}/v1/cycles")
            except httpx.HTTPError as e:
                report.cycles_error = f"no answer ({type(e).__name__})"
            else:
                items = _json_object(r).get("items") if r.status_code == 200 else None
                if isinstance(items, list):
                    report.cycles = [c for c in items if isinstance(c, dict)]
                elif r.status_code == 200:
                    report.cycles_error = "an answer without cycles"
                else:
                    report.cycles_error = f"HTTP {r.status_code}: {r.text[:200]}"
    return report


def _clean(value: object, limit: int = 200) -> str:
    """A value a service sent, fit for a terminal: printable characters only (no escape
    sequences), at most `limit` of them."""
    return "".join(ch for ch in str(value) if ch.isprintable())[:limit]


def render(report: StatusReport) -> str:
    """The report as text: services, consumer lag, outbox backlog, cycles."""
    lines = ["services"]
    for s in report.services:
        if s.error:
            lines.append(f"  {s.name:<10} {s.url:<24} DOWN      {_clean(s.error)}")
            continue
        failing = [_clean(k, 40) for k, ok in s.checks.items() if not ok]
        state = "ready" if s.ready else "NOT READY"
        why = f"  (failing: {', '.join(failing)})" if failing else ""
        note = f"  [{_clean(s.note)}]" if s.note else ""
        version = _clean(s.version, 40)
        lines.append(f"  {s.name:<10} {s.url:<24} {state:<9} version {version}{why}{note}")
    lines.append("consumer lag (messages behind the end of each partition)")
    any_lag = False
    for s in report.services:
        for (group, topic), parts in s.lag.items():
            any_lag = True
            total = sum(v for _, v in parts)
            each = " ".join(f"{p}:{v:.0f}" for p, v in parts)
            where = f"{_clean(group)} on {_clean(topic)}"
            lines.append(f"  {s.name:<10} {where}: {total:.0f}   [{each}]")
    if not any_lag:
        lines.append("  (no consumer reports lag yet)")
    lines.append("outbox backlog (rows not yet relayed to Kafka)")
    for s in report.services:
        if s.outbox_backlog is not None:
            age = (
                f", oldest {s.outbox_oldest_age:.0f} s"
                if s.outbox_oldest_age is not None and s.outbox_backlog
                else ""
            )
            lines.append(f"  {s.name:<10} {s.outbox_backlog:.0f}{age}")
    lines.append("cycles")
    if report.cycles_error:
        lines.append(f"  scheduler: {_clean(report.cycles_error)}")
    elif not report.cycles:
        lines.append("  (none scheduled yet)")
    else:
        for c in report.cycles:
            kind, period, state = (_clean(c.get(k), 20) for k in ("kind", "period", "state"))
            step, due = _clean(c.get("next_step"), 40), _clean(c.get("next_due_at"), 40)
            nxt = f"next {step} at {due}" if c.get("next_step") else "done"
            lines.append(f"  {kind:<9} {period:<8} {state:<10} {nxt}")
    return "\n".join(lines)
