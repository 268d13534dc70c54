"""The Kafka intake: batches from `huibao.activity.submitted`, offsets committed after PostgreSQL.

The subscriber uses `AckPolicy.MANUAL`: a batch is validated and stored (accepted events
and rejections with their outbox records) in one transaction, and only then are the
offsets committed. When PostgreSQL is unavailable the batch is rewound and retried; a
record that breaks the intake in an unexpected way is rejected on its own, so a poison
message never stops the partition or the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.security import SASLPlaintext, SASLScram256, SASLScram512

from huibao_contracts import topics
from huibao_contracts.rejects import FieldError, Reason
from huibao_platform.errors import StorageUnavailableError
from huibao_platform.kafka import reset_beyond_end, security
from huibao_platform.logs import get_logger
from huibao_reporting.adapters.kafka_records import submission_from_record
from huibao_reporting.domain.events import Submission
from huibao_reporting.entrypoints.log_fields import event_fields, outcome_fields
from huibao_reporting.service_layer.intake import Intake
from huibao_reporting.settings import ReportingSettings

log = get_logger(__name__)
CHANNEL = "kafka"


def _clean(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    headers = [(str(k), (v or b"").decode("utf-8", "replace").encode()) for k, v in record.headers]
    return dataclasses.replace(record, headers=headers)


async def tolerant_parser(
    records: tuple[ConsumerRecord[Any, Any], ...], original: Callable[[Any], Awaitable[Any]]
) -> Any:
    """faststream's batch parser, made safe for header values that are null or not UTF-8."""
    try:
        return await original(records)
    except (UnicodeDecodeError, AttributeError):
        return await original(tuple(_clean(r) for r in records))


async def raw_decoder(message: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """Skip faststream's JSON decoding: the intake reads the raw records itself."""
    return None


def _security(settings: ReportingSettings) -> Any:
    """faststream's security object for the platform's one mapping of the settings."""
    sec = security(settings)
    if sec.sasl_mechanism is None:
        return None
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return kind[sec.sasl_mechanism](
        sec.username, sec.password, ssl_context=sec.ssl_context, use_ssl=sec.ssl_context is not None
    )


class KafkaIntake:
    """Feeds the batches of the submitted topic to the intake use case."""

    def __init__(self, intake: Callable[[], Intake], max_event_bytes: int) -> None:
        self._intake = intake
        self._max = max_event_bytes
        self._backoff = 0.5

    async def handle(self, msg: Any) -> None:
        """Process one batch; commit its offsets only after PostgreSQL committed.

        Logs one `kafka_batch` line per batch stored: records, partitions, outcome counts
        and duration."""
        records: Sequence[ConsumerRecord[Any, Any]] = msg.raw_message
        started = time.perf_counter()
        subs = [submission_from_record(r.key, r.value, r.headers, self._max) for r in records]
        fields: dict[str, Any] = {}
        try:
            fields = outcome_fields(await self._intake().submit(subs, channel=CHANNEL))
        except StorageUnavailableError as e:
            log.warning("kafka_intake_storage_unavailable", error=str(e), records=len(subs))
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, 10.0)
            await msg.nack()
            return
        except Exception:  # a bug must not stop the partition: isolate the culprit
            log.exception("kafka_intake_batch_failed", records=len(subs))
            if not await self._one_by_one(subs):
                await msg.nack()
                return
            fields = {"events": len(subs), "one_by_one": True}
        self._backoff = 0.5
        log.info(
            "kafka_batch",
            records=len(records),
            partitions=sorted({r.partition for r in records}),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            **fields,
        )
        try:
            await msg.ack()
        except KafkaError as e:  # a rebalance: the next owner re-reads, duplicates are caught
            log.warning("kafka_intake_commit_failed", error=str(e))

    async def _one_by_one(self, subs: Sequence[Submission]) -> bool:
        intake = self._intake()
        for sub in subs:
            with structlog.contextvars.bound_contextvars(**event_fields(sub)):
                if not await self._one(intake, sub):
                    return False
        return True

    async def _one(self, intake: Intake, sub: Submission) -> bool:
        try:
            await intake.submit([sub], channel=CHANNEL)
        except StorageUnavailableError:
            return False
        except Exception as e:
            log.exception("kafka_intake_poison_record")
            error = FieldError(
                field="event",
                reason=Reason.INVALID_ENVELOPE,
                message=f"the event could not be processed: {type(e).__name__}",
            )
            try:
                await intake.submit([dataclasses.replace(sub, error=error)], channel=CHANNEL)
            except StorageUnavailableError:
                return False
            except Exception:
                log.exception("kafka_intake_record_dropped", key=sub.key)
        return True


OFFSET_CHECK_SECONDS = 5.0
"""How often the intake consumers' positions are compared with their partitions' ends."""


async def watch_positions(
    brokers: Sequence[KafkaBroker], stop: asyncio.Event, every: float = OFFSET_CHECK_SECONDS
) -> None:
    """Until `stop`: every `every` seconds, read again from its beginning each partition an
    intake consumer is positioned beyond the end of (`huibao_platform.kafka.reset_beyond_end`):
    after the broker came back empty, nothing submitted to it is skipped. The events read
    twice (those that were also in the old log) are caught as duplicates."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            return
        for broker in brokers:
            for sub in broker.subscribers:
                consumer = getattr(sub, "consumer", None)
                if consumer is None:
                    continue
                try:
                    await reset_beyond_end(consumer, sorted(consumer.assignment()))
                except KafkaError as e:  # the broker away: the next round asks again
                    log.info("intake_position_check_failed", error=str(e))


def build_broker(settings: ReportingSettings, intake: Callable[[], Intake]) -> KafkaBroker:
    """A faststream broker with the intake subscriber on `huibao.activity.submitted`."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=_security(settings),
        client_id="huibao-reporting",
        # a plain stdlib logger: its records reach the root handler and come out as JSON
        # (faststream's default logger writes coloured text to stdout). Per-message INFO
        # lines stay below the root level; the `kafka_batch` line is the canonical one.
        logger=logging.getLogger("faststream"),
    )
    handler = KafkaIntake(intake, settings.max_event_bytes)

    @broker.subscriber(
        settings.topic(topics.ACTIVITY_SUBMITTED),
        batch=True,
        group_id=settings.kafka_group_id,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        max_records=settings.kafka_batch_records,
        batch_timeout_ms=100,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        parser=tolerant_parser,
        decoder=raw_decoder,
    )
    async def on_submitted(msg: KafkaMessage) -> None:
        await handler.handle(msg)

    return broker
