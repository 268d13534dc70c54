"""What the use cases need from the outside, as protocols; `adapters/` holds the real ones.

The use cases (`intake`, `registry`, `tokens`) import these and never a concrete adapter;
`bootstrap` hands them the PostgreSQL stores (`adapters/intake_repo.py`,
`adapters/registry_repo.py`), the registry cache, the token store and a clock. Every
store translates its driver's errors at its edge: a connection or server failure is
`StorageUnavailableError`, a value PostgreSQL refuses is `UnstorableValueError`
(huibao_platform.errors). The value that crosses the intake port (an accepted event) is
defined here too; an outbox record is opaque to the use cases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from huibao_contracts.orgunits import OrgUnitChange
from huibao_platform.auth import Principal
from huibao_platform.outbox import OutboxRecord
from huibao_reporting.domain.decisions import IntakeState
from huibao_reporting.domain.events import ParsedEvent
from huibao_reporting.domain.registry import RegistryView
from huibao_reporting.domain.registry_changes import Change


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """An accepted event with the instant it was stored and what is published for it."""

    event: ParsedEvent
    received: dt.datetime
    data: dict[str, Any]
    """The payload as JSON (what is stored and published)."""


class Clock(Protocol):
    """Reporting's now (the system clock, or a manual one in tests)."""

    def now(self) -> dt.datetime: ...


class IntakeBatch(Protocol):
    """One open intake transaction: what a batch reads and writes inside it."""

    async def lock(self, events: Sequence[ParsedEvent]) -> None:
        """Serialise writers touching the same units, activities or messages."""
        ...

    async def load_state(self, events: Sequence[ParsedEvent]) -> IntakeState:
        """Seen messages, stored activities and Party Day slots for the batch."""
        ...

    async def store(
        self, accepted: Sequence[AcceptedEvent], channel: str, records: Sequence[OutboxRecord]
    ) -> None:
        """Write the accepted events and the outbox records."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested transaction: rolled back alone when its block raises."""
        ...


class IntakeStore(Protocol):
    """Where accepted events, their activities and the outbox are stored."""

    def batch(self, *, commit: bool) -> AbstractAsyncContextManager[IntakeBatch]:
        """A transaction, committed when the block ends cleanly and `commit` is true,
        rolled back otherwise."""
        ...


class UnitRecords(Protocol):
    """The registry's unit records as the intake checks them (cached by the adapter)."""

    async def view(self, ids: Iterable[str], *, ancestors: bool) -> RegistryView:
        """The records of `ids` and, with `ancestors`, of every ancestor they ever had."""
        ...


class RegistryWrite(Protocol):
    """One registry write transaction, holding the registry's writer lock."""

    async def load_view(
        self, ids: Iterable[str], *, children_of: Iterable[str] = ()
    ) -> RegistryView:
        """The stored units `ids` (plus the children of `children_of`) with their ancestors."""
        ...

    async def store_changes(self, changes: Sequence[Change]) -> list[OrgUnitChange]:
        """Store `changes` and enqueue them on `huibao.orgunit.changes`, in order."""
        ...


class RegistryStore(Protocol):
    """The org-unit registry's storage."""

    def writing(self) -> AbstractAsyncContextManager[RegistryWrite]:
        """A transaction serialised against every other registry writer, committed when
        the block ends cleanly."""
        ...

    async def load_view(self, ids: Iterable[str]) -> RegistryView:
        """The stored units `ids` with every ancestor they ever had."""
        ...

    async def children_on(self, unit_id: str, day: dt.date) -> list[str]:
        """Ids of the units placed under `unit_id` on `day`."""
        ...


class Tokens(Protocol):
    """The bearer tokens: make, look up and revoke (huibao_platform.auth.TokenStore)."""

    async def create(self, unit: str, label: str, scopes: Iterable[str]) -> str:
        """A new token's clear text (shown once)."""
        ...

    async def holder(self, token_hash: str) -> Principal | None:
        """The principal of an active token, by its hash."""
        ...

    async def revoke(self, token_hash: str) -> bool:
        """Revoke a token by its hash; True when one was revoked."""
        ...
