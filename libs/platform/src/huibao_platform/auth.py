"""Bearer tokens bound to an org unit, stored hashed in the `auth` schema.

The admin token (HUIBAO_ADMIN_TOKEN) is bound to the root of the tree and is never stored.
Reporting owns the token table (it creates and revokes tokens); the other services only read
it. Whether a unit lies inside a principal's subtree is answered by each service's own tree.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import asyncpg

DDL = """
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.tokens (
    token_hash text PRIMARY KEY,
    unit       text        NOT NULL,
    label      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
"""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: bound to `unit`, or to the whole tree when `unit` is None."""

    unit: str | None
    label: str = ""

    @property
    def is_admin(self) -> bool:
        """True for the root-bound admin token."""
        return self.unit is None


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256 hex digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token for a unit."""
    return "hb_" + secrets.token_urlsafe(24)


class TokenStore:
    """Resolves bearer tokens to principals, with a short cache so lookups stay cheap."""

    def __init__(self, pool: asyncpg.Pool, admin_token: str, ttl: float = 5.0) -> None:
        self._pool = pool
        self._admin = admin_token
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def resolve(self, token: str) -> Principal | None:
        """The principal of `token`, or None when it is unknown or revoked."""
        if self._admin and hmac.compare_digest(token.encode(), self._admin.encode()):
            return Principal(unit=None, label="admin")
        digest = hash_token(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit and hit[0] > now:
            return hit[1]
        row = await self._pool.fetchrow(
            "SELECT unit, label FROM auth.tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            digest,
        )
        principal = Principal(unit=row["unit"], label=row["label"]) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl, principal)
        return principal

    async def create(self, unit: str, label: str = "") -> str:
        """Create a token for `unit`; the clear text is returned once and never stored."""
        token = new_token()
        await self._pool.execute(
            "INSERT INTO auth.tokens (token_hash, unit, label) VALUES ($1, $2, $3)",
            hash_token(token),
            unit,
            label,
        )
        return token

    async def revoke(self, token_hash: str) -> bool:
        """Revoke a token by its hash; True when one was revoked."""
        result: str = await self._pool.execute(
            "UPDATE auth.tokens SET revoked_at = now()"
            " WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash,
        )
        self._cache.clear()
        return result.endswith("1")
