"""The development admin token exists only in the embedded launcher, and only on loopback.

A service has no admin token by default; bound beyond loopback it refuses to start without
one of its own (or with the development one), naming the setting, without a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from huibao_platform.settings import DEVELOPMENT_ADMIN_TOKEN, CommonSettings
from huibao_stack.infra import Infrastructure
from huibao_stack.processes import free_port
from huibao_stack.services import ServiceProcess

DEAD_DATABASE = "postgresql://nobody:x@127.0.0.1:9/nothing"
"""Never reached: a service that refuses to start does so before it connects anywhere."""


@pytest.mark.parametrize(
    ("host", "token", "why"),
    [
        ("0.0.0.0", None, "HUIBAO_ADMIN_TOKEN is not set"),
        ("::", DEVELOPMENT_ADMIN_TOKEN, "public development token"),
        ("", "", "HUIBAO_ADMIN_TOKEN is not set"),
        ("10.1.2.3", DEVELOPMENT_ADMIN_TOKEN, "public development token"),
        ("127.0.0.1", None, None),
        ("localhost", DEVELOPMENT_ADMIN_TOKEN, None),
        ("::1", "", None),
        ("0.0.0.0", "a-secret-of-its-own", None),
    ],
)
def test_exposure_rule(host: str, token: str | None, why: str | None) -> None:
    fields = {"http_host": host} | ({} if token is None else {"admin_token": token})
    problem = CommonSettings(**fields).exposure_problem()  # type: ignore[arg-type]
    if why is None:
        assert problem is None
    else:
        assert problem is not None
        assert why in problem
        assert f"HUIBAO_HTTP_HOST={host!r}" in problem


def test_no_service_has_an_admin_token_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUIBAO_ADMIN_TOKEN", raising=False)
    assert CommonSettings().admin_token == ""


def test_services_bound_beyond_loopback_refuse_the_missing_or_development_token() -> None:
    cases = {
        "reporting": ("0.0.0.0", None),
        "rollup": ("::", DEVELOPMENT_ADMIN_TOKEN),
    }  # the scheduler's main() ends in the same `serve()` check
    procs = {}
    for name, (host, token) in cases.items():
        env = {
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": DEAD_DATABASE,
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
            "HUIBAO_HTTP_HOST": host,
            "HUIBAO_HTTP_PORT": str(free_port()),
            **({"HUIBAO_ADMIN_TOKEN": token} if token is not None else {}),
        }
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"huibao_{name}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 2, (name, out, err)
        assert "refusing to start" in err, name
        assert "HUIBAO_ADMIN_TOKEN" in err, name
        assert f"HUIBAO_HTTP_HOST={cases[name][0]!r}" in err, name
        assert "Traceback" not in err + out, name
        assert len(err.strip().splitlines()) == 1, f"{name}: one line, not a log dump: {err}"


@pytest.mark.stack
async def test_a_loopback_service_without_admin_token_accepts_no_admin(
    infra: Infrastructure,
) -> None:
    url = await infra.fresh_database("exposure_no_admin")
    env = infra.env() | {"DATABASE_URL": url}
    env["PATH"] = "/usr/bin:/bin"
    with tempfile.TemporaryDirectory(prefix="huibao-exposure-") as logs:
        proc = ServiceProcess("reporting", port=free_port(), env=env, log_dir=Path(logs))
        await proc.start()
        try:
            async with httpx.AsyncClient(base_url=proc.url, timeout=10) as client:
                dev = {"Authorization": f"Bearer {DEVELOPMENT_ADMIN_TOKEN}"}
                r = await client.get("/v1/orgunits/no-such-unit", headers=dev)
                assert r.status_code == 401, r.text
        finally:
            await proc.stop()
        log = proc.log_tail(200)
    assert "HUIBAO_ADMIN_TOKEN is not set" in log
    assert "only tokens minted into the database" in log
