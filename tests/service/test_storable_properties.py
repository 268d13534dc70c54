"""Property tests: every out-of-range value of every typed field is refused by name, never
stalls anything (issue 13, point 1; issue 12, point 6).

The bad values are derived from the contract models themselves: for every field of every
activity payload, of the envelope and of the org unit, hypothesis draws a value outside
what the field (or PostgreSQL) can hold — numbers beyond their bounds, beyond int4 and
bigint, non-integral; dates and instants outside years 1000–9998 or offsets of ±16:00 and
more; text with NUL, too long or empty; unknown enum values; wrong JSON types. One example
is one batch holding, for every field, an event whose only fault is that field, with valid
events between them. Against the running stack (real PostgreSQL and broker):

- over HTTP every bad event is refused naming its field (or `unstorable`), every good one
  in the same batch accepted, no answer is a 5xx;
- the same records on `huibao.activity.submitted` each land on the reject topic with
  their reason while every good one is accepted (the partitions keep moving);
- the same bad payloads written by hand on `huibao.activity.accepted` are refused by the
  rollup (reject topic, channel `rollup`) and change no figure;
- every bad org unit is refused with 422 naming its field; a good import still succeeds.

The default suite runs a few seeded examples; `make fuzz` (HUIBAO_FUZZ_RANDOM=1,
HUIBAO_FUZZ_EXAMPLES) runs more, with new seeds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import os
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import annotated_types
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo
from tests.support.topics import tap
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts.activities import ACTIVITY_TYPES, PARTY_DAY_TYPE
from huibao_contracts.orgunits import OrgUnit
from huibao_contracts.storable import MAX_YEAR, MIN_YEAR

pytestmark = [pytest.mark.stack]

RANDOM = bool(os.environ.get("HUIBAO_FUZZ_RANDOM"))
EXAMPLES = int(os.environ.get("HUIBAO_FUZZ_EXAMPLES", "4")) if RANDOM else 4
REFUSALS = {"invalid_field", "invalid_envelope", "unknown_type", "unstorable"}
DATE = "2026-05-20"
LESSON, FEEDBACK = "huibao.lesson.delivered.v1", "huibao.feedback.collected.v1"
INT4, BIGINT = 2**31, 2**63
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not RANDOM,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID: dict[str, dict[str, Any]] = {
    "huibao.party_day.held.v1": {"members": 30, "attendees": 20, "theme": "t", "agenda": [],
                                 "lesson": "l", "film": "f", "practice": "p"},
    "huibao.lesson.delivered.v1": {"speaker_role": "expert", "topic": "t", "format": "online",
                                   "audience": 5, "duration_minutes": 40},
    "huibao.training.held.v1": {"target_group": "secretaries", "participants": 9, "hours": 2},
    "huibao.outreach.held.v1": {"lecturer": "l", "station": "s", "audience": 9, "expected": 9,
                                "present": 9, "responses": 3, "satisfied": 2, "good": 1},
    "huibao.volunteer.served.v1": {"volunteers": 3, "served": 30, "hours": 6},
    "huibao.feedback.collected.v1": {"items": 4},
    "huibao.feedback.resolved.v1": {"items": 3, "satisfaction": 0.5},
    "huibao.screening.held.v1": {"film": "f", "audience": 7},
    "huibao.points.awarded.v1": {"member": "m_0123456789", "points": 5, "reason": "r"},
}  # fmt: skip
"""Valid payloads of every type (besides `activity_id`, `revision`, `date`, `retracted`)."""
assert set(VALID) == set(ACTIVITY_TYPES)


# --- bad values, from the field definitions ----------------------------------------------


def _bound(info: FieldInfo, kind: type) -> Any:
    names = ("ge", "le", "min_length", "max_length")
    found = (getattr(m, f) for m in info.metadata if isinstance(m, kind) for f in names
             if hasattr(m, f))  # fmt: skip
    return next(found, None)


def _base(annotation: Any) -> tuple[Any, bool]:
    """The field's type without `None`, and whether None is allowed."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return _base(rest[0])[0], True
    if typing.get_origin(annotation) is typing.Annotated:
        return _base(args[0])
    return annotation, False


