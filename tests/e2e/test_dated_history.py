"""History that a re-import cannot rewrite (issue 13 point 6), over the three services.

A branch reports, is moved with an effective date, is re-imported with its new parent
and a new name and member count from a later date; another branch is merged, after its
reports, into a branch of the other county. Every figure must keep the dated history:
the facts before the move stay under the old county, the merged branch's facts on and
after the merge count under the absorbing branch, `members.total` is the member count in
force at each period's end, a re-import of what is stored publishes nothing, and the
rollup's `verify` finds no difference between the live aggregates and a rebuild.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts.orgunits import OrgUnit

pytestmark = [pytest.mark.stack]

LESSON = "huibao.lesson.delivered.v1"


def lesson(activity: str, unit: str, day: str, audience: int) -> dict[str, Any]:
    data = {
        "activity_id": activity,
        "date": day,
        "speaker_role": "expert",
        "topic": "党课",
        "audience": audience,
    }
    return cloudevent(LESSON, unit, data, id=activity)


async def test_moves_merges_and_reimports_keep_the_dated_history(stack: Any) -> None:
    p = "e2eh"
    units = build_city(
        p, counties=2, townships_per_county=1, branches_per_township=2, members=lambda i: 10 + i
    )
    b1, b2, d1, d2 = f"{p}.c1.t1.b1", f"{p}.c1.t1.b2", f"{p}.c2.t1.b1", f"{p}.c2.t1.b2"
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    auth = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(headers=auth, timeout=30) as client:

        async def figures(node: str, period: str) -> dict[str, Any]:
            r = await client.get(f"{roll}/v1/nodes/{node}/summary", params={"period": period})
            assert r.status_code == 200, r.text
            metrics: dict[str, Any] = r.json()["metrics"]
            return metrics

        async def settle(expected: dict[tuple[str, str, str], Any]) -> None:
            async def check() -> bool | None:
                for (node, period, metric), want in expected.items():
                    if (await figures(node, period)).get(metric) != want:
                        return None
                return True

            try:
                await wait_until(check, timeout=30)
            except AssertionError:
                got = {k: (await figures(k[0], k[1])).get(k[2]) for k in expected}
                raise AssertionError(f"wanted {expected}, got {got}") from None

        r = await client.put(f"{rep}/v1/orgunits", json=units)
        assert r.status_code == 200, r.text
        r = await client.post(
            f"{rep}/v1/events",
            json=[
                lesson(f"{p}-1", b1, "2026-06-10", 5),
                lesson(f"{p}-2", b1, "2026-08-10", 7),
                lesson(f"{p}-3", b2, "2026-08-12", 3),
                lesson(f"{p}-4", b2, "2026-06-15", 2),
            ],
        )
        assert r.status_code == 200, r.text
        await settle({(f"{p}.c1", "2026", "lesson.audience"): 17})

        r = await client.post(
            f"{rep}/v1/orgunits/{b1}/move",
            json={"parent": f"{p}.c2.t1", "effective": "2026-07-01"},
        )
        assert r.status_code == 200, r.text
        moved = [
            {
                **u,
                "parent": f"{p}.c2.t1",
                "name": "新名支部",
                "members": 40,
                "effective": "2026-09-01",
            }
            if u["id"] == b1
            else u
            for u in units
        ]
        r = await client.put(f"{rep}/v1/orgunits", json=moved)
        assert r.json() == {"created": 0, "updated": 1, "unchanged": len(units) - 1}, r.text
        r = await client.post(
            f"{rep}/v1/orgunits/{b2}/merge", json={"into": d2, "effective": "2026-08-01"}
        )
        assert r.status_code == 200, r.text

        # a re-import of the stored state (as GET shows it) publishes nothing
        stored = []
        for u in units:
            body = (await client.get(f"{rep}/v1/orgunits/{u['id']}")).json()
            stored.append({k: body[k] for k in OrgUnit.model_fields if body.get(k) is not None})
        r = await client.put(f"{rep}/v1/orgunits", json=stored)
        assert r.json() == {"created": 0, "updated": 0, "unchanged": len(units)}, r.text

        await settle(
            {
                (f"{p}.c1", "2026-06", "lesson.audience"): 7,
                (f"{p}.c2", "2026-06", "lesson.audience"): 0,
                (f"{p}.c1", "2026-08", "lesson.audience"): 0,
                (f"{p}.c2", "2026-08", "lesson.audience"): 10,
                (d2, "2026-08", "lesson.audience"): 3,
                (d1, "2026-08", "lesson.audience"): 0,
                (f"{p}.c1", "2026-06", "members.total"): 10 + 11,
                (f"{p}.c2", "2026-06", "members.total"): 12 + 13,
                (f"{p}.c1", "2026-07", "members.total"): 11,
                (f"{p}.c2", "2026-07", "members.total"): 12 + 13 + 10,
                (f"{p}.c1", "2026-08", "members.total"): 0,
                (f"{p}.c2", "2026-08", "members.total"): 12 + 13 + 10,
                (f"{p}.c2", "2026-09", "members.total"): 12 + 13 + 40,
                (f"{p}.c2", "2026-Q3", "members.total"): 12 + 13 + 40,
            }
        )

    env = {**os.environ, "DATABASE_URL": stack.database_url, "HUIBAO_LOG_FORMAT": "json"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "huibao_rollup", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "0 difference(s)" in out, out[-3000:]
