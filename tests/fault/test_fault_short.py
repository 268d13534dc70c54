"""The short fault run of the suite: ~6,000 events through reporting while the rollup is
SIGKILLed once, PostgreSQL and the broker restart once each and a second replica joins and
leaves; every checked aggregate must equal the model, and `verify` find no difference.

HUIBAO_FAULT_EVENTS changes the number of events (default 6,000).
"""

from __future__ import annotations

import os

import pytest
from tests.fault.scenario import SHORT_PLAN, FaultRun

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]


async def test_aggregates_stay_exact_through_a_crash_restarts_and_a_rebalance() -> None:
    events = int(os.environ.get("HUIBAO_FAULT_EVENTS", "6000"))
    # smaller batches than the default 5,000, so that the kill can land inside one
    small = {"HUIBAO_BATCH_MAX_RECORDS": "500"}
    report = await FaultRun(events, SHORT_PLAN, sample=(4, 12), rollup_env=small).run()
    print(report)
    assert not report.findings, "\n".join(report.findings)
