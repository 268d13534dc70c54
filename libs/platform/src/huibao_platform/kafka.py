"""Kafka through aiokafka: client options from settings, a producer, topics and lag."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from huibao_contracts import topics
from huibao_platform import metrics
from huibao_platform.errors import BrokerUnavailableError, StartupRefusedError
from huibao_platform.logs import get_logger
from huibao_platform.settings import CommonSettings, TopicSettings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Security:
    """The Kafka security the settings ask for, the one mapping every client is built from
    (aiokafka's options below; reporting's faststream broker, the bench)."""

    protocol: str
    """PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL."""
    sasl_mechanism: str | None
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with a SASL_* protocol, else None."""
    username: str
    password: str = field(repr=False)
    ssl_context: ssl.SSLContext | None
    """The TLS context with an *SSL protocol (KAFKA_SSL_CAFILE's CA, else the system's)."""


def security(settings: CommonSettings) -> Security:
    """The Kafka security of `settings` (the password revealed here only, for the client)."""
    protocol = settings.kafka_security_protocol
    sasl = protocol.startswith("SASL")
    password = settings.kafka_sasl_password
    return Security(
        protocol=protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism if sasl else None,
        username=(settings.kafka_sasl_username or "") if sasl else "",
        password=password.get_secret_value() if sasl and password is not None else "",
        ssl_context=ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if protocol.endswith("SSL")
        else None,
    )


def client_options(settings: CommonSettings) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka client: servers and security."""
    sec = security(settings)
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": sec.protocol,
    }
    if sec.sasl_mechanism is not None:
        opts["sasl_mechanism"] = sec.sasl_mechanism
        opts["sasl_plain_username"] = sec.username
        opts["sasl_plain_password"] = sec.password
    if sec.ssl_context is not None:
        opts["ssl_context"] = sec.ssl_context
    return opts


class CachedPartitioner:
    """Kafka's default key → partition (murmur2, as the Java client), remembered per key.

    aiokafka computes murmur2 in pure Python for every record; keys here are org-unit ids,
    which repeat all day, so the hash is computed once per key (at most `size` kept).
    Records without a key fall back to aiokafka's random choice.
    """

    def __init__(self, size: int = 1 << 18) -> None:
        self._size = size
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= self._size:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[h % len(all_partitions)]


def new_producer(settings: CommonSettings, **extra: Any) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas; never idempotent (Tansu lacks it)."""
    extra.setdefault("partitioner", CachedPartitioner())
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
        request_timeout_ms=15000,
        **extra,
    )


Record = tuple[str, bytes | None, bytes, Sequence[tuple[str, bytes]]]
"""One record to publish: topic, key, value and headers."""


@dataclass(frozen=True, slots=True)
class Placed:
    """Where one record batch landed: `records` (indexes into what was published, in
    order) have offsets `base`, `base + 1`, ... on `partition` of `topic`."""

    topic: str
    partition: int
    base: int
    records: list[int]


