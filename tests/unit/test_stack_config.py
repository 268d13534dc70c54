"""The launcher's configuration and the test-support builders, without starting anything."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.events import cloudevent
from tests.support.tree import build_city, chinese_number
from tests.support.waits import wait_until

from huibao_contracts.envelope import CloudEvent
from huibao_contracts.orgunits import OrgUnit
from huibao_stack.cli import main
from huibao_stack.errors import StackError
from huibao_stack.infra import replace_database
from huibao_stack.processes import Child, free_port, port_is_free, tail
from huibao_stack.settings import LauncherSettings
from huibao_stack.stack import DEFAULT_ADMIN_TOKEN, EmbeddedStack, default_data_dir, fixed_ports


def test_up_uses_fixed_ports_unless_the_environment_overrides_them() -> None:
    assert fixed_ports({}) == {"reporting": 8001, "rollup": 8002, "scheduler": 8003}
    assert fixed_ports({"HUIBAO_ROLLUP_PORT": "9102"})["rollup"] == 9102
    with pytest.raises(StackError, match="HUIBAO_SCHEDULER_PORT"):
        fixed_ports({"HUIBAO_SCHEDULER_PORT": "eighty"})


def test_data_dir_defaults_to_dot_huibao_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_data_dir({}) == tmp_path.resolve() / ".huibao" / "data"
    assert default_data_dir({"HUIBAO_DATA_DIR": str(tmp_path / "x")}) == tmp_path.resolve() / "x"


def test_stack_settings_come_from_the_environment_it_is_given() -> None:
    stack = EmbeddedStack(
        environ={
            "DATABASE_URL": "postgresql://u@db.example:5432/huibao",
            "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092",
            "HUIBAO_ADMIN_TOKEN": "s3cret",
        },
        clock="manual",
        clock_start="2026-06-01T00:00:00+08:00",
    )
    try:
        assert stack.admin_token == "s3cret"
        assert stack.database_url == "postgresql://u@db.example:5432/huibao"
        assert stack.bootstrap_servers == "kafka.example:9092"
        env = stack.env_for("scheduler")
        assert env["HUIBAO_CLOCK"] == "manual"
        assert env["HUIBAO_CLOCK_START"] == "2026-06-01T00:00:00+08:00"
        assert env["HUIBAO_ROLLUP_URL"] == f"http://127.0.0.1:{stack.ports['rollup']}"
        assert len(set(stack.ports.values())) == 3
    finally:
        stack.stop_sync()
    plain = EmbeddedStack(environ={})
    assert plain.admin_token == DEFAULT_ADMIN_TOKEN
    plain.stop_sync()
    assert not plain.run_dir.exists()


def test_the_launcher_reads_only_the_environment_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUIBAO_ADMIN_TOKEN", "from-the-process")
    given = {
        "HUIBAO_ADMIN_TOKEN": "",
        "HUIBAO_ROLLUP_PORT": "9102",
        "KAFKA_SASL_USERNAME": "u",
        "DATABASE_URL": "postgresql://u@db.example:5432/huibao",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092",
    }
    settings = LauncherSettings.read(given)
    assert settings.admin_token is None  # empty is unset; the process's own is not read
    assert settings.fixed_ports()["rollup"] == 9102
    assert LauncherSettings.read().admin_token == "from-the-process"
    stack = EmbeddedStack(settings=settings)
    try:
        assert stack.admin_token == DEFAULT_ADMIN_TOKEN
        env = stack.env_for("reporting")  # the children get the given environment, explicitly
        assert env["KAFKA_SASL_USERNAME"] == "u"
        assert env["HUIBAO_ADMIN_TOKEN"] == DEFAULT_ADMIN_TOKEN
    finally:
        stack.stop_sync()
    with pytest.raises(StackError, match="HUIBAO_STACK_RESTART_LIMIT"):
        LauncherSettings.read({"HUIBAO_STACK_RESTART_LIMIT": "-1"})


def test_every_launcher_setting_is_described() -> None:
    for name, info in LauncherSettings.model_fields.items():
        assert info.description, name


def test_the_launcher_settings_never_show_a_secret() -> None:
    url = "postgresql://huibao:pg-Secret@db.example:5432/huibao"
    settings = LauncherSettings.read({"DATABASE_URL": url, "HUIBAO_ADMIN_TOKEN": "tok-Secret"})
    assert settings.database_url == url
    assert "Secret" not in repr(settings)


def test_unknown_services_are_refused() -> None:
    with pytest.raises(StackError, match="unknown services"):
        EmbeddedStack(services=("reporting", "dashboard"))


def test_replace_database_keeps_everything_but_the_name() -> None:
    url = "postgresql://u:p@h:5433/huibao?sslmode=require"
    assert replace_database(url, "t1") == "postgresql://u:p@h:5433/t1?sslmode=require"


def test_ports_and_log_tail(tmp_path: Path) -> None:
    port = free_port()
    assert port_is_free(port)
    log = tmp_path / "x.log"
    assert "no log" in tail(log)
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99"


def test_a_child_is_stopped_then_killed_after_its_grace(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    child = Child("stubborn", [sys.executable, "-c", stubborn], log_path=tmp_path / "s.log")
    child.start()
    try:
        deadline = time.monotonic() + 10
        while "up" not in tail(child.log_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        child.stop(signal.SIGTERM, grace=0.5)
        assert not child.running()
        assert child.returncode() == -signal.SIGKILL
    finally:
        child.kill()


def test_build_city_makes_valid_org_units_parents_first() -> None:
    units = build_city("t9", counties=3, townships_per_county=2, branches_per_township=3)
    assert [u["level"] for u in units[:4]] == ["city", "county", "township", "branch"]
    assert units[0]["id"] == "t9"
    assert units[3]["id"] == "t9.c1.t1.b1"
    branches = [u for u in units if u["level"] == "branch"]
    assert len(branches) == 18
    assert [b["members"] for b in branches[:3]] == [20, 21, 22]
    seen: set[str] = set()
    for unit in units:
        OrgUnit.model_validate(unit)
        assert unit.get("parent") is None or unit["parent"] in seen
        seen.add(unit["id"])
    assert len({u["name"] for u in units}) == len(units)
    assert chinese_number(25) == "二十五"
    assert chinese_number(10) == "十"


def test_cloudevent_is_a_valid_structured_event() -> None:
    ev = cloudevent(
        "huibao.party_day.held.v1",
        "t9.c1.t1.b1",
        {"activity_id": "a1"},
        id="e1",
        time=dt.datetime(2026, 6, 26, 18, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    )
    model = CloudEvent.model_validate(ev)
    assert model.id == "e1"
    assert ev["time"] == "2026-06-26T18:00:00+08:00"
    assert "time" not in cloudevent("t", "s", {})
    assert cloudevent("t", "s", {})["id"] != cloudevent("t", "s", {})["id"]


async def test_wait_until_returns_the_value_or_says_what_it_last_saw() -> None:
    calls = iter([0, 0, 5])
    assert await wait_until(lambda: next(calls), timeout=2, interval=0.01) == 5

    async def never() -> bool:
        raise AssertionError("rollup shows 3, want 4")

    with pytest.raises(AssertionError, match="rollup shows 3, want 4"):
        await wait_until(never, timeout=0.2, interval=0.05)


def test_token_create_refuses_a_malformed_unit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--unit", "bad unit!"]) == 2
    assert "not an org-unit id" in capsys.readouterr().err


def test_huibao_help_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "huibao_stack.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("up", "demo", "topics", "token"):
        assert command in out
