"""The embedded stack trusts nobody on the machine.

PostgreSQL admits only password (SCRAM) logins; the services' role owns their databases and
is no superuser; the passwords live in a 0600 file of the launcher's user. As root, the
launcher runs PostgreSQL as `pgserver` in its own group, works from a checkout inside a 0700
directory, and changes no mode or owner it did not create, symlinks included.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import psutil
import pytest

from huibao_stack import credentials
from huibao_stack.errors import StartupError
from huibao_stack.infra import Infrastructure
from huibao_stack.pg_runtime import PERSISTENT_BASE, SYSTEM_USER
from huibao_stack.postgres import EmbeddedPostgres

pytestmark = [pytest.mark.stack]

AS_ROOT = os.geteuid() == 0
REFUSED = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


async def test_postgres_admits_only_the_password_and_the_services_are_no_superuser(
    infra: Infrastructure,
) -> None:
    pg = infra.postgres
    if pg is None:
        pytest.skip("DATABASE_URL names an external PostgreSQL")
    host = f"127.0.0.1:{pg.port}"
    for user in ("postgres", "huibao"):
        for auth in ("", ":", ":wrong-password"):
            with pytest.raises(REFUSED):
                await asyncpg.connect(f"postgresql://{user}{auth}@{host}/postgres", timeout=5)
    service_password = pg.database_url.split(":")[2].split("@")[0]
    with pytest.raises(REFUSED):  # one role's password is not another's
        await asyncpg.connect(f"postgresql://postgres:{service_password}@{host}/postgres")

    url = await infra.fresh_database("trust_owner")
    conn = await asyncpg.connect(url)
    try:
        role = await conn.fetchrow(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname = current_user"
        )
        assert role is not None
        assert dict(role) == {
            "rolname": "huibao",
            "rolsuper": False,
            "rolcreatedb": False,
            "rolcreaterole": False,
            "rolreplication": False,
            "rolbypassrls": False,
        }
        owner = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1"
        assert await conn.fetchval(owner, "trust_owner") == "huibao"
        assert await conn.fetchval(owner, "huibao") == "huibao"
        # what the services do with their database works without superuser
        await conn.execute("CREATE SCHEMA s; CREATE TABLE s.t (x int); LISTEN huibao_probe")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="external program"):
            await conn.execute("COPY s.t TO PROGRAM 'id > /tmp/huibao-pwned'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT pg_read_file('/etc/passwd')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE DATABASE not_allowed")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("ALTER ROLE huibao SUPERUSER")
    finally:
        await conn.close()
    assert not os.path.lexists("/tmp/huibao-pwned")  # noqa: ASYNC240 (one stat)

    admin = await asyncpg.connect(pg.superuser_url())
    try:
        rules = await admin.fetch(
            "SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules"
        )
    finally:
        await admin.close()
    assert [tuple(r) for r in rules] == [("host", ["all"], ["all"], "127.0.0.1", "scram-sha-256")]

    st = os.lstat(pg.password_file)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    kept = json.loads(pg.password_file.read_text())
    assert kept["huibao"] == service_password
    assert kept["postgres"] not in pg.database_url

    server = psutil.Process(pg.pid)
    if AS_ROOT:
        import grp
        import pwd

        entry = pwd.getpwnam(SYSTEM_USER)
        assert server.uids().real == entry.pw_uid
        assert server.gids().real == entry.pw_gid != 0
        assert grp.getgrgid(entry.pw_gid).gr_name != "root"
        assert _supplementary_groups(pg.pid) == [], "root's groups are dropped"
    else:
        assert server.uids().real == os.geteuid()


def _supplementary_groups(pid: int | None) -> list[str]:
    status = Path(f"/proc/{pid}/status").read_text()
    return status.split("Groups:")[1].split("\n")[0].split()


def test_a_symlinked_or_loose_password_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text('{"postgres": "a", "huibao": "b"}')
    target.chmod(0o600)
    link = tmp_path / "postgres.password"
    link.symlink_to(target)
    with pytest.raises(StartupError, match="symlink"):
        credentials.load_or_create(link)
    link.unlink()
    shutil.copy(target, link)
    link.chmod(0o640)
    with pytest.raises(StartupError, match="mode 640"):
        credentials.load_or_create(link)
    link.chmod(0o600)
    assert credentials.load_or_create(link)[0] == credentials.Passwords("a", "b")
    made = tmp_path / "new.password"
    passwords, fresh = credentials.load_or_create(made)
    assert fresh
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert credentials.load_or_create(made) == (passwords, False)
    assert passwords.superuser != passwords.service
    assert len(passwords.service) >= 40


OLD_SCHEMA = """CREATE SCHEMA app;

