"""Party Day completeness that agrees with itself (docs/architecture.md, "Party Day
completeness"), on the real broker and PostgreSQL: branches opened, closed and moved around
the Party Day, a report recorded before its own date, a quarter still in progress; at every
node the summary, the `/completeness` answer and what the scheduler's dispatch and feedback
read from the rollup say the same.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from tests.service.rollup_support import ADMIN, Client, Harness, accepted, changes
from tests.support.waits import wait_until

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.orgunits import OrgUnitChange
from huibao_contracts.periods import Period
from huibao_platform.clock import ManualClock
from huibao_rollup.adapters import pg_admin
from huibao_rollup.adapters.postgres import Repository
from huibao_rollup.domain.tree import Tree, UnitVersion
from huibao_scheduler.adapters.rollup import RollupClient
from huibao_scheduler.domain.feedback import Member, Round
from huibao_scheduler.service_layer.effect_gatherer import EffectGatherer
from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

PD = "huibao.party_day.held.v1"
SH = dt.timezone(dt.timedelta(hours=8))
FIGURES = ("expected", "held", "on_time", "late", "unexpected")
RULES = CalendarRules()


@pytest_asyncio.fixture(loop_scope="session")
async def harness(infra: Infrastructure, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h = Harness(infra, request.node.name.replace("test_", "")[:40])
    await h.setup()
    try:
        yield h
    finally:
        await h.close()


def report(
    unit: str, date: str, time: str, *, received: str | None = None, attendees: int = 10
) -> tuple[str, bytes]:
    """A Party Day of `unit` held on `date`, recorded at `time` (received then, or later)."""
    data = {"activity_id": f"pd-{unit}-{date[:7]}", "date": date, "members": 20}
    data["attendees"] = attendees
    return accepted(PD, unit, data, time=time, received=received or time, id=f"m-{unit}")


def unit(uid: str, level: str, parent: str | None, **dates: str) -> dict[str, Any]:
    return {
        "id": uid,
        "name": f"单位{uid}",
        "level": level,
        "parent": parent,
        "members": 20,
        **dates,
    }


async def completeness(rollup: Client, node: str, month: str) -> dict[str, Any]:
    r = await rollup.http.get(
        f"/v1/nodes/{node}/completeness",
        params={"cycle": "party_day", "period": month, "limit": 1000},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def assert_agrees_everywhere(rollup: Client, nodes: list[str], month: str) -> None:
    """At every node: summary == completeness figures, expected − held == the missing list."""
    for node in nodes:
        summary = await rollup.metrics(node, month)
        body = await completeness(rollup, node, month)
        assert {f: summary[f"party_day.{f}"] for f in FIGURES} == {f: body[f] for f in FIGURES}, (
            node
        )
        assert body["expected"] - body["held"] == body["missing"], node
        assert body["missing"] == body["missing_units"]["total"], node
        assert body["held"] == body["on_time"] + body["late"], node
        assert body["late"] == body["late_units"]["total"], node
        assert body["unexpected"] == body["unexpected_units"]["total"], node


async def assert_rebuild_matches(harness: Harness) -> None:
    repo = Repository()
    await repo.connect(harness.database_url, 2)
    try:
        assert await pg_admin.differences(repo.pool) == []
    finally:
        await repo.close()


async def test_opened_closed_and_moved_around_the_party_day(harness: Harness) -> None:
    t1, t2 = "cq.c1.t1", "cq.c2.t2"
    tree = [
        unit("cq", "city", None),
        unit("cq.c1", "county", "cq"),
        unit("cq.c2", "county", "cq"),
        unit(t1, "township", "cq.c1"),
        unit(t2, "township", "cq.c2"),
        unit(f"{t1}.b1", "branch", t1),  # reports on time
        unit(f"{t1}.b2", "branch", t1),  # never reports: missing
        unit(f"{t1}.new", "branch", t1, opened="2026-06-28"),  # opened after the 26th
        unit(f"{t1}.mva", "branch", t1),  # reports on the 20th, moves to t2 on the 23rd
        unit(f"{t1}.mvb", "branch", t1),  # moves to t2 on the 23rd, then reports
        unit(f"{t1}.mvc", "branch", t1),  # reports on the 26th, moves to t2 on the 28th
        unit(f"{t2}.b1", "branch", t2),  # never reports: missing
        unit(f"{t2}.gone", "branch", t2, closed="2026-06-20"),  # closed before, silent
        unit(f"{t2}.left", "branch", t2, closed="2026-06-20"),  # reported, then closed
        unit(f"{t2}.early", "branch", t2),  # `time` before its own date, received late
        unit(f"{t2}.shut", "branch", t2),  # reports on the 12th, closed from the 15th later
    ]
    nodes = [u["id"] for u in tree]
    await harness.tree(tree)
    mvb = next(u for u in tree if u["id"] == f"{t1}.mvb")
    await harness.tree([{**mvb, "parent": t2}], first_seq=50, kind="move", effective="2026-06-23")
    await harness.events(
        [
            report(f"{t1}.b1", "2026-06-26", "2026-06-26T20:00:00+08:00"),
            report(f"{t1}.new", "2026-06-28", "2026-06-28T10:00:00+08:00"),
            report(f"{t1}.mva", "2026-06-20", "2026-06-20T10:00:00+08:00"),
            report(f"{t1}.mvb", "2026-06-26", "2026-06-26T18:00:00+08:00"),
            report(f"{t1}.mvc", "2026-06-26", "2026-06-26T19:00:00+08:00"),
            report(f"{t2}.left", "2026-06-10", "2026-06-10T10:00:00+08:00"),
            report(f"{t2}.shut", "2026-06-12", "2026-06-12T10:00:00+08:00"),
            report(
                f"{t2}.early",
                "2026-06-26",
                "2026-06-01T09:00:00+08:00",
                received="2026-07-03T10:00:00+08:00",
            ),
        ]
    )
    clock = ManualClock(dt.datetime(2026, 7, 15, 12, tzinfo=SH))
    async with harness.replica(clock=clock) as rollup:
        # before mva's move and shut's close: held where they are expected on the 26th
        await rollup.wait_for("cq", "2026-06", {"party_day.held": 6, "party_day.unexpected": 2})
        assert (await rollup.metrics(t1, "2026-06"))["party_day.held"] == 3
        await assert_agrees_everywhere(rollup, nodes, "2026-06")
        mva = next(u for u in tree if u["id"] == f"{t1}.mva")
        mvc = next(u for u in tree if u["id"] == f"{t1}.mvc")
        await harness.tree(
            [{**mva, "parent": t2}], first_seq=60, kind="move", effective="2026-06-23"
        )
        await harness.tree(
            [{**mvc, "parent": t2}], first_seq=70, kind="move", effective="2026-06-28"
        )
        shut = next(u for u in tree if u["id"] == f"{t2}.shut")
        await harness.tree(
            [{**shut, "closed": "2026-06-15"}], first_seq=80, kind="close", effective="2026-06-15"
        )
        await rollup.wait_for(t2, "2026-06", {"party_day.unexpected": 2})
        await rollup.wait_for(t2, "2026-06", {"party_day.held": 3})
        await rollup.wait_for(t1, "2026-06", {"party_day.held": 2})

        want = {
            # b1, b2, mvc (there on the 26th); new opened after it
            t1: {"expected": 3, "held": 2, "on_time": 2, "late": 0, "unexpected": 1},
            # b1, mva, mvb, early; gone, left, shut closed before it; early's `time` untrusted
            t2: {"expected": 4, "held": 3, "on_time": 2, "late": 1, "unexpected": 2},
            "cq": {"expected": 7, "held": 5, "on_time": 4, "late": 1, "unexpected": 3},
        }
        for node, figures in want.items():
            body = await completeness(rollup, node, "2026-06")
            assert {f: body[f] for f in FIGURES} == figures, node
        t1_body = await completeness(rollup, t1, "2026-06")
        assert [u["id"] for u in t1_body["missing_units"]["items"]] == [f"{t1}.b2"]
        assert [u["id"] for u in t1_body["unexpected_units"]["items"]] == [f"{t1}.new"]
        t2_body = await completeness(rollup, t2, "2026-06")
        assert [u["id"] for u in t2_body["missing_units"]["items"]] == [f"{t2}.b1"]
        assert [u["id"] for u in t2_body["late_units"]["items"]] == [f"{t2}.early"]
        assert t2_body["late_units"]["items"][0]["reported_at"].startswith("2026-07-03T02:00")
        assert [u["id"] for u in t2_body["unexpected_units"]["items"]] == [
            f"{t2}.left",
            f"{t2}.shut",
        ]
        await assert_agrees_everywhere(rollup, nodes, "2026-06")
        for node in (t1, "cq.c1", "cq"):  # a quarter counts what its months count
            q = await rollup.metrics(node, "2026-Q2")
            m = await rollup.metrics(node, "2026-06")
            assert q["party_day.held"] == m["party_day.held"], node

        await assert_scheduler_reads_the_same(rollup, "2026-06")
    await assert_rebuild_matches(harness)


async def assert_scheduler_reads_the_same(rollup: Client, month: str) -> None:
    """The dispatch and the quarterly feedback, from the scheduler's own rollup client,
    carry the completeness answers' figures for every unit they name."""
    transport = httpx.ASGITransport(app=rollup.app)
    client = RollupClient("http://rollup", ADMIN, transport=transport)
    try:
        rules = CalendarRules()
        dispatch = await EffectGatherer(client, rules)._dispatch(Period.parse(month))
        assert {n.to for n in dispatch.notifications} == {"cq", "cq.c1", "cq.c2"}
        for note in dispatch.notifications:
            body = await completeness(rollup, note.to, month)
            details = note.details
            for f in ("expected", "held", "on_time", "late", "missing"):
                assert details[f] == body[f], (note.to, f)

        quarter = Period.quarter_of(Period.parse(month).first_day)
        issuing = Round(quarter, dt.datetime(2026, 7, 10, tzinfo=SH))
        reports = []
        stack: list[Member | None] = [None]
        while stack:
            parent = stack.pop()
            if parent is None:
                listed = await client.root_figures(await client.roots(), issuing.periods)
            else:
                listed = await client.listing(parent.unit, issuing.periods)
            done = issuing.family(parent, listed)
            reports += done.reports
            stack += done.to_visit
        named = 0
        for r in reports:
            figures = [m for m in r.months if m.period == month]
            if r.unit.startswith("cq") and figures:
                body = await completeness(rollup, r.unit, month)
                got = figures[0]
                assert (got.expected, got.held, got.on_time, got.late, got.missing) == (
                    body["expected"],
                    body["held"],
                    body["on_time"],
                    body["late"],
                    body["missing"],
                ), r.unit
                named += 1
        assert named >= 5  # the city, both counties, both townships (and the branches)
    finally:
        await client.aclose()


