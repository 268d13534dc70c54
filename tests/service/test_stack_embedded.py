"""The embedded stack itself: PostgreSQL, the broker, the launcher's process discipline.

Every test here starts its own PostgreSQL / broker / stack so that restarting or killing them
never disturbs the session-wide `infra` and `stack` fixtures other tests use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from huibao_contracts import topics
from huibao_stack.broker import EmbeddedBroker
from huibao_stack.errors import StartupError
from huibao_stack.infra import Infrastructure
from huibao_stack.pg_runtime import persistent_cluster_dir
from huibao_stack.postgres import EmbeddedPostgres
from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

REPO = Path(__file__).resolve().parents[2]
FAKE_SERVICE = str(REPO / "tests" / "support" / "fake_service.py")
FAKE_ARGV = {name: [sys.executable, FAKE_SERVICE] for name in ("reporting", "rollup", "scheduler")}
SERVICES_WRITTEN = all(
    importlib.util.find_spec(f"huibao_{name}.__main__") is not None
    for name in ("reporting", "rollup", "scheduler")
)


def descendants(pid: int | None = None) -> dict[int, float]:
    """Every process below `pid` (default: this one), with its create time."""
    found: dict[int, float] = {}
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            found[child.pid] = child.create_time()
    return found


def process_tree(pid: int | None) -> dict[int, float]:
    """`pid` and every process below it, with their create times."""
    assert pid is not None
    return {pid: psutil.Process(pid).create_time(), **descendants(pid)}


def still_alive(processes: dict[int, float]) -> list[str]:
    """The processes of `processes` that still run (zombies and reused pids do not count)."""
    alive = []
    for pid, created in processes.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return alive


def fake_stack(**kwargs: object) -> EmbeddedStack:
    """A stack whose services are `fake_service.py`; `service_env` picks each one's mode."""
    return EmbeddedStack(service_argv=FAKE_ARGV, **kwargs)  # type: ignore[arg-type]


async def test_postgres_listens_on_loopback_and_keeps_data_across_restarts() -> None:
    pg = EmbeddedPostgres()
    await pg.start()
    try:
        assert pg.database_url.startswith("postgresql://huibao:")
        assert "@127.0.0.1:" in pg.database_url
        conn = await asyncpg.connect(pg.database_url)
        try:
            await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
            assert await conn.fetchval("SHOW fsync") == "off"
            assert await conn.fetchval("SELECT current_database()") == "huibao"
        finally:
            await conn.close()
        port, first_pid = pg.port, pg.pid

        await pg.restart()
        assert pg.port == port
        assert pg.pid != first_pid
        conn = await asyncpg.connect(pg.database_url)
        assert await conn.fetchval("SELECT x FROM kept") == 42
        # a crash (SIGKILL) is followed by crash recovery, and committed data is still there
        await pg.restart(crash=True)
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
            await conn.fetchval("SELECT 1")
        conn = await asyncpg.connect(pg.database_url)
        try:
            assert await conn.fetchval("SELECT x FROM kept") == 42
        finally:
            await conn.close()
        assert (await pg.create_database("other")).endswith("/other")
    finally:
        running = process_tree(pg.pid)
        data_dir = pg.data_dir
        await pg.close()
    assert not pg.running()
    assert pg.pid in running
    assert still_alive(running) == []
    assert not data_dir.exists(), "a throwaway data directory is removed on close"


async def test_persistent_postgres_keeps_data_in_its_directory(tmp_path: Path) -> None:
    data = tmp_path / "pgdata"
    pg = EmbeddedPostgres(data, log_path=tmp_path / "pg.log")
    await pg.start()
    try:
        conn = await asyncpg.connect(pg.database_url)
        assert await conn.fetchval("SHOW fsync") == "on"
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
        await conn.close()
    finally:
        await pg.close()
    assert (pg.data_dir / "PG_VERSION").exists()
    root = os.geteuid() == 0  # as root the cluster lives where its user can reach it
    assert pg.data_dir == (persistent_cluster_dir(data.resolve()) if root else data.resolve())
    assert pg.password_file == data.resolve().with_name("pgdata.password")

    again = EmbeddedPostgres(data, log_path=tmp_path / "pg.log")
    await again.start()
    try:
        assert again.database_url == pg.database_url.replace(str(pg.port), str(again.port))
        conn = await asyncpg.connect(again.database_url)
        assert await conn.fetchval("SELECT x FROM kept") == 7
        await conn.close()
    finally:
        await again.close()
        if again.data_dir != data.resolve():  # as root: the cluster lives outside tmp_path
            shutil.rmtree(again.data_dir.parent, ignore_errors=True)


