"""Looking at a running fault stack from outside: progress in PostgreSQL, the rollup's logs,
its `verify` command.

Progress is read from the databases, never from Kafka end offsets (Tansu's ListOffsets
answers the base offset of the last batch + 1, not the end of a partition).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson

from huibao_contracts.topics import ACTIVITY_ACCEPTED


@dataclass(frozen=True)
class Progress:
    """What each stage of the pipeline holds right now."""

    facts: int
    """Facts in the rollup (one per activity)."""
    revisions: int
    """Sum of the revisions the rollup applied."""
    accepted: int
    """Activities reporting accepted."""
    accepted_revisions: int
    """Sum of the revisions reporting accepted."""
    messages: int
    """Messages reporting recorded (accepted ones; duplicates are not recorded twice)."""
    outbox: int
    """Records waiting in reporting's outbox."""
    positions: dict[int, int]
    """Accepted-topic partition → offset of the last record the rollup applied."""

    def caught_up(self, target: tuple[int, int], replays: dict[int, int]) -> bool:
        """The rollup applied the latest revision of every activity sent, and went past the
        last replay on every partition."""
        return (self.facts, self.revisions) == target and all(
            self.positions.get(p, -1) >= offset for p, offset in replays.items()
        )


async def progress(database_url: str) -> Progress:
    """One reading (raises while PostgreSQL is away)."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM rollup.facts) AS facts,
                      (SELECT coalesce(sum(revision), 0) FROM rollup.facts) AS revisions,
                      (SELECT count(*) FROM reporting.activities) AS accepted,
                      (SELECT coalesce(sum(revision), 0) FROM reporting.activities) AS acc_rev,
                      (SELECT count(*) FROM reporting.events_seen) AS messages,
                      (SELECT count(*) FROM reporting.outbox) AS outbox"""
        )
        rows = await conn.fetch(
            'SELECT partition, "offset" FROM rollup.offsets WHERE topic = $1', ACTIVITY_ACCEPTED
        )
    finally:
        await conn.close()
    assert row is not None
    return Progress(
        row["facts"],
        row["revisions"],
        row["accepted"],
        row["acc_rev"],
        row["messages"],
        row["outbox"],
        {r["partition"]: r["offset"] for r in rows},
    )


async def batch_open(database_url: str) -> bool:
    """True while some backend holds a write transaction on the rollup's tables (a batch is
    being applied: facts locked, aggregates or positions being written)."""
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        return bool(
            await conn.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                WHERE pid <> pg_backend_pid() AND backend_xid IS NOT NULL
                  AND query LIKE '%rollup.%'"""
            )
        )
    finally:
        await conn.close()


class Sampler:
    """Reads progress every `interval` seconds in the background; keeps (time, facts)."""

    def __init__(self, database_url: str, interval: float = 0.5) -> None:
        self.database_url = database_url
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.last: Progress | None = None
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fault-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                self.last = await progress(self.database_url)
                self.samples.append((time.monotonic(), self.last.facts))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                self.last_error = f"{type(e).__name__}: {e}"
            await asyncio.sleep(self.interval)

    def best_rate(self, window: float = 10.0) -> float:
        """Highest rate of new facts per second over any `window`-second stretch."""
        best = 0.0
        j = 0
        for i, (t, n) in enumerate(self.samples):
            while j < i and t - self.samples[j][0] > window:
                j += 1
            t0, n0 = self.samples[j]
            if t - t0 >= window / 2:
                best = max(best, (n - n0) / (t - t0))
        return best


@dataclass
class Batches:
    """What the rollup's `batch_applied` log lines add up to, over every replica and restart."""

    batches: int = 0
    records: int = 0
    applied: int = 0
    corrected: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    fenced: int = 0
    lost_data: int = 0

    @property
    def rate(self) -> float:
        """Records per second inside the batch transactions."""
        return self.records / self.seconds if self.seconds else 0.0


def read_batches(log_paths: list[Path]) -> Batches:
    """Sum the rollup logs (JSON lines; anything else is skipped)."""
    out = Batches()
    for path in log_paths:
        if not path.exists():
            continue
        for line in path.read_bytes().splitlines():
            start = line.find(b"{")
            if start < 0:
                continue
            try:
                doc = orjson.loads(line[start:])
            except orjson.JSONDecodeError:
                continue
            event = doc.get("event.action")  # ECS names (huibao_platform/logs.py)
            if event == "batch_applied":
                out.batches += 1
                out.records += doc.get("huibao.records", 0)
                out.applied += doc.get("huibao.applied", 0)
                out.corrected += doc.get("huibao.corrected", 0)
                out.duplicates += doc.get("huibao.duplicate", 0)
                out.seconds += doc.get("event.duration", 0) / 1e9
            elif event == "batch_fenced":
                out.fenced += 1
            elif event == "broker_lost_data":
                out.lost_data += 1
    return out


def verify(database_url: str, timeout: float = 120) -> tuple[int, str]:
    """Run `python -m huibao_rollup verify`; its exit status and output."""
    env = {**os.environ, "DATABASE_URL": database_url, "HUIBAO_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-m", "huibao_rollup", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr
