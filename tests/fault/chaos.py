"""The chaos run: SIGKILL every process of the platform, at seeded random moments, under a
continuous stream over HTTP and Kafka, and prove that nothing was lost or counted twice.

A throwaway `EmbeddedStack` (reporting, rollup and scheduler as processes, embedded
PostgreSQL and Tansu, the scheduler on a manual clock) gets a tree, then a seeded stream
(`model.Stream`: new activities, exact duplicates, corrections, retractions) plus refused
records (attendees above members). Each activity travels on one channel, chosen from its
id: HTTP batches (retried, as an integrator would, until reporting answers) or the
`submitted` topic. Meanwhile, round after round, the harness SIGKILLs and restarts:

- `reporting_intake`: reporting while one of its intake transactions is open (seen in
  `pg_stat_activity`);
- `reporting_relay`: reporting inside a relay publish, between Kafka's acknowledgement and
  its record in PostgreSQL (the `HUIBAO_RELAY_FAULT_PAUSE_MS` hook: the relay logs
  `relay_fault_pause` and waits there; the harness kills on that line);
- `rollup`: the rollup while a batch transaction is open;
- `scheduler`: the scheduler while `PUT /v1/clock` runs the steps it made due;
- `postgres`: the postmaster (crash recovery);
- `broker`: the broker (it comes back empty: the point of "An emptied broker loses
  nothing"); events sent on `submitted` that reporting had not taken in yet were never
  accepted, so the harness sends those again, as a producer that saw the outage would;
- `several`: two or three of the above at once.

The harness restarts what it kills (it does not rely on `huibao up`'s supervision); a
service found dead for another reason is restarted too and noted as a finding. At the
end: every sampled figure equals the model, `verify` finds 0 differences, every refused
record is on the reject topic, and every scheduler step ran exactly once, in order (its
store, `scheduler.steps`: a broker kill empties the cycle and notification topics).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from tests.fault import probe, proof
from tests.fault.model import PD, Expected, Stream, progress_target
from tests.fault.scenario import keep_logs, until
from tests.support.tree import build_city

from huibao_contracts.topics import ACTIVITY_REJECTED, PARTITIONS
from huibao_stack.errors import StartupError
from huibao_stack.services import ServiceProcess
from huibao_stack.stack import EmbeddedStack

SUBMITTED = "huibao.activity.submitted"
KINDS = (
    "reporting_intake",
    "reporting_relay",
    "rollup",
    "scheduler",
    "postgres",
    "broker",
    "several",
)
CLOCK_START = dt.datetime(2026, 1, 18, tzinfo=dt.timezone(dt.timedelta(hours=8)))
"""The scheduler's manual clock at start; every round moves it on by `clock_step`."""
PARTY_DAY_STEPS = (
    "opened",
    "upcoming_reminder",
    "overdue_reminder",
    "deadline_passed",
    "escalated",
    "closed",
)


@dataclass
class ChaosReport:
    """What a chaos run did and found."""

    events: int = 0
    http_events: int = 0
    kafka_events: int = 0
    refused: int = 0
    kafka_resent: int = 0
    """Events sent again on `submitted` right after a broker restart (not taken in yet)."""
    kafka_reconciled: int = 0
    """Events sent again at the end: reporting had not taken them in (see docs/faults.md)."""
    kills: dict[str, int] = field(default_factory=dict)
    rounds: list[str] = field(default_factory=list)
    lost: int = -1
    counted_twice: int = -1
    wrong_values: int = -1
    verify: str = ""
    rejects_on_topic: int = 0
    scheduler_steps: int = 0
    scheduler_notifications: int = 0
    findings: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0


