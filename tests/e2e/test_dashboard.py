"""End to end: the dashboard in headless Chromium against the real stack.

A city is loaded through reporting, Party Days arrive as CloudEvents, a county token is
created, and once the rollup shows the numbers a browser at `{rollup}/ui/` signs in, drills
down county → township → branch, reads numbers this test computed, exports CSV, opens the
quarterly feedback, switches to English and checks that the county token cannot see the
other county. Screenshots go to `tests/output/screenshots/`.

The test runs on a stack of its own (`dashboard_stack`), not the session's: the scheduler's
manual clock only moves forward and other tests move the shared one, so only a clock of its
own is sure to stand before the 2026-Q2 feedback date when this test's city is loaded. The
feedback numbers are therefore checked on every run, whatever ran before.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright for Python; no browser is
downloaded. Without it the test fails under CI (CI=true) and is skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import async_playwright, expect
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"
PD = "huibao.party_day.held.v1"
ON_TIME = "T18:00:00+08:00"
CLOCK_START = "2026-06-01T00:00:00+08:00"
"""Where this module's own scheduler clock starts: before the 2026-Q2 feedback date."""
FEEDBACK_Q2_ISSUED = dt.datetime.fromisoformat("2026-07-10T01:00:00+08:00")
"""Just after the scheduler issues the 2026-Q2 feedback (10 days after the quarter)."""


def chromium_or_skip() -> None:
    """Fail under CI, skip elsewhere, when Debian's Chromium is not installed."""
    if not os.path.exists(CHROMIUM):
        message = (
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) "
            "for the dashboard's browser tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    chromium_or_skip()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dashboard_stack() -> AsyncIterator[EmbeddedStack]:
    """A throwaway stack (its own PostgreSQL, broker and manual clock) for this module."""
    stack = EmbeddedStack(clock="manual", clock_start=CLOCK_START, parallel_start=True)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()


def party_day(activity: str, day: str, members: int, attendees: int) -> dict[str, Any]:
    return {
        "activity_id": activity,
        "revision": 1,
        "date": day,
        "members": members,
        "attendees": attendees,
        "theme": "学习党章",
    }


async def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def settled(page: Any, node: str, month: str) -> None:
    """Wait until every section of `node`'s page for `month` has loaded."""
    await page.wait_for_function(
        "want => document.body.dataset.loaded === want", arg=f"{node}|{month}", timeout=30_000
    )


async def download_csv(page: Any, button: str) -> list[list[str]]:
    """Click a CSV button, capture the download and parse it."""
    async with page.expect_download() as info:
        await page.click(f"[data-testid='{button}']")
    download = await info.value
    path = await download.path()
    raw = await asyncio.to_thread(Path(path).read_bytes)
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM, so spreadsheets read it as UTF-8
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


async def row_cells(page: Any, testid: str) -> list[str]:
    return [c.strip() for c in await page.locator(f"[data-testid='{testid}'] td").all_inner_texts()]


