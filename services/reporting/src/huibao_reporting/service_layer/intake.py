"""The one intake use case, shared by HTTP and Kafka: validate, decide, store, publish.

A batch is validated in memory, checked against the registry (unit records are cached until
the registry changes: adapters/registry_cache.py), then decided and stored in one
PostgreSQL transaction together with its outbox records: accepted events for
`huibao.activity.accepted`, refused ones for `huibao.activity.rejected`. When `submit`
returns, every accepted event is durable.

A value PostgreSQL refuses although it validated (a data error: the contract types are
meant to refuse every such value by name, this is the second line) fails only its own
event: the batch is probed event by event in savepoints of a transaction that is rolled
back, the events that fail are refused as `unstorable`, and the rest is stored. A dry run
runs the very same transaction and rolls it back, so it answers what a real run would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from huibao_contracts import topics
from huibao_contracts.envelope import STRUCTURED_CONTENT_TYPE
from huibao_contracts.rejects import FieldError, Reason
from huibao_platform import metrics, tracing
from huibao_platform.errors import UnstorableValueError
from huibao_platform.logs import get_logger
from huibao_platform.outbox import OutboxRecord
from huibao_platform.tracing import SpanContext, SpanKind
from huibao_reporting.domain.checks import IntakeRules, check_event
from huibao_reporting.domain.decisions import Status, decide
from huibao_reporting.domain.events import ParsedEvent, Submission, normalised, parse_event
from huibao_reporting.service_layer.ports import (
    AcceptedEvent,
    Clock,
    IntakeBatch,
    IntakeStore,
    UnitRecords,
)

log = get_logger(__name__)


@dataclass(slots=True)
class EventResult:
    """The answer for one submitted event."""

    index: int
    id: str | None
    source: str | None
    status: Status = Status.REJECTED
    errors: list[FieldError] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The result as the HTTP API shows it."""
        return {
            "index": self.index,
            "id": self.id,
            "source": self.source,
            "status": str(self.status),
            "errors": [e.model_dump(mode="json") for e in self.errors],
        }


