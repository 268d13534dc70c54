"""A fuzz pass over `POST /v1/events` against the running stack (hypothesis).

Events are generated close to the contracts (every activity type the rollup counts exactly,
corrections and retractions of the same activity, duplicates) and then mutated: fields
dropped, added or given the wrong type, huge and negative numbers, any Unicode, impossible
dates and times, nested junk, unknown types and units, oversized events, raw bodies that
are not JSON or not an object. Some requests are dry runs.

What must hold, whatever the input:
- no answer is a 5xx;
- every error names a field (and refusals of events carry a stable `Reason` code);
- every event answered `accepted` (outside a dry run) is visible in the rollup afterwards,
  and nothing else is: the rollup of the fuzz tree equals the totals of the accepted events
  (the latest accepted revision of each activity; retracted ones count nothing).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import functools
import json
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts.activities import ACTIVITY_TYPES
from huibao_contracts.rejects import Reason

pytestmark = [pytest.mark.stack]

PD = "huibao.party_day.held.v1"
LESSON = "huibao.lesson.delivered.v1"
FEEDBACK = "huibao.feedback.collected.v1"
SCREENING = "huibao.screening.held.v1"
POINTS = "huibao.points.awarded.v1"
REASONS = {str(r) for r in Reason}
HTTP_REASONS = REASONS | {"unsupported_media_type", "bad_request", "unauthorized"}
TODAY = dt.datetime.now(dt.UTC).date()
EXAMPLES = int(os.environ.get("HUIBAO_FUZZ_EXAMPLES", "150"))

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JUNK = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
TEXT = st.text(max_size=220)  # any Unicode (no lone surrogates: they are not UTF-8)
NAME = st.one_of(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200), TEXT)
"""A required text: mostly within its limits, sometimes empty or too long."""
MEMBER = st.from_regex(r"\Am_[0-9a-f]{8,12}\Z")
VALID_COUNT = st.integers(min_value=0, max_value=200)
COUNT = st.one_of(
    VALID_COUNT,
    VALID_COUNT,
    VALID_COUNT,
    st.integers(min_value=-5, max_value=2_000_000),
    st.sampled_from([2**31, 2**63, 10**30, -(2**63)]),
)
RECENT = st.dates(min_value=dt.date(2025, 1, 1), max_value=TODAY - dt.timedelta(days=1))
DAY = st.one_of(
    RECENT,
    RECENT,
    RECENT,
    st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY),
    st.dates(min_value=TODAY, max_value=TODAY + dt.timedelta(days=3)),
)
BAD_DATES = st.sampled_from(
    ["2026-02-30", "2026-13-01", "26/10/2026", "", "2026-10-26T10:00:00", "0000-01-01",
     "99999-01-01", "2026-1-5", 20261026, None, "２０２６-１０-２６"]
)  # fmt: skip
BAD_TIMES = st.sampled_from(
    ["2026-10-26T10:00:00", "yesterday", "2026-10-26", "9999-12-31T23:59:59Z", "", 0,
     "2026-10-26T25:00:00+08:00", "2026-10-26T10:00:00+99:00"]
)  # fmt: skip


def mostly_within_members(data: dict[str, Any]) -> dict[str, Any]:
    """Three Party Days in four keep attendees within members (the rest test the rule)."""
    members, attendees = data["members"], data["attendees"]
    if attendees % 4 and attendees >= 0 and 0 <= members <= 100_000:
        data["attendees"] = attendees % (members + 1)
    return data


def data_for(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads close to the contract (sometimes outside its limits)."""
    common = {"date": DAY.map(str)}
    fields: dict[str, st.SearchStrategy[Any]] = {
        PD: st.fixed_dictionaries(
            {"members": COUNT, "attendees": COUNT, **common},
            optional={"theme": TEXT, "agenda": st.lists(
                st.sampled_from(["oath_renewal", "collective_study", "dues_collection",
                                 "party_spirit_analysis", "volunteer_service", "x"]),
                max_size=4), "lesson": TEXT, "film": TEXT, "practice": TEXT},
        ).map(mostly_within_members),
        LESSON: st.fixed_dictionaries(
            {"speaker_role": st.sampled_from(
                ["branch_secretary", "expert", "leading_cadre", "deputy", "nobody"]),
             "topic": NAME, "audience": COUNT, **common},
            optional={"format": st.sampled_from(["online", "remote", "carrier pigeon"]),
                      "duration_minutes": COUNT},
        ),
        FEEDBACK: st.fixed_dictionaries({"items": COUNT, **common}),
        SCREENING: st.fixed_dictionaries({"film": NAME, "audience": COUNT, **common}),
        POINTS: st.fixed_dictionaries(
            {"member": st.one_of(MEMBER, MEMBER, TEXT),
             "points": st.integers(min_value=-1500, max_value=1500), "reason": NAME, **common}
        ),
    }  # fmt: skip
    return fields[kind]


