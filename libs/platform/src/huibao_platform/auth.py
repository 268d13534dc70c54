"""Bearer tokens bound to an org unit and a set of scopes, stored hashed in the `auth` schema.

The admin token (HUIBAO_ADMIN_TOKEN) is bound to the root of the tree, holds every scope and
is never stored. Reporting owns the token table (it creates and revokes tokens); the other
services only read it. Whether a unit lies inside a principal's subtree is answered by each
service's own tree.

Scopes (chosen when a token is made; tokens made before scopes existed hold `report` and
`read`, the column's default):

- `report`: submit activity and change the registry inside the token's subtree;
- `read`: every query (summaries, listings, completeness, series, feedback, CSV);
- `approve`: kept for the approval work (no route needs it yet);
- `admin`: manage tokens inside the token's subtree (cycle and clock operations act on the
  whole tree and need the admin token itself).

Revocation is effective at once on every replica of every service: an `UPDATE` or `DELETE`
of `auth.tokens` fires `pg_notify('huibao_tokens', …)` (a trigger, so a revocation by hand
in SQL counts too), and every `TokenStore` listening on that channel drops its cache. While
the listening connection is down (or not yet up), cached answers live `fallback_ttl` seconds
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from huibao_platform.logs import get_logger

log = get_logger("auth")

SCOPES = ("report", "read", "approve", "admin")
"""Every scope a token may hold, in their canonical order."""

DEFAULT_SCOPES = ("report", "read")
"""The scopes of a token made without naming any (and of every token made before scopes)."""

CHANNEL = "huibao_tokens"
"""The PostgreSQL notification channel a change of `auth.tokens` is announced on."""

DDL = """
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.tokens (
    token_hash text PRIMARY KEY,
    unit       text        NOT NULL,
    label      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
-- scopes came later: tokens made before them keep what every token could do then
ALTER TABLE auth.tokens
    ADD COLUMN IF NOT EXISTS scopes text[] NOT NULL DEFAULT ARRAY['report', 'read'];
CREATE OR REPLACE FUNCTION auth.tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('huibao_tokens', OLD.token_hash);
    ELSE
        PERFORM pg_notify('huibao_tokens', NEW.token_hash);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER tokens_changed AFTER UPDATE OR DELETE ON auth.tokens
    FOR EACH ROW EXECUTE FUNCTION auth.tokens_changed();
"""


class InvalidScopeError(ValueError):
    """A scope that does not exist, or an empty set of scopes."""


def parse_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """`scopes` checked and in canonical order, duplicates dropped (InvalidScopeError)."""
    wanted = {s.strip() for s in scopes if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidScopeError(
            f"unknown scope {', '.join(map(repr, unknown))}; the scopes are {', '.join(SCOPES)}"
        )
    if not wanted:
        raise InvalidScopeError(f"a token needs at least one scope of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: bound to `unit`, or to the whole tree when `unit` is None."""

    unit: str | None
    label: str = ""
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        """True for the root-bound admin token (HUIBAO_ADMIN_TOKEN)."""
        return self.unit is None

    def missing(self, needed: Iterable[str]) -> list[str]:
        """The scopes of `needed` this principal does not hold."""
        return [s for s in needed if s not in self.scopes]

    def ordered_scopes(self) -> list[str]:
        """The principal's scopes in canonical order."""
        return [s for s in SCOPES if s in self.scopes]


ADMIN = Principal(unit=None, label="admin", scopes=frozenset(SCOPES))
"""The principal of the admin token."""


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token for a unit."""
    return "hb_" + secrets.token_urlsafe(24)


LISTENER_NAME = "huibao-token-listener"
"""The `application_name` of the listening connection (as `pg_stat_activity` shows it)."""

HEARTBEAT_SECONDS = 0.5
"""How often the listening connection is asked `SELECT 1`: a dead one is noticed this fast."""

HEALTHY_WITHIN = 0.9
"""The listener counts as up while its last heartbeat answered this recently (seconds)."""


@dataclass(slots=True)
class _Hit:
    expires: float
    """When the entry expires while the listener is up (monotonic)."""
    fallback: float
    """When it expires while the listener is down."""
    principal: Principal | None


class TokenStore:
    """Resolves bearer tokens to principals, with a cache dropped whenever a token changes.

    `start(dsn)` opens the listening connection (kept up in the background, reconnecting);
    without it, or while it is down, a cached answer lives `fallback_ttl` seconds.
    """

    def __init__(
        self, pool: asyncpg.Pool, admin_token: str, ttl: float = 5.0, fallback_ttl: float = 0.5
    ) -> None:
        self._pool = pool
        self._admin = admin_token
        self._ttl = ttl
        self._fallback_ttl = fallback_ttl
        self._cache: dict[str, _Hit] = {}
        self._generation = 0
        self._last_beat = float("-inf")
        self._task: asyncio.Task[None] | None = None

    # --- the revocation listener ---------------------------------------------------------

    def start(self, dsn: str) -> None:
        """Listen for token changes on `CHANNEL` in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(dsn), name="token-changes")

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._last_beat = float("-inf")

    @property
    def listening(self) -> bool:
        """True while the listening connection answered its last heartbeat in time."""
        return time.monotonic() - self._last_beat < HEALTHY_WITHIN

    def _drop(self, *_: object) -> None:
        self._generation += 1
        self._cache.clear()

    async def _listen(self, dsn: str) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    dsn, timeout=5, server_settings={"application_name": LISTENER_NAME}
                )
                await conn.add_listener(CHANNEL, self._drop)
                self._drop()  # whatever changed while nobody listened
                while True:
                    await conn.fetchval("SELECT 1", timeout=HEARTBEAT_SECONDS)
                    self._last_beat = time.monotonic()
                    await asyncio.sleep(HEARTBEAT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 (the connection broke or never came: retry)
                log.warning("token_listener_down", error=repr(e))
            finally:
                self._last_beat = float("-inf")
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 1.0)
            await asyncio.sleep(1.0)

    # --- lookups -----------------------------------------------------------------------------

    async def resolve(self, token: str) -> Principal | None:
        """The principal of `token`, or None when it is unknown or revoked."""
        if self._admin and hmac.compare_digest(token.encode(), self._admin.encode()):
            return ADMIN
        digest = hash_token(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now < (hit.expires if self.listening else hit.fallback):
            return hit.principal
        generation = self._generation
        row = await self._pool.fetchrow(
            "SELECT unit, label, scopes FROM auth.tokens"
            " WHERE token_hash = $1 AND revoked_at IS NULL",
            digest,
        )
        principal = (
            Principal(unit=row["unit"], label=row["label"], scopes=frozenset(row["scopes"]))
            if row
            else None
        )
        if generation == self._generation:  # no change was announced while we asked
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = _Hit(now + self._ttl, now + self._fallback_ttl, principal)
        return principal

    async def holder(self, token_hash: str) -> Principal | None:
        """The principal of an active token, by its hash (None when none is active)."""
        row = await self._pool.fetchrow(
            "SELECT unit, label, scopes FROM auth.tokens"
            " WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash,
        )
        if row is None:
            return None
        return Principal(unit=row["unit"], label=row["label"], scopes=frozenset(row["scopes"]))

    async def create(
        self, unit: str, label: str = "", scopes: Iterable[str] = DEFAULT_SCOPES
    ) -> str:
        """Create a token for `unit` holding `scopes`; the clear text is returned once and
        never stored. InvalidScopeError for an unknown scope or none."""
        token = new_token()
        await self._pool.execute(
            "INSERT INTO auth.tokens (token_hash, unit, label, scopes) VALUES ($1, $2, $3, $4)",
            hash_token(token),
            unit,
            label,
            list(parse_scopes(scopes)),
        )
        return token

    async def revoke(self, token_hash: str) -> bool:
        """Revoke a token by its hash; True when one was revoked."""
        result: str = await self._pool.execute(
            "UPDATE auth.tokens SET revoked_at = now()"
            " WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash,
        )
        self._drop()
        return result.endswith("1")
