"""The reporting service's settings: CommonSettings plus intake limits, from the environment."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from huibao_platform.settings import CommonSettings

MIB = 1 << 20
KIB = 1 << 10


class ReportingSettings(CommonSettings):
    """Everything reporting reads from the environment (prefix `HUIBAO_`)."""

    http_port: int = Field(default=8001, ge=0, le=65535, description="HTTP port.")
    max_batch_events: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Most events in one POST /v1/events (413 above).",
    )
    max_body_bytes: int = Field(
        default=5 * MIB, ge=1024, description="Largest POST /v1/events body (413 above)."
    )
    max_event_bytes: int = Field(
        default=64 * KIB, ge=256, description="Largest single event, over HTTP or Kafka."
    )
    max_registry_body_bytes: int = Field(
        default=64 * MIB, ge=1024, description="Largest PUT /v1/orgunits body (413 above)."
    )
    max_registry_units: int = Field(
        default=200_000, ge=1, description="Most units in one PUT /v1/orgunits (413 above)."
    )
    future_skew_seconds: int = Field(
        default=600,
        ge=0,
        le=86_400,
        description="How far in the future an event's date or time may lie (clock skew).",
    )
    kafka_group_id: str = Field(
        default="huibao-reporting", description="Consumer group of the Kafka intake."
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        le=300_000,
        description="Consumer-group session timeout of the Kafka intake: how soon the "
        "partitions of a replica that died move to the others (or to its restart).",
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=3000, ge=100, le=60_000, description="Kafka intake consumer-group heartbeat."
    )
    kafka_intake: bool = Field(
        default=True, description="Consume huibao.activity.submitted (off: HTTP intake only)."
    )
    kafka_intake_consumers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Kafka intake consumers in this process (one group: they share the "
        "partitions); while one waits for PostgreSQL another validates its batch.",
    )
    kafka_batch_records: int = Field(
        default=1000, ge=1, le=10_000, description="Most records the Kafka intake takes at once."
    )
    registry_cache_units: int = Field(
        default=200_000,
        ge=0,
        description="Org-unit records the intake keeps in memory between batches (0: none); "
        "they are dropped whenever the registry changes.",
    )
    relay_batch: int = Field(default=2000, ge=1, description="Outbox rows relayed per round.")
    outbox_confirm_group: str = Field(
        default="huibao-rollup",
        description="Consumer group (the rollup's HUIBAO_CONSUMER_GROUP) whose committed "
        "offsets on huibao.activity.accepted release published outbox rows; until then they "
        "are kept, and published again if the broker loses them. Empty: accepted rows are "
        "kept for outbox_retention_hours instead.",
    )
    relay_fault_pause_ms: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Test hook, off (0) in any real deployment: the relay pauses this long "
        "after Kafka acknowledged a round and before recording it, logging "
        "`relay_fault_pause`, so that the chaos run (tests/fault) can kill it there.",
    )
    outbox_retention_hours: float = Field(
        default=168,
        gt=0,
        description="How long published org-unit changes and rejects (and accepted events "
        "without a confirming group) stay in the outbox, to be published again if the "
        "broker loses its topics; their consumers must catch up within it.",
    )
    db_pool_size: int = Field(default=10, ge=2, le=100, description="PostgreSQL pool size.")

    @property
    def future_skew(self) -> dt.timedelta:
        """The allowed clock skew as a timedelta."""
        return dt.timedelta(seconds=self.future_skew_seconds)
