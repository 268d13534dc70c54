"""End to end: a tree and events in through reporting (HTTP and Kafka), numbers out of the rollup.

Runs against the three services as separate processes on the embedded broker and PostgreSQL,
through `huibao-client` (HTTP and its Kafka publisher), as an integrator would.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.support.events import client_for, cloudevent
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_client import AsyncHuibaoClient
from huibao_client.kafka import KafkaPublisher

pytestmark = [pytest.mark.stack]

PD = "huibao.party_day.held.v1"
LESSON = "huibao.lesson.delivered.v1"
TRAINING = "huibao.training.held.v1"


def party_day(activity: str, members: int, attendees: int, revision: int = 1) -> dict[str, Any]:
    return {
        "activity_id": activity,
        "revision": revision,
        "date": "2026-07-26",
        "members": members,
        "attendees": attendees,
        "theme": "学习党章",
    }


async def summary(huibao: AsyncHuibaoClient, node: str, period: str) -> dict[str, Any]:
    return dict((await huibao.summary(node, period)).metrics)


async def test_http_and_kafka_events_roll_up_exactly_to_every_level(stack: Any) -> None:
    p = "e2e1"
    units = build_city(
        p, counties=2, townships_per_county=2, branches_per_township=2, members=lambda i: 20 + i
    )
    branches = [u for u in units if u["level"] == "branch"]
    members = {b["id"]: b["members"] for b in branches}
    async with client_for(stack) as huibao:
        assert (await huibao.import_orgunits(units)).created == len(units)

        b1, b2, b3, b4 = (b["id"] for b in branches[:4])
        on_time = "2026-07-26T18:00:00+08:00"
        late = "2026-07-31T09:00:00+08:00"
        http_events = [
            cloudevent(PD, b1, party_day(f"{p}-pd-b1", members[b1], 18), id="h1", time=on_time),
            cloudevent(PD, b2, party_day(f"{p}-pd-b2", members[b2], 15), id="h2", time=late),
            # the same message again: a duplicate
            cloudevent(PD, b1, party_day(f"{p}-pd-b1", members[b1], 18), id="h1", time=on_time),
            # a correction of b2's report: 16 attendees instead of 15
            cloudevent(
                PD, b2, party_day(f"{p}-pd-b2", members[b2], 16, revision=2), id="h3", time=late
            ),
            cloudevent(
                LESSON,
                b1,
                {
                    "activity_id": f"{p}-ls-1",
                    "date": "2026-07-10",
                    "speaker_role": "branch_secretary",
                    "topic": "我来讲党课",
                    "audience": 30,
                },
                id="h4",
                time=on_time,
            ),
            cloudevent(
                TRAINING,
                units[3]["id"],
                {
                    "activity_id": f"{p}-tr-1",
                    "date": "2026-07-12",
                    "target_group": "secretaries",
                    "participants": 40,
                    "hours": 8,
                },
                id="h5",
                time=on_time,
            ),
        ]
        answer = await huibao.send_batch(http_events)
        statuses = [x.status for x in answer.results]
        assert statuses == ["accepted", "accepted", "duplicate", "accepted", "accepted", "accepted"]

        bad = cloudevent(PD, b3, party_day(f"{p}-pd-bad", members[b3], members[b3] + 1), id="h6")
        refused = await huibao.send_event(bad)  # answered 422 with the per-event result
        assert refused.status == "rejected"
        assert any(e.field.startswith("data") for e in refused.errors)

    async with KafkaPublisher(stack.infra.bootstrap_servers) as publisher:
        ev = cloudevent(
            PD, b3, party_day(f"{p}-pd-b3", members[b3], 12), id="k1", source="/gw", time=on_time
        )
        await publisher.publish_many([ev, ev])  # structured mode, the second a duplicate
        ev4 = cloudevent(
            PD, b4, party_day(f"{p}-pd-b4", members[b4], 10), id="k2", source="/gw", time=on_time
        )
        await publisher.publish(ev4, binary=True)

    township = units[3]["id"]  # first township (city, c1, c2?, ...) — resolved below
    by_id = {u["id"]: u for u in units}
    t1 = by_id[b1]["parent"]
    c1 = by_id[t1]["parent"]
    async with client_for(stack) as huibao:

        async def city_held() -> bool:
            m = await summary(huibao, p, "2026-07")
            return bool(m["party_day.held"] == 4)

        await wait_until(city_held, timeout=30)

        city = await summary(huibao, p, "2026-07")
        assert city["party_day.expected"] == 8
        assert city["party_day.held"] == 4
        assert city["party_day.on_time"] == 3
        assert city["party_day.late"] == 1
        assert city["party_day.attendees"] == 18 + 16 + 12 + 10
        want_rate = (18 + 16 + 12 + 10) / sum(members[b] for b in (b1, b2, b3, b4))
        assert city["party_day.attendance_rate"] == pytest.approx(want_rate)
        assert city["lesson.delivered"] == 1
        assert city["lesson.audience"] == 30
        assert city["training.participants"] == 40
        assert city["orgunits.branches"] == 8
        assert city["members.total"] == sum(members.values())

        # the same facts counted in the quarter and the year, not in another month
        for period in ("2026-Q3", "2026"):
            assert (await summary(huibao, p, period))["party_day.held"] == 4
        assert (await summary(huibao, p, "2026-08"))["party_day.held"] == 0

        branch = await summary(huibao, b2, "2026-07")
        assert (
            branch["party_day.held"],
            branch["party_day.late"],
            branch["party_day.attendees"],
        ) == (1, 1, 16)

        town = await summary(huibao, t1, "2026-07")
        assert town["party_day.expected"] == 2
        assert town["party_day.held"] == 2
        assert town["lesson.delivered"] == 1
        county = await summary(huibao, c1, "2026-07")
        assert county["party_day.held"] == sum(
            1 for b in (b1, b2, b3, b4) if by_id[by_id[b]["parent"]]["parent"] == c1
        )
        assert township  # the training's township is under the city
        comp = await huibao.completeness(p, "2026-07")
        assert (comp.expected, comp.held, comp.on_time, comp.late, comp.missing) == (8, 4, 3, 1, 4)
        missing = {u.id for u in comp.missing_units.items}
        assert missing == {b["id"] for b in branches} - {b1, b2, b3, b4}
        assert [u.id for u in comp.late_units.items] == [b2]


async def test_every_service_is_healthy_and_exports_metrics(stack: Any) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for name, url in stack.urls.items():
            for path in ("/health/live", "/health/ready"):
                r = await client.get(url + path)
                assert r.status_code == 200, (name, path, r.text)
            r = await client.get(url + "/metrics")
            assert r.status_code == 200
            assert "huibao_http_request_duration_seconds" in r.text, name


async def test_a_wrong_token_gets_401_and_no_token_gets_401(stack: Any) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(
            f"{stack.urls['rollup']}/v1/nodes/e2e1/summary", params={"period": "2026-07"}
        )
        assert r.status_code == 401
        r = await client.post(
            f"{stack.urls['reporting']}/v1/events",
            json=[],
            headers={"Authorization": "Bearer nope"},
        )
        assert r.status_code == 401
