"""The dashboard router without a browser: its files, and the feedback proxy's answers.

The scheduler is an httpx MockTransport here; no network and no services are involved.
"""

from __future__ import annotations

import re
from importlib import resources

import httpx
import pytest
from fastapi import FastAPI

import huibao_dashboard

SCHEDULER = "http://scheduler.test:8003"
REPORT = {"unit": "c1", "quarter": "2026-Q2", "metrics": {"lesson.delivered": 3}}


def client(
    handler: httpx.MockTransport | None = None, scheduler_url: str | None = SCHEDULER
) -> httpx.AsyncClient:
    """A client of an app that includes the dashboard, as the rollup does."""
    app = FastAPI()
    app.include_router(huibao_dashboard.router(scheduler_url, transport=handler))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://rollup.test")


def scheduler(
    status: int = 200, body: object = REPORT, seen: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


async def test_the_page_is_served_at_ui_with_its_local_scripts() -> None:
    c = client()
    r = await c.get("/ui/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'id="token-input"' in r.text
    for name in re.findall(r'(?:src|href)="([^"]+)"', r.text):
        assert "://" not in name, name
        assert not name.startswith("//"), name
        asset = await c.get(f"/ui/{name}")
        assert asset.status_code == 200, name
    assert (await c.get("/ui/app.js")).headers["content-type"].startswith("text/javascript")
    assert (await c.get("/ui/style.css")).headers["content-type"].startswith("text/css")


async def test_ui_without_slash_redirects_and_unknown_files_are_404() -> None:
    c = client()
    r = await c.get("/ui", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/ui/")
    r = await c.get("/ui/nothing.js")
    assert r.status_code == 404
    assert r.json()["errors"][0]["field"] == "name"
    assert (await c.get("/ui/..%2Fpyproject.toml")).status_code == 404


async def test_every_script_imports_only_local_modules_and_loads_nothing_from_elsewhere() -> None:
    static = resources.files("huibao_dashboard").joinpath("static")
    names = {f.name for f in static.iterdir()}
    for f in static.iterdir():
        text = f.read_text(encoding="utf-8")
        for url in re.findall(r"https?://[^\s\"'<>]+", text):
            assert url.startswith("http://www.w3.org/2000/svg"), f"{f.name} names {url}"
        for module in re.findall(r'from "\./([^"]+)"', text):
            assert module in names, f"{f.name} imports a missing {module}"


async def test_the_proxy_forwards_the_callers_token_and_quarter() -> None:
    seen: list[httpx.Request] = []
    r = await client(scheduler(seen=seen)).get(
        "/ui/api/feedback/c1", params={"quarter": "2026-Q2"}, headers={"Authorization": "Bearer t1"}
    )
    assert r.status_code == 200
    assert r.json() == REPORT
    [request] = seen
    assert str(request.url) == f"{SCHEDULER}/v1/feedback/c1?quarter=2026-Q2"
    assert request.headers["authorization"] == "Bearer t1"


@pytest.mark.parametrize("status", [401, 403, 404, 422])
async def test_the_schedulers_refusals_reach_the_page_unchanged(status: int) -> None:
    body = {"errors": [{"field": "id", "reason": "x", "message": "no feedback"}]}
    r = await client(scheduler(status, body)).get(
        "/ui/api/feedback/c1", params={"quarter": "2026-Q2"}
    )
    assert r.status_code == status
    assert r.json() == body


async def test_no_scheduler_configured_is_a_clear_503() -> None:
    r = await client(scheduler_url=None).get("/ui/api/feedback/c1", params={"quarter": "2026-Q2"})
    assert r.status_code == 503
    error = r.json()["errors"][0]
    assert (error["field"], error["reason"]) == ("scheduler", "unavailable")
    assert "no scheduler is configured" in error["message"]


async def test_an_unreachable_scheduler_is_a_clear_503() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    r = await client(httpx.MockTransport(refuse)).get(
        "/ui/api/feedback/c1", params={"quarter": "2026-Q2"}
    )
    assert r.status_code == 503
    assert "cannot be reached" in r.json()["errors"][0]["message"]


async def test_a_failing_scheduler_is_a_502() -> None:
    r = await client(scheduler(500, {"oops": 1})).get(
        "/ui/api/feedback/c1", params={"quarter": "2026-Q2"}
    )
    assert r.status_code == 502
    assert r.json()["errors"][0]["reason"] == "bad_gateway"


@pytest.mark.parametrize(
    ("unit", "quarter", "field"),
    [("c1", "2026-07", "quarter"), ("c1", "2026-Q5", "quarter"), ("-bad", "2026-Q2", "id")],
)
async def test_malformed_ids_and_quarters_are_refused_before_the_scheduler(
    unit: str, quarter: str, field: str
) -> None:
    seen: list[httpx.Request] = []
    r = await client(scheduler(seen=seen)).get(
        f"/ui/api/feedback/{unit}", params={"quarter": quarter}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == field
    assert seen == []


async def test_a_missing_quarter_is_a_422() -> None:
    assert (await client(scheduler()).get("/ui/api/feedback/c1")).status_code == 422
