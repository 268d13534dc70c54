"""What the consumers need from storage, as protocols the PostgreSQL adapter satisfies."""

from __future__ import annotations

from typing import Protocol


class PositionStore(Protocol):
    """Reads the last record applied per partition."""

    async def read_positions(self, topic: str) -> dict[int, tuple[int, str]]:
        """Partition → (offset, message key) of the last record applied."""
        ...