async def publish_batches(
    producer: AIOKafkaProducer,
    records: Iterable[Record],
    partitioner: CachedPartitioner,
    *,
    ack_timeout: float | None = 30.0,
) -> list[Placed]:
    """Publish `records` as record batches, one open batch per (topic, partition) at a time,
    in order within each partition; wait until Kafka acknowledged them all (at most
    `ack_timeout` seconds) and answer where each batch landed, in the order they were sent.

    Building the batches here, with Kafka's key → partition rule (`partitioner`), skips
    aiokafka's per-record `send` (a future, a metadata lookup and a partitioner call per
    record), which costs more CPU than everything else a relay or a load generator does.
    """
    open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
    partitions: dict[str, list[int]] = {}
    sent: list[tuple[asyncio.Future[Any], str, int, list[int]]] = []
    for i, (topic, key, value, headers) in enumerate(records):
        every = partitions.get(topic)
        if every is None:
            every = partitions[topic] = sorted(await producer.partitions_for(topic))
        partition = partitioner(key, every, every)
        batch, held = open_batches.get((topic, partition)) or (None, [])
        if batch is None:
            batch = producer.create_batch()
            open_batches[(topic, partition)] = (batch, held)
        while batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            future = await producer.send_batch(batch, topic, partition=partition)
            sent.append((future, topic, partition, held))
            batch, held = producer.create_batch(), []
            open_batches[(topic, partition)] = (batch, held)
        held.append(i)
    for (topic, partition), (batch, held) in open_batches.items():
        future = await producer.send_batch(batch, topic, partition=partition)
        sent.append((future, topic, partition, held))
    async with asyncio.timeout(ack_timeout):
        acked = await asyncio.gather(*(f for f, *_ in sent))
    return [
        Placed(topic, partition, int(meta.offset), held)
        for meta, (_, topic, partition, held) in zip(acked, sent, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class TopicState:
    """One Huibao topic after `create_topics`: created now or found, and its layout."""

    name: str
    created: bool
    partitions: int
    replication_factor: int


def wanted_topics(settings: TopicSettings) -> dict[str, int]:
    """Every Huibao topic's real name (the prefix applied) and its partition count."""
    counts = {**topics.PARTITIONS, **settings.topic_partitions}
    return {settings.topic(t): n for t, n in counts.items()}


async def create_topics(settings: TopicSettings) -> list[TopicState]:
    """Create every Huibao topic that does not exist yet (idempotent): the deliberate step
    of `huibao topics` and of the embedded launcher; services never create topics.

    New topics get the partitions, replication factor and `min.insync.replicas` of
    `settings`; existing ones are reported as they are (never altered).
    Raises `BrokerUnavailableError` naming the bootstrap servers when the broker is away.
    """
    wanted = wanted_topics(settings)
    rf = settings.topic_replication_factor
    configs = {"min.insync.replicas": str(settings.topic_min_insync_replicas)}
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=10_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=n, replication_factor=rf, topic_configs=configs)
            for name, n in wanted.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("topics_created", topics=[t.name for t in missing])
        found = [name for name in wanted if name not in {t.name for t in missing}]
        described = await admin.describe_topics(found) if found else []
    except (KafkaError, OSError) as e:
        raise BrokerUnavailableError(
            f"cannot reach the Kafka broker at {settings.kafka_bootstrap_servers}: "
            f"{e or type(e).__name__}"
        ) from e
    finally:
        await admin.close()
    layout = {
        d["topic"]: (
            len(d["partitions"]),
            max((len(p["replicas"]) for p in d["partitions"]), default=0),
        )
        for d in described
    }
    return [
        TopicState(name, True, n, rf)
        if name not in layout
        else TopicState(name, False, *layout[name])
        for name, n in wanted.items()
    ]


async def missing_topics(
    settings: CommonSettings,
    names: Iterable[str],
    timeout: float = 2.0,  # noqa: ASYNC109
) -> list[str]:
    """Which of `names` (real names) the broker does not have; raises
    `BrokerUnavailableError` when it does not answer within `timeout` seconds."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            existing = set(await admin.list_topics())
    except (KafkaError, OSError, TimeoutError) as e:
        raise BrokerUnavailableError(
            f"the Kafka broker at {settings.kafka_bootstrap_servers} did not answer: "
            f"{e or type(e).__name__}"
        ) from e
    finally:
        await admin.close()
    return [name for name in names if name not in existing]


def missing_topics_message(settings: CommonSettings, missing: Sequence[str]) -> str:
    """The one line a service gives when its topics are not there."""
    return (
        f"Kafka topics missing on {settings.kafka_bootstrap_servers}: {', '.join(missing)}. "
        "Services never create topics: create them with `huibao topics` (or the KafkaTopic "
        "resources of deploy/k8s)"
    )


async def require_topics(
    settings: CommonSettings, names: Iterable[str], *, broker_required: bool = True
) -> None:
    """The start-up check of a service: raise `StartupRefusedError` naming every topic in
    `names` the broker lacks. With `broker_required` False, a broker that does not answer
    is only logged (the service retries in the background, not ready until it sees them)."""
    wanted = list(names)
    try:
        missing = await missing_topics(settings, wanted)
    except BrokerUnavailableError as e:
        if broker_required:
            raise
        log.warning("topics_not_checked", reason=str(e))
        return
    if missing:
        raise StartupRefusedError(missing_topics_message(settings, missing))


async def topics_present(settings: CommonSettings, names: Iterable[str]) -> bool:
    """Readiness: the broker answers and has every topic in `names`."""
    try:
        return not await missing_topics(settings, names)
    except BrokerUnavailableError:
        return False


async def broker_reachable(settings: CommonSettings, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
    """True when the bootstrap servers answer a metadata request."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            await admin.list_topics()
            return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()


def partitions_of(topic: str, count: int) -> list[TopicPartition]:
    """Every partition of a topic."""
    return [TopicPartition(topic, p) for p in range(count)]


@dataclass(frozen=True, slots=True)
class OffsetReset:
    """A partition read again from its beginning: the position found beyond its end."""

    tp: TopicPartition
    position: int
    high_watermark: int


async def reset_beyond_end(
    consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition], *, within: float = 5.0
) -> list[OffsetReset]:
    """Seek to the beginning every partition of `tps` whose position lies beyond its end,
    logged (`consumer_offset_reset`) and counted (`huibao_consumer_offset_reset_total`).

    A broker that came back empty (the embedded one keeps topics in memory) starts its
    partitions at offset 0 again, while a consumer that ran across the restart, or that
    resumed from an offset committed into the new broker by one that did, goes on at its
    old position. Kafka would answer OFFSET_OUT_OF_RANGE and the consumer would apply
    `auto_offset_reset`; Tansu answers an empty fetch, so records produced after the
    restart below that position would be skipped. This is `auto_offset_reset="earliest"`
    for one partition, decided from the high watermark of the last fetch response
    (Tansu's ListOffsets answers the base of the last batch + 1, not the end). Partitions
    not fetched yet, or no longer assigned, are left alone. Call it on a timer from the
    task that owns the consumer, or beside its fetch loop (a seek there is safe: what was
    fetched for the old position is dropped).
    """
    reset: list[OffsetReset] = []
    for tp in tps:
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            async with asyncio.timeout(within):
                position = await consumer.position(tp)
        except (KafkaError, TimeoutError):
            continue  # revoked meanwhile, or its position is being reset already
        if position <= high:
            continue
        await consumer.seek_to_beginning(tp)
        metrics.CONSUMER_OFFSET_RESET.labels(tp.topic).inc()
        log.warning(
            "consumer_offset_reset",
            topic=tp.topic,
            partition=tp.partition,
            position=position,
            high_watermark=high,
        )
        reset.append(OffsetReset(tp, position, high))
    return reset