class Intake:
    """Validates and stores batches of submitted events."""

    def __init__(
        self,
        store: IntakeStore,
        units: UnitRecords,
        clock: Clock,
        rules: IntakeRules,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._storage = store
        self._units = units
        self._clock = clock
        self._rules = rules
        self._on_commit = on_commit

    async def submit(
        self,
        submissions: Sequence[Submission],
        *,
        channel: str,
        scope: str | None = None,
        dry_run: bool = False,
    ) -> list[EventResult]:
        """Rule on every submission; store the accepted ones unless `dry_run`.

        `scope` is the unit of the caller's token (None: the whole tree, as for Kafka).
        Traced as one `intake {channel}` span linked to the events' own `traceparent`s.
        """
        with tracing.batch_span(
            f"intake {channel}",
            SpanKind.INTERNAL,
            lambda: {"huibao.channel": channel, "huibao.batch.event_count": len(submissions)},
            lambda: map(event_context, submissions),
        ):
            return await self._submit(submissions, channel, scope, dry_run)

    async def _submit(
        self, submissions: Sequence[Submission], channel: str, scope: str | None, dry_run: bool
    ) -> list[EventResult]:
        results = [EventResult(i, *s.ident()) for i, s in enumerate(submissions)]
        parsed: dict[int, ParsedEvent] = {}
        for i, s in enumerate(submissions):
            outcome = [s.error] if s.error else parse_event(s.body)
            if isinstance(outcome, ParsedEvent):
                parsed[i] = outcome
            else:
                results[i].errors = outcome
        now = self._clock.now()
        if parsed:
            view = await self._units.view(
                [e.subject for e in parsed.values()], ancestors=scope is not None
            )
            for i, e in list(parsed.items()):
                if errors := check_event(e, view, now, self._rules, scope):
                    results[i].errors = errors
                    del parsed[i]
        await self._store(submissions, parsed, results, channel, dry_run=dry_run)
        for r in results:
            reason = str(r.errors[0].reason) if r.errors else ""
            metrics.INTAKE.labels(channel, str(r.status), reason).inc()
        return results

    async def _store(
        self,
        submissions: Sequence[Submission],
        parsed: dict[int, ParsedEvent],
        results: list[EventResult],
        channel: str,
        *,
        dry_run: bool,
    ) -> None:
        """Store the batch; refuse as `unstorable` the events PostgreSQL cannot hold."""
        for _ in range(len(parsed) + 1):
            try:
                stored = await self._store_batch(
                    submissions, parsed, results, channel, dry_run=dry_run
                )
            except UnstorableValueError as e:
                log.warning("intake_unstorable_batch", error=str(e), events=len(parsed))
                bad = await self._unstorable(parsed, channel) or dict.fromkeys(parsed, str(e))
                for i, message in bad.items():
                    del parsed[i]
                    results[i].status = Status.REJECTED
                    results[i].errors = [
                        FieldError(
                            field="event",
                            reason=Reason.UNSTORABLE,
                            message=f"PostgreSQL cannot store a value of this event: {message}",
                        )
                    ]
                continue
            if stored and not dry_run:
                self._on_commit()
            return
        # every event was refused and PostgreSQL still refuses the batch (its reject records)
        raise UnstorableValueError("PostgreSQL refused the batch's reject records")

    async def _unstorable(self, parsed: dict[int, ParsedEvent], channel: str) -> dict[int, str]:
        """The events whose own rows PostgreSQL refuses, with its message: each is written in
        a savepoint of one transaction that is always rolled back."""
        bad: dict[int, str] = {}
        async with self._storage.batch(commit=False) as batch:
            received = self._clock.now()
            for i, e in parsed.items():
                try:
                    async with batch.savepoint():
                        one = AcceptedEvent(e, received, e.payload.model_dump(mode="json"))
                        await batch.store([one], channel, [accepted_record(one)])
                except UnstorableValueError as err:
                    bad[i] = str(err)
        return bad

    async def _store_batch(
        self,
        submissions: Sequence[Submission],
        parsed: dict[int, ParsedEvent],
        results: list[EventResult],
        channel: str,
        *,
        dry_run: bool,
    ) -> bool:
        """One transaction for the batch (rolled back in a dry run); True when it wrote
        outbox records."""
        async with self._storage.batch(commit=not dry_run) as batch:
            records = await self._write(batch, submissions, parsed, results, channel)
        return bool(records)

    async def _write(
        self,
        batch: IntakeBatch,
        submissions: Sequence[Submission],
        parsed: dict[int, ParsedEvent],
        results: list[EventResult],
        channel: str,
    ) -> list[OutboxRecord]:
        received = self._clock.now()
        await batch.lock(list(parsed.values()))
        state = await batch.load_state(list(parsed.values()))
        accepted: dict[int, AcceptedEvent] = {}
        records: list[OutboxRecord] = []
        for i, e in parsed.items():
            results[i].status, results[i].errors = decide(e, state)
            if results[i].status is Status.ACCEPTED:
                data = e.payload.model_dump(mode="json")
                accepted[i] = AcceptedEvent(e, received, data)
        for i, r in enumerate(results):
            if r.status is Status.ACCEPTED:
                records.append(accepted_record(accepted[i]))
            elif r.status is Status.REJECTED:
                records.append(rejected_record(submissions[i], r.errors, channel))
        await batch.store(list(accepted.values()), channel, records)
        return records


def event_context(sub: Submission) -> SpanContext | None:
    """The trace context an event names: its `traceparent` attribute (structured, or
    `ce_traceparent` in binary mode), else a `traceparent` Kafka header."""
    if isinstance(sub.body, dict) and isinstance(tp := sub.body.get("traceparent"), str):
        return tracing.span_context(tp)
    return tracing.extract(sub.headers) if sub.headers else None


_ACCEPTED_HEADERS = (("content-type", STRUCTURED_CONTENT_TYPE),)


def accepted_record(accepted: AcceptedEvent) -> OutboxRecord:
    """The `huibao.activity.accepted` record of an accepted event, keyed by its unit.

    With tracing on it carries a `traceparent` header: the event's own (the CloudEvents
    tracing extension names where the event was made), else the intake span's, so the
    relay and the rollup link their spans to it."""
    event = accepted.event
    headers: tuple[tuple[str, str], ...] = _ACCEPTED_HEADERS
    if tracing.enabled():
        tp = tracing.valid_traceparent(event.envelope.traceparent) or tracing.inject()
        if tp:
            headers = (*headers, ("traceparent", tp))
    return OutboxRecord(
        topics.ACTIVITY_ACCEPTED,
        event.subject.encode(),
        orjson.dumps(normalised(event, accepted.received, accepted.data)),
        headers,
    )


def rejected_record(sub: Submission, errors: Sequence[FieldError], channel: str) -> OutboxRecord:
    """The `huibao.activity.rejected` record: original bytes, reason and errors in headers."""
    key = sub.key
    if key is None and isinstance(sub.body, dict) and isinstance(sub.body.get("subject"), str):
        key = sub.body["subject"].encode()
    reason = str(errors[0].reason) if errors else "invalid_envelope"
    ours = {"huibao_reason", "huibao_errors", "huibao_channel"}
    headers = (
        *((k, v) for k, v in sub.headers if k not in ours),
        ("huibao_reason", reason),
        ("huibao_errors", orjson.dumps([e.model_dump(mode="json") for e in errors]).decode()),
        ("huibao_channel", channel),
    )
    return OutboxRecord(topics.ACTIVITY_REJECTED, key, sub.raw, headers)