CREATE TABLE app.kept (id serial PRIMARY KEY, x int NOT NULL);

CREATE TYPE app.mood AS ENUM ('ok', 'not ok');

CREATE FUNCTION app.twice(v int) RETURNS int LANGUAGE sql AS 'SELECT 2 * v';

CREATE VIEW app.doubled AS SELECT id, app.twice(x) AS x FROM app.kept;

INSERT INTO app.kept (x) VALUES (21);

"""


def _old_trust_cluster(launcher_dir: Path) -> None:
    """What the launcher before password authentication left: initdb --auth=trust, the
    database and its objects owned by the superuser `postgres`."""
    from huibao_stack.pg_runtime import mirror_binaries, server_account
    from huibao_stack.postgres import binaries

    account = server_account() if AS_ROOT else None
    ids = {"user": account.uid, "group": account.gid, "extra_groups": []} if account else {}
    install = binaries()
    bindir = install
    if account is not None:  # the old launcher opened the checkout up; this test never does
        bindir = mirror_binaries(
            install.parent, install.parents[2] / "pgserver.libs", launcher_dir.parent
        )
        os.chown(launcher_dir, account.uid, account.gid)
    for argv, sql in [
        ([str(bindir / "initdb"), "-D", str(launcher_dir), "-U", "postgres", "--auth=trust",
          "--no-sync"], None),
        ([str(bindir / "postgres"), "--single", "-j", "-D", str(launcher_dir), "postgres"],
         "CREATE DATABASE huibao;\n\n"),
        ([str(bindir / "postgres"), "--single", "-j", "-D", str(launcher_dir), "huibao"],
         OLD_SCHEMA),
    ]:  # fmt: skip
        done = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False, **ids)  # type: ignore[call-overload]
        assert done.returncode == 0, done.stdout + done.stderr
        assert "ERROR" not in done.stdout + done.stderr, done.stdout + done.stderr


async def test_an_old_trust_cluster_is_adopted_with_its_data(tmp_path: Path) -> None:
    from huibao_stack.pg_runtime import private_temp_dir

    # reachable by the server's user, as the old launcher had made it
    base = private_temp_dir("huibao-old-", 0o711) if AS_ROOT else tmp_path
    try:
        launcher_dir = base / "postgres"
        launcher_dir.mkdir(mode=0o700)
        await asyncio.to_thread(_old_trust_cluster, launcher_dir)
        pg = EmbeddedPostgres(launcher_dir, log_path=tmp_path / "pg.log")
        await pg.start()
        try:
            assert pg.password_file.exists()
            assert stat.S_IMODE(os.lstat(pg.password_file).st_mode) == 0o600
            host = f"127.0.0.1:{pg.port}"
            with pytest.raises(REFUSED):
                await asyncpg.connect(f"postgresql://postgres@{host}/huibao", timeout=5)
            conn = await asyncpg.connect(pg.database_url)
            try:
                assert not await conn.fetchval(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                )
                await conn.execute("INSERT INTO app.kept (x) VALUES (1)")  # its sequence too
                assert await conn.fetchval("SELECT sum(x) FROM app.doubled") == 44
                await conn.execute("ALTER TABLE app.kept ADD COLUMN mood app.mood")
                await conn.execute("CREATE TABLE app.more (y int)")  # owns the schema
            finally:
                await conn.close()
            await pg.restart()  # the new password file is used from now on
            conn = await asyncpg.connect(pg.database_url)
            assert await conn.fetchval("SELECT count(*) FROM app.kept") == 2
            await conn.close()
        finally:
            await pg.close()
            if AS_ROOT:
                assert not launcher_dir.exists(), "moved where the server's user reaches it"
                shutil.rmtree(pg.data_dir.parent, ignore_errors=True)
    finally:
        if AS_ROOT:
            shutil.rmtree(base, ignore_errors=True)


def test_redacted_urls_keep_everything_but_the_password() -> None:
    url = "postgresql://huibao:s3cr3t-pass@127.0.0.1:5432/huibao"
    assert credentials.redact_url(url) == "postgresql://huibao:***@127.0.0.1:5432/huibao"
    assert credentials.redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


# --- as root, from a checkout inside a 0700 directory ---------------------------------------

LAUNCHER = textwrap.dedent(
    """
    import asyncio, json, sys
    import asyncpg
    from pgserver._commands import POSTGRES_BIN_PATH
    from huibao_stack.infra import Infrastructure
    from huibao_stack.stack import default_data_dir

    async def main():
        infra = Infrastructure(default_data_dir(), persistent=True)  # ./.huibao/data
        await infra.start()
        try:
            conn = await asyncpg.connect(infra.database_url)
            row = await conn.fetchrow(
                "SELECT current_user AS user, rolsuper FROM pg_roles WHERE rolname = current_user")
            await conn.execute("CREATE TABLE IF NOT EXISTS kept (x int)")
            await conn.execute("INSERT INTO kept VALUES (1)")
            kept = await conn.fetchval("SELECT count(*) FROM kept")
            await conn.close()
            pg = infra.postgres
            print(json.dumps({"user": row["user"], "super": row["rolsuper"], "kept": kept,
                              "install": str(POSTGRES_BIN_PATH), "cluster": str(pg.data_dir),
                              "password_file": str(pg.password_file)}))
        finally:
            await infra.stop()

    asyncio.run(main())
    """
)


def _stat(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_mode, st.st_uid, st.st_gid


def _launch(checkout: Path, site: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("DATABASE_URL", None)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not AS_ROOT, reason="the launcher only changes users when run as root")
def test_as_root_from_a_0700_checkout_nothing_around_it_changes(tmp_path: Path) -> None:
    import pgserver

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    checkout = private / "checkout"
    checkout.mkdir()
    # the pgserver wheel as it would sit in the checkout's .venv: unreachable for pgserver
    wheel = Path(pgserver.__file__).parent
    site = checkout / ".venv" / "site-packages"
    for name in ("pgserver", "pgserver.libs"):
        shutil.copytree(wheel.parent / name, site / name, copy_function=os.link, symlinks=True)
    secret = private / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    run_dir = checkout / ".huibao" / "data"
    watched = [*(checkout / ".huibao").parents, PERSISTENT_BASE.parent.parent, secret, site]
    watched += [site / "pgserver" / "pginstall" / "bin"]
    before = {p: _stat(p) for p in watched}

    first = _launch(checkout, site)
    assert first["user"] == "huibao"
    assert first["super"] is False
    assert first["kept"] == 1
    assert Path(str(first["install"])).is_relative_to(checkout), "ran the private wheel"
    cluster = Path(str(first["cluster"]))
    try:
        password_file = Path(str(first["password_file"]))
        assert password_file == run_dir / "postgres.password"
        assert _stat(password_file)[0] & 0o7777 == 0o600
        assert _stat(password_file)[1:] == (0, 0)
        assert not cluster.is_relative_to(private)
        st = os.lstat(cluster)
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert st.st_uid != 0
        assert stat.S_IMODE(os.lstat(cluster.parent).st_mode) == 0o711
        assert os.lstat(cluster.parent).st_uid == 0

        # the server's user plants links in its data directory; the next start must not
        # hand their targets to it
        planted = [cluster / "planted-secret", cluster / "base" / "planted-private"]
        planted[0].symlink_to(secret)
        planted[1].symlink_to(private)
        os.chown(planted[0], st.st_uid, st.st_gid, follow_symlinks=False)
        second = _launch(checkout, site)
        assert second["kept"] == 2, "the data and the password file survive a restart"
        assert second["password_file"] == first["password_file"]
        assert {p: _stat(p) for p in watched} == before, "nothing above the checkout changed"
        assert _stat(secret) == (stat.S_IFREG | 0o600, 0, 0)
        assert secret.read_text() == "root only"
    finally:
        shutil.rmtree(cluster.parent, ignore_errors=True)


@pytest.mark.skipif(not AS_ROOT, reason="only root prepares directories for another user")
def test_as_root_a_symlinked_or_foreign_cluster_directory_is_refused_untouched(
    tmp_path: Path,
) -> None:
    from huibao_stack.pg_runtime import ensure_dir, server_account

    account = server_account()
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    link = tmp_path / "data"
    link.symlink_to(secret)
    with pytest.raises(StartupError, match="not a directory"):
        ensure_dir(link, 0o700, account)
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o777)
    foreign.chmod(0o777)
    with pytest.raises(StartupError, match="expected uid"):
        ensure_dir(foreign, 0o700, account)
    assert _stat(secret) == (stat.S_IFDIR | 0o700, 0, 0)
    assert _stat(foreign) == (stat.S_IFDIR | 0o777, 0, 0)
    made = tmp_path / "made"
    ensure_dir(made, 0o700, account)
    assert _stat(made) == (stat.S_IFDIR | 0o700, account.uid, account.gid)
    ensure_dir(made, 0o700, account)  # an existing, right one is accepted as it is