class ChaosRun:
    """One chaos run on its own stack; `await run()` raises AssertionError on a mismatch."""

    def __init__(
        self,
        events: int,
        rounds: int,
        *,
        seed: int = 31,
        tree: tuple[int, int, int] = (2, 4, 20),
        sample: tuple[int, int] = (4, 12),
        stream_seconds: float = 20.0,
        clock_step: dt.timedelta = dt.timedelta(days=2),
        keep: bool = False,
    ) -> None:
        self.n = events
        self.rounds = rounds
        self.rng = random.Random(seed)
        self.sample = sample
        self.stream_seconds = stream_seconds
        self.clock_step = clock_step
        self.keep = keep
        counties, townships, branches = tree
        self.units = build_city("ch", counties, townships, branches)
        self.branches = {u["id"]: u["members"] for u in self.units if u["level"] == "branch"}
        townships_ids = [u["id"] for u in self.units if u["level"] == "township"]
        self.stream = Stream(self.branches, townships_ids, seed=seed)
        self.report = ChaosReport(events=events)
        self.kills: collections.Counter[str] = collections.Counter()
        self.stack = EmbeddedStack(
            services=("reporting", "rollup", "scheduler"),
            clock="manual",
            clock_start=CLOCK_START.isoformat(),
            service_env={
                "reporting": {
                    "HUIBAO_RELAY_FAULT_PAUSE_MS": "40",
                    "HUIBAO_KAFKA_SESSION_TIMEOUT_MS": "3000",
                    "HUIBAO_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
                },
                "rollup": {
                    "HUIBAO_SESSION_TIMEOUT_MS": "3000",
                    "HUIBAO_HEARTBEAT_INTERVAL_MS": "300",
                    "HUIBAO_BATCH_WAIT_MS": "100",
                    "HUIBAO_BATCH_MAX_RECORDS": "300",
                    "HUIBAO_UNKNOWN_UNIT_RETRY_SECONDS": "0.2",
                },
            },
            parallel_start=True,
        )
        self.clock = CLOCK_START
        self.producer: AIOKafkaProducer | None = None
        self.kafka_lock = asyncio.Lock()
        self.kafka_sent: list[dict[str, Any]] = []
        self.refused: list[tuple[str, str, str]] = []  # (source, id, channel)
        self.refused_kafka: list[dict[str, Any]] = []
        self.anomalies: list[str] = []
        self.server_errors: list[str] = []
        """500 answers (retried): reported, see docs/faults.md."""
        self._bad = 0
        self._fed = asyncio.Event()
        self._allowed = 0
        """How many stream events the feed may have sent: each round opens its share, so
        that every fault strikes while events flow."""
        self._more = asyncio.Event()

    # --- the run ---------------------------------------------------------------------------

    async def run(self) -> ChaosReport:
        began = time.monotonic()
        await self.stack.start()
        try:
            await self._durable_postgres()
            self.report.figures["start_seconds"] = round(time.monotonic() - began, 1)
            async with self._client() as client:
                self.client = client
                await self._load_tree()
                await self._start_producer()
                await asyncio.gather(self._feed(), self._chaos())
                self.report.figures["chaos_seconds"] = round(time.monotonic() - began, 1)
                await self._move_clock(self.clock + dt.timedelta(days=20))
                await self._reconcile()
                await self._settle()
                self.report.figures["settled_seconds"] = round(time.monotonic() - began, 1)
                await self._check()
            if self.keep:
                self.report.figures["logs"] = keep_logs(self.stack)
        except BaseException:
            self.report.figures["logs"] = keep_logs(self.stack)
            raise
        finally:
            self.report.kills = dict(self.kills)
            self.report.findings += self.anomalies
            self.report.server_errors = self.server_errors
            if self.producer is not None:
                await self.producer.stop()
            await self.stack.stop()
            self.report.wall_seconds = round(time.monotonic() - began, 1)
        return self.report

    async def _durable_postgres(self) -> None:
        """The throwaway PostgreSQL runs with fsync and synchronous_commit off, so a SIGKILL
        could take back commits already answered: restart it with both on first."""
        postgres = self.stack.infra.postgres
        assert postgres is not None, "the chaos run needs embedded PostgreSQL"
        postgres.fsync = True
        await postgres.restart()

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.stack.admin_token}"}
        return httpx.AsyncClient(headers=headers, timeout=30)

    async def _load_tree(self) -> None:
        r = await self.client.put(f"{self.stack.urls['reporting']}/v1/orgunits", json=self.units)
        assert r.status_code == 200, f"loading the tree: {r.status_code} {r.text[:500]}"
        url = f"{self.stack.urls['rollup']}/v1/nodes/{self.units[-1]['id']}"

        async def known() -> bool:
            return (await self.client.get(url)).status_code == 200

        await until(known, 60, "the rollup learns the tree")

    async def _start_producer(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.stack.bootstrap_servers, linger_ms=10, request_timeout_ms=10000
        )
        await self.producer.start()

    # --- the stream ------------------------------------------------------------------------

    def _channel(self, event: dict[str, Any]) -> str:
        aid = event["data"]["activity_id"]
        return "kafka" if zlib.crc32(aid.encode()) % 2 else "http"

    def _refused_event(self) -> dict[str, Any]:
        """A Party Day with more attendees than members: refused (`invalid_field`)."""
        self._bad += 1
        branch = self.rng.choice(sorted(self.branches))
        members = self.branches[branch]
        return {
            "specversion": "1.0",
            "id": f"bad{self._bad}",
            "source": "/fault/chaos-bad",
            "type": PD,
            "subject": branch,
            "time": "2025-06-27T18:00:00+08:00",
            "datacontenttype": "application/json",
            "data": {
                "activity_id": f"bad{self._bad}",
                "revision": 1,
                "date": "2025-06-26",
                "members": members,
                "attendees": members + 5,
            },
        }

    async def _feed(self, chunk: int = 40) -> None:
        """The whole stream, spread over about `stream_seconds`, on both channels."""
        pause = self.stream_seconds / max(1, self.n / chunk)
        try:
            while self.stream.counts.total < self.n:
                while self.stream.counts.total >= self._allowed:
                    self._more.clear()
                    await self._more.wait()
                events = self.stream.take(min(chunk, self.n - self.stream.counts.total))
                bad = [self._refused_event() for _ in range(self.rng.randint(0, 1))]
                http = [e for e in events if self._channel(e) == "http"]
                kafka = [e for e in events if self._channel(e) == "kafka"]
                for b in bad:
                    (http if self.rng.random() < 0.5 else kafka).append(b)
                await asyncio.gather(self._post(http), self._produce(kafka))
                await asyncio.sleep(pause)
        finally:
            self._fed.set()

    async def _post(self, events: list[dict[str, Any]]) -> None:
        """POST a batch until reporting answers 200 (a crash or an outage: try again)."""
        if not events:
            return
        url = f"{self.stack.urls['reporting']}/v1/events"
        while True:
            try:
                r = await self.client.post(url, json=events)
            except httpx.HTTPError:
                await asyncio.sleep(0.3)
                continue
            if r.status_code == 200:
                break
            if r.status_code == 500:  # never right; an integrator retries it all the same
                self.server_errors.append(f"POST /v1/events answered 500: {r.text[:200]}")
            elif r.status_code not in (502, 503, 504):
                self.anomalies.append(f"POST /v1/events answered {r.status_code}: {r.text[:300]}")
                return
            await asyncio.sleep(0.3)
        self.report.http_events += len(events)
        for event, result in zip(events, r.json()["results"], strict=True):
            bad = event["source"] == "/fault/chaos-bad"
            want = ("rejected",) if bad else ("accepted", "duplicate")
            if result["status"] not in want:
                self.anomalies.append(f"{event['id']} over HTTP: {result}")
            if bad:
                self.refused.append((event["source"], event["id"], "http"))

    async def _produce(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        async with self.kafka_lock:
            await self._send_kafka(events)
        for event in events:
            if event["source"] == "/fault/chaos-bad":
                self.refused.append((event["source"], event["id"], "kafka"))
                self.refused_kafka.append(event)
            else:
                self.kafka_sent.append(event)
        self.report.kafka_events += len(events)

    async def _send_kafka(self, events: list[dict[str, Any]]) -> None:
        assert self.producer is not None
        while True:
            try:
                futures = [
                    await self.producer.send(
                        SUBMITTED,
                        key=e["subject"].encode(),
                        value=orjson.dumps(e),
                        headers=[("content-type", b"application/cloudevents+json")],
                    )
                    for e in events
                ]
                await asyncio.gather(*futures)
            except Exception:  # noqa: BLE001 (a broker outage: send the chunk again)
                await asyncio.sleep(0.5)
            else:
                return

    # --- the faults ------------------------------------------------------------------------

    def _plan(self) -> list[str]:
        """Every kind once, in a seeded order, then seeded picks for the remaining rounds."""
        kinds = list(KINDS)
        self.rng.shuffle(kinds)
        while len(kinds) < self.rounds:
            kinds.append(self.rng.choice(KINDS))
        return kinds[: self.rounds]

    def _allow(self, rounds_done: int) -> None:
        share = self.n / (self.rounds + 1)
        self._allowed = min(self.n, round(share * (rounds_done + 1)))
        self._more.set()

    async def _chaos(self) -> None:
        gap = self.stream_seconds / max(1, self.rounds + 1)
        self._allow(0)
        for i, kind in enumerate(self._plan()):
            await asyncio.sleep(self.rng.uniform(0.1, 0.5) * gap)
            self._allow(i + 1)  # this round's share flows while the fault strikes
            started = time.monotonic()
            note = await self._inflict(kind)
            await self._recover(kind)
            if kind != "scheduler":
                await self._move_clock(self.clock + self.clock_step)
            self.report.rounds.append(f"{i + 1}. {kind}{note} ({time.monotonic() - started:.1f}s)")
        self._allowed = self.n
        self._more.set()
        await self._fed.wait()

    async def _inflict(self, kind: str) -> str:
        if kind == "reporting_intake":
            hit = await self._wait_for(self._intake_open, 5)
            await self._kill_service("reporting")
            return " in an intake transaction" if hit else " (no intake transaction seen)"
        if kind == "reporting_relay":
            hit = await self._wait_for_relay_pause(5)
            await self._kill_service("reporting")
            return " in a relay publish" if hit else " (no relay pause seen)"
        if kind == "rollup":
            hit = await self._wait_for(lambda: probe.batch_open(self.stack.database_url), 5)
            await self._kill_service("rollup")
            return " in a batch" if hit else " between batches"
        if kind == "scheduler":
            return await self._kill_scheduler_in_step()
        if kind == "postgres":
            await self._kill_postgres()
            return ""
        if kind == "broker":
            await self._kill_broker()
            return ""
        picks = self.rng.sample(["reporting", "rollup", "scheduler", "postgres", "broker"], 3)
        await asyncio.gather(*(self._kill_one(p) for p in picks if p not in ("broker",)))
        if "broker" in picks:
            await self._kill_broker()
        return f" ({', '.join(sorted(picks))})"

    async def _kill_one(self, what: str) -> None:
        if what == "postgres":
            await self._kill_postgres()
        else:
            await self._kill_service(what)

    async def _kill_service(self, name: str) -> None:
        proc = self.stack.service(name)
        await proc.kill()
        self.kills[name] += 1
        await self._start(proc)

    async def _start(self, proc: ServiceProcess) -> None:
        for _ in range(3):
            try:
                await proc.start()
            except StartupError as e:
                self.anomalies.append(f"{proc.label} did not start again: {str(e)[:400]}")
            else:
                return
        raise AssertionError(f"{proc.label} does not start again; logs {keep_logs(self.stack)}")

    async def _kill_postgres(self) -> None:
        assert self.stack.infra.postgres is not None, "the chaos run needs embedded PostgreSQL"
        await self.stack.infra.postgres.restart(crash=True)
        self.kills["postgres"] += 1

    async def _kill_broker(self) -> None:
        """SIGKILL the broker; it comes back empty. Then send again what reporting had not
        taken in from `submitted`: never accepted, so a producer must resend it."""
        broker = self.stack.infra.broker
        assert broker is not None, "the chaos run needs the embedded broker"
        async with self.kafka_lock:
            assert self.producer is not None
            await self.producer.stop()
            await broker.restart(crash=True)
            self.kills["broker"] += 1
            await self._start_producer()
            seen = await self._seen()
            again = [e for e in self.kafka_sent if (e["source"], e["id"]) not in seen]
            again += self.refused_kafka
            if again:
                await self._send_kafka(again)
            self.report.kafka_resent += len(again)

    async def _reconcile(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        """As a producer that checks what was accepted: until reporting has taken in every
        event sent on `submitted`, send the missing ones again (every 10 s)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = await self._seen()
            again = [e for e in self.kafka_sent if (e["source"], e["id"]) not in seen]
            if again:  # a resent older revision is refused once a later one is stored
                stored = await self._revisions()
                again = [
                    e
                    for e in again
                    if stored.get(e["data"]["activity_id"], 0) < e["data"]["revision"]
                ]
            if not again:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"reporting never took in {len(again)} Kafka events")
            async with self.kafka_lock:
                await self._send_kafka(again + self.refused_kafka)
            self.report.kafka_reconciled += len(again)
            for _ in range(40):
                await asyncio.sleep(0.25)
                seen = await self._seen()
                if all((e["source"], e["id"]) in seen for e in again):
                    break

    async def _revisions(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.stack.database_url, timeout=5)
        try:
            rows = await conn.fetch("SELECT activity_id, revision FROM reporting.activities")
        finally:
            await conn.close()
        return {r["activity_id"]: r["revision"] for r in rows}

    async def _seen(self) -> set[tuple[str, str]]:
        while True:
            try:
                conn = await asyncpg.connect(self.stack.database_url, timeout=5)
                try:
                    rows = await conn.fetch("SELECT source, id FROM reporting.events_seen")
                finally:
                    await conn.close()
                return {(r["source"], r["id"]) for r in rows}
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await asyncio.sleep(0.5)

    async def _kill_scheduler_in_step(self) -> str:
        """Move the clock past the next step and SIGKILL the scheduler while it runs them."""
        proc = self.stack.service("scheduler")
        target = self.clock + self.clock_step
        url = f"{self.stack.urls['scheduler']}/v1/clock"
        move = asyncio.create_task(self.client.put(url, json={"now": target.isoformat()}))

        async def in_step() -> bool:
            return move.done() or await self._tx_open("%scheduler.%")

        await self._wait_for(in_step, 5)
        hit = not move.done()
        await proc.kill()
        self.kills["scheduler"] += 1
        await asyncio.gather(move, return_exceptions=True)
        await self._start(proc)
        await self._move_clock(target)
        return " while running steps" if hit else " (after the steps ran)"

    async def _move_clock(self, target: dt.datetime) -> None:
        url = f"{self.stack.urls['scheduler']}/v1/clock"
        for _ in range(60):
            try:
                r = await self.client.put(url, json={"now": target.isoformat()})
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if r.status_code == 200:
                self.clock = target
                return
            await asyncio.sleep(0.5)
        self.anomalies.append(f"the scheduler did not move its clock to {target}")

    async def _wait_for(self, check: Any, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if await check():
                    return True
            except (OSError, asyncpg.PostgresError, TimeoutError):
                pass
            await asyncio.sleep(0.01)
        return False

    async def _intake_open(self) -> bool:
        return await self._tx_open("%reporting.events_seen%", "%reporting.activities%")

    async def _tx_open(self, *patterns: str) -> bool:
        """True while another backend holds a write transaction running one of `patterns`."""
        conn = await asyncpg.connect(self.stack.database_url, timeout=5)
        try:
            return bool(
                await conn.fetchval(
                    """SELECT count(*) FROM pg_stat_activity
                    WHERE pid <> pg_backend_pid() AND backend_xid IS NOT NULL
                      AND query LIKE ANY($1::text[])""",
                    list(patterns),
                )
            )
        finally:
            await conn.close()

    async def _wait_for_relay_pause(self, within: float) -> bool:
        path = self.stack.service("reporting").log_path
        before = path.read_bytes().count(b"relay_fault_pause") if path.exists() else 0
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if path.read_bytes().count(b"relay_fault_pause") > before:
                return True
            await asyncio.sleep(0.005)
        return False

    async def _recover(self, after: str) -> None:
        """A service that died on its own (not killed by us) is a finding; start it again."""
        await asyncio.sleep(0.5)
        for name in ("reporting", "rollup", "scheduler"):
            proc = self.stack.service(name)
            if not proc.running():
                self.report.findings.append(f"{proc.label} died after {after}:\n{proc.log_tail(8)}")
                await self._start(proc)

    # --- the end ---------------------------------------------------------------------------

    async def _settle(self, timeout: float = 120) -> None:  # noqa: ASYNC109
        target = progress_target(self.stream)
        last: probe.Progress | None = None

        async def caught_up() -> bool:
            nonlocal last
            try:
                last = await probe.progress(self.stack.database_url)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                return False
            return (last.facts, last.revisions) == target

        try:
            await until(caught_up, timeout, "caught up")
        except AssertionError:
            raise AssertionError(
                f"the rollup did not catch up within {timeout}s: target (facts, revisions) "
                f"{target}, last reading {last}; rounds {self.report.rounds}; "
                f"missing {await self._missing()}; anomalies {self.anomalies[:10]}; "
                f"findings {self.report.findings}; logs kept in {keep_logs(self.stack)}"
            ) from None

    async def _missing(self, at_most: int = 20) -> list[str]:
        """What the rollup lacks, with where reporting says it went (for the failure)."""
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            rows = await conn.fetch(
                """SELECT a.activity_id, a.revision, a.unit, f.revision AS applied,
                          s.channel, s.received_at
                   FROM reporting.activities a
                   LEFT JOIN rollup.facts f USING (activity_id)
                   LEFT JOIN reporting.events_seen s
                     ON s.source = a.source AND s.id = a.event_id
                   WHERE f.revision IS DISTINCT FROM a.revision LIMIT $1""",
                at_most,
            )
            stored = {
                r["activity_id"]: r["revision"]
                for r in await conn.fetch("SELECT activity_id, revision FROM reporting.activities")
            }
            seen = {
                (r["source"], r["id"]): r["channel"]
                for r in await conn.fetch("SELECT source, id, channel FROM reporting.events_seen")
            }
            unaccepted = [
                f"{aid} r{a.revision} (reporting r{stored.get(aid)}) "
                f"{self._channel({'data': {'activity_id': aid}})} "
                f"seen {[(e['id'], seen.get((e['source'], e['id']))) for e in self.stream._sent if e['data']['activity_id'] == aid]}"  # noqa: E501
                for aid, a in self.stream.activities.items()
                if stored.get(aid) != a.revision
            ][:at_most]
            waiting = await conn.fetchval(
                "SELECT count(*) FROM reporting.outbox WHERE published_offset IS NULL"
            )
            busy = await conn.fetch(
                "SELECT pid, state, wait_event, left(query, 80) AS q FROM pg_stat_activity"
                " WHERE state <> 'idle' AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        return [
            f"{r['activity_id']} r{r['revision']} (applied {r['applied']}) {r['unit']} "
            f"{r['channel']} {r['received_at']:%H:%M:%S.%f}"
            for r in rows
        ] + [
            f"outbox rows not published: {waiting}",
            *(str(dict(b)) for b in busy),
            *unaccepted,
        ]

    async def _check(self) -> None:
        await self._count_lost()
        nodes = proof.sample_nodes(self.units, *self.sample)
        wrong, over = await self._compare(nodes)
        self.report.wrong_values, self.report.counted_twice = len(wrong), over
        self.report.verify = await proof.check_verify(self.stack.database_url)
        rejects = await _reject_ids(self.stack.bootstrap_servers)
        self.report.rejects_on_topic = len(rejects)
        self.report.refused = len({(s, i) for s, i, _ in self.refused})
        missing = sorted({i for s, i, _ in self.refused if (s, i) not in rejects})
        await self._check_scheduler()
        assert not wrong, f"{len(wrong)} values differ:\n" + "\n".join(wrong[:30])
        assert self.report.lost == 0, f"{self.report.lost} activities lost"
        assert not missing, f"refused records missing on the reject topic: {missing[:20]}"

    async def _count_lost(self) -> None:
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            rows = await conn.fetch("SELECT activity_id, revision FROM rollup.facts")
        finally:
            await conn.close()
        facts = {r["activity_id"]: r["revision"] for r in rows}
        self.report.lost = sum(
            1 for aid, a in self.stream.activities.items() if facts.get(aid) != a.revision
        )

    async def _compare(self, nodes: list[str]) -> tuple[list[str], int]:
        expected = Expected(proof.paths_of(self.units), self.stream)
        paths = proof.paths_of(self.units)
        branches = dict.fromkeys(nodes, 0)
        for u in self.units:
            if u["level"] == "branch":
                for n in paths[u["id"]]:
                    if n in branches:
                        branches[n] += 1
        wrong: list[str] = []
        over = 0
        for node in nodes:
            for period in proof.PERIODS:
                r = await self.client.get(
                    f"{self.stack.urls['rollup']}/v1/nodes/{node}/summary",
                    params={"period": period},
                )
                assert r.status_code == 200, f"summary {node} {period}: {r.status_code}"
                got = r.json()["metrics"]
                diffs = proof.compare(node, period, got, expected, branches[node])
                wrong += diffs
                want = expected.of(node, period)
                over += sum(1 for m, v in want.items() if (got.get(m) or 0) > v)
        self.report.figures["summaries_checked"] = len(nodes) * len(proof.PERIODS)
        return wrong, over

    async def _check_scheduler(self) -> None:
        """Every step of every cycle once, in order with no gap; the January Party Day cycle
        ran all six; its upcoming reminder went to every branch exactly once (none of them
        reported for 2026-01: the stream is of 2025), however the scheduler was killed."""
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            steps = await conn.fetch(
                "SELECT kind, period, step, seq, notifications, skipped FROM scheduler.steps"
                " ORDER BY kind, period, seq"
            )
        finally:
            await conn.close()
        cycles: dict[tuple[str, str], list[asyncpg.Record]] = collections.defaultdict(list)
        for s in steps:
            cycles[s["kind"], s["period"]].append(s)
        problems = []
        for (kind, period), rows in cycles.items():
            seqs = [r["seq"] for r in rows]
            if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                problems.append(f"{kind} {period}: steps {[(r['seq'], r['step']) for r in rows]}")
            names = [r["step"] for r in rows]
            if len(set(names)) != len(names):
                problems.append(f"{kind} {period}: a step twice: {names}")
            if kind == "party_day" and names != list(PARTY_DAY_STEPS[: len(names)]):
                problems.append(f"party_day {period}: steps out of order {names}")
        january = {r["step"]: r for r in cycles.get(("party_day", "2026-01"), [])}
        if list(january) != list(PARTY_DAY_STEPS):
            problems.append(f"party_day 2026-01 ran {list(january)}, not all six steps")
        elif (sent := january["upcoming_reminder"]["notifications"]) != len(self.branches):
            problems.append(f"2026-01 upcoming reminders: {sent}, branches {len(self.branches)}")
        self.report.scheduler_steps = len(steps)
        self.report.scheduler_notifications = sum(r["notifications"] for r in steps)
        self.report.figures["scheduler_steps"] = [
            f"{r['kind']} {r['period']} {r['step']}: {r['notifications']}"
            + (" (skipped)" if r["skipped"] else "")
            for r in steps
        ]
        assert not problems, "scheduler steps:\n" + "\n".join(problems)


async def _reject_ids(bootstrap: str, idle_ms: int = 2000) -> set[tuple[str, str]]:
    """(source, id) of every record on the reject topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [TopicPartition(ACTIVITY_REJECTED, p) for p in range(PARTITIONS[ACTIVITY_REJECTED])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: set[tuple[str, str]] = set()
        while chunk := await consumer.getmany(*parts, timeout_ms=idle_ms, max_records=20_000):
            for records in chunk.values():
                for r in records:
                    try:
                        doc = orjson.loads(r.value or b"")
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(doc, dict):
                        out.add((str(doc.get("source")), str(doc.get("id"))))
        return out
    finally:
        await consumer.stop()
