"""Random registry sequences over the three services, against the model of the dated tree.

Lessons are reported for every branch first; then a random sequence of imports (dated
renames and member counts, dated re-parents, closings, unchanged re-imports), moves,
merges and closes goes through reporting's HTTP API (tests/support/dated_model.py keeps
the model in step with what was accepted). Afterwards every node's `lesson.audience`,
`orgunits.branches` and `members.total` of every month equal the model's, and the
rollup's `verify` finds no difference between the live aggregates and a rebuild.

`HUIBAO_HISTORY_STACK_SEEDS` runs more sequences (default 1).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from tests.support.dated_model import START, Model, initial_tree, run_sequence
from tests.support.events import cloudevent
from tests.support.waits import wait_until

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.orgunits import OrgUnit

pytestmark = [pytest.mark.stack]

SEEDS = int(os.environ.get("HUIBAO_HISTORY_STACK_SEEDS", "1"))
MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]
METRICS = ("lesson.audience", "orgunits.branches", "members.total")


class Http:
    """The `Driver` of a sequence over reporting's HTTP API."""

    def __init__(self, client: httpx.AsyncClient, rep: str) -> None:
        self.client = client
        self.rep = rep

    async def import_(
        self, units: list[OrgUnit], effectives: list[dt.date | None]
    ) -> dict[str, int] | None:
        rows = [
            u.model_dump(mode="json", exclude_none=True)
            | ({"effective": e.isoformat()} if e else {})
            for u, e in zip(units, effectives, strict=True)
        ]
        r = await self.client.put(f"{self.rep}/v1/orgunits", json=rows)
        if r.status_code == 422:
            return None
        assert r.status_code == 200, r.text
        counts: dict[str, int] = r.json()
        return counts

    async def _dated(self, unit: str, action: str, body: dict[str, str]) -> bool:
        r = await self.client.post(f"{self.rep}/v1/orgunits/{unit}/{action}", json=body)
        if r.status_code == 422:
            return False
        assert r.status_code == 200, r.text
        return bool(r.json()["changes"])

    async def move(self, unit: str, parent: str, when: dt.date) -> bool:
        return await self._dated(unit, "move", {"parent": parent, "effective": when.isoformat()})

    async def merge(self, unit: str, into: str, when: dt.date) -> bool:
        return await self._dated(unit, "merge", {"into": into, "effective": when.isoformat()})

    async def close(self, unit: str, when: dt.date) -> bool:
        return await self._dated(unit, "close", {"effective": when.isoformat()})

    async def latest(self, unit: str) -> OrgUnit:
        r = await self.client.get(f"{self.rep}/v1/orgunits/{unit}")
        assert r.status_code == 200, r.text
        body = r.json()
        return OrgUnit.model_validate({k: body[k] for k in OrgUnit.model_fields if k in body})


def expected(model: Model, lessons: list[tuple[str, dt.date, int]]) -> dict[tuple[str, str], Any]:
    """(node, month) → the model's figures."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for month in MONTHS:
        end = (dt.date.fromisoformat(f"{month}-01") + dt.timedelta(days=32)).replace(
            day=1
        ) - dt.timedelta(days=1)
        for node in model.level:
            counted = model.branches_under(node, end)
            out[(node, month)] = {
                "lesson.audience": 0,
                "orgunits.branches": len(counted),
                "members.total": sum(model.label(b, end)[1] for b in counted),
            }
    for unit, day, audience in lessons:
        for node in model.path(unit, day):
            out[(node, day.isoformat()[:7])]["lesson.audience"] += audience
    return out


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_random_sequences_over_the_stack_equal_the_model(stack: Any, seed: int) -> None:
    rng = random.Random(seed)
    p = f"h{uuid.uuid4().hex[:6]}"
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    today = CalendarRules().local_date(dt.datetime.now(dt.UTC))
    units = initial_tree(p)
    model = Model()
    for u in units:
        model.add(u)
    branches = [u.id for u in units if u.level == "branch"]
    last = min(today - dt.timedelta(days=1), dt.date(2026, 12, 31))
    lessons = [
        (b, START + dt.timedelta(days=rng.randint(0, (last - START).days)), rng.randint(1, 50))
        for b in branches
        for _ in range(3)
    ]
    auth = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(headers=auth, timeout=30) as client:
        http = Http(client, rep)
        assert await http.import_(units, [None] * len(units)) is not None

        async def report(batch: list[tuple[str, dt.date, int]], first: int) -> list[int]:
            """Post lessons; the indexes (in `batch`) reporting accepted."""
            events = [
                cloudevent(
                    "huibao.lesson.delivered.v1",
                    unit,
                    {
                        "activity_id": f"{p}-{first + i}",
                        "date": day.isoformat(),
                        "speaker_role": "expert",
                        "topic": "党课",
                        "audience": audience,
                    },
                    id=f"{p}-{first + i}",
                )
                for i, (unit, day, audience) in enumerate(batch)
            ]
            r = await client.post(f"{rep}/v1/events", json=events)
            assert r.status_code in (200, 422), r.text
            statuses = [x["status"] for x in r.json()["results"]]
            assert set(statuses) <= {"accepted", "rejected"}, statuses
            return [i for i, status in enumerate(statuses) if status == "accepted"]

        assert len(await report(lessons, 0)) == len(lessons)
        done = await run_sequence(http, model, rng, units, today, steps=25)
        assert done["move"] + done["reparent"] + done["merge"] + done["close"] > 0, done
        # more lessons on the changed tree: those of closed or merged branches are refused
        later = [
            (b, START + dt.timedelta(days=rng.randint(0, (last - START).days)), rng.randint(1, 50))
            for b in branches
            for _ in range(2)
        ]
        lessons += [later[i] for i in await report(later, len(lessons))]
        want = expected(model, lessons)

        async def got() -> dict[tuple[str, str], Any]:
            out: dict[tuple[str, str], Any] = {}
            for node, month in want:
                r = await client.get(f"{roll}/v1/nodes/{node}/summary", params={"period": month})
                assert r.status_code == 200, r.text
                metrics = r.json()["metrics"]
                out[(node, month)] = {m: metrics.get(m) for m in METRICS}
            return out

        async def equal() -> bool | None:
            return True if await got() == want else None

        try:
            await wait_until(equal, timeout=60)
        except AssertionError:
            have = await got()
            diff = {k: (want[k], have[k]) for k in want if want[k] != have[k]}
            raise AssertionError(f"seed {seed}: (model, rollup) differ at {diff}") from None

    env = {**os.environ, "DATABASE_URL": stack.database_url, "HUIBAO_LOG_FORMAT": "json"}
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "huibao_rollup", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = verified.stdout + verified.stderr
    assert verified.returncode == 0, out[-3000:]
    assert "0 difference(s)" in out, out[-3000:]