async def test_a_quarter_in_progress_counts_only_months_whose_party_day_has_come(
    harness: Harness,
) -> None:
    tree = [
        unit("qq", "city", None),
        unit("qq.b1", "branch", "qq"),
        unit("qq.b2", "branch", "qq"),
    ]
    await harness.tree(tree)
    await harness.events(
        [
            report("qq.b1", "2026-04-26", "2026-04-26T18:00:00+08:00"),
            report("qq.b1", "2026-05-26", "2026-05-26T18:00:00+08:00"),
            report("qq.b2", "2026-06-10", "2026-06-10T18:00:00+08:00"),  # June, early
        ]
    )
    clock = ManualClock(dt.datetime(2026, 6, 20, 12, tzinfo=SH))  # before June's Party Day
    async with harness.replica(clock=clock) as rollup:
        await rollup.wait_for("qq", "2026-06", {"party_day.held": 1})
        q2 = await rollup.metrics("qq", "2026-Q2")
        assert (q2["party_day.expected"], q2["party_day.held"], q2["party_day.on_time"]) == (
            4,
            2,
            2,
        )
        assert q2["party_day.attendees"] == 20  # June's report is not in the quarter yet
        year = await rollup.metrics("qq", "2026")
        assert (year["party_day.expected"], year["party_day.held"]) == (10, 2)  # Jan–May
        # the quarter's figures are its due months' lists added up
        lists = [await completeness(rollup, "qq", m) for m in ("2026-04", "2026-05")]
        assert q2["party_day.expected"] - q2["party_day.held"] == sum(
            b["missing_units"]["total"] for b in lists
        )
        # the month itself is live before its Party Day: who is expected, who reported
        june = await completeness(rollup, "qq", "2026-06")
        assert (june["expected"], june["held"], june["missing"]) == (2, 1, 1)
        await assert_agrees_everywhere(rollup, ["qq", "qq.b1", "qq.b2"], "2026-06")

        clock.set(dt.datetime(2026, 6, 26, 0, 0, tzinfo=SH))  # June's Party Day has come

        async def june_counts() -> bool:
            m = await rollup.metrics("qq", "2026-Q2")
            return (m["party_day.expected"], m["party_day.held"]) == (6, 3)

        await wait_until(june_counts, timeout=10)


