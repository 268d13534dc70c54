"""Refused records of `huibao.activity.accepted` go to `huibao.activity.rejected`.

The reject record is the one reporting writes (`huibao_reporting.service_layer.intake.
rejected_record`): the original key, value and headers, plus `huibao_reason` (the first
error's `Reason`), `huibao_errors` (every `FieldError` as JSON) and `huibao_channel`
(here `rollup`). Rejects are sent, and Kafka has acknowledged them, before the batch
holding them commits its positions: a record fetched again by the same process is not
sent twice (the sink remembers what it sent); a crash in between sends them again (at
least once). A refused record is never applied and never stops its partition.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from huibao_platform import metrics
from huibao_platform.errors import BrokerUnavailableError
from huibao_platform.kafka import client_options
from huibao_platform.logs import get_logger
from huibao_rollup.adapters.kafka_events import Polled
from huibao_rollup.settings import RollupSettings

log = get_logger(__name__)
CHANNEL = "rollup"
SENT_KEPT = 100_000
OURS = frozenset({"huibao_reason", "huibao_errors", "huibao_channel"})


class RejectSink:
    """A producer of reject records, started on first use."""

    def __init__(self, settings: RollupSettings) -> None:
        self._settings = settings
        self.topic = settings.topic(settings.rejected_topic)
        self._producer: AIOKafkaProducer | None = None
        self._sent: dict[tuple[int, int], None] = {}
        """(partition, offset) of the rejects sent lately, oldest first: a batch fetched
        again (a rebalance, a PostgreSQL retry) does not send its rejects twice."""

    async def publish(self, refused: Sequence[Polled]) -> None:
        """Send the reject record of every refused record not sent yet; raise
        BrokerUnavailableError when Kafka does not acknowledge them (the batch is retried)."""
        todo = [
            p
            for p in refused
            if p.refused and not p.reject_sent and (p.partition, p.offset) not in self._sent
        ]
        if not todo:
            return
        try:
            if self._producer is None:
                producer = AIOKafkaProducer(**client_options(self._settings), acks="all")
                await producer.start()
                self._producer = producer
            futures = [
                await self._producer.send(
                    self.topic, value=p.record.value or b"", key=p.record.key, headers=headers(p)
                )
                for p in todo
                if p.record is not None
            ]
            for future in futures:
                await future
        except KafkaError as e:
            raise BrokerUnavailableError(f"cannot send reject records: {e}") from e
        for p in todo:
            p.reject_sent = True
            self._sent[(p.partition, p.offset)] = None
            while len(self._sent) > SENT_KEPT:
                del self._sent[next(iter(self._sent))]
            reason = str(p.refused[0].reason) if p.refused else ""
            metrics.INTAKE.labels(CHANNEL, "rejected", reason).inc()
            log.warning(
                "accepted_record_rejected",
                partition=p.partition,
                offset=p.offset,
                reason=reason,
                field=p.refused[0].field if p.refused else "",
            )

    async def stop(self) -> None:
        """Flush and close the producer, if it was started."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


def headers(p: Polled) -> list[tuple[str, bytes]]:
    """The original headers and the reject headers of reporting's reject record."""
    errors = p.refused or []
    kept = [(k, v or b"") for k, v in (p.record.headers if p.record else ()) if k not in OURS]
    return [
        *kept,
        ("huibao_reason", str(errors[0].reason).encode() if errors else b"invalid_envelope"),
        ("huibao_errors", orjson.dumps([e.model_dump(mode="json") for e in errors])),
        ("huibao_channel", CHANNEL.encode()),
    ]
