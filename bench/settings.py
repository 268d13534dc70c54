"""The benchmarks' settings: read from the environment once, here and nowhere else in bench/.

`make bench` (`python -m bench.run`) takes every `BENCH_*` field; the component benchmarks
take their own command-line arguments and only the external servers from here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PHASES = ("city", "close")
"""The phases of `make bench`, in the order they run."""


class BenchSettings(BaseSettings):
    """What `make bench` runs and how long it waits (environment `BENCH_<FIELD>`)."""

    model_config = SettingsConfigDict(
        env_prefix="BENCH_", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    events: int = Field(
        100_000,
        gt=0,
        description="Events of the city's throughput phase (rounded to whole months, 1-12).",
    )
    branches: int = Field(7_000, gt=0, description="Branches of the city (~28 members each).")
    scale: int = Field(
        50_000,
        gt=0,
        description="Branches of the national sample of the close phase (the target is 1M).",
    )
    fresh_rate: int = Field(
        5_000,
        gt=0,
        description="Events/s of the freshness phase (less when the pipeline sustained less).",
    )
    fresh_seconds: float = Field(20, gt=0, description="Seconds of the freshness phase.")
    query_rate: int = Field(500, gt=0, description="Requests/s of the query-latency phase.")
    query_seconds: float = Field(
        15, gt=0, description="Seconds measured per target of the query-latency phase."
    )
    query_ingest_rate: int = Field(
        1_000,
        ge=0,
        description=(
            "Events/s ingested while queries are measured: the national Party Day's peak hour"
            " is ~600 events/s (docs/scaling.md); the freshness rate (70 % of capacity) would"
            " leave the queries no CPU on two cores."
        ),
    )
    timeout: float = Field(300, gt=0, description="The longest wait of any one phase, seconds.")
    seed: int = Field(7, description="Seed of the generated trees, workloads and query mix.")
    phases: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(PHASES),
        description="Comma list of the phases to run: city, close.",
    )
    database_url: str | None = Field(
        None,
        validation_alias="DATABASE_URL",
        description="An external PostgreSQL for the component benchmarks (else embedded).",
    )
    bootstrap_servers: str | None = Field(
        None,
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="An external Kafka for the component benchmarks (else embedded).",
    )

    @field_validator("phases", mode="before")
    @classmethod
    def _split_phases(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("phases")
    @classmethod
    def _known_phases(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in PHASES]
        if unknown:
            raise ValueError(f"unknown phase(s) {unknown}; known: {', '.join(PHASES)}")
        if not value:
            raise ValueError(f"no phase given; known: {', '.join(PHASES)}")
        return value

    def params(self) -> dict[str, Any]:
        """The parameters of a `make bench` run, as its results record them."""
        return self.model_dump(exclude={"database_url", "bootstrap_servers"})