RANDOM_SEEDS = [int(s) for s in os.environ.get("HUIBAO_COMPLETENESS_SEEDS", "7").split(",")]
"""Seeds of the randomised test (`HUIBAO_COMPLETENESS_SEEDS=1,2,3` for more)."""
MONTHS = ("2026-05", "2026-06")


def model_tree(changes: list[tuple[str, bytes]]) -> Tree:
    """The dated tree the published changes describe (the model's own copy)."""
    tree = Tree()
    for _, raw in changes:
        tree.apply(UnitVersion.of(OrgUnitChange.model_validate_json(raw)))
    return tree


def model_figures(
    tree: Tree, reports: dict[tuple[str, str], dt.datetime], node: str, month: str
) -> dict[str, int]:
    """What the completeness rules say for `node` and `month`, from the tree and the reports
    sent (unit, month) → recorded instant."""
    period = Period.parse(month)
    day = RULES.party_day_date(period)
    expected = set(tree.snapshot(day).active_branches_under(node))
    held = {u: t for (u, m), t in reports.items() if m == month and u in expected}
    on_time = sum(1 for t in held.values() if t <= RULES.deadline(period))
    unexpected = sum(
        1
        for (u, m) in reports
        if m == month
        and u not in expected
        and node in tree.path_on(u, day)
        and not tree.is_active_branch(u, day)
    )
    return {
        "expected": len(expected),
        "held": len(held),
        "on_time": on_time,
        "late": len(held) - on_time,
        "unexpected": unexpected,
    }


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
async def test_random_moves_and_closes_around_the_party_day_keep_every_node_consistent(
    harness: Harness, seed: int
) -> None:
    """Reports, then dated moves and closes (some before, some after the 26th, some in the
    month before), then more reports, in rounds: after each round every node's summary and
    completeness equal the model of the dated tree, and a rebuild equals the live figures."""
    rng = random.Random(seed)
    towns = [f"rz.c{c}.t{t}" for c in (1, 2) for t in (1, 2)]
    tree = [unit("rz", "city", None)]
    tree += [unit(f"rz.c{c}", "county", "rz") for c in (1, 2)]
    tree += [unit(t, "township", t.rsplit(".", 1)[0]) for t in towns]
    branches = []
    for i in range(14):
        town = rng.choice(towns)
        dates = {"opened": f"2026-06-{rng.randint(20, 28)}"} if i % 7 == 6 else {}
        branches.append(unit(f"{town}.b{i}", "branch", town, **dates))
    tree += branches
    published = changes(tree)
    await harness.produce(harness.orgunit_topic, published)
    reports: dict[tuple[str, str], dt.datetime] = {}
    seq = 1000
    latest = {u["id"]: u for u in tree}

    def some_reports(n: int) -> list[tuple[str, bytes]]:
        out = []
        free = [(b["id"], m) for b in branches for m in MONTHS if (b["id"], m) not in reports]
        for uid, month in rng.sample(free, min(n, len(free))):
            day = f"{month}-{rng.randint(1, 28):02d}"
            late = rng.random() < 0.25
            when = f"{month[:5]}{int(month[5:]) + 1:02d}-02T09:00:00+08:00" if late else None
            time = when or f"{day}T20:00:00+08:00"
            reports[(uid, month)] = dt.datetime.fromisoformat(time)
            out.append(report(uid, day, time))
        return out

    def some_changes(n: int) -> list[tuple[str, bytes]]:
        nonlocal seq
        out = []
        for b in rng.sample(branches, n):
            seq += 1
            when = f"2026-0{rng.choice((5, 6))}-{rng.randint(1, 28):02d}"
            u = latest[b["id"]]
            if rng.random() < 0.7 or "opened" in u:  # (closing needs no `opened` to beat)
                u = {**u, "parent": rng.choice([t for t in towns if t != u["parent"]])}
                kind = "move"
            else:
                u = {**u, "closed": when}
                kind = "close"
            latest[u["id"]] = u
            out += changes([u], first_seq=seq, kind=kind, effective=when)
        return out

    clock = ManualClock(dt.datetime(2026, 7, 15, 12, tzinfo=SH))
    nodes = [u["id"] for u in tree]
    async with harness.replica(clock=clock) as rollup:
        for round_ in range(3):
            await harness.events(some_reports(6))
            if round_:
                moved = some_changes(4)
                published += moved
                await harness.produce(harness.orgunit_topic, moved)
            model = model_tree(published)

            async def agrees(model: Tree = model) -> bool:
                for month in MONTHS:
                    for node in nodes:
                        body = await completeness(rollup, node, month)
                        want = model_figures(model, reports, node, month)
                        assert {f: body[f] for f in FIGURES} == want, (node, month)
                return True

            await wait_until(agrees, timeout=30)
            for month in MONTHS:
                await assert_agrees_everywhere(rollup, nodes, month)
    await assert_rebuild_matches(harness)
