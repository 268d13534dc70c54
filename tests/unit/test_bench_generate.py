"""The benchmark generator: its expected totals are what the pipeline's semantics make of
its own event stream (duplicates, corrections, retractions, late reports), and it is pure."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from bench.generate import (
    CHECKED_METRICS,
    PD,
    city_tree,
    load_event,
    load_totals,
    month_workload,
    national_sample,
    replay,
)

MONTHS = ["2026-06", "2026-07"]


def small_workload(seed: int = 3):  # type: ignore[no-untyped-def]
    tree = city_tree(300, root="tc", seed=seed)
    # high rates so every kind of awkward message occurs many times
    work = month_workload(
        tree, MONTHS, seed=seed, duplicate=0.2, correction=0.2, retraction=0.1, late=0.2
    )
    return tree, work


def test_expected_totals_equal_an_independent_replay_of_the_stream() -> None:
    tree, work = small_workload()
    assert {"duplicate", "correction", "retraction"} <= set(work.counts)
    replayed = replay(tree, work.events)
    for node in [tree.root, *tree.of_level("county"), *tree.of_level("township")]:
        for month in MONTHS:
            assert replayed.of(node, month) == work.expected.of(node, month), (node, month)


def test_duplicates_and_corrections_count_once_and_retractions_not_at_all() -> None:
    tree, work = small_workload(5)
    pd = [e for e in work.events if e["type"] == PD]
    activities = {e["data"]["activity_id"] for e in pd}
    retracted = {e["data"]["activity_id"] for e in pd if e["data"].get("retracted")}
    held = sum(work.expected.of(tree.root, m)["party_day.held"] for m in MONTHS)
    assert held == len(activities) - len(retracted)
    assert len(pd) > len(activities)  # duplicates and revisions were sent
    # the latest revision's attendees are what counts
    latest: dict[str, dict[str, Any]] = {}
    for e in pd:
        d = e["data"]
        if d["activity_id"] not in latest or d["revision"] > latest[d["activity_id"]]["revision"]:
            latest[d["activity_id"]] = d
    attendees = sum(int(d["attendees"]) for d in latest.values() if not d.get("retracted"))
    assert attendees == sum(work.expected.of(tree.root, m)["party_day.attendees"] for m in MONTHS)


def test_late_reports_are_late_and_the_burst_is_on_the_26th() -> None:
    tree, work = small_workload(7)
    totals = Counter[str]()
    for m in MONTHS:
        totals.update(work.expected.of(tree.root, m))
    assert totals["party_day.late"] > 0
    assert totals["party_day.on_time"] + totals["party_day.late"] == totals["party_day.held"]
    on_26th = [
        e for e in work.events if e["type"] == PD and dt.datetime.fromisoformat(e["time"]).day == 26
    ]
    assert len(on_26th) > 0.5 * sum(1 for e in work.events if e["type"] == PD)
    seen: set[str] = set()
    times = []
    for e in work.events:  # a duplicate is the same message sent again later: skip repeats
        if e["id"] not in seen:
            seen.add(e["id"])
            times.append(dt.datetime.fromisoformat(e["time"]))
    assert times == sorted(times)  # first sends go out in the order they were recorded


def test_generation_is_pure_and_trees_are_skewed_and_scaled() -> None:
    a, b = city_tree(7_000), city_tree(7_000)
    assert a.units == b.units
    assert len(a.branches) == 7_000
    assert 180_000 < a.total_members < 220_000
    sizes = sorted(a.members.values())
    assert sizes[-1] > 4 * sizes[len(sizes) // 2]  # a long tail of large branches
    assert month_workload(a, ["2026-05"]).events == month_workload(b, ["2026-05"]).events
    nation = national_sample(20_000)
    assert len(nation.branches) == 20_000
    assert nation.scale["factor"] == 250
    assert nation.scale["counties_sampled"] >= 5
    assert all(len(u["id"]) <= 64 for u in nation.units)


def test_load_totals_add_up_the_load_events() -> None:
    tree = city_tree(200, root="tl")
    day = dt.date(2026, 11, 2)
    events = [load_event(tree, n, day, exclude=tree.branches[0]) for n in range(500)]
    assert all(e["subject"] != tree.branches[0] for e in events)
    replayed = replay(tree, events).of(tree.root, "2026-11")
    want = load_totals(500)
    assert {m: replayed[m] for m in want} == want
    assert set(CHECKED_METRICS) >= set(want)
