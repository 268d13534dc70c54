"""The long fault run (`make fault`): ≥ 100,000 events through reporting while the rollup is
SIGKILLed four times, PostgreSQL restarts, a second replica joins and leaves and the broker
restarts empty; every checked aggregate must equal the model, and `verify` find no difference.

Deselected unless HUIBAO_FAULT_LONG=1; HUIBAO_FAULT_EVENTS changes the size (default 100,000).
The figures are written to tests/output/fault-long.json, the logs to tests/output/fault-logs-*.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from tests.fault.scenario import LONG_PLAN, OUTPUT, FaultRun

pytestmark = [pytest.mark.stack, pytest.mark.fault_long, pytest.mark.timeout(900)]


async def test_aggregates_stay_exact_through_a_long_faulty_stream() -> None:
    events = int(os.environ.get("HUIBAO_FAULT_EVENTS", "100000"))
    report = await FaultRun(events, LONG_PLAN, sample=(8, 40), keep=True).run()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "fault-long.json").write_text(json.dumps(dataclasses.asdict(report), indent=2))
    print(json.dumps(dataclasses.asdict(report), indent=2))
    assert not report.findings, "\n".join(report.findings)
