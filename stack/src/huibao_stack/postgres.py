"""PostgreSQL from the `pgserver` wheel's binaries, run as a child process of the launcher.

`initdb` runs once per data directory; `postgres` then listens on a loopback TCP port only
(no unix socket, so long data paths do not matter) and admits only SCRAM-SHA-256 password
logins (`pg_hba.conf` is written by the launcher at every start, outside the data
directory). The passwords are made per data directory and kept in `<data dir>.password`,
mode 0600 (see `huibao_stack.credentials`); the services connect as the role `huibao`,
which owns the Huibao databases and is no superuser. As root, PostgreSQL runs as the system
user `pgserver` in its own group, from files placed where that user can reach them (see
`huibao_stack.pg_runtime`); nothing outside what the launcher creates is chowned or chmodded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import warnings
from pathlib import Path

import asyncpg

from huibao_stack import credentials, pg_migrate, pg_runtime
from huibao_stack.credentials import SERVICE_ROLE, SUPERUSER, Passwords
from huibao_stack.errors import EmbeddedUnavailableError, StartupError
from huibao_stack.pg_runtime import SYSTEM_USER, Account
from huibao_stack.processes import Child, OwnedServer, free_port, tail

__all__ = ["SYSTEM_USER", "EmbeddedPostgres", "binaries"]

log = logging.getLogger("huibao.stack.postgres")

HBA = """# Written by the Huibao launcher at every start (the data directory's copy is unused).
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
"""


def binaries() -> Path:
    """The directory holding `initdb` and `postgres` from the pgserver wheel."""
    try:
        with warnings.catch_warnings():  # pgserver's import warns about XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
    except Exception as e:  # ImportError on unsupported platforms, anything else if broken
        raise EmbeddedUnavailableError(
            "PostgreSQL (pgserver)", f"cannot import pgserver: {e}"
        ) from e
    path = Path(POSTGRES_BIN_PATH)
    if not (path / "postgres").is_file():
        raise EmbeddedUnavailableError("PostgreSQL (pgserver)", f"no postgres binary in {path}")
    return path


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class EmbeddedPostgres(OwnedServer):
    """One PostgreSQL server on 127.0.0.1 with a database ready for the services.

    Throwaway mode (`data_dir=None`): a temporary directory, `fsync=off`, removed by `close()`.
    Persistent mode: the given directory, created and initialised on first use, `fsync=on`;
    as root the cluster itself lives in `pg_runtime.persistent_cluster_dir(data_dir)`
    (`data_dir` is then only where its password file goes). `data_dir` is the cluster.
    `stop` is a fast shutdown (SIGINT: abort sessions, checkpoint); `kill` makes the next
    start run crash recovery; `restart` keeps the port, the data and the passwords.
    """

    STOP_SIGNAL = signal.SIGINT
    STOP_GRACE = 30.0

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        database: str = "huibao",
        log_path: Path | None = None,
        fsync: bool | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.throwaway = data_dir is None
        self.as_root = pg_runtime.running_as_root()
        self._tmp: Path | None = None
        if data_dir is None:
            self._tmp = (
                pg_runtime.private_temp_dir("huibao-pg-", 0o711)  # the server user traverses
                if self.as_root
                else Path(tempfile.mkdtemp(prefix="huibao-pg-"))
            )
            self.launcher_dir = self.data_dir = self._tmp / "data"
        else:
            self.launcher_dir = Path(data_dir).resolve()
            self.data_dir = (
                pg_runtime.persistent_cluster_dir(self.launcher_dir)
                if self.as_root
                else self.launcher_dir
            )
        self.password_file = self.launcher_dir.with_name(self.launcher_dir.name + ".password")
        self.port = port or free_port()
        self.database = database
        self.log_path = log_path or (self.launcher_dir.parent / "postgres.log")
        self.fsync = (not self.throwaway) if fsync is None else fsync
        self.start_timeout = start_timeout
        self.account: Account | None = None
        self._passwords: Passwords | None = None
        self._runtime: Path | None = None
        self._child: Child | None = None

    # --- addresses -------------------------------------------------------------------------

    def url(self, database: str | None = None) -> str:
        """The service role's libpq URL of `database` (default: the service database)."""
        return self._url(SERVICE_ROLE, self._known().service, database or self.database)

    @property
    def database_url(self) -> str:
        """The URL the services use (DATABASE_URL): the service role, with its password."""
        return self.url()

    def superuser_url(self, database: str = "postgres") -> str:
        """The superuser's URL: for the launcher's own administration, never for a service."""
        return self._url(SUPERUSER, self._known().superuser, database)

    def _url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def _known(self) -> Passwords:
        if self._passwords is None:
            raise RuntimeError("the PostgreSQL passwords are known once start() has run")
        return self._passwords

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Initialise the data directory if needed, start the server, wait, create the
        service role and database."""
        install = binaries()
        self._drop_runtime()
        self._prepare_dirs()
        self._passwords, adopt = self._load_passwords()
        self._runtime = self._new_runtime()
        bindir = install
        if self.account is not None:
            libs = install.parent.parent.parent / "pgserver.libs"
            bindir = pg_runtime.mirror_binaries(install.parent, libs, self._runtime)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bindir)
        hba = self._runtime / "pg_hba.conf"
        os.close(credentials.create_exclusive(hba, HBA.encode(), 0o644))
        if adopt:
            self._adopt(bindir, hba)
        argv = [
            str(bindir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",
            "-c", f"hba_file={hba}",
            "-c", "password_encryption=scram-sha-256",
            "-c", f"fsync={'on' if self.fsync else 'off'}",
            "-c", "max_connections=200",
            "-c", "shared_buffers=256MB",
        ]  # fmt: skip
        if not self.fsync:
            argv += ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        acct = self.account
        self._child = Child(
            "postgres",
            argv,
            log_path=self.log_path,
            user=acct.uid if acct else None,
            group=acct.gid if acct else None,
            extra_groups=[] if acct else None,
        )
        self._child.start()
        try:
            await self._wait_ready()
            await self._ensure_service_role()
            await self.create_database(self.database)
        except BaseException:
            await self.kill()
            raise
        log.info("postgres ready on 127.0.0.1:%d (data %s)", self.port, self.data_dir)

    async def stop(self, grace: float | None = None) -> None:
        """Fast shutdown, then forget the per-start files (binaries, pg_hba.conf)."""
        await super().stop(grace)
        self._drop_runtime()

    async def kill(self) -> None:
        """SIGKILL the server, then forget the per-start files."""
        await super().kill()
        self._drop_runtime()

    async def close(self) -> None:
        """Stop the server and, in throwaway mode, delete its directory."""
        await self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # --- databases -------------------------------------------------------------------------

    async def create_database(self, name: str) -> str:
        """Create database `name`, owned by the service role, unless it exists; its URL."""
        conn = await asyncpg.connect(self.superuser_url(), timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(
                    f"CREATE DATABASE {_quote_ident(name)} OWNER {_quote_ident(SERVICE_ROLE)}"
                )
        finally:
            await conn.close()
        return self.url(name)

    async def fresh_database(self, name: str) -> str:
        """An empty database `name` owned by the service role (any old one dropped); its URL."""
        conn = await asyncpg.connect(self.superuser_url(), timeout=10)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
            await conn.execute(
                f"CREATE DATABASE {_quote_ident(name)} OWNER {_quote_ident(SERVICE_ROLE)}"
            )
        finally:
            await conn.close()
        return self.url(name)

    # --- internals -------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        """Create what the launcher owns, with its final modes; check what exists already."""
        self.launcher_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.as_root:
            with contextlib.suppress(FileExistsError):
                self.data_dir.mkdir(mode=0o700)
            return
        self.account = pg_runtime.server_account()
        if not self.throwaway:
            pg_runtime.prepare_persistent_parent(self.data_dir, self.launcher_dir)
            if (self.launcher_dir / "PG_VERSION").exists():  # an older launcher's, in the checkout
                if self.data_dir.exists():
                    raise StartupError(
                        f"{self.launcher_dir} holds an older launcher's PostgreSQL cluster, and "
                        f"{self.data_dir} one of its own: remove one of them"
                    )
                pg_migrate.move_cluster(self.launcher_dir, self.data_dir)
                log.warning("postgres: moved %s to %s", self.launcher_dir, self.data_dir)
        pg_runtime.ensure_dir(self.data_dir, 0o700, self.account)

    def _load_passwords(self) -> tuple[Passwords, bool]:
        """The cluster's passwords, and whether it must first be adopted: a cluster without a
        password file is an older launcher's (trust) or lost its file; its new passwords are
        saved only once the adoption has worked."""
        if (self.data_dir / "PG_VERSION").exists() and not self.password_file.exists():
            return credentials.new_passwords(), True
        passwords, made = credentials.load_or_create(self.password_file)
        if made:
            log.info("postgres: new passwords in %s (mode 600)", self.password_file)
        return passwords, False

    def _adopt(self, bindir: Path, hba: Path) -> None:
        passwords = self._known()
        log.warning(
            "postgres: %s has no password file: bringing it under password authentication",
            self.data_dir,
        )
        databases = pg_migrate.adopt_trust_cluster(
            bindir,
            self.data_dir,
            superuser=SUPERUSER,
            superuser_verifier=credentials.scram_verifier(passwords.superuser),
            role=SERVICE_ROLE,
            account=self.account,
            hba=hba,
        )
        credentials.save(self.password_file, passwords)
        log.warning(
            "postgres: %s now needs passwords (in %s); %s given to role %s",
            self.data_dir,
            self.password_file,
            ", ".join(databases) or "no database",
            SERVICE_ROLE,
        )

    def _new_runtime(self) -> Path:
        # next to the cluster: the throwaway dir, the root-owned 0711 dir, or .huibao/data
        return pg_runtime.new_runtime_dir(self.data_dir.parent, shared=self.account is not None)

    def _drop_runtime(self) -> None:
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)
            self._runtime = None

    def _initdb(self, bindir: Path) -> None:
        assert self._runtime is not None
        pg_runtime.initdb(
            bindir,
            self.data_dir,
            runtime=self._runtime,
            superuser=SUPERUSER,
            verifier=credentials.scram_verifier(self._known().superuser),
            account=self.account,
            fsync=self.fsync,
        )

    async def _ensure_service_role(self) -> None:
        """The service role: can log in with its password, owns the Huibao databases, and
        has no other privilege (no superuser, no CREATEDB/CREATEROLE, no replication)."""
        verifier = credentials.scram_verifier(self._known().service)
        attributes = (
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            f"PASSWORD '{verifier}'"  # base64 and `$:` only: nothing to escape
        )
        conn = await asyncpg.connect(self.superuser_url(), timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", SERVICE_ROLE)
            verb = "ALTER" if exists else "CREATE"
            await conn.execute(f"{verb} ROLE {_quote_ident(SERVICE_ROLE)} {attributes}")
        finally:
            await conn.close()

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        last_error = "no attempt yet"
        while loop.time() < deadline:
            if self._child is None or not self._child.running():
                code = self._child.returncode() if self._child else None
                raise StartupError(
                    f"PostgreSQL exited while starting (exit {code}); log {self.log_path}:\n"
                    f"{tail(self.log_path)}"
                )
            try:
                conn = await asyncpg.connect(self.superuser_url(), timeout=2)
            except asyncpg.InvalidPasswordError as e:
                raise StartupError(
                    f"PostgreSQL in {self.data_dir} refused the superuser password kept in "
                    f"{self.password_file}: the file does not belong to this data directory"
                ) from e
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
                last_error = str(e)
                await asyncio.sleep(0.1)
                continue
            await conn.close()
            return
        raise StartupError(
            f"PostgreSQL did not accept connections on 127.0.0.1:{self.port} within "
            f"{self.start_timeout:.0f}s ({last_error}); log {self.log_path}:\n{tail(self.log_path)}"
        )