def bad_numbers(info: FieldInfo, integral: bool) -> st.SearchStrategy[Any]:
    ge, le = _bound(info, annotated_types.Ge), _bound(info, annotated_types.Le)
    out: list[st.SearchStrategy[Any]] = [st.sampled_from(["x", [1], {"n": 1}])]
    if integral:
        out.append(st.sampled_from([INT4, -INT4 - 1, BIGINT, -BIGINT - 1, 10**30, 2.5]))
        if ge is not None:
            out.append(st.integers(max_value=ge - 1, min_value=ge - 10**12))
        if le is not None:
            out.append(st.integers(min_value=le + 1, max_value=le + 10**12))
    else:
        if ge is not None:
            out.append(
                st.floats(
                    max_value=ge - 0.001, min_value=-1e300, allow_nan=False, allow_infinity=False
                )
            )
        if le is not None:
            out.append(
                st.floats(
                    min_value=le + 0.001, max_value=1e300, allow_nan=False, allow_infinity=False
                )
            )
    return st.one_of(out)


YEARS_OUT = st.one_of(st.integers(1, MIN_YEAR - 1), st.integers(MAX_YEAR + 1, 9999))
BAD_DATES = st.one_of(
    st.builds(dt.date, YEARS_OUT, st.integers(1, 12), st.integers(1, 28)).map(dt.date.isoformat),
    st.sampled_from(["0000-01-01", "2026-02-30", "2026-13-01", "26/05/2026", "", "10000-01-01"]),
)
BAD_OFFSETS = st.builds(
    lambda sign, h, m: f"2026-05-20T10:00:00{sign}{h:02d}:{m:02d}",
    st.sampled_from("+-"),
    st.integers(16, 23),
    st.integers(0, 59),
)
BAD_INSTANTS = st.one_of(
    BAD_OFFSETS,
    st.builds(lambda y: f"{y:04d}-06-01T00:00:00+08:00", YEARS_OUT),
    st.sampled_from(["2026-05-20T10:00:00", "yesterday", "2026-05-20T25:00:00Z", [0]]),
)


def bad_text(info: FieldInfo) -> st.SearchStrategy[Any]:
    lo, hi = _bound(info, annotated_types.MinLen), _bound(info, annotated_types.MaxLen)
    out: list[st.SearchStrategy[Any]] = [
        st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=4), st.text(max_size=4)),
        st.sampled_from([12, ["t"]]),
    ]
    if lo:
        out.append(st.just(""))
    if hi:
        out.append(st.text(alphabet="汇报x", min_size=hi + 1, max_size=hi + 5))
    if info.metadata and any(getattr(m, "pattern", None) for m in info.metadata):
        out.append(st.sampled_from(["has space", "-lead", "点"]))
    return st.one_of(out)


def bad_value(info: FieldInfo) -> st.SearchStrategy[Any]:
    """Values outside what the field (or the store behind it) accepts."""
    base, _ = _base(info.annotation)
    if base is bool:
        return st.sampled_from(["maybe", 2, [True]])
    if base is int:
        return bad_numbers(info, integral=True)
    if base is float:
        return bad_numbers(info, integral=False)
    if base is dt.date:
        return BAD_DATES
    if isinstance(base, type) and issubclass(base, enum.Enum):
        values = {m.value for m in base}
        return st.text(min_size=1, max_size=8).filter(lambda s: s not in values) | st.just(3)
    if typing.get_origin(base) is tuple:
        item = typing.get_args(base)[0]
        first = next(iter(item)).value
        return st.sampled_from([["nope"], [first] * 21, first, [first, "\x00"]])
    if base is str:
        return bad_text(info)
    raise AssertionError(f"no bad values for {info.annotation}")


