"""Who may change the registry: every registry endpoint against a token on the unit itself,
a sibling, the parent, the county above and a unit outside the tree (another city).

The rule (docs/architecture.md, "Who may change the registry"): the token's unit must lie
on the unit's path before and after the change; a change of parent, opening or closing,
a move, a merge or a close needs it strictly above the unit in both places. A token may
read, rename and recount its own unit, never move, close or merge it.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from tests.service.reporting_support import ReportingService, fresh_service
from tests.support.tree import build_city

from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack]

ROLES = ("self", "sibling", "parent", "county", "outside")
_trees = itertools.count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def reporting(infra: Infrastructure) -> AsyncIterator[ReportingService]:
    """Reporting in-process for this module."""
    async with fresh_service(infra) as service:
        yield service


class Tree:
    """A fresh city P (two counties, townships, branches) plus another city Q, and one
    token per role around the branch U = P.c1.t1.b1."""

    def __init__(self, reporting: ReportingService, prefix: str) -> None:
        self.reporting = reporting
        self.p = prefix
        self.u = f"{prefix}.c1.t1.b1"
        self.units = build_city(prefix, counties=2, townships_per_county=2)
        self.tokens: dict[str, str] = {}

    async def setup(self) -> Tree:
        other = build_city(f"{self.p}q", counties=1, townships_per_county=1)
        r = await self.reporting.client.put("/v1/orgunits", json=self.units + other)
        assert r.status_code == 200, r.text
        holders = {
            "self": self.u,
            "sibling": f"{self.p}.c1.t1.b2",
            "parent": f"{self.p}.c1.t1",
            "county": f"{self.p}.c1",
            "outside": f"{self.p}q.c1.t1.b1",
        }
        for role, unit in holders.items():
            r = await self.reporting.client.post("/v1/tokens", json={"unit": unit})
            assert r.status_code in (200, 201), r.text
            self.tokens[role] = r.json()["token"]
        return self

    def row(self, **changes: Any) -> dict[str, Any]:
        row = next(u for u in self.units if u["id"] == self.u)
        return {**row, **changes}

    async def call(self, role: str, method: str, url: str, **kw: Any) -> Any:
        async with self.reporting.as_token(self.tokens[role]) as client:
            return await client.request(method, url, **kw)

    async def stored(self) -> dict[str, Any]:
        r = await self.reporting.client.get(f"/v1/orgunits/{self.u}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def expect(self, allowed: set[str], method: str, url: str, **kw: Any) -> None:
        """Every role outside `allowed` gets 403 out_of_scope and changes nothing (they go
        first: U must stay as it was); then the first allowed role succeeds, and the later
        ones are not refused for scope (the change may be done already: 200 or 422)."""
        before = await self.stored()
        for role in ROLES:
            if role in allowed:
                continue
            r = await self.call(role, method, url, **kw)
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert {e["reason"] for e in r.json()["errors"]} == {"out_of_scope"}, (role, r.text)
            assert await self.stored() == before, role
        done = False
        for role in ROLES:
            if role in allowed:
                r = await self.call(role, method, url, **kw)
                assert r.status_code == 200 or (done and r.status_code == 422), (role, r.text)
                done = True


async def tree(reporting: ReportingService) -> Tree:
    return await Tree(reporting, f"rgsx{next(_trees)}").setup()


def csv_of(row: dict[str, Any]) -> bytes:
    cols = list(row)
    cells = ["" if row[c] is None else str(row[c]) for c in cols]
    return (",".join(cols) + "\n" + ",".join(cells) + "\n").encode()


CSV = {"Content-Type": "text/csv"}


async def test_read(reporting: ReportingService) -> None:
    t = await tree(reporting)
    await t.expect({"self", "parent", "county"}, "GET", f"/v1/orgunits/{t.u}")


async def test_bulk_json_rename_and_recount(reporting: ReportingService) -> None:
    t = await tree(reporting)
    body = [t.row(name="新名支部", members=44)]
    await t.expect({"self", "parent", "county"}, "PUT", "/v1/orgunits", json=body)
    stored = await t.stored()
    assert (stored["name"], stored["members"]) == ("新名支部", 44)


async def test_bulk_json_reparent_since_always_is_refused_to_every_token(
    reporting: ReportingService,
) -> None:
    """The attack of issue 12: a branch moving itself under another county, since always."""
    t = await tree(reporting)
    body = [t.row(parent=f"{t.p}.c2.t1")]
    await t.expect(set(), "PUT", "/v1/orgunits", json=body)
    r = await reporting.client.put("/v1/orgunits", json=body)  # admin: a correction
    assert r.status_code == 200, r.text
    assert (await t.stored())["path"] == [t.p, f"{t.p}.c2", f"{t.p}.c2.t1", t.u]


async def test_bulk_json_dated_reparent_needs_a_token_above_both_places(
    reporting: ReportingService,
) -> None:
    t = await tree(reporting)
    body = [t.row(parent=f"{t.p}.c1.t2", effective="2026-07-01")]
    await t.expect({"county"}, "PUT", "/v1/orgunits", json=body)
    assert (await t.stored())["placements"] == [
        {"valid_from": None, "parent": f"{t.p}.c1.t1"},
        {"valid_from": "2026-07-01", "parent": f"{t.p}.c1.t2"},
    ]


async def test_bulk_csv_retroactive_close_and_rename(reporting: ReportingService) -> None:
    t = await tree(reporting)
    closing = csv_of(t.row(closed="2026-03-01"))
    await t.expect({"parent", "county"}, "PUT", "/v1/orgunits", content=closing, headers=CSV)
    assert (await t.stored())["closed"] == "2026-03-01"
    t = await tree(reporting)
    moving = csv_of(t.row(parent=f"{t.p}.c2.t1"))
    await t.expect(set(), "PUT", "/v1/orgunits", content=moving, headers=CSV)
    renaming = csv_of(t.row(name="改名"))
    await t.expect(
        {"self", "parent", "county"}, "PUT", "/v1/orgunits", content=renaming, headers=CSV
    )
    assert (await t.stored())["name"] == "改名"


async def test_bulk_create_needs_a_token_above_the_new_unit(reporting: ReportingService) -> None:
    t = await tree(reporting)
    new = {"id": f"{t.p}.c1.t1.b9", "name": "新支部", "level": "branch", "parent": f"{t.p}.c1.t1"}
    r = await t.call("self", "PUT", "/v1/orgunits", json=[new])  # a branch has no children
    assert r.status_code in (403, 422), r.text
    for role in ("sibling", "outside"):
        r = await t.call(role, "PUT", "/v1/orgunits", json=[new])
        assert r.status_code in (403, 422), (role, r.text)
    assert (await reporting.client.get(f"/v1/orgunits/{new['id']}")).status_code == 404
    r = await t.call("parent", "PUT", "/v1/orgunits", json=[new])
    assert r.status_code == 200, r.text


async def test_move(reporting: ReportingService) -> None:
    t = await tree(reporting)
    url = f"/v1/orgunits/{t.u}/move"
    within = {"parent": f"{t.p}.c1.t2", "effective": "2026-07-01"}
    await t.expect({"county"}, "POST", url, json=within)
    away = {"parent": f"{t.p}.c2.t1", "effective": "2026-08-01"}
    await t.expect(set(), "POST", url, json=away)


async def test_merge(reporting: ReportingService) -> None:
    t = await tree(reporting)
    body = {"into": f"{t.p}.c1.t1.b2", "effective": "2026-07-01"}
    await t.expect({"parent", "county"}, "POST", f"/v1/orgunits/{t.u}/merge", json=body)
    assert (await t.stored())["closed"] == "2026-07-01"


async def test_merge_into_a_unit_outside_the_token(reporting: ReportingService) -> None:
    t = await tree(reporting)
    body = {"into": f"{t.p}.c1.t2.b1", "effective": "2026-07-01"}  # across townships
    await t.expect({"county"}, "POST", f"/v1/orgunits/{t.u}/merge", json=body)


async def test_close(reporting: ReportingService) -> None:
    t = await tree(reporting)
    await t.expect(
        {"parent", "county"},
        "POST",
        f"/v1/orgunits/{t.u}/close",
        json={"effective": "2026-03-01"},
    )
    # a township token cannot close itself either
    r = await t.call(
        "parent", "POST", f"/v1/orgunits/{t.p}.c1.t1/close", json={"effective": "2026-03-01"}
    )
    assert r.status_code == 403, r.text
