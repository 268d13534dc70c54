"""The one intake use case, shared by HTTP and Kafka: validate, decide, store, publish.

A batch is validated in memory, checked against the registry (unit records are cached until
the registry changes: adapters/registry_cache.py), then decided and stored in one
PostgreSQL transaction together with its outbox records: accepted events for
`huibao.activity.accepted`, refused ones for `huibao.activity.rejected`. When `submit`
returns, every accepted event is durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from huibao_contracts import topics
from huibao_contracts.envelope import STRUCTURED_CONTENT_TYPE
from huibao_contracts.rejects import FieldError
from huibao_platform import metrics
from huibao_platform.clock import Clock
from huibao_platform.outbox import OutboxRecord
from huibao_reporting.adapters import intake_repo
from huibao_reporting.adapters.registry_cache import RegistryCache
from huibao_reporting.adapters.storage import storage_errors
from huibao_reporting.domain.checks import IntakeRules, check_event
from huibao_reporting.domain.decisions import Status, decide
from huibao_reporting.domain.events import ParsedEvent, Submission, normalised, parse_event


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
        pool: asyncpg.Pool,
        clock: Clock,
        rules: IntakeRules,
        on_commit: Callable[[], None] = lambda: None,
        registry: RegistryCache | None = None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._rules = rules
        self._on_commit = on_commit
        self.registry = registry or RegistryCache()

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
        """
        results = [EventResult(i, *s.ident()) for i, s in enumerate(submissions)]
        parsed: dict[int, ParsedEvent] = {}
        for i, s in enumerate(submissions):
            outcome = [s.error] if s.error else parse_event(s.body)
            if isinstance(outcome, ParsedEvent):
                parsed[i] = outcome
            else:
                results[i].errors = outcome
        now = self._clock.now()
        async with storage_errors():
            if parsed:
                view = await self.registry.view(
                    self._pool, [e.subject for e in parsed.values()], ancestors=scope is not None
                )
                for i, e in list(parsed.items()):
                    if errors := check_event(e, view, now, self._rules, scope):
                        results[i].errors = errors
                        del parsed[i]
            if dry_run:
                state = await intake_repo.load_state(self._pool, list(parsed.values()))
                for i, e in parsed.items():
                    results[i].status, results[i].errors = decide(e, state)
            else:
                await self._store(submissions, parsed, results, channel)
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
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            received = self._clock.now()
            await intake_repo.lock(conn, list(parsed.values()))
            state = await intake_repo.load_state(conn, list(parsed.values()))
            accepted: dict[int, intake_repo.AcceptedEvent] = {}
            records: list[OutboxRecord] = []
            for i, e in parsed.items():
                results[i].status, results[i].errors = decide(e, state)
                if results[i].status is Status.ACCEPTED:
                    data = e.payload.model_dump(mode="json")
                    accepted[i] = intake_repo.AcceptedEvent(e, received, data)
            for i, r in enumerate(results):
                if r.status is Status.ACCEPTED:
                    records.append(accepted_record(accepted[i]))
                elif r.status is Status.REJECTED:
                    records.append(rejected_record(submissions[i], r.errors, channel))
            await intake_repo.store(conn, list(accepted.values()), channel, records)
        if records:
            self._on_commit()


def accepted_record(accepted: intake_repo.AcceptedEvent) -> OutboxRecord:
    """The `huibao.activity.accepted` record of an accepted event, keyed by its unit."""
    event = accepted.event
    return OutboxRecord(
        topics.ACTIVITY_ACCEPTED,
        event.subject.encode(),
        orjson.dumps(normalised(event, accepted.received, accepted.data)),
        (("content-type", STRUCTURED_CONTENT_TYPE),),
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
