"""The operator's command line (issue 18, points 4 and 5), on the real broker and PostgreSQL.

- the service binaries answer `--help` / `--version` without a database;
- `huibao topics` says one line without a broker, one line per topic with one;
- a service whose topics are missing exits naming them, one line, no traceback;
- a PostgreSQL that refuses or is not there is named (host, port, no password) and given
  up on within the configured time;
- `huibao status` shows the services, consumer lag, outbox backlog and cycles;
- `huibao verify` finds no difference on aggregates the rollup built, finds a spoiled
  one, and `huibao rebuild` repairs it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from tests.service.rollup_support import Harness, party_day
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts import topics
from huibao_stack.infra import Infrastructure
from huibao_stack.services import ServiceProcess
from huibao_stack.stack import EmbeddedStack

session_loop = pytest.mark.asyncio(loop_scope="session")
"""The loop of the `infra` and `stack` session fixtures."""

BIN = Path(sys.executable).parent
CLOSED = "postgresql://huibao:s3cret-pw@127.0.0.1:1/huibao"
"""A database URL on a port nothing listens on, with a password that must never be shown."""


def huibao(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `huibao` console script (no terminal: no progress bar)."""
    return subprocess.run(
        [str(BIN / "huibao"), *args],
        env={**os.environ, "HUIBAO_LOG_FORMAT": "json", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


# --- without infrastructure -----------------------------------------------------------------


@pytest.mark.parametrize("service", ["reporting", "rollup", "scheduler"])
def test_service_binaries_answer_help_and_version_without_a_database(service: str) -> None:
    env = {**os.environ, "DATABASE_URL": CLOSED, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    binary = shutil.which(f"huibao-{service}", path=str(BIN))
    assert binary is not None
    started = time.monotonic()
    version = subprocess.run(
        [binary, "--version"], env=env, capture_output=True, text=True, timeout=20, check=False
    )
    helped = subprocess.run(
        [binary, "--help"], env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert time.monotonic() - started < 15
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"huibao-{service} {metadata.version(f'huibao-{service}')}"
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith(f"usage: huibao-{service}")
    assert "DATABASE_URL" in helped.stdout
    assert "postgres" not in (version.stderr + helped.stderr).lower()


def test_topics_without_a_broker_is_one_line_and_non_zero() -> None:
    done = huibao("topics", "--bootstrap-servers", "127.0.0.1:1", timeout=30)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "127.0.0.1:1" in lines[0]
    _no_traceback(done.stderr)


def test_topics_refuses_min_insync_above_replicas() -> None:
    done = huibao(
        "topics",
        "--bootstrap-servers",
        "127.0.0.1:1",
        env={"HUIBAO_TOPIC_REPLICATION_FACTOR": "2", "HUIBAO_TOPIC_MIN_INSYNC_REPLICAS": "3"},
    )
    assert done.returncode == 2
    assert "HUIBAO_TOPIC_MIN_INSYNC_REPLICAS (3) exceeds" in done.stderr
    _no_traceback(done.stderr)


@session_loop
async def test_unreachable_postgres_is_named_and_given_up_on(tmp_path: Path) -> None:
    """The launcher's error says why the service did not start, password masked, and the
    service gives up after HUIBAO_DATABASE_CONNECT_SECONDS, not ~50 s."""
    proc = ServiceProcess(
        "scheduler",
        port=free_port(),
        env={
            **os.environ,
            "DATABASE_URL": CLOSED,
            "HUIBAO_DATABASE_CONNECT_SECONDS": "2",
            "HUIBAO_LOG_FORMAT": "json",
        },
        log_dir=tmp_path,
        ready_timeout=30,
    )
    started = time.monotonic()
    with pytest.raises(Exception, match="exited while starting") as failed:
        await proc.start()
    assert time.monotonic() - started < 15
    first = str(failed.value).splitlines()[0]
    assert "cannot connect to PostgreSQL at postgresql://huibao:***@127.0.0.1:1/huibao" in first
    assert "connection refused" in first
    log = (tmp_path / "scheduler.log").read_text()
    assert "s3cret-pw" not in str(failed.value) + log
    _no_traceback(log)


def free_port() -> int:
    from huibao_stack.processes import free_port as pick

    return pick()


# --- on the embedded broker and PostgreSQL --------------------------------------------------


@pytest.mark.stack
@session_loop
async def test_topics_prints_a_line_per_topic(infra: Infrastructure) -> None:
    prefix = f"cli{uuid.uuid4().hex[:6]}."
    env = {"HUIBAO_TOPIC_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers}
    first = await asyncio.to_thread(huibao, "topics", env=env)
    again = await asyncio.to_thread(huibao, "topics", env=env)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    for run, word in ((first, "created"), (again, "already there")):
        rows = [line.split() for line in run.stdout.strip().splitlines()]
        assert [r[0] for r in rows] == [prefix + t for t in topics.ALL_TOPICS]
        for row, topic in zip(rows, topics.ALL_TOPICS, strict=True):
            assert " ".join(row[1:-2]) == word
            assert row[-2] == f"partitions={topics.PARTITIONS[topic]}"
            assert row[-1] == "replication_factor=1"


@pytest.mark.stack
@session_loop
async def test_service_without_its_topics_exits_naming_them(
    infra: Infrastructure, tmp_path: Path
) -> None:
    prefix = f"absent{uuid.uuid4().hex[:6]}."
    url = await infra.fresh_database(f"notopics_{uuid.uuid4().hex[:6]}")
    proc = ServiceProcess(
        "rollup",
        port=free_port(),
        env={
            **os.environ,
            **infra.env(),
            "DATABASE_URL": url,
            "HUIBAO_TOPIC_PREFIX": prefix,
            "HUIBAO_LOG_FORMAT": "json",
        },
        log_dir=tmp_path,
        ready_timeout=60,
    )
    with pytest.raises(Exception, match="exited while starting") as failed:
        await proc.start()
    first = str(failed.value).splitlines()[0]
    assert "(exit 3)" in first
    for topic in (topics.ACTIVITY_ACCEPTED, topics.ORGUNIT_CHANGES):
        assert prefix + topic in first
    assert "huibao topics" in first
    _no_traceback((tmp_path / "rollup.log").read_text())
    # and its topics were not made behind the operator's back
    done = await asyncio.to_thread(
        huibao,
        "topics",
        env={"HUIBAO_TOPIC_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers},
    )
    assert f"{prefix}{topics.ACTIVITY_ACCEPTED} " in done.stdout
    assert all("created" in line for line in done.stdout.strip().splitlines())


@pytest.mark.stack
@session_loop
async def test_status_lists_services_lag_backlog_and_cycles(stack: EmbeddedStack) -> None:
    env = {f"HUIBAO_{n.upper()}_URL": u for n, u in stack.urls.items()}
    env["HUIBAO_ADMIN_TOKEN"] = stack.admin_token
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(headers=headers) as client:
        cycles = (await client.get(f"{stack.urls['scheduler']}/v1/cycles")).json()["items"]

    async def reported() -> subprocess.CompletedProcess[str] | None:
        done = await asyncio.to_thread(huibao, "status", env=env)
        return done if " on huibao.activity.accepted: " in done.stdout else None

    done = await wait_until(reported, timeout=30)  # the first lag poll (every 5 s)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for name, url in stack.urls.items():
        version = metadata.version(f"huibao-{name}")
        assert any(
            line.split()[:5] == [name, url, "ready", "version", version]
            for line in out.splitlines()
        ), out
    sections = ("services", "consumer lag", "outbox backlog", "cycles")
    assert [s for s in sections if any(line.startswith(s) for line in out.splitlines())] == list(
        sections
    )
    lag = out.split("consumer lag", 1)[1].split("outbox backlog", 1)[0]
    assert "rollup" in lag
    assert "huibao.orgunit.changes" in lag
    backlog = out.split("outbox backlog", 1)[1].split("\ncycles", 1)[0]
    assert any(line.split()[0] == "reporting" for line in backlog.strip().splitlines()[1:]), out
    listed = out.split("\ncycles", 1)[1].strip().splitlines()
    assert len(listed) == max(1, len(cycles))
    for cycle, line in zip(cycles, listed, strict=False):
        assert line.split()[:3] == [cycle["kind"], cycle["period"], cycle["state"]]
    _no_traceback(done.stdout, done.stderr)


@pytest_asyncio.fixture(loop_scope="session")
async def harness(infra: Infrastructure) -> AsyncIterator[Harness]:
    h = Harness(infra, f"cli-{uuid.uuid4().hex[:4]}")
    await h.setup()
    try:
        yield h
    finally:
        await h.close()


@pytest.mark.stack
@session_loop
async def test_verify_and_rebuild(harness: Harness) -> None:
    city = build_city("vr", counties=1, townships_per_county=1, branches_per_township=3)
    branches = [u["id"] for u in city if u["level"] == "branch"]
    await harness.tree(city)
    await harness.events(
        [
            party_day(b, month, attendees=10 + i)
            for i, b in enumerate(branches)
            for month in ("2026-04", "2026-05", "2026-06")
        ]
    )
    async with harness.replica() as rollup:
        await rollup.wait_for("vr", "2026-06", {"party_day.held": 3})
        await rollup.wait_for("vr", "2026-04", {"party_day.held": 3})
    env = {"DATABASE_URL": harness.database_url}
    clean = await asyncio.to_thread(huibao, "verify", env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip().splitlines() == ["0 difference(s)"]

    conn = await asyncpg.connect(harness.database_url)
    try:  # one branch's May aggregates spoiled
        spoiled = await conn.execute(
            "UPDATE rollup.monthly SET v = array_append(v, 1) WHERE node = $1 AND month = $2",
            branches[0],
            dt.date(2026, 5, 1),
        )
        assert spoiled != "UPDATE 0"
    finally:
        await conn.close()
    found = await asyncio.to_thread(huibao, "verify", env=env)
    assert found.returncode == 1
    rows = found.stdout.strip().splitlines()
    assert rows[-1] == f"{len(rows) - 1} difference(s)"
    assert len(rows) > 1
    assert all(r.split("\t")[:2] == [branches[0], "2026-05"] for r in rows[:-1])

    rebuilt = await asyncio.to_thread(huibao, "rebuild", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith("rebuilt ")
    again = await asyncio.to_thread(huibao, "verify", env=env)
    assert again.stdout.strip().splitlines() == ["0 difference(s)"]
    _no_traceback(found.stderr, rebuilt.stderr, again.stderr)


def test_verify_without_postgres_is_one_line() -> None:
    done = huibao(
        "verify",
        env={"DATABASE_URL": CLOSED, "HUIBAO_DATABASE_CONNECT_SECONDS": "1"},
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "huibao: cannot connect to PostgreSQL at postgresql://huibao:***@127.0.0.1:1/huibao"
        )
    )
    assert "s3cret-pw" not in done.stderr
    _no_traceback(done.stderr)


def test_status_with_nothing_running_says_down() -> None:
    ports = {n: free_port() for n in ("reporting", "rollup", "scheduler")}
    env = {f"HUIBAO_{n.upper()}_URL": f"http://127.0.0.1:{p}" for n, p in ports.items()}
    done = huibao("status", "--timeout", "1", env=env)
    assert done.returncode == 1
    for name in ports:
        assert any(
            line.split()[:3] == [name, env[f"HUIBAO_{name.upper()}_URL"], "DOWN"]
            for line in done.stdout.splitlines()
        ), done.stdout
    _no_traceback(done.stdout, done.stderr)


def test_status_follows_only_a_stack_env_of_this_user(tmp_path: Path) -> None:
    """A `stack.env` others may read or write (say, planted in a checkout) could send the
    admin token to a server of theirs: `huibao status` ignores it and says so."""
    planted = f"http://127.0.0.1:{free_port()}"
    env_file = tmp_path / "stack.env"
    env_file.write_text(f"HUIBAO_ROLLUP_URL={planted}\n", encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env = {**clean, "HUIBAO_DATA_DIR": str(tmp_path), "HUIBAO_ADMIN_TOKEN": "operator-secret"}
    for mode, followed in ((0o644, False), (0o600, True)):
        env_file.chmod(mode)
        done = subprocess.run(
            [str(BIN / "huibao"), "status", "--timeout", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (planted in done.stdout) is followed, done.stdout
        assert ("ignoring" in done.stderr) is not followed, done.stderr


def test_status_survives_a_service_that_answers_garbage() -> None:
    """Answers that are not what a Huibao service says (not JSON, a list, escape sequences,
    no Prometheus text) are shown as unknown, never as a traceback or raw on the terminal."""
    import http.server
    import threading

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {
                "/health/ready": b"[1, 2]",
                "/health/live": b'{"version": "\\u001b[31mred"}',
                "/metrics": b"not { prometheus",
                "/v1/cycles": b'{"items": "none"}',
            }.get(self.path, b"\x1b[2J")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        env = {f"HUIBAO_{n}_URL": url for n in ("REPORTING", "ROLLUP", "SCHEDULER")}
        done = huibao("status", "--timeout", "2", env=env)
    finally:
        server.shutdown()
        server.server_close()
    _no_traceback(done.stdout, done.stderr)
    assert "\x1b" not in done.stdout
    assert "unreadable /metrics" in done.stdout
    assert "scheduler: an answer without cycles" in done.stdout


@pytest.mark.stack
@session_loop
async def test_ready_is_503_while_a_topic_of_the_service_is_gone(harness: Harness) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    rejected = f"{harness.accepted_topic}.rejected"
    admin = AIOKafkaAdminClient(bootstrap_servers=harness.infra.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(rejected, 1, 1)])
        async with harness.replica(rejected_topic=rejected) as rollup:

            async def ready(code: int) -> dict[str, bool] | None:
                r = await rollup.http.get("/health/ready")
                return dict(r.json()["checks"]) if r.status_code == code else None

            assert (await wait_until(lambda: ready(200), timeout=30))["kafka"] is True
            await admin.delete_topics([rejected])
            down = await wait_until(lambda: ready(503), timeout=30)
            assert down["kafka"] is False
            assert down["postgres"] is True
            await admin.create_topics([NewTopic(rejected, 1, 1)])  # as `huibao topics` would
            await wait_until(lambda: ready(200), timeout=30)
    finally:
        await admin.close()