ENVELOPE_BAD: dict[str, st.SearchStrategy[Any]] = {
    "time": BAD_INSTANTS,
    "id": st.one_of(st.just(""), st.just("a\x00b"), st.just("i" * 201)),
    "source": st.one_of(st.just(""), st.just("/s\x00"), st.just("s" * 501)),
    "subject": st.sampled_from(["has space", "", "x" * 65, "a\x00", "点"]),
    "specversion": st.sampled_from(["0.3", "2.0", 1]),
    "datacontenttype": st.sampled_from(["text/plain", "application/xml"]),
    "traceparent": st.just("0" * 56),
    "partitionkey": st.one_of(
        st.integers(min_value=INT4, max_value=BIGINT - 1),
        st.integers(min_value=-BIGINT, max_value=-INT4 - 1),
        st.just("k\x00"),
        st.just("k" * 1001),
    ),
}
"""Bad envelope attributes (`partitionkey`: an extension; CloudEvents integers are 32-bit)."""


# --- the cases of one batch ---------------------------------------------------------------


@dataclass
class Case:
    """One event and what must happen to it."""

    event: dict[str, Any]
    field: str | None
    """The field its refusal must name; None for a good event (accepted)."""

    @property
    def id(self) -> str:
        return str(self.event["id"])


@dataclass
class Tally:
    cases: list[Case] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


def event(prefix: str, type_: str, unit: str, data: dict[str, Any], **env: Any) -> dict[str, Any]:
    n = uuid.uuid4().hex[:10]
    payload = {"activity_id": f"{prefix}-{n}", "revision": 1, "date": DATE, "retracted": False,
               **VALID[type_], **data}  # fmt: skip
    return {"specversion": "1.0", "id": f"{prefix}-{n}", "source": "/props", "type": type_,
            "subject": unit, "data": payload, **env}  # fmt: skip


def draw_batch(draw: Callable[..., Any], prefix: str, branch: str, unit: str) -> list[Case]:
    """For every typed field of every payload and of the envelope, one event whose only
    fault is that field; a good event after each type's group."""
    cases: list[Case] = []
    for type_, model in ACTIVITY_TYPES.items():
        subject = branch if type_ == PARTY_DAY_TYPE else unit
        for name, info in model.model_fields.items():
            value = draw(bad_value(info), label=f"{type_}.{name}")
            cases.append(Case(event(prefix, type_, subject, {name: value}), f"data.{name}"))
        good_type = "huibao.lesson.delivered.v1" if type_ == PARTY_DAY_TYPE else type_
        cases.append(Case(event(prefix, good_type, unit, {}), None))
    for name, strategy in ENVELOPE_BAD.items():
        value = draw(strategy, label=name)
        cases.append(
            Case(event(prefix, "huibao.feedback.collected.v1", unit, {}, **{name: value}), name)
        )
    bad_type = draw(st.text(min_size=1, max_size=20).filter(lambda s: s not in ACTIVITY_TYPES))
    cases.append(Case({**event(prefix, "huibao.feedback.collected.v1", unit, {}),
                       "type": bad_type}, "type"))  # fmt: skip
    cases.append(Case(event(prefix, "huibao.screening.held.v1", unit, {}), None))
    return cases


def renamed(event: dict[str, Any], mark: str) -> dict[str, Any]:
    """The event as a new message of a new activity."""
    data = {**event["data"], "activity_id": mark + event["data"]["activity_id"]}
    return {**event, "id": mark + event["id"], "data": data}


def refused_naming(errors: list[dict[str, Any]], name: str) -> bool:
    """True when the errors name the field (or a part of it), or say `unstorable`."""
    return any(
        e["reason"] in REFUSALS
        and (e["field"] == name or e["field"].startswith(name + ".") or e["reason"] == "unstorable")
        for e in errors
    )


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()  # big integers included


def _id_of(value: bytes | None) -> str | None:
    """The CloudEvent id in `value`, or None for a record that is no JSON object (other tests
    leave forged, non-JSON records on the shared topics)."""
    if value is None:
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        try:
            doc = json.loads(value)  # NaN and friends, which orjson refuses
        except ValueError:
            return None
    return doc.get("id") if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None


