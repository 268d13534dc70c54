"""The end of a fault run: the rollup API against the model, `verify`, and the figures."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from tests.fault import probe
from tests.fault.model import YEAR, Expected, Stream

PERIODS = (
    [f"{YEAR}-{m:02d}" for m in range(1, 13)] + [f"{YEAR}-Q{q}" for q in range(1, 5)] + [str(YEAR)]
)
"""Every month, quarter and the year of the stream."""


def paths_of(units: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Unit → its path from the root, from a tree listed as `PUT /v1/orgunits` takes it."""
    parent = {u["id"]: u.get("parent") for u in units}
    out = {}
    for unit in parent:
        path = [unit]
        while (p := parent[path[0]]) is not None:
            path.insert(0, p)
        out[unit] = tuple(path)
    return out


def sample_nodes(units: list[dict[str, Any]], townships: int, branches: int) -> list[str]:
    """The city, every county, and a seeded sample of townships and branches."""
    by_level: dict[str, list[str]] = {}
    for u in units:
        by_level.setdefault(u["level"], []).append(u["id"])
    rng = random.Random(11)
    return (
        by_level["city"]
        + by_level["county"]
        + rng.sample(by_level["township"], townships)
        + rng.sample(by_level["branch"], branches)
    )


async def check_summaries(
    client: httpx.AsyncClient,
    rollup_url: str,
    units: list[dict[str, Any]],
    stream: Stream,
    nodes: list[str],
) -> int:
    """Every sampled node's summary for every period equals the model; how many were read."""
    paths = paths_of(units)
    expected = Expected(paths, stream)
    branches = dict.fromkeys(nodes, 0)
    for u in units:
        if u["level"] == "branch":
            for n in paths[u["id"]]:
                if n in branches:
                    branches[n] += 1
    wrong: list[str] = []
    for node in nodes:
        for period in PERIODS:
            r = await client.get(f"{rollup_url}/v1/nodes/{node}/summary", params={"period": period})
            assert r.status_code == 200, f"summary {node} {period}: {r.status_code} {r.text[:300]}"
            wrong += compare(node, period, r.json()["metrics"], expected, branches[node])
    checked = len(nodes) * len(PERIODS)
    assert not wrong, f"{len(wrong)} values differ in {checked} summaries:\n" + "\n".join(
        wrong[:30]
    )
    return checked


def compare(
    node: str, period: str, got: dict[str, Any], expected: Expected, branches: int
) -> list[str]:
    """The differences between one summary and the model, one line each."""
    want: dict[str, Any] = dict(expected.of(node, period))
    months = 12 if period == str(YEAR) else 3 if "Q" in period else 1
    want["party_day.expected"] = branches * months
    diffs = [
        f"{node} {period} {m}: got {got.get(m)}, want {v}"
        for m, v in want.items()
        if got.get(m) != v
    ]
    rate, want_rate = got.get("party_day.attendance_rate"), expected.attendance_rate(node, period)
    if (rate is None) != (want_rate is None) or (
        rate is not None and want_rate is not None and abs(rate - want_rate) > 1e-6
    ):
        diffs.append(f"{node} {period} party_day.attendance_rate: got {rate}, want {want_rate}")
    return diffs


async def check_verify(database_url: str) -> str:
    """`python -m huibao_rollup verify` finds no difference; its last line."""
    status, out = await asyncio.to_thread(probe.verify, database_url)
    assert status == 0, f"verify exited {status}:\n{out[-3000:]}"
    assert "0 difference(s)" in out, f"verify found differences:\n{out[-3000:]}"
    return out.strip().splitlines()[-1]


def figures(stream: Stream, batches: probe.Batches, sampler: probe.Sampler) -> dict[str, Any]:
    """What was sent and what the rollup's logs say it did with it."""
    counts = stream.counts
    return {
        "sent": counts.total,
        "new_activities": counts.new,
        "duplicates_sent": counts.duplicates,
        "corrections_sent": counts.corrections,
        "retractions_sent": counts.retractions,
        "rollup_batches": batches.batches,
        "rollup_records": batches.records,
        "rollup_applied": batches.applied,
        "rollup_corrected": batches.corrected,
        "rollup_duplicates_skipped": batches.duplicates,
        "rollup_fenced_batches": batches.fenced,
        "rollup_broker_lost_data": batches.lost_data,
        "rollup_in_batch_rate_per_s": round(batches.rate),
        "rollup_best_10s_facts_per_s": round(sampler.best_rate()),
    }
