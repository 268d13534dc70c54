"""Settings every service shares, read from the environment once at start-up."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from huibao_contracts.calendar import CalendarRules

DEVELOPMENT_ADMIN_TOKEN = "huibao-dev-admin"  # noqa: S105 (public on purpose: refused beyond loopback)
"""The embedded launcher's default admin token; a service reachable beyond loopback refuses it."""


def is_loopback(host: str) -> bool:
    """True when binding `host` listens on the loopback interface only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name, empty (all interfaces), ...
        return False


class CommonSettings(BaseSettings):
    """Connection, HTTP, logging and calendar settings. Service settings subclass this."""

    model_config = SettingsConfigDict(env_prefix="HUIBAO_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="postgresql://huibao@127.0.0.1:5432/huibao",
        validation_alias=AliasChoices("DATABASE_URL", "HUIBAO_DATABASE_URL"),
        description="PostgreSQL URL (DATABASE_URL), with the password of a role that owns the "
        "database; it needs no superuser.",
    )
    database_connect_seconds: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="How long a starting service waits for PostgreSQL to answer before it "
        "exits naming the reason (HUIBAO_DATABASE_CONNECT_SECONDS); refused credentials or "
        "an unknown database end it at once.",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "HUIBAO_KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated Kafka bootstrap servers (KAFKA_BOOTSTRAP_SERVERS).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        default="PLAINTEXT",
        validation_alias="KAFKA_SECURITY_PROTOCOL",
        description="How clients talk to Kafka (KAFKA_SECURITY_PROTOCOL): SASL_* sends the "
        "KAFKA_SASL_* credentials, *SSL encrypts with TLS (Strimzi: SASL_SSL).",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512",
        validation_alias="KAFKA_SASL_MECHANISM",
        description="SASL mechanism (KAFKA_SASL_MECHANISM, any case); used with a SASL_* "
        "protocol only.",
    )
    kafka_sasl_username: str | None = Field(
        default=None,
        validation_alias="KAFKA_SASL_USERNAME",
        description="SASL user name (KAFKA_SASL_USERNAME; Strimzi: the KafkaUser's name).",
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        validation_alias="KAFKA_SASL_PASSWORD",
        description="SASL password (KAFKA_SASL_PASSWORD); a secret, never logged or shown.",
    )
    kafka_ssl_cafile: str | None = Field(
        default=None,
        validation_alias="KAFKA_SSL_CAFILE",
        description="PEM file of the CA that signed the brokers' certificates "
        "(KAFKA_SSL_CAFILE; unset: the system's CAs); used with an *SSL protocol only.",
    )

    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]{0,100}$",
        description="Prefix of every Kafka topic name (HUIBAO_TOPIC_PREFIX), e.g. `staging.`,"
        " to share one Kafka cluster between environments.",
    )
    admin_token: str = Field(
        default="",
        description="Bearer token bound to the root of the tree (HUIBAO_ADMIN_TOKEN). No "
        "default: unset, only tokens minted into the database work, and a service bound "
        "beyond loopback refuses to start without one (or with the development token).",
    )
    http_host: str = Field(
        default="127.0.0.1",
        description="HTTP bind address (HUIBAO_HTTP_HOST); anything but loopback needs a "
        "real HUIBAO_ADMIN_TOKEN.",
    )
    http_port: int = Field(default=8000, ge=0, le=65535, description="HTTP port.")
    gc_threshold: int = Field(
        default=50_000,
        ge=0,
        description="CPython's young-generation GC threshold; the heap present after "
        "start-up is frozen out of collections (0: CPython's defaults).",
    )
    tracing_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "HUIBAO_TRACING_ENDPOINT"),
        pattern=r"^https?://\S+$",
        description="Base URL of an OTLP/HTTP collector (OTEL_EXPORTER_OTLP_ENDPOINT, e.g. "
        "http://otel-collector:4318); traces go to its /v1/traces. Unset: no tracing at all "
        "(no provider installed, no trace headers added).",
    )
    tracing_exporter: Literal["otlp", "none"] = Field(
        default="otlp",
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "HUIBAO_TRACING_EXPORTER"),
        description="Trace exporter (OTEL_TRACES_EXPORTER): `otlp` (over HTTP, when an "
        "endpoint is set) or `none` to turn tracing off with the endpoint still set.",
    )
    tracing_sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded (HUIBAO_TRACING_SAMPLE_RATIO); a request or "
        "record with a `traceparent` follows its sampled flag.",
    )
    lag_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often consumer lag is computed from the broker's end offsets "
        "(HUIBAO_LAG_POLL_SECONDS).",
    )
    ready_stall_seconds: float = Field(
        default=60.0,
        ge=0,
        description="/health/ready answers 503 once a partition this process consumes has "
        "had lag and no progress for this long (HUIBAO_READY_STALL_SECONDS; 0: never).",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="json when not on a terminal in auto mode."
    )
    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone of the calendar.")
    party_day: int = Field(default=26, ge=1, le=28, description="Day of the Party Day.")
    deadline_day: int = Field(default=29, ge=1, le=31, description="Last on-time day.")
    upcoming_reminder_day: int = Field(
        default=24,
        ge=1,
        le=28,
        description="Day of the month (09:00 local) branches are reminded that the Party Day "
        "is coming.",
    )
    overdue_reminder_day: int = Field(
        default=28,
        ge=1,
        le=31,
        description="Day of the month (09:00 local) branches that have not reported yet are "
        "reminded.",
    )
    close_after_days: int = Field(
        default=7,
        ge=0,
        le=60,
        description="Days after month end when the monthly cycle closes.",
    )
    feedback_after_days: int = Field(
        default=10,
        ge=1,
        le=60,
        description="The quarterly feedback is issued on this day after quarter end.",
    )

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _mechanism_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def exposure_problem(self) -> str | None:
        """Why this service must not start as configured, or None: bound beyond loopback,
        it needs an admin token of its own (never none, never the development one)."""
        if is_loopback(self.http_host):
            return None
        if not self.admin_token:
            why = "HUIBAO_ADMIN_TOKEN is not set"
        elif self.admin_token == DEVELOPMENT_ADMIN_TOKEN:
            why = f"HUIBAO_ADMIN_TOKEN is the public development token {DEVELOPMENT_ADMIN_TOKEN!r}"
        else:
            return None
        return (
            f"refusing to start: HUIBAO_HTTP_HOST={self.http_host!r} is reachable beyond "
            f"loopback and {why}. Set HUIBAO_ADMIN_TOKEN to a secret of your own (for "
            "example `openssl rand -hex 32`), or bind HUIBAO_HTTP_HOST=127.0.0.1."
        )

    def topic(self, name: str) -> str:
        """The real name of a contract topic in this deployment (the prefix applied)."""
        return f"{self.topic_prefix}{name}"

    @property
    def calendar(self) -> CalendarRules:
        """The calendar rules these settings describe."""
        return CalendarRules(
            timezone=self.timezone,
            party_day=self.party_day,
            deadline_day=self.deadline_day,
            upcoming_reminder_day=self.upcoming_reminder_day,
            overdue_reminder_day=self.overdue_reminder_day,
            close_after_days=self.close_after_days,
            feedback_after_days=self.feedback_after_days,
        )


class TopicSettings(CommonSettings):
    """How the Huibao topics are created (`huibao topics`, the embedded launcher); the
    Kubernetes manifests carry the same three numbers in deploy/k8s (KafkaTopic)."""

    topic_partitions: dict[str, int] = Field(
        default_factory=dict,
        description="Partitions per topic where they differ from the contract's "
        '(HUIBAO_TOPIC_PARTITIONS, JSON, e.g. `{"huibao.activity.accepted": 12}`); '
        "`huibao.orgunit.changes` keeps one partition so the tree stays in order.",
    )
    topic_replication_factor: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Replicas of every topic created (HUIBAO_TOPIC_REPLICATION_FACTOR); 3 "
        "on a real cluster, 1 for the embedded broker.",
    )
    topic_min_insync_replicas: int = Field(
        default=1,
        ge=1,
        le=32,
        description="`min.insync.replicas` of every topic created "
        "(HUIBAO_TOPIC_MIN_INSYNC_REPLICAS): producers wait for all in-sync replicas, so "
        "with 3 replicas and 2 here one broker may be down without losing writes.",
    )

    @field_validator("topic_partitions")
    @classmethod
    def _known_topics(cls, value: dict[str, int]) -> dict[str, int]:
        from huibao_contracts import topics

        for name, count in value.items():
            if name not in topics.PARTITIONS:
                raise ValueError(f"{name!r} is not a Huibao topic ({', '.join(topics.PARTITIONS)})")
            if not 1 <= count <= 1000:
                raise ValueError(f"{name}: partitions must be between 1 and 1000, not {count}")
            if name == topics.ORGUNIT_CHANGES and count != 1:
                raise ValueError(f"{name} must keep one partition (the tree's order)")
        return value

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> TopicSettings:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"HUIBAO_TOPIC_MIN_INSYNC_REPLICAS ({self.topic_min_insync_replicas}) exceeds "
                f"HUIBAO_TOPIC_REPLICATION_FACTOR ({self.topic_replication_factor}): no write "
                "could ever be acknowledged"
            )
        return self
