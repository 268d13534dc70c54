"""Publishing CloudEvents to `huibao.activity.submitted` with aiokafka (extra `kafka`).

Every record is keyed by the event's `subject` (the org-unit id), so one unit's events stay
in order on one partition. Structured mode (the default) sends the whole event as JSON with
`content-type: application/cloudevents+json`; binary mode sends the `data` as JSON and every
other attribute as a `ce_<name>` header, with `content-type: application/json`.

Reporting answers on Kafka, not to the producer: accepted events appear on
`huibao.activity.accepted` (and in the rollup), refused ones on `huibao.activity.rejected`
with the reason in headers. The producer is never idempotent and never transactional (the
embedded Tansu broker supports neither) and waits for every in-sync replica (`acks=all`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import pydantic_core
from aiokafka import AIOKafkaProducer

from huibao_client.core import Event, event_json
from huibao_contracts.envelope import STRUCTURED_CONTENT_TYPE
from huibao_contracts.topics import ACTIVITY_SUBMITTED


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One record as it goes to Kafka: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def _header_value(value: Any) -> bytes:
    if isinstance(value, bool):  # CloudEvents Boolean: `true` / `false`
        return b"true" if value else b"false"
    return str(value).encode()


def kafka_record(event: Event, *, binary: bool = False) -> KafkaRecord:
    """The record of `event`: keyed by its `subject`, in structured or binary mode."""
    body = event_json(event)
    subject = body.get("subject")
    key = str(subject).encode() if subject is not None else None
    if not binary:
        return KafkaRecord(
            key,
            pydantic_core.to_json(body),
            (("content-type", STRUCTURED_CONTENT_TYPE.encode()),),
        )
    headers = tuple(
        (f"ce_{name}", _header_value(value))
        for name, value in body.items()
        if name not in ("data", "datacontenttype") and value is not None
    )
    return KafkaRecord(
        key,
        pydantic_core.to_json(body.get("data")),
        (*headers, ("content-type", b"application/json")),
    )


class KafkaPublisher:
    """Publishes events to `huibao.activity.submitted` (or `topic`).

    Arguments:
        bootstrap_servers: the Kafka bootstrap servers (`host:port[,host:port]`).
        topic: where to publish (default `huibao.activity.submitted`).
        binary: publish in binary mode (`ce_*` headers) instead of structured mode.
        producer: an `AIOKafkaProducer` of your own (started and stopped by you); without
            it the publisher makes one with `acks="all"`, no idempotence, `linger_ms=5`
            and `producer_options` (e.g. `security_protocol`, `sasl_*`, `ssl_context`).

    Use it as an async context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        topic: str = ACTIVITY_SUBMITTED,
        binary: bool = False,
        producer: AIOKafkaProducer | None = None,
        **producer_options: Any,
    ) -> None:
        if producer is None and bootstrap_servers is None:
            raise ValueError("give bootstrap_servers or a producer")
        self.topic = topic
        self.binary = binary
        self._owned = producer is None
        if producer is None:
            options: dict[str, Any] = {
                "acks": "all",
                "enable_idempotence": False,
                "linger_ms": 5,
                **producer_options,
            }
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **options)
        self.producer = producer

    async def start(self) -> None:
        """Connect (only a producer the publisher made itself)."""
        if self._owned:
            await self.producer.start()

    async def stop(self) -> None:
        """Flush and disconnect (only a producer the publisher made itself)."""
        if self._owned:
            await self.producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def publish(self, event: Event, *, binary: bool | None = None) -> tuple[int, int]:
        """Publish one event and wait for Kafka's acknowledgement; answer (partition, offset)."""
        return (await self.publish_many([event], binary=binary))[0]

    async def publish_many(
        self, events: Iterable[Event], *, binary: bool | None = None
    ) -> list[tuple[int, int]]:
        """Publish events in order (per unit: one key, one partition) and wait until Kafka
        acknowledged them all; answer the (partition, offset) of each, in order."""
        mode = self.binary if binary is None else binary
        records = [kafka_record(e, binary=mode) for e in events]
        return await self.publish_records(records)

    async def publish_records(self, records: Sequence[KafkaRecord]) -> list[tuple[int, int]]:
        """Publish prepared records and wait for all acknowledgements."""
        pending = [
            await self.producer.send(self.topic, value=r.value, key=r.key, headers=list(r.headers))
            for r in records
        ]
        acked = await asyncio.gather(*pending)
        return [(m.partition, m.offset) for m in acked]