async def _topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _read_all(bootstrap: str, topic: str, expect: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + (10 if expect else 2)
        while time.monotonic() < deadline and len(values) < max(expect, 1):
            batch = await consumer.getmany(timeout_ms=500)
            values += [m.value for records in batch.values() for m in records]
    finally:
        await consumer.stop()
    return values


async def test_broker_round_trip_and_restart_comes_back_empty_with_topics(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    await broker.start()
    try:
        assert set(topics.ALL_TOPICS) <= await _topic_names(broker.bootstrap_servers)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topics.CYCLE_EVENTS, b"hello", key=b"party_day:2026-06")
        finally:
            await producer.stop()
        assert await _read_all(broker.bootstrap_servers, topics.CYCLE_EVENTS, 1) == [b"hello"]

        port = broker.port
        await broker.restart()
        assert broker.port == port
        assert set(topics.ALL_TOPICS) <= await _topic_names(broker.bootstrap_servers)
        assert await _read_all(broker.bootstrap_servers, topics.CYCLE_EVENTS, 0) == []

        await broker.restart(crash=True)
        assert set(topics.ALL_TOPICS) <= await _topic_names(broker.bootstrap_servers)
    finally:
        running = process_tree(broker.pid)
        await broker.close()
    assert broker.pid in running
    assert still_alive(running) == []


async def test_a_service_that_exits_at_start_stops_everything_and_raises() -> None:
    before = descendants()
    stack = fake_stack(service_env={"rollup": {"FAKE_SERVICE_MODE": "exit"}})
    run_dir = stack.run_dir
    with pytest.raises(StartupError) as caught:
        await stack.start()
    message = str(caught.value)
    assert "rollup" in message
    assert "exit 3" in message
    assert "boom: the fake service refuses to start" in message, "the log tail is in the error"
    assert stack.pids() == []
    leftovers = {p: t for p, t in descendants().items() if p not in before}
    assert still_alive(leftovers) == []
    assert not run_dir.exists()


async def test_a_service_that_never_gets_ready_times_out_with_its_log() -> None:
    stack = fake_stack(
        services=("scheduler",),
        service_env={"scheduler": {"FAKE_SERVICE_MODE": "never_ready"}},
        ready_timeout=3,
    )
    with pytest.raises(StartupError, match=r"scheduler was not ready .* within 3s") as caught:
        await stack.start()
    assert "503" in str(caught.value)
    assert "fake service starting in mode never_ready" in str(caught.value)
    assert stack.pids() == []


async def test_nothing_outlives_the_stack_after_restarts_replicas_and_stop() -> None:
    before = descendants()
    stack = fake_stack(service_env={"rollup": {"FAKE_SERVICE_MODE": "spawn"}})
    async with stack:
        assert stack.infra.postgres is not None
        assert stack.infra.broker is not None
        assert set(stack.urls) == {"reporting", "rollup", "scheduler"}
        scheduler_env = stack.service("scheduler").env
        assert scheduler_env["HUIBAO_ROLLUP_URL"] == stack.urls["rollup"]
        assert scheduler_env["DATABASE_URL"] == stack.database_url
        assert scheduler_env["KAFKA_BOOTSTRAP_SERVERS"] == stack.bootstrap_servers
        assert scheduler_env["HUIBAO_ADMIN_TOKEN"] == stack.admin_token
        assert scheduler_env["HUIBAO_LOG_FORMAT"] == "json"

        second = await stack.add_replica("rollup")
        assert second.port != stack.service("rollup").port
        assert stack.service("rollup", 2) is second

        reporting = stack.service("reporting")
        old_pid = reporting.pid
        await reporting.restart(crash=True)
        assert reporting.pid != old_pid
        assert reporting.running()
        await reporting.stop()
        assert not reporting.running()
        await reporting.start()

        started = {p: t for p, t in descendants().items() if p not in before}
        # 4 fake services + 2 sleeping grandchildren + broker + postgres and its workers
        assert len(started) >= 9
    assert stack.pids() == []
    assert still_alive(started) == []


async def test_external_database_and_broker_switch_the_embedded_ones_off(
    infra: Infrastructure,
) -> None:
    environ = {**os.environ, **infra.env()}
    async with fake_stack(environ=environ, services=("reporting",)) as stack:
        assert stack.infra.postgres is None
        assert stack.infra.broker is None
        env = stack.service("reporting").env
        assert env["DATABASE_URL"] == infra.database_url
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == infra.bootstrap_servers
    assert infra.postgres is None or infra.postgres.running()


async def test_fresh_database_is_empty_and_usable(infra: Infrastructure) -> None:
    url = await infra.fresh_database("stack_fresh_db")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE t (x int)")
    finally:
        await conn.close()
    url = await infra.fresh_database("stack_fresh_db")  # again: empty again
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT to_regclass('public.t')") is None
    finally:
        await conn.close()


LAUNCHER = textwrap.dedent(
    """
    import asyncio, sys
    from huibao_stack.launch import run_stack
    from huibao_stack.stack import EmbeddedStack

    FAKE = [sys.executable, sys.argv[1]]
    stack = EmbeddedStack(service_argv={n: FAKE for n in ("reporting", "rollup", "scheduler")},
                          service_env={"rollup": {"FAKE_SERVICE_MODE": sys.argv[2]}})

    async def body(stack):
        print("READY", stack.run_dir, stack.infra.postgres.data_dir.parent, flush=True)
        await asyncio.Event().wait()
        return 0

    sys.exit(asyncio.run(run_stack(stack, body)))
    """
)


def _wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float = 90) -> str:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} from the launcher; it printed:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_launcher_stops_everything_on_a_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, FAKE_SERVICE, "spawn"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        _wait_for_line(proc, "READY")
        started = descendants(proc.pid)
        assert len(started) >= 7
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert "stopping everything" in out
        assert proc.returncode == (130 if sig == signal.SIGINT else 0)
        assert still_alive(started) == []
    finally:
        proc.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_die_with_a_launcher_killed_by_sigkill() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, FAKE_SERVICE, "ready"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        printed = _wait_for_line(proc, "READY")
        run_dir, pg_dir = printed.rsplit("READY ", 1)[1].split()[:2]
        started = descendants(proc.pid)
        assert len(started) >= 6
    finally:
        proc.kill()
        proc.wait(10)
    for tmp in (run_dir, pg_dir):  # a SIGKILLed launcher cannot tidy up
        shutil.rmtree(tmp, ignore_errors=True)
    # no clean-up code ran: the kernel kills the launcher's children, PostgreSQL's workers
    # follow their postmaster
    deadline = time.monotonic() + 15
    while still_alive(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert still_alive(started) == []


EXTERNAL_SETTINGS = {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}


# LEAD: this test runs the real services. It is skipped until every service package has a
# `__main__` module (`python -m huibao_<name>`); it then runs without any change.
@pytest.mark.skipif(
    not SERVICES_WRITTEN, reason="needs huibao_reporting/rollup/scheduler __main__ modules"
)
def test_huibao_up_serves_and_leaves_nothing_behind_after_sigint(tmp_path: Path) -> None:
    from huibao_stack.processes import free_port

    ports = {name: free_port() for name in ("reporting", "rollup", "scheduler")}
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}
        },
        "HUIBAO_DATA_DIR": str(tmp_path / "data"),
        **{f"HUIBAO_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        "HUIBAO_STACK_METRICS_PORT": str(free_port()),
    }
    data_dir = (tmp_path / "data").resolve() / "postgres"
    cluster = persistent_cluster_dir(data_dir) if os.geteuid() == 0 else data_dir
    script = Path(sys.executable).parent / "huibao"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "huibao_stack.cli"]
    proc = subprocess.Popen(
        [*argv, "up"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        banner = _wait_for_line(proc, "KAFKA_BOOTSTRAP_SERVERS=", timeout=120)
        started = descendants(proc.pid)
        for name, port in ports.items():
            assert f"http://127.0.0.1:{port}" in banner, name
            r = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
            assert r.status_code == 200, (name, r.text)
        assert "huibao-dev-admin" in banner
        assert (cluster / "PG_VERSION").exists()
        password_file = tmp_path / "data" / "postgres.password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        env_file = tmp_path / "data" / "stack.env"
        assert env_file.stat().st_mode & 0o777 == 0o600
        database_url = env_file.read_text().split("DATABASE_URL=", 1)[1].split()[0]
        password = database_url.split(":", 2)[2].split("@", 1)[0]
        assert len(password) >= 32
        assert password not in banner, "the banner shows DATABASE_URL without its password"
        assert "DATABASE_URL=postgresql://huibao:***@127.0.0.1:" in banner
        # `huibao up` supervises: a SIGKILLed rollup is restarted, logged as JSON, counted
        rollup = next(
            c for c in psutil.Process(proc.pid).children() if "huibao_rollup" in c.cmdline()
        )
        rollup.send_signal(signal.SIGKILL)
        restarted = _wait_for_line(proc, '"part_restarted"', timeout=30).splitlines()[-1]
        assert json.loads(restarted)["huibao.part"] == "rollup", restarted
        metrics_url = env_file.read_text().split("HUIBAO_STACK_METRICS_URL=", 1)[1].split()[0]
        assert 'huibao_stack_restarts_total{part="rollup"} 1.0' in httpx.get(metrics_url).text
        r = httpx.get(f"http://127.0.0.1:{ports['rollup']}/health/ready", timeout=5)
        assert r.status_code == 200, r.text
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 130, out
        assert "stopped" in out
        assert still_alive(started) == []
        assert not (tmp_path / "data" / "stack.env").exists()
    finally:
        proc.kill()
        if cluster != tmp_path / "data" / "postgres":  # as root: outside tmp_path
            shutil.rmtree(cluster.parent, ignore_errors=True)


def test_a_second_sigint_kills_everything_at_once() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, FAKE_SERVICE, "ready"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        _wait_for_line(proc, "READY")
        started = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, out
        assert still_alive(started) == []
    finally:
        proc.kill()