async def test_out_of_range_values_are_refused_by_field_over_http_and_kafka(stack: Any) -> None:
    prefix = f"pr{uuid.uuid4().hex[:6]}"
    units = build_city(prefix, counties=1, townships_per_county=1, branches_per_township=1)
    branch = next(u["id"] for u in units if u["level"] == "branch")
    township = next(u["id"] for u in units if u["level"] == "township")
    rep, roll = stack.urls["reporting"], stack.urls["rollup"]
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(base_url=rep, headers=headers, timeout=60) as client:
        assert (await client.put("/v1/orgunits", json=units)).status_code == 200
    tally = Tally()

    def run_http() -> None:
        with httpx.Client(base_url=rep, headers=headers, timeout=60) as http:

            @SETTINGS
            @given(st.data())
            def one_batch(data: st.DataObject) -> None:
                cases = draw_batch(data.draw, prefix, branch, township)
                r = http.post(
                    "/v1/events",
                    content=encode([c.event for c in cases]),
                    headers={"content-type": "application/cloudevents-batch+json"},
                )
                tally.statuses[r.status_code] = tally.statuses.get(r.status_code, 0) + 1
                assert r.status_code == 200, r.text
                for case, result in zip(cases, r.json()["results"], strict=True):
                    if case.field is None:
                        assert result["status"] == "accepted", (case.event, result)
                    else:
                        assert result["status"] == "rejected", (case.field, case.event, result)
                        assert refused_naming(result["errors"], case.field), (case.field, result)
                tally.cases.extend(cases)

            one_batch()

    await asyncio.to_thread(run_http)
    bad = [c for c in tally.cases if c.field]
    assert len(bad) >= EXAMPLES * 60, len(bad)  # every field, every example

    # the same records through Kafka: each refused with its reason, the good ones accepted
    # (good ones get new ids, else they are duplicates or stale revisions; every record
    # carries its case tag)
    bootstrap = stack.infra.bootstrap_servers
    again = [c if c.field else Case(renamed(c.event, "k"), None) for c in tally.cases]
    found = await produce_and_collect(
        bootstrap, "huibao.activity.submitted", again, branch, ("huibao.activity.accepted",
        "huibao.activity.rejected"), tagged=lambda r: r.topic.endswith("rejected"))  # fmt: skip
    for i, case in enumerate(again):
        record = found[i]
        if case.field is None:
            assert record.topic == "huibao.activity.accepted", case.event
            continue
        assert record.topic == "huibao.activity.rejected", case.event
        meta = {k: v.decode() for k, v in record.headers}
        assert meta["huibao_channel"] == "kafka"
        assert refused_naming(orjson.loads(meta["huibao_errors"]), case.field), (case.field, meta)

    # the bad payloads forged onto `accepted`: the rollup refuses them, no figure changes,
    # and a valid record after them (same key, so the same partition) is applied
    lessons = 2 * sum(1 for c in tally.cases if c.field is None and c.event["type"] == LESSON)
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        before = await figures_when(
            http, roll, prefix, "lesson.delivered", lessons, f"{lessons} good lessons applied"
        )
        received = {"huibaoreceived": "2026-05-20T10:00:00+08:00"}
        forged = [Case({**c.event, **received}, c.field) for c in bad]
        valid = {**event(prefix, FEEDBACK, township, {"items": 1}), **received}
        by_rollup = await produce_and_collect(
            bootstrap,
            "huibao.activity.accepted",
            [*forged, Case(valid, None)],
            branch,
            ("huibao.activity.rejected",),
            tagged=lambda r: True,
            expect=len(forged),
        )
        for i in range(len(forged)):
            meta = {k: v.decode() for k, v in by_rollup[i].headers}
            assert meta["huibao_channel"] == "rollup", meta
            assert meta["huibao_reason"] in REFUSALS, meta
            assert orjson.loads(meta["huibao_errors"]), meta
        collected = before.get("feedback.collected") or 0
        after = await figures_when(
            http, roll, prefix, "feedback.collected", collected + 1,
            "the valid record after the forged ones applied",
        )  # fmt: skip
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    # only what the valid record adds to (and the ratio derived from it) changed
    assert changed == {"feedback.collected", "feedback.resolution_rate"}, (before, after)


