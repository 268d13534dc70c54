"""The org-unit registry over HTTP: import (JSON, CSV), read, move, merge, close; changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from tests.service.reporting_support import (
    ReportingService,
    fresh_service,
    value_of,
)
from tests.support.events import cloudevent
from tests.support.tree import build_city

from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def reporting(infra: Infrastructure) -> AsyncIterator[ReportingService]:
    """Reporting in-process for this module."""
    async with fresh_service(infra) as service:
        yield service


CHANGES = "huibao.orgunit.changes"


def changes_for(service: ReportingService, unit: str) -> list[dict[str, object]]:
    return [value_of(r) for r in service.tap.matching(CHANGES, lambda r: r.key == unit.encode())]


async def test_import_publishes_every_change_parents_first(reporting: ReportingService) -> None:
    units = build_city("rgim", counties=2, townships_per_county=2, branches_per_township=2)
    r = await reporting.client.put("/v1/orgunits", json=list(reversed(units)))
    assert r.status_code == 200, r.text
    assert r.json() == {"created": len(units), "updated": 0, "unchanged": 0}
    recs = await reporting.tap.wait_for(CHANGES, lambda r: r.key.startswith(b"rgim"), len(units))
    seen = [value_of(x) for x in recs]
    order = [c["unit"]["id"] for c in seen]
    assert order.index("rgim") < order.index("rgim.c1") < order.index("rgim.c1.t1")
    assert order.index("rgim.c1.t1") < order.index("rgim.c1.t1.b1")
    branch = next(c for c in seen if c["unit"]["id"] == "rgim.c2.t1.b2")
    assert branch["path"] == ["rgim", "rgim.c2", "rgim.c2.t1", "rgim.c2.t1.b2"]
    assert branch["kind"] == "upsert"
    assert branch["effective"] is None
    seqs = [c["seq"] for c in seen]
    assert seqs == sorted(seqs)

    units[-1]["members"] = 99
    r = await reporting.client.put("/v1/orgunits", json=units)
    assert r.json() == {"created": 0, "updated": 1, "unchanged": len(units) - 1}
    await reporting.tap.wait_for(CHANGES, lambda r: r.key == units[-1]["id"].encode(), 2)

    r = await reporting.client.get("/v1/orgunits/rgim.c1.t2")
    assert r.status_code == 200
    body = r.json()
    assert body["path"] == ["rgim", "rgim.c1", "rgim.c1.t2"]
    assert body["children"] == ["rgim.c1.t2.b1", "rgim.c1.t2.b2"]
    assert (await reporting.client.get("/v1/orgunits/rgim.nope")).status_code == 404


async def test_bad_imports_name_the_fields_and_store_nothing(reporting: ReportingService) -> None:
    bad = [
        {"id": "rgbad", "name": "市", "level": "city"},
        {"id": "rgbad.t", "name": "镇", "level": "township", "parent": "rgbad.nowhere"},
        {"id": "rgbad.k", "name": "县", "level": "county", "parent": "rgbad.b"},
        {"id": "rgbad.b", "name": "支部", "level": "branch", "parent": "rgbad"},
        {"id": "rgbad.x", "name": "", "level": "branch", "parent": "rgbad"},
        {"id": "rgbad.y", "name": "y", "level": "village", "parent": "rgbad"},
    ]
    r = await reporting.client.put("/v1/orgunits", json=bad)
    assert r.status_code == 422, r.text
    fields = {(e["field"], e["reason"]) for e in r.json()["errors"]}
    assert ("[4].name", "invalid_field") in fields
    assert ("[5].level", "invalid_field") in fields
    r = await reporting.client.put("/v1/orgunits", json=bad[:4])
    fields = {(e["field"], e["reason"]) for e in r.json()["errors"]}
    assert fields == {("[1].parent", "unknown_unit"), ("[2].level", "wrong_level")}
    assert (await reporting.client.get("/v1/orgunits/rgbad")).status_code == 404
    r = await reporting.client.put(
        "/v1/orgunits", content=b"<units/>", headers={"Content-Type": "application/xml"}
    )
    assert r.status_code == 415


async def test_csv_import(reporting: ReportingService) -> None:
    csv = (
        "id,name,level,parent,members,opened\n"
        "rgcsv,示范市,city,,,\n"
        "rgcsv.b1,第一村党支部,branch,rgcsv.t1,31,2020-01-01\n"
        "rgcsv.t1,城关镇,township,rgcsv.k1,,\n"
        "rgcsv.k1,清源县,county,rgcsv,,\n"
    )
    r = await reporting.client.put(
        "/v1/orgunits", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 4
    body = (await reporting.client.get("/v1/orgunits/rgcsv.b1")).json()
    assert (body["members"], body["opened"]) == (31, "2020-01-01")
    r = await reporting.client.put(
        "/v1/orgunits",
        content=b"id,name,level,colour\nx,y,city,red\n",
        headers={"Content-Type": "text/csv"},
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "header")
    r = await reporting.client.put(
        "/v1/orgunits",
        content=b"id,name,level,parent,members\nrgcsv.b2,b,branch,rgcsv.t1,many\n",
        headers={"Content-Type": "text/csv"},
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "[0].members")
    # a dated rename and member count: the history before it stays
    dated = "id,name,level,parent,members,effective\nrgcsv.b1,新名,branch,rgcsv.t1,35,2026-09-01\n"
    r = await reporting.client.put(
        "/v1/orgunits", content=dated.encode(), headers={"Content-Type": "text/csv"}
    )
    assert r.json() == {"created": 0, "updated": 1, "unchanged": 0}, r.text
    body = (await reporting.client.get("/v1/orgunits/rgcsv.b1")).json()
    assert (body["name"], body["members"]) == ("新名", 35)
    assert body["labels"] == [
        {"valid_from": None, "name": "第一村党支部", "members": 31},
        {"valid_from": "2026-09-01", "name": "新名", "members": 35},
    ]
    r = await reporting.client.put(
        "/v1/orgunits",
        content=dated.replace("2026-09-01", "soon").encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "[0].effective")


async def test_move_merge_close_with_effective_dates(reporting: ReportingService) -> None:
    units = build_city("rgmv", counties=2, townships_per_county=2, branches_per_township=2)
    assert (await reporting.client.put("/v1/orgunits", json=units)).status_code == 200
    c = reporting.client
    r = await c.post(
        "/v1/orgunits/rgmv.c1.t1/move", json={"parent": "rgmv.c2", "effective": "2026-07-01"}
    )
    assert r.status_code == 200, r.text
    [move] = r.json()["changes"]
    assert (move["kind"], move["effective"], move["path"]) == (
        "move",
        "2026-07-01",
        ["rgmv", "rgmv.c2", "rgmv.c1.t1"],
    )
    body = (await c.get("/v1/orgunits/rgmv.c1.t1")).json()
    assert body["parent"] == "rgmv.c2"
    assert body["placements"] == [
        {"valid_from": None, "parent": "rgmv.c1"},
        {"valid_from": "2026-07-01", "parent": "rgmv.c2"},
    ]
    # a plain re-import may not undo a dated move
    r = await c.put("/v1/orgunits", json=units)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"].endswith(".parent")

    r = await c.post(
        "/v1/orgunits/rgmv.c1.t2/merge", json={"into": "rgmv.c2.t1", "effective": "2026-08-01"}
    )
    assert r.status_code == 200, r.text
    kinds = [(x["kind"], x["unit"]["id"]) for x in r.json()["changes"]]
    assert kinds == [("merge", "rgmv.c1.t2"), ("move", "rgmv.c1.t2.b1"), ("move", "rgmv.c1.t2.b2")]
    assert r.json()["changes"][0]["merged_into"] == "rgmv.c2.t1"
    assert r.json()["changes"][1]["path"] == ["rgmv", "rgmv.c2", "rgmv.c2.t1", "rgmv.c1.t2.b1"]

    r = await c.post("/v1/orgunits/rgmv.c1/close", json={"effective": "2026-09-01"})
    assert r.status_code == 200, r.text  # its townships moved or merged away
    r = await c.post("/v1/orgunits/rgmv.c2/close", json={"effective": "2026-09-01"})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "effective")
    r = await c.post(
        "/v1/orgunits/rgmv.c2.t1/move", json={"parent": "rgmv.c2.t1.b1", "effective": "2026-09-01"}
    )
    assert (r.status_code, r.json()["errors"][0]["reason"]) == (422, "wrong_level")
    r = await c.post("/v1/orgunits/rgmv.zz/close", json={"effective": "2026-09-01"})
    assert r.status_code == 404
    await reporting.tap.wait_for(
        CHANGES, lambda r: value_of(r)["kind"] == "close" and r.key == b"rgmv.c1"
    )

    # a merged unit is closed: events dated on or after the merge are refused
    ev = cloudevent(
        "huibao.lesson.delivered.v1",
        "rgmv.c1.t2",
        {
            "activity_id": "rgmv-ls",
            "date": "2026-08-02",
            "speaker_role": "expert",
            "topic": "党课",
            "audience": 3,
        },
    )
    r = await c.post("/v1/events", json=ev)
    assert (r.status_code, r.json()["errors"][0]["reason"]) == (422, "unit_inactive")


async def test_a_township_token_manages_only_its_subtree(reporting: ReportingService) -> None:
    units = build_city("rgsc", counties=1, townships_per_county=2, branches_per_township=1)
    assert (await reporting.client.put("/v1/orgunits", json=units)).status_code == 200
    token = (await reporting.client.post("/v1/tokens", json={"unit": "rgsc.c1.t1"})).json()["token"]
    async with reporting.as_token(token) as client:
        new = {"id": "rgsc.c1.t1.b9", "name": "新支部", "level": "branch", "parent": "rgsc.c1.t1"}
        assert (await client.put("/v1/orgunits", json=[new])).status_code == 200
        other = {**new, "id": "rgsc.c1.t2.b9", "parent": "rgsc.c1.t2"}
        r = await client.put("/v1/orgunits", json=[other])
        assert (r.status_code, r.json()["errors"][0]["reason"]) == (403, "out_of_scope")
        assert (await client.get("/v1/orgunits/rgsc.c1.t2")).status_code == 403
        assert (await client.get("/v1/orgunits/rgsc.c1.t1.b9")).status_code == 200
    r = await reporting.client.post("/v1/tokens", json={"unit": "rgsc.nope"})
    assert r.status_code == 422


async def test_the_intake_sees_registry_changes_at_once(reporting: ReportingService) -> None:
    """The intake keeps unit records between batches; a registry change must reach it."""
    units = build_city("rgcache", counties=1, townships_per_county=2, branches_per_township=1)
    assert (await reporting.client.put("/v1/orgunits", json=units)).status_code == 200
    branch, township = "rgcache.c1.t1.b1", "rgcache.c1.t1"
    token = (await reporting.client.post("/v1/tokens", json={"unit": township})).json()["token"]

    def lesson(n: int, day: str) -> dict[str, object]:
        data = {"activity_id": f"rgcache-{n}", "date": day, "topic": "党课", "audience": 9}
        return cloudevent("huibao.lesson.delivered.v1", branch, data | {"speaker_role": "expert"})

    async with reporting.as_token(token) as client:  # records of the branch and its path kept
        assert (await client.post("/v1/events", json=lesson(1, "2026-08-03"))).status_code == 202
        r = await reporting.client.post(
            f"/v1/orgunits/{branch}/move",
            json={"parent": "rgcache.c1.t2", "effective": "2026-08-10"},
        )
        assert r.status_code == 200, r.text
        r = await client.post("/v1/events", json=lesson(2, "2026-08-12"))
        assert (r.status_code, r.json()["errors"][0]["reason"]) == (403, "out_of_scope")
        assert (await client.post("/v1/events", json=lesson(3, "2026-08-04"))).status_code == 202

    r = await reporting.client.post(
        f"/v1/orgunits/{branch}/close", json={"effective": "2026-08-20"}
    )
    assert r.status_code == 200, r.text
    r = await reporting.client.post("/v1/events", json=lesson(4, "2026-08-21"))
    assert (r.status_code, r.json()["errors"][0]["reason"]) == (422, "unit_inactive")
    assert (
        await reporting.client.post("/v1/events", json=lesson(5, "2026-08-19"))
    ).status_code == 202
