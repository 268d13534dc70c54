"""The scheduler's feedback CSV, served by its real API, never carries a formula: a unit
named `=HYPERLINK("http://x")` comes out as text, negative changes as numbers.

(The rollup's CSV answers are checked on the running stack in `test_token_scopes.py`.)
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.service.scheduler_support import RollupStub, serve_stub, serving, settings_for
from tests.support.tree import build_city

from huibao_platform.clock import ManualClock

pytestmark = [pytest.mark.stack]
SH = ZoneInfo("Asia/Shanghai")
EVIL = '=HYPERLINK("http://x")'


async def test_the_feedback_csv_neutralises_formula_names(infra: Any) -> None:
    units = build_city("sx", counties=1, townships_per_county=1, branches_per_township=2)
    names = {"sx.c1.t1": EVIL, "sx.c1.t1.b1": "@SUM(1)", "sx.c1.t1.b2": "-1+2"}
    for u in units:
        u["name"] = names.get(u["id"], u["name"])
    stub = RollupStub(units)
    stub.reports[("sx.c1.t1.b1", "2030-07")] = "on_time"  # one Party Day in Q3, two in Q2
    stub.reports[("sx.c1.t1.b1", "2030-05")] = "on_time"
    stub.reports[("sx.c1.t1.b2", "2030-05")] = "on_time"
    url = await infra.fresh_database("sched_csv_formulas")
    async with serve_stub(stub) as rollup_url:
        settings = settings_for(infra, url, rollup_url)
        async with serving(settings, ManualClock(dt.datetime(2030, 7, 1, tzinfo=SH))) as client:
            r = await client.put("/v1/clock", json={"now": "2030-10-10T00:00:00+08:00"})
            assert r.status_code == 200, r.text
            r = await client.get(
                "/v1/feedback/sx.c1.t1", params={"quarter": "2030-Q3", "format": "csv"}
            )
            assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.text)))
    header, body = rows[0], rows[1:]
    by = {name: i for i, name in enumerate(header)}
    own = {row[by["name"]] for row in body if row[by["section"]] in ("metrics", "month")}
    assert own == {"'" + EVIL}, own
    children = {row[by["name"]] for row in body if row[by["section"]] == "child"}
    assert children == {"'@SUM(1)", "'-1+2"}, children
    changes = [row[by["change"]] for row in body if row[by["section"]] == "metrics"]
    assert any(c.startswith("-") for c in changes), changes  # fewer Party Days than in Q2
    for row in body:
        for cell in row:
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(cell)  # only numbers may start so