@st.composite
def mutated(draw: st.DrawFn, event: dict[str, Any], units: list[str]) -> dict[str, Any]:
    """One random mutation of an event (a copy)."""
    ev = copy.deepcopy(event)
    data = ev["data"]
    where = draw(st.sampled_from(["envelope", "data"]))
    target = ev if where == "envelope" else data
    keys = sorted(target)
    kind = draw(st.sampled_from(
        ["drop", "extra", "junk", "huge", "date", "time", "unicode", "type", "subject", "nested",
         "revision"]
    ))  # fmt: skip
    if kind == "drop" and keys:
        target.pop(draw(st.sampled_from(keys)))
    elif kind == "extra":
        target[draw(st.text(min_size=1, max_size=12))] = draw(JUNK)
    elif kind == "junk" and keys:
        target[draw(st.sampled_from(keys))] = draw(JUNK)
    elif kind == "huge":
        numeric = [k for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)]
        if numeric:
            data[draw(st.sampled_from(numeric))] = draw(st.sampled_from(
                [2**64, -(2**64), 10**100, 1e308, -1, 1.5, 0.1, True, "12"]
            ))  # fmt: skip
    elif kind == "date":
        data["date"] = draw(BAD_DATES)
    elif kind == "time":
        ev["time"] = draw(BAD_TIMES)
    elif kind == "unicode":
        ev[draw(st.sampled_from(["id", "source", "subject", "type"]))] = draw(st.text(max_size=80))
    elif kind == "type":
        ev["type"] = draw(st.sampled_from(
            ["huibao.party_day.held.v2", "huibao.nope.v1", "", LESSON, PD, FEEDBACK]
        ))  # fmt: skip
    elif kind == "subject":
        ev["subject"] = draw(
            st.sampled_from([*units, "ghost-unit", "a" * 65, "-bad", "br 1", "城关镇"])
        )
    elif kind == "nested":
        ev["data"] = draw(st.one_of(JUNK, st.just({"nested": {"deeper": [data] * 3}})))
    elif kind == "revision":
        data["revision"] = draw(st.one_of(st.integers(), JUNK))
    return ev


@dataclass
class Tally:
    """What the fuzz sent and what reporting answered."""

    prefix: str
    activities: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    """activity_id → (type, data) of its latest accepted revision."""
    dry_years: set[str] = field(default_factory=set)
    """Years of events accepted in a dry run: the rollup must show nothing of them."""
    accepted: int = 0
    dry_accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))


METRICS = (
    "party_day.held", "party_day.attendees", "lesson.delivered", "lesson.audience",
    "feedback.collected", "screening.held", "points.awarded",
)  # fmt: skip


def party_day_has_come(day: str) -> bool:
    """Whether the 26th of `day`'s month has come in Shanghai time: until then a year's
    figures leave that month's Party Days out (docs/architecture.md, Party Day completeness)."""
    shanghai_today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date()
    return dt.date(int(day[:4]), int(day[5:7]), 26) <= shanghai_today


