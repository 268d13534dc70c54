"""The rollup's one settings object, read from the environment once at start-up."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from huibao_contracts.class_hours import ClassHourRules
from huibao_contracts.topics import ACTIVITY_ACCEPTED, ACTIVITY_REJECTED, ORGUNIT_CHANGES
from huibao_platform.settings import CommonSettings


class RollupSettings(CommonSettings):
    """Everything the rollup service can be told (env prefix `HUIBAO_`)."""

    http_port: int = Field(default=8002, ge=0, le=65535, description="HTTP port of the query API.")
    consumer_group: str = Field(
        default="huibao-rollup",
        description="Consumer group of the accepted-activity consumer (HUIBAO_CONSUMER_GROUP).",
    )
    accepted_topic: str = Field(
        default=ACTIVITY_ACCEPTED, description="Topic of accepted activity events."
    )
    orgunit_topic: str = Field(default=ORGUNIT_CHANGES, description="Topic of org-unit changes.")
    rejected_topic: str = Field(
        default=ACTIVITY_REJECTED,
        description="Topic the records of `accepted_topic` that fail the contract models go to.",
    )
    batch_max_records: int = Field(
        default=5000, ge=1, le=100_000, description="Most records applied in one transaction."
    )
    batch_wait_ms: int = Field(
        default=200, ge=1, le=10_000, description="Longest wait for a batch to fill up."
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        le=300_000,
        description="Consumer-group session timeout: how soon a dead replica's partitions move.",
    )
    heartbeat_interval_ms: int = Field(
        default=3000, ge=100, le=60_000, description="Consumer-group heartbeat interval."
    )
    page_size_max: int = Field(
        default=1000, ge=1, le=100_000, description="Cap on `limit` of paginated answers."
    )
    unknown_unit_retry_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Pause before retrying a batch naming unknown units."
    )
    consume_events: bool = Field(
        default=True,
        description="Apply accepted events (HUIBAO_CONSUME_EVENTS). false runs a query-only"
        " replica: it follows the tree and serves the API from the same database, so that"
        " queries never wait behind the apply loop; scale those apart from the appliers.",
    )
    scheduler_url: str | None = Field(
        default=None,
        description="Scheduler base URL for the dashboard's feedback proxy (HUIBAO_SCHEDULER_URL).",
    )
    db_pool_size: int = Field(default=10, ge=2, le=100, description="PostgreSQL pool size.")
    class_hours_per_hour: Decimal = Field(
        default=Decimal(1),
        ge=0,
        le=100,
        description="Class hours per hour of a training reported in hours, for"
        " training.person_hours (HUIBAO_CLASS_HOURS_PER_HOUR).",
    )
    class_hours_per_half_day: Decimal = Field(
        default=Decimal(4),
        ge=0,
        le=100,
        description="Class hours per half day of a training with duration half_day.",
    )
    class_hours_per_full_day: Decimal = Field(
        default=Decimal(8),
        ge=0,
        le=100,
        description="Class hours per full day of a training with duration full_day.",
    )

    @property
    def class_hours(self) -> ClassHourRules:
        """The class-hour rule these settings describe (applies to trainings applied from
        now on; facts already stored keep the person-hours they were applied with)."""
        return ClassHourRules(
            per_hour=self.class_hours_per_hour,
            per_half_day=self.class_hours_per_half_day,
            per_full_day=self.class_hours_per_full_day,
        )