async def load_city(stack: Any, p: str) -> dict[str, Any]:
    """The tree, the events, a token for county 1; returns what the test computed."""
    units = build_city(
        p, counties=2, townships_per_county=2, branches_per_township=3, members=lambda i: 20 + i
    )
    members = {u["id"]: u["members"] for u in units if u["level"] == "branch"}
    c1, c2 = f"{p}.c1", f"{p}.c2"
    t1, t2 = f"{c1}.t1", f"{c1}.t2"
    may = [  # branch, attendees, reported at
        (f"{t1}.b1", 18, "2026-05-26" + ON_TIME),
        (f"{t1}.b2", 20, "2026-05-26" + ON_TIME),
        (f"{t1}.b3", 15, "2026-05-31T09:00:00+08:00"),  # after the deadline (end of the 29th)
        (f"{t2}.b1", 20, "2026-05-27" + ON_TIME),
        (f"{c2}.t1.b1", 25, "2026-05-26" + ON_TIME),
    ]
    april = [f"{t1}.b1", f"{t2}.b1", f"{t2}.b2"]
    events = [
        cloudevent(PD, b, party_day(f"{p}-may-{b}", "2026-05-26", members[b], a), time=at)
        for b, a, at in may
    ]
    events += [
        cloudevent(
            PD,
            b,
            party_day(f"{p}-apr-{b}", "2026-04-26", members[b], 15),
            time="2026-04-26" + ON_TIME,
        )
        for b in april
    ]
    events.append(
        cloudevent(
            "huibao.lesson.delivered.v1",
            f"{t1}.b1",
            {
                "activity_id": f"{p}-lesson",
                "date": "2026-05-10",
                "speaker_role": "branch_secretary",
                "topic": "我来讲党课",
                "audience": 30,
            },
            time="2026-05-10" + ON_TIME,
        )
    )
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(headers=admin, timeout=30) as client:
        r = await client.put(f"{rep}/v1/orgunits", json=units)
        assert r.status_code == 200, r.text
        r = await client.post(f"{rep}/v1/events", json=events)
        assert r.status_code == 200, r.text
        assert {x["status"] for x in r.json()["results"]} == {"accepted"}, r.text
        r = await client.post(f"{rep}/v1/tokens", json={"unit": c1, "label": "dashboard e2e"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        r = await client.post(f"{rep}/v1/tokens", json={"unit": c1, "scopes": ["report"]})
        assert r.status_code == 201, r.text
        reporter = r.json()["token"]

        async def rolled_up() -> bool:
            r = await client.get(f"{roll}/v1/nodes/{p}/summary", params={"period": "2026-Q2"})
            m = r.json()["metrics"]
            return bool(m["party_day.held"] == 8 and m["lesson.delivered"] == 1)

        await wait_until(rolled_up, timeout=60, message="the rollup shows the city's Party Days")

        # the 2026-Q2 feedback: this module's clock starts before its date (CLOCK_START)
        sched = stack.urls["scheduler"]
        now = dt.datetime.fromisoformat((await client.get(f"{sched}/v1/clock")).json()["now"])
        assert now < FEEDBACK_Q2_ISSUED, f"the module's own clock is already at {now}"
        r = await client.put(
            f"{sched}/v1/clock", json={"now": FEEDBACK_Q2_ISSUED.isoformat()}, timeout=120
        )
        assert r.status_code == 200, r.text
        assert r.json()["pending"] == 0, r.text
    names = {u["id"]: u["name"] for u in units}
    return {
        "c1": c1,
        "c2": c2,
        "t1": t1,
        "t2": t2,
        "token": token,
        "reporter": reporter,
        "names": names,
        "members": members,
    }


async def test_county_staff_drill_down_read_numbers_and_export_csv(
    browser: Any, dashboard_stack: EmbeddedStack
) -> None:
    stack = dashboard_stack
    p = "dash" + uuid.uuid4().hex[:6]
    city = await load_city(stack, p)
    c1, c2, t1, t2 = city["c1"], city["c2"], city["t1"], city["t2"]
    names = city["names"]
    base = stack.urls["rollup"]
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(f"{base}/ui/")
    assert r.status_code == 200, (
        f"the rollup does not serve the dashboard at /ui/ ({r.status_code}): include "
        "huibao_dashboard.router(settings.scheduler_url) in its app"
    )

    context = await browser.new_context(
        viewport={"width": 1366, "height": 900}, accept_downloads=True, locale="zh-CN"
    )
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        # a wrong token is refused with a message
        await page.goto(f"{base}/ui/")
        await page.fill("#token-input", "not-a-token")
        await page.click("#signin-submit")
        error = page.locator("#signin-error")
        await error.wait_for(state="visible")
        assert "令牌无效" in await error.inner_text()
        # a token that may report but not read cannot sign in, and is told why
        await page.fill("#token-input", city["reporter"])
        await page.click("#signin-submit")
        await expect(error).to_contain_text("read")
        await shot(page, "dashboard-signin-error")

        # the county token opens its county, in the current month; choose May 2026
        await page.fill("#token-input", city["token"])
        await page.click("#signin-submit")
        await expect(page.locator("#node-title")).to_have_text(names[c1])
        await page.fill("#month", "2026-05")
        await page.dispatch_event("#month", "change")
        await settled(page, c1, "2026-05")
        assert await page.inner_text("#whoami") == names[c1]
        # and what the token may do (GET /v1/whoami): a county token holds report and read
        await expect(page.locator("#whoami-scopes")).to_have_text("权限：上报、查看")
        assert await page.get_attribute("#whoami-scopes", "data-scopes") == "report,read"

        # completeness of the townships: expected, held, on time, late, missing, ratio
        assert (await row_cells(page, f"child-row-{t1}"))[:7] == [
            names[t1],
            "3",
            "3",
            "2",
            "1",
            "0",
            "100.0%",
        ]
        assert (await row_cells(page, f"child-row-{t2}"))[:7] == [
            names[t2],
            "3",
            "1",
            "1",
            "0",
            "2",
            "33.3%",
        ]
        assert await page.inner_text("[data-testid='kpi-missing'] .kpi-value") == "2"
        assert await page.locator(f"[data-testid='child-row-{c2}']").count() == 0
        # the heatmap: April 1 of 3 and 2 of 3, May 3 of 3 and 1 of 3
        heat = {
            (t, m): await page.get_attribute(f"[data-testid='heat-{t}-{m}']", "title")
            for t in (t1, t2)
            for m in ("2026-04", "2026-05")
        }
        assert [
            heat[(t, m)].rsplit(" ", 1)[-1] for m in ("2026-04", "2026-05") for t in (t1, t2)
        ] == ["1/3", "2/3", "3/3", "1/3"]
        assert await page.locator(f"[data-testid='heat-{t1}-2026-01']").inner_text() == "0"
        # months after the chosen one are left blank
        assert (
            await page.locator(f"[data-testid='heat-{t1}-2026-06']").get_attribute("data-ratio")
            == ""
        )
        # missing and late branches
        assert await page.locator("[data-testid^='missing-row-']").count() == 2
        await page.locator(f"[data-testid='missing-row-{t2}.b2']").wait_for()
        await page.locator(f"[data-testid='late-row-{t1}.b3']").wait_for()
        missing_csv = await download_csv(page, "missing-csv")
        assert sorted(row[0] for row in missing_csv[1:]) == [f"{t2}.b2", f"{t2}.b3"]
        assert missing_csv[0][:2] == ["编号", "单位"]
        # trends: one lesson in May, none in April
        lessons = page.locator("[data-testid='chart-lesson.delivered'] rect.bar")
        assert await lessons.evaluate_all(
            "bars => bars.filter(b => +b.dataset.value > 0).map(b => b.dataset.period)"
        ) == ["2026-05"]
        # the county's rank: its parent (the city) is outside the token's view
        assert "不在本令牌的查看范围" in await page.inner_text("#node-rank")
        # the 2026-Q2 feedback through the dashboard's proxy to the scheduler
        held = page.locator("[data-testid='feedback-metric-party_day.held'] td")
        await held.first.wait_for()
        assert (await held.all_inner_texts())[1] == "7"  # April 3 + May 4
        await shot(page, "dashboard-county")

        # drill down: county → township
        await page.click(f"[data-testid='drill-{t1}']")
        await settled(page, t1, "2026-05")
        assert await page.inner_text("#node-title") == names[t1]
        assert await page.locator("#breadcrumbs a, #breadcrumbs .current").all_inner_texts() == [
            names[c1],
            names[t1],
        ]
        # rank among the two townships by on-time reports: 2 against 1
        assert await page.get_attribute("#node-rank", "data-rank") == "1"
        assert "第 1" in await page.inner_text("#node-rank")
        assert (await row_cells(page, f"child-row-{t1}.b3"))[1:6] == ["1", "1", "0", "1", "0"]
        children_csv = await download_csv(page, "children-csv")
        header, rows = children_csv[0], {row[0]: row for row in children_csv[1:]}
        assert header[:5] == ["编号", "单位", "level", "应开展", "已开展"]
        assert set(rows) == {f"{t1}.b1", f"{t1}.b2", f"{t1}.b3"}
        late_col = header.index("逾期")
        assert [rows[f"{t1}.b{i}"][late_col] for i in (1, 2, 3)] == ["0", "0", "1"]
        assert rows[f"{t1}.b3"][header.index("参会率")] == str(round(15 / 22, 4))
        await shot(page, "dashboard-township")

        # drill down: township → branch; its attendance rate is 15 of 22 members
        b3 = f"{t1}.b3"
        await page.click(f"[data-testid='drill-{b3}']")
        await settled(page, b3, "2026-05")
        want = f"{15 / city['members'][b3] * 100:.1f}%"
        assert (
            await page.inner_text("[data-testid='kpi-party_day.attendance_rate'] .kpi-value")
            == want
        )
        assert await page.inner_text("[data-testid='kpi-party_day.late'] .kpi-value") == "1"
        await shot(page, "dashboard-branch")

        # breadcrumbs back up to the county
        await page.click(f"[data-testid='crumb-{c1}']")
        await settled(page, c1, "2026-05")

        # English
        await page.click("#lang-toggle")
        await settled(page, c1, "2026-05")
        assert await page.inner_text("h1") == "汇报 Party-member education dashboard"
        assert "Held" in await page.inner_text("#children-table thead")
        await shot(page, "dashboard-county-en")
        await page.click("#lang-toggle")

        # the county token cannot see the other county, in the page or in the API
        await page.goto(f"{base}/ui/#/n/{c2}?month=2026-05")
        load_error = page.locator("#load-error")
        await load_error.wait_for(state="visible")
        assert "403" in await load_error.inner_text()
        assert names[c2] not in await page.inner_text("body")
        await shot(page, "dashboard-forbidden")
        statuses = await page.evaluate(
            """async ([c2, token]) => Promise.all([
                 `/v1/nodes/${c2}/summary?period=2026-05`,
                 `/v1/nodes/${c2}/children?period=2026-05`,
                 `/ui/api/feedback/${c2}?quarter=2026-Q2`,
               ].map(async (u) => (await fetch(u, {
                 headers: {Authorization: `Bearer ${token}`}})).status))""",
            [c2, city["token"]],
        )
        # the feedback exists (issued on this module's clock) and lies outside the token's view
        assert statuses == [403, 403, 403]
        assert problems == []
    finally:
        await context.close()
