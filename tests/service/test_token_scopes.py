"""Tokens on the running stack: scopes on every service (the rollup's fast path and CSV
included), revocation within a second in the rollup and the scheduler, one `Authorization`
header only, and `huibao token create` following the HTTP API's rule.

Runs against the `stack` fixture: reporting, rollup and scheduler as processes on the
embedded PostgreSQL and broker.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import sys
import time
import uuid
from typing import Any

import httpx
import pytest
from tests.support.events import cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_platform.auth import hash_token
from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

LESSON = "huibao.lesson.delivered.v1"
MONTH = "2026-06"
EVIL = '=HYPERLINK("http://x")'
NUMBER = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?")


def lesson(activity: str) -> dict[str, Any]:
    return {
        "activity_id": activity,
        "date": "2026-06-10",
        "speaker_role": "branch_secretary",
        "topic": "党课",
        "audience": 12,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"errors"}, body
    first: dict[str, str] = body["errors"][0]
    assert set(first) == {"field", "reason", "message"}, first
    return first


async def city(client: httpx.AsyncClient, stack: EmbeddedStack) -> list[str]:
    """A small city (two counties, one township each, two branches each) in the registry and
    known to the rollup; its unit ids, parents first."""
    p = f"tks{uuid.uuid4().hex[:6]}"
    units = build_city(p, counties=2, townships_per_county=1, branches_per_township=2)
    admin = bearer(stack.admin_token)
    r = await client.put(f"{stack.urls['reporting']}/v1/orgunits", json=units, headers=admin)
    assert r.status_code == 200, r.text
    leaf = units[-1]["id"]

    async def rollup_knows() -> bool:
        r = await client.get(f"{stack.urls['rollup']}/v1/nodes/{leaf}", headers=admin)
        return r.status_code == 200

    await wait_until(rollup_knows, timeout=30, message="the rollup knows the new city")
    return [u["id"] for u in units]


async def make_token(
    client: httpx.AsyncClient, stack: EmbeddedStack, unit: str, scopes: list[str], by: str = ""
) -> str:
    r = await client.post(
        f"{stack.urls['reporting']}/v1/tokens",
        json={"unit": unit, "label": "scopes test", "scopes": scopes},
        headers=bearer(by or stack.admin_token),
    )
    assert r.status_code == 201, r.text
    assert r.json()["scopes"] == scopes
    token: str = r.json()["token"]
    return token


def assert_missing_scope(r: httpx.Response, scope: str) -> None:
    assert r.status_code == 403, r.text
    err = error_of(r)
    assert err["reason"] == "missing_scope", err
    assert f"`{scope}`" in err["message"], err


async def test_every_service_enforces_the_scopes_of_a_token(stack: EmbeddedStack) -> None:
    rep, roll, sched = (stack.urls[n] for n in ("reporting", "rollup", "scheduler"))
    async with httpx.AsyncClient(timeout=30) as c:
        ids = await city(c, stack)
        p, c1, t1, b1 = ids[0], ids[1], ids[2], ids[3]
        c2 = ids[5]
        reader = await make_token(c, stack, p, ["read"])
        reporter = await make_token(c, stack, p, ["report"])
        approver = await make_token(c, stack, p, ["approve"])
        both = await make_token(c, stack, p, ["report", "read"])

        # the admin's request keeps the answer: the fast path would serve it to anyone
        summary = f"{roll}/v1/nodes/{p}/summary"
        children = f"{roll}/v1/nodes/{p}/children"
        for _ in range(2):
            r = await c.get(summary, params={"period": MONTH}, headers=bearer(stack.admin_token))
            assert r.status_code == 200, r.text

        event = cloudevent(LESSON, b1, lesson(f"{p}-ls"), id=f"{p}-ev")
        r = await c.post(f"{rep}/v1/events", json=event, headers=bearer(reader))
        assert_missing_scope(r, "report")
        r = await c.post(f"{rep}/v1/events", json=event, headers=bearer(approver))
        assert_missing_scope(r, "report")
        r = await c.post(f"{rep}/v1/events", json=event, headers=bearer(reporter))
        assert r.status_code == 202, r.text

        # reads: the route, the fast path (summary and children twice), CSV, feedback, registry
        for token, ok in ((reader, True), (both, True), (reporter, False), (approver, False)):
            for url, params in (
                (summary, {"period": MONTH}),
                (summary, {"period": MONTH}),
                (children, {"period": MONTH}),
                (children, {"period": MONTH}),
                (children, {"period": MONTH, "format": "csv"}),
                (f"{roll}/v1/nodes/{p}/completeness", {"period": MONTH, "format": "csv"}),
                (f"{roll}/v1/roots", {}),
                (f"{rep}/v1/orgunits/{p}", {}),
                (f"{sched}/v1/cycles", {}),
            ):
                r = await c.get(url, params=params, headers=bearer(token))
                if ok:
                    assert r.status_code == 200, (url, r.text)
                else:
                    assert_missing_scope(r, "read")
            r = await c.get(
                f"{roll}/ui/api/feedback/{p}", params={"quarter": "2026-Q2"}, headers=bearer(token)
            )
            if ok:
                assert r.status_code == 404, r.text  # allowed; no feedback issued yet
            else:
                assert_missing_scope(r, "read")

        # registry writes need `report`
        move = {"parent": c2, "effective": "2026-06-01"}
        r = await c.post(f"{rep}/v1/orgunits/{t1}/move", json=move, headers=bearer(reader))
        assert_missing_scope(r, "report")

        # every service says who the token is
        for base in (rep, roll, sched):
            r = await c.get(f"{base}/v1/whoami", headers=bearer(reporter))
            assert r.status_code == 200, r.text
            assert r.json() == {"unit": p, "label": "scopes test", "scopes": ["report"]}
            r = await c.get(f"{base}/v1/whoami", headers=bearer(stack.admin_token))
            assert r.json()["scopes"] == ["report", "read", "approve", "admin"]

        # a token made without scopes holds report and read, as every older token does
        r = await c.post(f"{rep}/v1/tokens", json={"unit": b1}, headers=bearer(stack.admin_token))
        assert r.status_code == 201, r.text
        assert r.json()["scopes"] == ["report", "read"]
        for bad in ([], ["root"], ["read", "sudo"]):
            r = await c.post(
                f"{rep}/v1/tokens",
                json={"unit": b1, "scopes": bad},
                headers=bearer(stack.admin_token),
            )
            assert r.status_code == 422, r.text
            assert error_of(r)["field"].startswith("scopes"), r.text

        # `admin` on a county: tokens inside its subtree, only scopes it holds
        county_admin = await make_token(c, stack, c1, ["read", "admin"])
        branch_reader = await make_token(c, stack, b1, ["read"], by=county_admin)
        r = await c.get(f"{roll}/v1/nodes/{b1}", headers=bearer(branch_reader))
        assert r.status_code == 200, r.text
        r = await c.post(
            f"{rep}/v1/tokens",
            json={"unit": b1, "scopes": ["report"]},
            headers=bearer(county_admin),
        )
        assert r.status_code == 403, r.text
        assert error_of(r)["reason"] == "missing_scope"
        for outside in (c2, p):
            r = await c.post(
                f"{rep}/v1/tokens",
                json={"unit": outside, "scopes": ["read"]},
                headers=bearer(county_admin),
            )
            assert r.status_code == 403, r.text
            assert error_of(r)["reason"] == "out_of_scope"
        r = await c.delete(f"{rep}/v1/tokens/{hash_token(reader)}", headers=bearer(county_admin))
        assert r.status_code == 403, r.text  # bound to the city, above the county
        r = await c.post(
            f"{rep}/v1/tokens", json={"unit": b1, "scopes": ["read"]}, headers=bearer(both)
        )
        assert_missing_scope(r, "admin")
        # cycle and clock operations act on the whole tree: the admin token only
        r = await c.post(f"{sched}/v1/cycles/party_day/{MONTH}/run", headers=bearer(county_admin))
        assert r.status_code == 403, r.text
        r = await c.put(
            f"{sched}/v1/clock",
            json={"now": "2026-06-01T00:00:00+08:00"},
            headers=bearer(both),
        )
        assert_missing_scope(r, "admin")
        r = await c.delete(
            f"{rep}/v1/tokens/{hash_token(branch_reader)}", headers=bearer(county_admin)
        )
        assert r.status_code == 204, r.text
        r = await c.get(f"{roll}/v1/nodes/{b1}", headers=bearer(branch_reader))
        assert r.status_code == 401, r.text


async def test_a_revoked_token_is_refused_everywhere_within_a_second(
    stack: EmbeddedStack,
) -> None:
    rep, roll, sched = (stack.urls[n] for n in ("reporting", "rollup", "scheduler"))
    async with httpx.AsyncClient(timeout=30) as c:
        ids = await city(c, stack)
        p = ids[0]
        token = await make_token(c, stack, p, ["read"])
        checks = {
            "rollup summary (fast path)": (f"{roll}/v1/nodes/{p}/summary", {"period": MONTH}),
            "rollup node": (f"{roll}/v1/nodes/{p}", {}),
            "scheduler": (f"{sched}/v1/cycles", {}),
        }
        for url, params in checks.values():  # every service has the token in its cache
            for _ in range(3):
                r = await c.get(url, params=params, headers=bearer(token))
                assert r.status_code == 200, r.text

        r = await c.delete(
            f"{rep}/v1/tokens/{hash_token(token)}", headers=bearer(stack.admin_token)
        )
        assert r.status_code == 204, r.text
        revoked = time.monotonic()
        refused_after: dict[str, float] = {}  # when a request that got 401 was sent
        while len(refused_after) < len(checks) and time.monotonic() - revoked < 1.0:
            for name, (url, params) in checks.items():
                if name not in refused_after:
                    sent = time.monotonic() - revoked
                    r = await c.get(url, params=params, headers=bearer(token))
                    if r.status_code == 401:
                        refused_after[name] = sent
            await asyncio.sleep(0.02)
        # whatever the polling saw on a slow machine: one second on, every service refuses
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - revoked)))
        for name, (url, params) in checks.items():
            r = await c.get(url, params=params, headers=bearer(token))
            assert r.status_code == 401, (name, r.text, refused_after)


async def test_two_authorization_headers_are_a_400_on_every_service(
    stack: EmbeddedStack,
) -> None:
    rep, roll, sched = (stack.urls[n] for n in ("reporting", "rollup", "scheduler"))
    async with httpx.AsyncClient(timeout=30) as c:
        ids = await city(c, stack)
        p, b1 = ids[0], ids[3]
        other = await make_token(c, stack, b1, ["report", "read"])
        summary = f"{roll}/v1/nodes/{p}/summary"
        r = await c.get(summary, params={"period": MONTH}, headers=bearer(stack.admin_token))
        assert r.status_code == 200  # kept: the fast path could answer it
        requests = [
            ("GET", summary, {"period": MONTH}),
            ("GET", f"{roll}/v1/nodes/{p}/children", {"period": MONTH}),
            ("GET", f"{roll}/v1/roots", {}),
            ("GET", f"{rep}/v1/orgunits/{p}", {}),
            ("POST", f"{rep}/v1/events", {}),
            ("GET", f"{sched}/v1/cycles", {}),
            ("GET", f"{roll}/ui/api/feedback/{p}", {"quarter": "2026-Q2"}),
        ]
        event = cloudevent(LESSON, b1, lesson(f"{p}-dup"), id=f"{p}-dup")
        for first, second in ((stack.admin_token, other), (other, stack.admin_token)):
            headers = [("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")]
            for method, url, params in requests:
                r = await c.request(
                    method,
                    url,
                    params=params,
                    headers=headers,
                    json=event if method == "POST" else None,
                )
                assert r.status_code == 400, (url, r.status_code, r.text)
                err = error_of(r)
                assert (err["field"], err["reason"]) == ("Authorization", "repeated_header"), err


async def _cli(*args: str, database_url: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "huibao_stack.cli",
        "token",
        "create",
        *args,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_cli_follows_the_apis_rule_for_tokens(stack: EmbeddedStack) -> None:
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    unknown = f"nosuch{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            f"{rep}/v1/tokens", json={"unit": unknown}, headers=bearer(stack.admin_token)
        )
        assert r.status_code == 422, r.text
        api_error = error_of(r)
        code, out, err = await _cli("--unit", unknown, database_url=stack.database_url)
        assert (code, out.strip()) == (1, ""), (code, out, err)
        assert api_error["message"] in err, err
        assert api_error["reason"] in err, err

        ids = await city(c, stack)
        p, b1 = ids[0], ids[3]
        code, out, err = await _cli(
            "--unit", p, "--scope", "read", "--label", "cli", database_url=stack.database_url
        )
        assert code == 0, err
        token = out.strip()
        r = await c.get(f"{roll}/v1/whoami", headers=bearer(token))
        assert r.json() == {"unit": p, "label": "cli", "scopes": ["read"]}, r.text
        event = cloudevent(LESSON, b1, lesson(f"{p}-cli"), id=f"{p}-cli")
        r = await c.post(f"{rep}/v1/events", json=event, headers=bearer(token))
        assert_missing_scope(r, "report")
        code, out, _ = await _cli("--unit", p, database_url=stack.database_url)
        assert code == 0
        r = await c.get(f"{rep}/v1/whoami", headers=bearer(out.strip()))
        assert r.json()["scopes"] == ["report", "read"]
        code, out, err = await _cli(
            "--unit", p, "--scope", "read,sudo", database_url=stack.database_url
        )
        assert (code, out.strip()) == (1, ""), (code, out, err)
        assert "sudo" in err, err


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_csv_answers_never_carry_a_formula(stack: EmbeddedStack) -> None:
    roll = stack.urls["rollup"]
    names = {  # unit id (after the prefix) -> a name a spreadsheet would evaluate
        "": EVIL,
        ".c1": "+SUM(A1:A9)",
        ".c2": "@cmd",
        ".c1.t1.b1": "-2+3",
        ".c1.t1.b2": "\t=1+1",
    }
    async with httpx.AsyncClient(timeout=30, headers=bearer(stack.admin_token)) as c:
        p = f"tks{uuid.uuid4().hex[:6]}"
        units = build_city(p, counties=2, townships_per_county=1, branches_per_township=2)
        for u in units:
            u["name"] = names.get(u["id"][len(p) :], u["name"])
        r = await c.put(f"{stack.urls['reporting']}/v1/orgunits", json=units)
        assert r.status_code == 200, r.text
        t1 = f"{p}.c1.t1"

        async def rollup_knows() -> bool:
            return (await c.get(f"{roll}/v1/nodes/{t1}.b2")).status_code == 200

        await wait_until(rollup_knows, timeout=30)
        answers = {
            "roots": (await c.get(f"{roll}/v1/roots", params={"format": "csv"})).text,
            "children": (
                await c.get(
                    f"{roll}/v1/nodes/{p}/children",
                    params={"period": MONTH},
                    headers={"Accept": "text/csv"},
                )
            ).text,
            "branches": (
                await c.get(
                    f"{roll}/v1/nodes/{t1}/children", params={"period": MONTH, "format": "csv"}
                )
            ).text,
            "completeness": (
                await c.get(
                    f"{roll}/v1/nodes/{t1}/completeness", params={"period": MONTH, "format": "csv"}
                )
            ).text,
            "series": (
                await c.get(
                    f"{roll}/v1/nodes/{p}/series",
                    params={
                        "metric": "lesson.delivered",
                        "from": "2026-01",
                        "to": MONTH,
                        "format": "csv",
                    },
                )
            ).text,
        }
    rows = {k: _cells(v) for k, v in answers.items()}
    roots_names = {r[1] for r in rows["roots"][1:]}
    assert "'" + EVIL in roots_names, answers["roots"]
    county_names = {r[2] for r in rows["children"][1:]}
    assert county_names == {"'+SUM(A1:A9)", "'@cmd"}, answers["children"]
    branch_names = {r[2] for r in rows["branches"][1:]}
    assert branch_names == {"'-2+3", "'\t=1+1"}, answers["branches"]
    missing = {r[2] for r in rows["completeness"][1:] if r[0] == "missing"}
    assert missing == {"'-2+3", "'\t=1+1"}, answers["completeness"]
    assert len(rows["series"]) == 7  # header and six months, values numbers
    for name, table in rows.items():
        for row in table[1:]:
            for cell in row:
                risky = cell[:1] in ("=", "+", "-", "@", "\t", "\r")
                assert not risky or NUMBER.fullmatch(cell), (name, row)
