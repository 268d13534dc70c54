"""huibao-client against the running stack (reporting, rollup, scheduler as processes).

The async and the sync client each import a tree, send a batch with a good and a bad event,
a dry run and a duplicate, and read the rollup; the errors arrive typed with their error
body; `KafkaPublisher` publishes to `huibao.activity.submitted` in both modes and the events
show up in the rollup.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.events import client_for
from tests.support.topics import wait_for_records
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_client import (
    AuthenticationError,
    EventStatus,
    HuibaoClient,
    NotFoundError,
    UnprocessableError,
    new_event,
)
from huibao_client.kafka import KafkaPublisher
from huibao_client.rejects import rejected_record
from huibao_contracts import topics
from huibao_contracts.activities import LessonDelivered, PartyDayHeld, SpeakerRole
from huibao_contracts.envelope import CloudEvent
from huibao_contracts.orgunits import OrgUnit
from huibao_contracts.periods import Period
from huibao_contracts.rejects import Reason
from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

MONTH = Period.parse("2026-10")
SOURCE = "/platforms/client-tests"
TZ = dt.timezone(dt.timedelta(hours=8))
ON_TIME = dt.datetime(2026, 10, 26, 18, tzinfo=TZ)


def party_day(branch: str, attendees: int, members: int = 30) -> CloudEvent:
    payload = PartyDayHeld(
        activity_id=f"pd-{branch}-{MONTH}",
        date=dt.date(2026, 10, 26),
        members=members,
        attendees=attendees,
        theme="学习党章",
    )
    return new_event(payload, subject=branch, source=SOURCE, id=uuid.uuid4().hex, time=ON_TIME)


def too_many(branch: str) -> CloudEvent:
    """A Party Day with more attendees than members: the envelope holds, the payload not."""
    good = party_day(branch, attendees=30)
    return good.model_copy(update={"data": {**good.data, "attendees": 31}})


def tree(prefix: str, branches: int) -> tuple[list[dict[str, Any]], str, list[str]]:
    units = build_city(prefix, counties=1, townships_per_county=1, branches_per_township=branches)
    return units, f"{prefix}.c1.t1", [u["id"] for u in units if u["level"] == "branch"]


async def test_async_client_round_trip(stack: EmbeddedStack) -> None:
    units, township, b = tree(f"cla{uuid.uuid4().hex[:6]}", branches=3)
    async with client_for(stack) as huibao:
        imported = await huibao.import_orgunits(OrgUnit.model_validate(u) for u in units)
        assert (imported.created, imported.updated, imported.unchanged) == (len(units), 0, 0)
        assert (await huibao.import_orgunits(units)).unchanged == len(units)

        good, bad = party_day(b[0], attendees=20), too_many(b[1])
        dry = await huibao.send_batch([good], dry_run=True)
        assert [r.status for r in dry.results] == [EventStatus.ACCEPTED]

        # the dry run stored nothing: the same event is accepted for real, not a duplicate
        batch = await huibao.send_batch([good, bad])
        assert [r.status for r in batch.results] == [EventStatus.ACCEPTED, EventStatus.REJECTED]
        assert (batch.accepted, batch.duplicates, batch.rejected) == (1, 0, 1)
        (error,) = batch.refused[0].errors
        assert (error.field, error.reason) == ("data.attendees", Reason.INVALID_FIELD)
        assert error.message == "attendees cannot exceed members"

        duplicate = await huibao.send_event(good)
        assert duplicate.status is EventStatus.DUPLICATE
        unknown = await huibao.send_event(party_day(f"{township}.b99", attendees=1))
        assert unknown.status is EventStatus.REJECTED
        assert unknown.reasons == (Reason.UNKNOWN_UNIT,)

        async def held() -> Any:
            s = await huibao.summary(township, MONTH)
            return s if s.metrics["party_day.held"] == 1 else None

        summary = await wait_until(held, timeout=30)
        assert summary.node.id == township
        assert summary.metrics["party_day.attendees"] == 20
        assert summary.metrics["party_day.expected"] == 3

        with pytest.raises(UnprocessableError) as bad_period:
            await huibao.summary(township, "2026-13")
        assert bad_period.value.errors[0].field == "period"
        with pytest.raises(NotFoundError) as no_feedback:
            await huibao.feedback(township, "2030-Q1")
        assert no_feedback.value.reasons == ("not_found",)
        with pytest.raises(UnprocessableError) as wrong_kind:  # a Party Day cycle is monthly
            await huibao.run_cycle("party_day", "2026-Q4")
        assert wrong_kind.value.reasons == ("invalid_period",)
    async with client_for(stack, token="not-a-token") as stranger:
        with pytest.raises(AuthenticationError) as denied:
            await stranger.send_event(good)
        assert denied.value.status == 401


def sync_round_trip(stack: EmbeddedStack, prefix: str) -> dict[str, Any]:
    """The sync client's part, run in a thread (it blocks)."""
    units, township, b = tree(prefix, branches=2)
    csv = "id,name,level,parent,members\n" + "".join(
        f"{u['id']},{u['name']},{u['level']},{u.get('parent', '')},{u.get('members', '')}\n"
        for u in units
    )
    lesson = new_event(
        LessonDelivered(
            activity_id=f"ls-{prefix}",
            date=dt.date(2026, 10, 12),
            speaker_role=SpeakerRole.EXPERT,
            topic="我来讲党课",
            audience=45,
        ),
        subject=township,
        source=SOURCE,
        id=uuid.uuid4().hex,
    )
    urls = stack.urls
    with HuibaoClient(
        urls["reporting"],
        rollup_url=urls["rollup"],
        scheduler_url=urls["scheduler"],
        token=stack.admin_token,
    ) as huibao:
        out: dict[str, Any] = {"imported": huibao.import_orgunits_csv(csv), "units": len(units)}
        out["dry"] = huibao.send_event(lesson, dry_run=True)
        out["batch"] = huibao.send_batch([lesson, too_many(b[0])])
        out["again"] = huibao.send_event(lesson)
        out["whoami"] = huibao.whoami()
        out["cycles"] = huibao.cycles()
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        while dt.datetime.now(dt.UTC) < deadline:  # until the rollup has the tree and lesson
            try:
                out["summary"] = huibao.summary(township, MONTH)
            except NotFoundError:
                continue
            finally:
                time.sleep(0.1)
            if out["summary"].metrics["lesson.delivered"] == 1:
                break
        out["children"] = huibao.children(prefix, MONTH, metric="lesson.delivered")
        out["series"] = huibao.series(township, "lesson.audience", "2026-09", MONTH)
        out["completeness"] = huibao.completeness(township, MONTH)
    return out


