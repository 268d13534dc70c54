"""Forged accepted records and poison parameters on the running stack (issues 12.6, 13.1).

- Records written by hand on `huibao.activity.accepted` (a negative audience, not JSON, an
  unknown type, a NUL, an offset PostgreSQL cannot store) land on `huibao.activity.rejected`
  with their reason, change no aggregate, and a valid record after them is applied.
- Periods beyond the date arithmetic and ids holding NUL answer 4xx on every service.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from tests.support.events import cloudevent
from tests.support.topics import tap
from tests.support.tree import build_city
from tests.support.waits import wait_until

pytestmark = [pytest.mark.stack]

LESSON = "huibao.lesson.delivered.v1"
RECEIVED = "2026-05-20T10:00:01+08:00"


def lesson(activity: str, audience: int) -> dict[str, Any]:
    return {
        "activity_id": activity,
        "revision": 1,
        "date": "2026-05-20",
        "retracted": False,
        "speaker_role": "expert",
        "topic": "党章",
        "format": "on_site",
        "audience": audience,
        "duration_minutes": 45,
    }


def forged(unit: str, data: dict[str, Any], **envelope: Any) -> bytes:
    event = {**cloudevent(LESSON, unit, data), "huibaoreceived": RECEIVED, **envelope}
    return orjson.dumps(event)


async def test_forged_accepted_records_are_rejected_never_applied(stack: Any) -> None:
    p = f"fg{uuid.uuid4().hex[:6]}"
    units = build_city(p, counties=1, townships_per_county=1, branches_per_township=2)
    branch = next(u["id"] for u in units if u["level"] == "branch")
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    bootstrap = stack.infra.bootstrap_servers
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        assert (await http.put(f"{rep}/v1/orgunits", json=units)).status_code == 200
        r = await http.post(
            f"{rep}/v1/events", json=cloudevent(LESSON, branch, lesson(f"{p}-0", 7))
        )
        assert r.status_code == 202, r.text

        async def summary() -> dict[str, Any]:
            r = await http.get(f"{roll}/v1/nodes/{p}/summary", params={"period": "2026-05"})
            assert r.status_code == 200, r.text
            return dict(r.json()["metrics"])

        await wait_until(
            lambda: _when(summary(), lambda m: m.get("lesson.audience") == 7), timeout=30
        )
        bad: list[tuple[bytes, str]] = [
            (forged(branch, lesson(f"{p}-neg", -999_712)), "invalid_field"),
            (b"{not json" + p.encode(), "not_json"),
            (forged(branch, lesson(f"{p}-t", 5), type="huibao.nope.v1"), "unknown_type"),
            (forged(branch, {**lesson(f"{p}-n", 5), "topic": "a\x00"}), "invalid_field"),
            (forged(branch, lesson(f"{p}-o", 5), time="2026-05-20T10:00:00+16:00"),
             "invalid_envelope"),
            (forged(branch, lesson(f"{p}-r", 5), huibaoreceived="yesterday"), "invalid_envelope"),
        ]  # fmt: skip
        good = forged(branch, lesson(f"{p}-ok", 11), id=f"{p}-ok")
        async with tap(bootstrap, "huibao.activity.rejected") as rejected:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                for value, _ in bad:
                    await producer.send_and_wait(
                        "huibao.activity.accepted", value=value, key=branch.encode()
                    )
                await producer.send_and_wait(
                    "huibao.activity.accepted", value=good, key=branch.encode()
                )
            finally:
                await producer.stop()
            metrics = await wait_until(
                lambda: _when(summary(), lambda m: m.get("lesson.audience") == 18), timeout=30
            )
            assert metrics["lesson.delivered"] == 2, metrics  # the valid one after the forged

            def ours() -> list[ConsumerRecord[bytes, bytes]]:
                mine = [
                    r
                    for r in list(rejected)
                    if dict(r.headers).get("huibao_channel") == b"rollup" and p.encode() in r.value
                ]
                return mine if len(mine) >= len(bad) else []

            found = await wait_until(ours, timeout=30)
        by_value = {r.value: dict(r.headers) for r in found}
        assert len(found) == len(bad), [r.value for r in found]
        for value, reason in bad:
            assert by_value[value]["huibao_reason"].decode() == reason, (value, by_value[value])
            errors = orjson.loads(by_value[value]["huibao_errors"])
            assert errors, value
            assert all(e["field"] for e in errors), errors
        neg = orjson.loads(by_value[bad[0][0]]["huibao_errors"])
        assert neg[0]["field"] == "data.audience", neg
        await asyncio.sleep(1.0)  # nothing forged shows up later either
        assert (await summary())["lesson.audience"] == 18


async def _when(value: Any, pred: Any) -> Any:
    got = await value
    return got if pred(got) else None


POISON = [
    ("rollup", "GET", "/v1/nodes/{root}/summary?period=9999-12"),
    ("rollup", "GET", "/v1/nodes/{root}/summary?period=0000-Q1"),
    ("rollup", "GET", "/v1/nodes/{root}/summary?period=9999"),
    ("rollup", "GET", "/v1/nodes/{root}/children?period=9999-Q4"),
    ("rollup", "GET", "/v1/nodes/{root}/completeness?period=9999-12"),
    ("rollup", "GET", "/v1/nodes/{root}/series?metric=lesson.delivered&from=0000-01&to=9999-12"),
    ("rollup", "GET", "/v1/nodes/%00/summary?period=2026-05"),
    ("rollup", "GET", "/v1/nodes/{root}%00/children?period=2026-05"),
    ("scheduler", "POST", "/v1/cycles/party_day/9999-12/run"),
    ("scheduler", "POST", "/v1/cycles/feedback/0000-Q1/run"),
    ("scheduler", "GET", "/v1/feedback/%00?quarter=2026-Q1"),
    ("scheduler", "GET", "/v1/feedback/{root}%00?quarter=2026-Q1"),
    ("scheduler", "GET", "/v1/feedback/{root}?quarter=9999-Q4"),
    ("reporting", "GET", "/v1/orgunits/%00"),
    ("reporting", "GET", "/v1/orgunits/{root}%00"),
]
BODIES: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/tokens", {"unit": "{root}", "label": "a\x00b"}, "label"),
    (
        "POST",
        "/v1/orgunits/{branch}/move",
        {"parent": "{other}", "effective": "9999-12-31"},
        "effective",
    ),
    ("POST", "/v1/orgunits/{branch}/close", {"effective": "0001-01-01"}, "effective"),
    (
        "POST",
        "/v1/orgunits/{branch}/merge",
        {"into": "{other}", "effective": "0999-01-01"},
        "effective",
    ),
    ("PUT", "/v1/orgunits", [{"$unit": "{branch}", "effective": "9999-12-31"}], "effective"),
    ("PUT", "/v1/orgunits", [{"$unit": "{branch}", "name": "支部\x00"}], "name"),
    ("PUT", "/v1/orgunits", [{"$unit": "{branch}", "closed": "0000-01-01"}], "closed"),
]
"""Reporting request bodies holding values no store can hold (field each answer names)."""


async def test_poison_parameters_answer_4xx_on_every_service(stack: Any) -> None:
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    root = f"pz{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        units = build_city(root, counties=1, townships_per_county=1, branches_per_township=1)
        assert (await http.put(f"{stack.urls['reporting']}/v1/orgunits", json=units)).is_success
        for service, method, path in POISON:
            url = stack.urls[service] + path.format(root=root)
            r = await http.request(method, url)
            assert 400 <= r.status_code < 500, (service, path, r.status_code, r.text)
            body = r.json()
            assert body["errors"][0]["field"], (path, body)
        branch = next(u for u in units if u["level"] == "branch")
        other = next(u["id"] for u in units if u["level"] == "township")
        names = {"root": root, "branch": branch["id"], "other": other}

        def filled(value: Any) -> Any:
            if isinstance(value, str):
                return value.format(**names)
            if isinstance(value, list):
                return [filled(v) for v in value]
            if "$unit" in value:
                return {**branch, **{k: filled(v) for k, v in value.items() if k != "$unit"}}
            return {k: filled(v) for k, v in value.items()}

        for method, path, raw, field in BODIES:
            r = await http.request(method, stack.urls["reporting"] + filled(path), json=filled(raw))
            assert r.status_code == 422, (path, raw, r.status_code, r.text)
            fields = [e["field"] for e in r.json()["errors"]]
            assert any(f == field or f.endswith("." + field) for f in fields), (path, fields)
        before = (await http.get(f"{stack.urls['scheduler']}/v1/clock")).json()["now"]
        for now in ("9999-06-01T00:00:00+08:00", "2026-06-01T00:00:00+16:00"):
            r = await http.put(f"{stack.urls['scheduler']}/v1/clock", json={"now": now})
            assert r.status_code == 422, (now, r.status_code, r.text)
            assert r.json()["errors"][0]["field"].endswith("now"), r.text
        assert (await http.get(f"{stack.urls['scheduler']}/v1/clock")).json()["now"] == before
        r = await http.get(f"{stack.urls['reporting']}/v1/orgunits/{branch['id']}")
        assert r.status_code == 200, r.text
        assert r.json()["parent"] == branch["parent"], r.text  # nothing above changed it
        assert (await http.get(f"{stack.urls['reporting']}/health/ready")).status_code == 200
