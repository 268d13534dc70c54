"""The long chaos run (`make fault`): 20,000 events (HUIBAO_CHAOS_EVENTS) over HTTP and Kafka
through 21 rounds of SIGKILLs over every process (tests/fault/chaos.py) on a tree of 2,000
branches; the figures go to tests/output/chaos-long.json (and docs/faults.md).

Deselected unless HUIBAO_FAULT_LONG=1; HUIBAO_CHAOS_SEED changes the seed.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from tests.fault.chaos import ChaosRun
from tests.fault.scenario import OUTPUT

pytestmark = [pytest.mark.stack, pytest.mark.fault_long, pytest.mark.timeout(1200)]


async def test_every_process_killed_for_many_rounds_loses_nothing() -> None:
    events = int(os.environ.get("HUIBAO_CHAOS_EVENTS", "20000"))
    seed = int(os.environ.get("HUIBAO_CHAOS_SEED", "47"))
    run = ChaosRun(events, rounds=21, seed=seed, tree=(4, 10, 50), stream_seconds=90, keep=True)
    report = await run.run()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "chaos-long.json").write_text(json.dumps(dataclasses.asdict(report), indent=2))
    print(json.dumps(dataclasses.asdict(report), indent=2))
    assert report.lost == 0, report
    assert report.counted_twice == 0, report
    assert report.kills.keys() >= {"reporting", "rollup", "scheduler", "postgres", "broker"}
