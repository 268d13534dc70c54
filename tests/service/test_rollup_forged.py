"""Records on `accepted` that reporting never wrote (issue 12.6): the rollup in-process.

A record of a unit the caught-up tree does not know is refused as `unknown_unit` after the
grace time instead of holding its partition for ever; one that fails the contract models
is refused at once. Neither reaches an aggregate, each is sent to the reject topic once,
and the records after them are applied.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from tests.service.rollup_support import Harness, accepted
from tests.support.topics import tap
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_rollup.entrypoints import kafka as kafka_entrypoint
from huibao_stack.infra import Infrastructure

pytestmark = [pytest.mark.stack]

LESSON = "huibao.lesson.delivered.v1"


def lesson(activity: str, audience: int) -> dict[str, object]:
    return {"activity_id": activity, "date": "2026-06-10", "speaker_role": "expert",
            "topic": "t", "audience": audience}  # fmt: skip


async def test_forged_records_are_refused_and_never_stall_the_partition(
    infra: Infrastructure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_entrypoint, "UNKNOWN_UNIT_GRACE_SECONDS", 0.5)
    h = Harness(infra, f"forged-{uuid.uuid4().hex[:6]}")
    await h.setup(partitions=1)
    rejected_topic = f"{h.accepted_topic}.rejected"
    try:
        city = build_city("fz", counties=1, townships_per_county=1, branches_per_township=1)
        await h.tree(city)
        ghost = accepted(LESSON, "fz.ghost", lesson("l-ghost", 500))
        negative = accepted(LESSON, "fz.c1.t1.b1", lesson("l-neg", -999_712))
        await h.events([accepted(LESSON, "fz.c1.t1.b1", lesson("l-1", 3)), ghost, negative])
        await h.events([accepted(LESSON, "fz.c1.t1", lesson("l-2", 4))])
        async with (
            tap(infra.bootstrap_servers, rejected_topic) as rejected,
            h.replica(rejected_topic=rejected_topic) as client,
        ):
            metrics = await client.wait_for("fz", "2026-06", {"lesson.audience": 7})
            assert metrics["lesson.delivered"] == 2, metrics

            await wait_until(lambda: len(rejected) >= 2, timeout=30, message="2 rejects")
            by_activity = {orjson.loads(r.value)["data"]["activity_id"]: dict(r.headers)
                           for r in rejected}  # fmt: skip
            reasons = {a: m["huibao_reason"].decode() for a, m in by_activity.items()}
            assert reasons == {"l-ghost": "unknown_unit", "l-neg": "invalid_field"}, reasons
            assert all(m["huibao_channel"] == b"rollup" for m in by_activity.values())
            ghost_errors = orjson.loads(by_activity["l-ghost"]["huibao_errors"])
            assert ghost_errors[0]["field"] == "subject", ghost_errors
            neg_errors = orjson.loads(by_activity["l-neg"]["huibao_errors"])
            assert neg_errors[0]["field"] == "data.audience", neg_errors
            # the partition moved on: a record after them is applied, none is re-sent
            await h.events([accepted(LESSON, "fz.c1.t1", lesson("l-3", 5))])
            metrics = await client.wait_for("fz", "2026-06", {"lesson.audience": 12})
            assert metrics["lesson.delivered"] == 3, metrics
            await asyncio.sleep(0.5)
            assert len(rejected) == 2, [r.value for r in rejected]
    finally:
        await h.close()