def expected_by_year(tally: Tally) -> dict[str, dict[str, int]]:
    """Totals the rollup must show at the root of the fuzz tree, by year (every metric the
    fuzz touches, zero included, for every year an event was accepted in, dry runs too)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for year in tally.dry_years:
        out.setdefault(year, dict.fromkeys(METRICS, 0))
    for kind, data in tally.activities.values():
        if data.get("retracted"):
            continue
        totals = out[str(data["date"])[:4]]
        if kind == PD and not party_day_has_come(str(data["date"])):
            continue  # a year counts a month's Party Days once its 26th has come
        if kind == PD:
            totals["party_day.held"] += 1
            totals["party_day.attendees"] += data["attendees"]
        elif kind == LESSON:
            totals["lesson.delivered"] += 1
            totals["lesson.audience"] += data["audience"]
        elif kind == FEEDBACK:
            totals["feedback.collected"] += data["items"]
        elif kind == SCREENING:
            totals["screening.held"] += 1
        elif kind == POINTS:
            totals["points.awarded"] += data["points"]
    return {y: dict(m) for y, m in out.items()}


def check_errors(errors: Any, what: str, reasons: set[str]) -> None:
    assert isinstance(errors, list), what
    assert errors, f"{what}: a refusal without errors"
    for e in errors:
        assert isinstance(e.get("field"), str), (what, e)
        assert e["field"], (what, e)
        assert e.get("reason") in reasons, (what, e)
        assert e.get("message"), (what, e)


def check_raw(tally: Tally, response: httpx.Response) -> None:
    """Check the answer to a body that is not a list of events."""
    tally.statuses[response.status_code] += 1
    assert response.status_code < 500, response.text
    body = response.json()
    for result in body.get("results", []):
        assert result["status"] == "rejected", body
        check_errors(result["errors"], f"event {result['index']}", REASONS)
    if "results" not in body:
        assert response.status_code >= 400, body
        check_errors(body.get("errors"), f"HTTP {response.status_code}", HTTP_REASONS)


def record(
    tally: Tally, sent: list[Any], response: httpx.Response, *, batch: bool, dry_run: bool
) -> None:
    """Check one answer and account for what it accepted."""
    tally.statuses[response.status_code] += 1
    assert response.status_code < 500, response.text
    body = response.json()
    if "results" not in body:
        assert response.status_code >= 400, body
        check_errors(body.get("errors"), f"HTTP {response.status_code}", HTTP_REASONS)
        return
    results = body["results"]
    assert len(results) == len(sent), body
    if not batch:
        expected_status = {"accepted": 200 if dry_run else 202, "duplicate": 200}
        status = results[0]["status"]
        assert response.status_code == expected_status.get(status, response.status_code), body
        if status == "rejected":
            assert response.status_code in (403, 422), body
    for result, event in zip(results, sent, strict=True):
        if result["status"] == "rejected":
            tally.rejected += 1
            check_errors(result["errors"], f"event {result['index']}", REASONS)
            tally.reasons[f"{result['errors'][0]['reason']}:{result['errors'][0]['field']}"] += 1
        elif result["status"] == "duplicate":
            tally.duplicates += 1
        elif dry_run:
            assert result["status"] == "accepted", result
            tally.dry_accepted += 1
            tally.dry_years.add(normalised(event)["date"][:4])
        else:
            assert result["status"] == "accepted", result
            tally.accepted += 1
            data = normalised(event)
            tally.activities[data["activity_id"]] = (event["type"], data)


def normalised(event: dict[str, Any]) -> dict[str, Any]:
    """The payload as reporting passes it on (the contract model's JSON: "12" → 12)."""
    data: dict[str, Any] = (
        ACTIVITY_TYPES[event["type"]].model_validate(event["data"]).model_dump(mode="json")
    )
    return data


@dataclass
class Fuzz:
    """The fuzz tree and the strategies that target it."""

    prefix: str
    branches: list[str]
    units: list[str]

    def valid(self) -> st.SearchStrategy[dict[str, Any]]:
        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            kind = draw(st.sampled_from([PD, PD, LESSON, FEEDBACK, SCREENING, POINTS]))
            subject = draw(st.sampled_from(self.branches if kind == PD else self.units))
            data = draw(data_for(kind))
            data["activity_id"] = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
            if draw(st.booleans()):
                data["revision"] = draw(st.integers(min_value=1, max_value=5))
            event: dict[str, Any] = {
                "specversion": "1.0",
                "id": uuid.uuid4().hex,
                "source": draw(st.sampled_from(["/fuzz", "urn:fuzz:平台", "/fuzz/" + "x" * 480])),
                "type": kind,
                "subject": subject,
                "data": data,
            }
            if draw(st.booleans()):
                at = draw(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(
                    TODAY.year, TODAY.month, TODAY.day), timezones=st.timezones()))  # fmt: skip
                event["time"] = at.isoformat()
            return event

        return build()

    def batches(self) -> st.SearchStrategy[list[Any]]:
        @st.composite
        def build(draw: st.DrawFn) -> list[Any]:
            events = draw(st.lists(self.valid(), min_size=1, max_size=4))
            out: list[Any] = []
            for original in events:
                shape = draw(st.sampled_from(["plain", "mutated", "mutated", "corrected", "twice"]))
                ev = draw(mutated(original, self.units)) if shape == "mutated" else original
                out.append(ev)
                if shape == "corrected":
                    fix = copy.deepcopy(ev)
                    fix["id"] = uuid.uuid4().hex
                    fix["data"]["revision"] = fix["data"].get("revision", 1) + draw(
                        st.integers(min_value=-1, max_value=3)
                    )
                    if draw(st.booleans()):
                        fix["data"]["retracted"] = True
                    else:
                        fix["data"].update(draw(data_for(ev["type"])))
                    out.append(fix)
                elif shape == "twice":
                    out.append(ev)
            if draw(st.integers(min_value=0, max_value=40)) == 17:  # now and then
                out.append({**out[0], "id": uuid.uuid4().hex, "pad": "汇" * 30_000})  # > 64 KiB
            return out

        return build()