async def produce_and_collect(
    bootstrap: str,
    topic: str,
    cases: list[Case],
    key: str,
    watch: tuple[str, ...],
    *,
    tagged: Any,
    expect: int | None = None,
) -> dict[int, ConsumerRecord[bytes, bytes]]:
    """Produce every case (header `x-case`: its index) and wait until each shows up on
    `watch`: a record for which `tagged` holds is matched by its tag (a reject record keeps
    the original headers), any other by the event id (an accepted record)."""
    tag = uuid.uuid4().hex[:8]
    ids = {str(c.event.get("id")): i for i, c in enumerate(cases) if c.field is None}
    wanted = len(cases) if expect is None else expect
    async with tap(bootstrap, *watch) as seen:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic,
                    value=encode(c.event),
                    key=key.encode(),
                    headers=[
                        ("content-type", b"application/cloudevents+json"),
                        ("x-case", f"{tag}-{i}".encode()),
                    ],
                )
                for i, c in enumerate(cases)
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

        def arrived() -> dict[int, ConsumerRecord[bytes, bytes]] | None:
            got: dict[int, ConsumerRecord[bytes, bytes]] = {}
            for r in list(seen):
                meta = dict(r.headers)
                mark = (meta.get("x-case") or b"").decode()
                if tagged(r) and mark.startswith(tag + "-"):
                    got[int(mark.rsplit("-", 1)[1])] = r
                elif not tagged(r) and (i := ids.get(_id_of(r.value or b"") or "")) is not None:
                    got[i] = r
            return got if len(got) >= wanted else None

        return await wait_until(arrived, timeout=60, message=f"{wanted} records on {watch}")


async def figures_when(
    http: httpx.AsyncClient, roll: str, node: str, metric: str, value: int, message: str
) -> dict[str, Any]:
    """The node's May figures once `metric` equals `value`."""

    async def check() -> dict[str, Any] | None:
        r = await http.get(f"{roll}/v1/nodes/{node}/summary", params={"period": "2026-05"})
        assert r.status_code == 200, r.text
        got = dict(r.json()["metrics"])
        return got if (got.get(metric) or 0) == value else None

    return dict(await wait_until(check, timeout=60, message=message))


ORGUNIT_BAD = {name: bad_value(info) for name, info in OrgUnit.model_fields.items()}


async def test_out_of_range_org_units_are_refused_by_field(stack: Any) -> None:
    prefix = f"po{uuid.uuid4().hex[:6]}"
    units = build_city(prefix, counties=1, townships_per_county=1, branches_per_township=1)
    branch = next(u for u in units if u["level"] == "branch")
    rep = stack.urls["reporting"]
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    tried: list[str] = []

    def run() -> None:
        with httpx.Client(base_url=rep, headers=headers, timeout=60) as http:
            assert http.put("/v1/orgunits", json=units).status_code == 200

            @SETTINGS
            @given(st.data())
            def every_field(data: st.DataObject) -> None:
                for name, strategy in ORGUNIT_BAD.items():
                    value = data.draw(strategy, label=name)
                    unit = {**branch, name: value}
                    r = http.put(
                        "/v1/orgunits",
                        content=encode([unit]),
                        headers={"content-type": "application/json"},
                    )
                    assert r.status_code == 422, (name, value, r.status_code, r.text)
                    fields = [e["field"] for e in r.json()["errors"]]
                    assert any(f == name or f.endswith("." + name) or f".{name}." in f
                               for f in fields), (name, value, fields)  # fmt: skip
                    tried.append(name)
                good = {**branch, "name": f"支部 {uuid.uuid4().hex[:4]}", "members": 12}
                assert http.put("/v1/orgunits", json=[good]).status_code == 200

            every_field()

    await asyncio.to_thread(run)
    assert set(tried) == set(OrgUnit.model_fields)
