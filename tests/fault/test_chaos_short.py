"""The short chaos run of the suite: ~2,400 events over HTTP and Kafka while reporting (in an
intake transaction and in a relay publish), the rollup, the scheduler (in a step),
PostgreSQL, the broker and several of them at once are SIGKILLed and restarted; every
sampled figure equals the model, `verify` finds no difference, every refused record is on
the reject topic and every scheduler step ran once (tests/fault/chaos.py).

HUIBAO_CHAOS_EVENTS and HUIBAO_CHAOS_SEED change the size and the seed.
"""

from __future__ import annotations

import os

import pytest
from tests.fault.chaos import ChaosRun

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]


async def test_every_process_killed_at_random_loses_nothing_and_counts_nothing_twice() -> None:
    events = int(os.environ.get("HUIBAO_CHAOS_EVENTS", "2400"))
    seed = int(os.environ.get("HUIBAO_CHAOS_SEED", "31"))
    report = await ChaosRun(events, rounds=8, seed=seed, stream_seconds=10).run()
    print(report)
    assert report.lost == 0, report
    assert report.counted_twice == 0, report
    assert report.kills.keys() >= {"reporting", "rollup", "scheduler", "postgres", "broker"}