async def test_sync_client_round_trip(stack: EmbeddedStack) -> None:
    prefix = f"cls{uuid.uuid4().hex[:6]}"
    out = await asyncio.to_thread(sync_round_trip, stack, prefix)
    assert out["imported"].created == out["units"]
    assert out["dry"].status is EventStatus.ACCEPTED
    assert [r.status for r in out["batch"].results] == [
        EventStatus.ACCEPTED,
        EventStatus.REJECTED,
    ]
    assert out["batch"].refused[0].errors[0].field == "data.attendees"
    assert out["again"].status is EventStatus.DUPLICATE
    assert out["whoami"].unit is None  # the admin token is bound to the root
    assert isinstance(out["cycles"].now, dt.datetime)
    assert out["summary"].metrics["lesson.delivered"] == 1
    assert out["summary"].metrics["lesson.audience"] == 45
    assert [(c.id, c.value, c.rank) for c in out["children"].items] == [(f"{prefix}.c1", 1, 1)]
    assert [(p.period, p.value) for p in out["series"].points] == [("2026-09", 0), ("2026-10", 45)]
    assert out["completeness"].expected == 2
    assert out["completeness"].held == 0  # the Party Day was refused (attendees > members)
    assert {u.id for u in out["completeness"].missing_units.items} == {
        f"{prefix}.c1.t1.b1",
        f"{prefix}.c1.t1.b2",
    }


async def test_kafka_publisher_reaches_the_rollup(stack: EmbeddedStack) -> None:
    units, township, b = tree(f"clk{uuid.uuid4().hex[:6]}", branches=2)
    async with client_for(stack) as huibao:
        await huibao.import_orgunits(units)
        async with KafkaPublisher(stack.infra.bootstrap_servers) as publisher:
            structured = await publisher.publish(party_day(b[0], attendees=21))
            binary = await publisher.publish_many(
                [party_day(b[1], attendees=22), too_many(b[1])], binary=True
            )
        assert structured[1] >= 0
        assert len(binary) == 2

        async def both() -> Any:
            s = await huibao.summary(township, MONTH)
            return s if s.metrics["party_day.held"] == 2 else None

        summary = await wait_until(both, timeout=30)
        assert summary.metrics["party_day.attendees"] == 43
        assert summary.metrics["party_day.on_time"] == 2  # `time` travelled in both modes

    # the refused one is on huibao.activity.rejected, read with the client's reader
    (record,) = await wait_for_records(
        stack.infra.bootstrap_servers, topics.ACTIVITY_REJECTED, lambda r: r.key == b[1].encode()
    )
    refused = rejected_record(record.key, record.value, record.headers)
    assert (refused.reason, refused.channel) == ("invalid_field", "kafka")
    assert [(e.field, e.reason) for e in refused.errors] == [
        ("data.attendees", Reason.INVALID_FIELD)
    ]
    assert orjson.loads(refused.value)["attendees"] == 31  # the original bytes (binary: data)
    assert dict(refused.headers)["ce_subject"] == b[1].encode()


DOC = Path(__file__).resolve().parents[2] / "docs" / "integrators.md"
EXAMPLE = re.compile(
    r"^```python example=(?P<name>\w+)\n(?P<code>.*?)^```\n(?:\nprints\n\n```text\n"
    r"(?P<prints>.*?)^```$)?",
    re.M | re.S,
)


async def test_the_guide_s_client_examples_run_as_written(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    """docs/integrators.md, "The Python client": each example runs, prints what the guide
    says it prints, and the event the Kafka example publishes reaches the rollup."""
    found = [m.groupdict() for m in EXAMPLE.finditer(DOC.read_text("utf-8"))]
    assert [f["name"] for f in found] == ["client_http", "client_kafka"]
    assert found[0]["prints"], "the HTTP example's output is shown in the guide"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HUIBAO_URL": stack.urls["reporting"],
        "HUIBAO_ROLLUP_URL": stack.urls["rollup"],
        "HUIBAO_TOKEN": stack.admin_token,
        "KAFKA_BOOTSTRAP_SERVERS": stack.infra.bootstrap_servers,
    }
    outputs = {}
    for example in found:
        path = tmp_path / f"{example['name']}.py"
        path.write_text(example["code"], encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(path), env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, f"{example['name']}:\n{out.decode()}\n{err.decode()}"
        outputs[example["name"]] = out.decode()
    assert outputs["client_http"] == found[0]["prints"]
    assert outputs["client_kafka"].startswith("published to partition ")

    async with client_for(stack) as huibao:

        async def lesson() -> Any:
            s = await huibao.summary("py-t1", MONTH)
            return s if s.metrics["lesson.delivered"] == 1 else None

        summary = await wait_until(lesson, timeout=30)
    assert summary.metrics["lesson.audience"] == 30
    assert summary.metrics["party_day.held"] == 1  # the refused and the repeated one not