def encode(body: Any) -> bytes:
    """JSON as a client would send it (big integers included, which orjson cannot write)."""
    return json.dumps(body, ensure_ascii=False).encode()


RAW_BODIES: list[tuple[str, bytes]] = [
    ("application/json", b"{not json"),
    ("application/json", b""),
    ("application/json", b"5"),
    ("application/json", b"null"),
    ("application/json", b'"an event"'),
    ("application/json", b"[]"),
    ("application/json", b"[1, null, []]"),
    ("application/json", b'{"specversion": NaN}'),
    ("application/json", b'{"a": "\\ud800"}'),
    ("application/json", b"\xff\xfe{}"),
    ("application/cloudevents-batch+json", b"{}"),
    ("text/plain", b"{}"),
    ("", b"{}"),
    ("application/x-www-form-urlencoded", b"id=1&type=x"),
]


async def test_fuzzing_post_events_finds_no_500_and_loses_nothing(stack: Any) -> None:
    prefix = f"fz{uuid.uuid4().hex[:6]}"
    tree = build_city(prefix, counties=1, townships_per_county=2, branches_per_township=4)
    fuzz = Fuzz(
        prefix,
        branches=[u["id"] for u in tree if u["level"] == "branch"],
        units=[u["id"] for u in tree],
    )
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        r = await client.put(f"{rep}/v1/orgunits", json=tree)
        assert r.status_code == 200, r.text
    tally = Tally(prefix)

    def run_fuzz() -> None:
        with httpx.Client(base_url=rep, headers=headers, timeout=30) as http:

            def post(body: Any, *, dry_run: bool, content_type: str) -> httpx.Response:
                raw = body if isinstance(body, bytes) else encode(body)
                params = {"dry_run": "true"} if dry_run else {}
                return http.post(
                    "/v1/events",
                    content=raw,
                    params=params,
                    headers={"content-type": content_type} if content_type else {},
                )

            for content_type, raw in RAW_BODIES:
                response = post(raw, dry_run=False, content_type=content_type)
                check_raw(tally, response)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                # the same examples every run, so the suite is stable; HUIBAO_FUZZ_RANDOM=1
                # (see `make fuzz`) explores new ones
                derandomize=not os.environ.get("HUIBAO_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(events=fuzz.batches(), single=st.booleans(), dry_run=st.integers(0, 9))
            def one_request(events: list[Any], single: bool, dry_run: int) -> None:
                dry = dry_run == 0
                if single:
                    for event in events:
                        ct = "application/cloudevents+json"
                        record(tally, [event], post(event, dry_run=dry, content_type=ct),
                               batch=False, dry_run=dry)  # fmt: skip
                else:
                    ct = "application/cloudevents-batch+json"
                    record(tally, events, post(events, dry_run=dry, content_type=ct),
                           batch=True, dry_run=dry)  # fmt: skip

            one_request()

    await asyncio.to_thread(run_fuzz)
    assert tally.accepted >= 20, f"the fuzz accepted too little to prove anything: {tally}"
    assert tally.rejected >= 30, f"the fuzz refused too little to prove anything: {tally}"
    expected = expected_by_year(tally)
    print(
        f"fuzz: {tally.accepted} accepted, {tally.dry_accepted} accepted in dry runs, "
        f"{tally.duplicates} duplicates, {tally.rejected} rejected; "
        f"HTTP statuses {dict(tally.statuses)}; first reasons {dict(tally.reasons)}; "
        f"years {sorted(expected)}"
    )

    async with httpx.AsyncClient(headers=headers, timeout=30) as client:

        async def year_matches(year: str) -> dict[str, Any] | None:
            r = await client.get(f"{roll}/v1/nodes/{prefix}/summary", params={"period": year})
            assert r.status_code == 200, r.text
            metrics: dict[str, Any] = r.json()["metrics"]
            got = {k: metrics.get(k) or 0 for k in METRICS}
            return metrics if got == expected[year] else None

        for year in sorted(expected):
            try:
                await wait_until(functools.partial(year_matches, year), timeout=30, interval=0.5)
            except AssertionError:
                r = await client.get(f"{roll}/v1/nodes/{prefix}/summary", params={"period": year})
                got = {k: r.json()["metrics"].get(k) for k in METRICS}
                raise AssertionError(f"{year}: accepted {expected[year]}, rollup {got}") from None
