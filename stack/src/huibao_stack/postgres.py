"""PostgreSQL from the `pgserver` wheel's binaries, run as a child process of the launcher.

`initdb` runs once per data directory; `postgres` then listens on a loopback TCP port only
(no unix socket, so long data paths do not matter). As root, PostgreSQL refuses to run, so
the server runs as the system user `pgserver`, which owns the data directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path

import asyncpg

from huibao_stack.children import Child, OwnedServer, free_port, tail
from huibao_stack.errors import EmbeddedUnavailableError, StartupError

log = logging.getLogger("huibao.stack.postgres")

SYSTEM_USER = "pgserver"
"""The unprivileged system user PostgreSQL runs as when the launcher runs as root."""


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


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class EmbeddedPostgres(OwnedServer):
    """One PostgreSQL server on 127.0.0.1 with a database ready for the services.

    Throwaway mode (`data_dir=None`): a temporary directory, `fsync=off`, removed by `close()`.
    Persistent mode: the given directory, created and initialised on first use, `fsync=on`.
    `stop` is a fast shutdown (SIGINT: abort sessions, checkpoint); `kill` makes the next
    start run crash recovery; `restart` keeps the port and the data directory.
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
        self._tmp: Path | None = None
        if data_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="huibao-pg-"))
            self.data_dir = self._tmp / "data"
        else:
            self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.database = database
        self.log_path = log_path or (self.data_dir.parent / "postgres.log")
        self.fsync = (not self.throwaway) if fsync is None else fsync
        self.start_timeout = start_timeout
        self.user = SYSTEM_USER if _running_as_root() else None
        self._child: Child | None = None

    # --- addresses -------------------------------------------------------------------------

    def url(self, database: str | None = None) -> str:
        """A libpq URL of `database` (the service database by default) on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database or self.database}"

    @property
    def database_url(self) -> str:
        """The URL the services use (DATABASE_URL)."""
        return self.url()

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Initialise the data directory if needed, start the server, wait, create the database."""
        bindir = binaries()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bindir)
        argv = [
            str(bindir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",
            "-c", f"fsync={'on' if self.fsync else 'off'}",
            "-c", "max_connections=200",
            "-c", "shared_buffers=256MB",
        ]  # fmt: skip
        if not self.fsync:
            argv += ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._child = Child("postgres", argv, log_path=self.log_path, user=self.user)
        self._child.start()
        try:
            await self._wait_ready()
            await self.create_database(self.database)
        except BaseException:
            await self.kill()
            raise
        log.info("postgres ready on 127.0.0.1:%d (data %s)", self.port, self.data_dir)

    async def close(self) -> None:
        """Stop the server and, in throwaway mode, delete its directory."""
        await self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # --- databases -------------------------------------------------------------------------

    async def create_database(self, name: str) -> str:
        """Create database `name` unless it exists; return its URL."""
        conn = await asyncpg.connect(self.url("postgres"), timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                quoted = '"' + name.replace('"', '""') + '"'
                await conn.execute(f"CREATE DATABASE {quoted}")
        finally:
            await conn.close()
        return self.url(name)

    # --- internals -------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.user is None:
            return
        import pwd

        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        try:
            ensure_user_exists(self.user)
        except (OSError, subprocess.CalledProcessError) as e:
            raise EmbeddedUnavailableError(
                "PostgreSQL (pgserver)",
                f"running as root needs the system user {self.user!r} and useradd failed: {e}",
            ) from e
        entry = pwd.getpwnam(self.user)
        ensure_prefix_permissions(self.data_dir)
        for root, dirs, files in os.walk(self.data_dir):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)

    def _initdb(self, bindir: Path) -> None:
        argv = [
            str(bindir / "initdb"), "-D", str(self.data_dir),
            "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C",
        ]  # fmt: skip
        if not self.fsync:
            argv.append("--no-sync")
        result = subprocess.run(  # noqa: S603 (fixed binary from the wheel)
            argv, capture_output=True, text=True, user=self.user, check=False, timeout=120
        )
        if result.returncode != 0:
            raise StartupError(
                f"initdb failed for {self.data_dir} (exit {result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )

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
                conn = await asyncpg.connect(self.url("postgres"), timeout=2)
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
