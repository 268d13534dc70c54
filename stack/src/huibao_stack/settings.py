"""The launcher's settings (`huibao` and `EmbeddedStack`), read from the environment once.

`LauncherSettings.read()` is the one place the launcher reads `os.environ`: it keeps the
variables it knows as typed fields, and the whole environment as `environ`, which is what
every child process starts from (`EmbeddedStack.env_for` adds to it explicitly). A value
that does not parse is a `StackError` naming the variable. An empty variable counts as
unset, as the shell's `VAR= huibao up` means.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from huibao_stack.errors import StackError
from huibao_stack.services import DEFAULT_PORTS


class LauncherSettings(BaseSettings):
    """What the launcher reads from its environment."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    data_dir: Path | None = Field(
        default=None,
        validation_alias="HUIBAO_DATA_DIR",
        description="Where `huibao up` keeps its data (HUIBAO_DATA_DIR; default `./.huibao/data`).",
    )
    reporting_port: int | None = Field(
        default=None,
        validation_alias="HUIBAO_REPORTING_PORT",
        description="Reporting's port under `huibao up` (HUIBAO_REPORTING_PORT; 8001).",
        ge=0,
        le=65535,
    )
    rollup_port: int | None = Field(
        default=None,
        validation_alias="HUIBAO_ROLLUP_PORT",
        description="The rollup's port under `huibao up` (HUIBAO_ROLLUP_PORT; 8002).",
        ge=0,
        le=65535,
    )
    scheduler_port: int | None = Field(
        default=None,
        validation_alias="HUIBAO_SCHEDULER_PORT",
        description="The scheduler's port under `huibao up` (HUIBAO_SCHEDULER_PORT; 8003).",
        ge=0,
        le=65535,
    )
    admin_token: str | None = Field(
        default=None,
        validation_alias="HUIBAO_ADMIN_TOKEN",
        repr=False,
        description="The services' admin token (HUIBAO_ADMIN_TOKEN; default the development "
        "token, usable on loopback only); `huibao status` sends it.",
    )
    clock: str | None = Field(
        default=None,
        validation_alias="HUIBAO_CLOCK",
        description="The scheduler's clock, `system` or `manual` (HUIBAO_CLOCK; system).",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        repr=False,
        description="An external PostgreSQL instead of the embedded one (DATABASE_URL); "
        "`huibao token create`, `verify` and `rebuild` use it.",
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="An external Kafka instead of the embedded broker "
        "(KAFKA_BOOTSTRAP_SERVERS); `huibao topics` creates the topics there.",
    )
    restart_limit: int = Field(
        default=5,
        ge=0,
        validation_alias="HUIBAO_STACK_RESTART_LIMIT",
        description="A supervised part that dies this many times within the restart "
        "window stops the stack (HUIBAO_STACK_RESTART_LIMIT; 0 counts as 1).",
    )
    restart_window_seconds: float = Field(
        default=60.0,
        ge=0,
        validation_alias="HUIBAO_STACK_RESTART_WINDOW_SECONDS",
        description="The window of the restart limit, in seconds "
        "(HUIBAO_STACK_RESTART_WINDOW_SECONDS).",
    )
    metrics_port: int | None = Field(
        default=None,
        validation_alias="HUIBAO_STACK_METRICS_PORT",
        description="Where a supervised stack serves its own /metrics "
        "(HUIBAO_STACK_METRICS_PORT; 8004 under `huibao up`, else a free port; 0: a free one).",
        ge=0,
        le=65535,
    )
    log_format: str = Field(
        default="auto",
        validation_alias="HUIBAO_LOG_FORMAT",
        description="The launcher's log lines: json, console, or auto (json unless on a "
        "terminal) (HUIBAO_LOG_FORMAT).",
    )
    reporting_url: str | None = Field(
        default=None,
        validation_alias="HUIBAO_REPORTING_URL",
        description="Reporting's URL for `huibao status` (HUIBAO_REPORTING_URL; else the "
        "running `huibao up`'s, else the default port).",
    )
    rollup_url: str | None = Field(
        default=None,
        validation_alias="HUIBAO_ROLLUP_URL",
        description="The rollup's URL for `huibao status` (HUIBAO_ROLLUP_URL).",
    )
    scheduler_url: str | None = Field(
        default=None,
        validation_alias="HUIBAO_SCHEDULER_URL",
        description="The scheduler's URL for `huibao status` (HUIBAO_SCHEDULER_URL).",
    )
    environ: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        exclude=True,
        description="The whole environment as read: what each child process starts from "
        "(the services read their own settings from it).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what `read` passes: the environment it is given, never another one."""
        return (init_settings,)

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> LauncherSettings:
        """The settings of `environ` (default: this process's environment, read here)."""
        env = dict(os.environ if environ is None else environ)
        known = {
            f.validation_alias
            for f in cls.model_fields.values()
            if isinstance(f.validation_alias, str)
        }
        values: dict[str, Any] = {k: v for k, v in env.items() if k in known and v != ""}
        try:
            return cls(**values, environ=env)
        except ValidationError as e:
            err = e.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else "environment"
            raise StackError(f"{name}={values.get(name)!r}: {err['msg']}") from e

    def fixed_ports(self) -> dict[str, int]:
        """The ports of `huibao up`: 8001-8003 unless HUIBAO_<NAME>_PORT is set."""
        given = {
            "reporting": self.reporting_port,
            "rollup": self.rollup_port,
            "scheduler": self.scheduler_port,
        }
        ports = {}
        for name, default in DEFAULT_PORTS.items():
            port = given.get(name)
            ports[name] = default if port is None else port
        return ports

    def data_directory(self) -> Path:
        """Where `huibao up` keeps its data: HUIBAO_DATA_DIR, else `.huibao/data` here."""
        return (self.data_dir or Path.cwd() / ".huibao" / "data").resolve()

    def service_url(self, name: str) -> str | None:
        """HUIBAO_<NAME>_URL of a service, when set."""
        urls = {
            "reporting": self.reporting_url,
            "rollup": self.rollup_url,
            "scheduler": self.scheduler_url,
        }
        return urls.get(name)
