"""`EmbeddedStack`: PostgreSQL, the broker and the three services, owned by one launcher.

    async with EmbeddedStack() as stack:          # throwaway: temp dir, free ports
        httpx.get(stack.urls["rollup"] + "/health/ready")

`EmbeddedStack(persistent=True)` is `huibao up`: data under `.huibao/data` (or
HUIBAO_DATA_DIR), fixed ports 8001-8003 (HUIBAO_<NAME>_PORT). DATABASE_URL and
KAFKA_BOOTSTRAP_SERVERS in the environment switch the embedded parts off. Everything it
reads from the environment is a field of `huibao_stack.settings.LauncherSettings`, read
once; the children get that environment, plus what the launcher adds, explicitly.

No process outlives the stack: see `huibao_stack.processes`. Children must be started from
the thread that runs the launcher's event loop (the main thread in practice).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from huibao_platform.settings import DEVELOPMENT_ADMIN_TOKEN
from huibao_stack.errors import StackError
from huibao_stack.infra import Infrastructure, run_together
from huibao_stack.processes import free_port, port_is_free
from huibao_stack.services import SERVICES, ServiceProcess
from huibao_stack.settings import LauncherSettings
from huibao_stack.supervise import Part, StackMetrics, Supervisor, serve_metrics

log = logging.getLogger("huibao.stack")

DEFAULT_ADMIN_TOKEN = DEVELOPMENT_ADMIN_TOKEN
"""The admin token of the embedded stack unless HUIBAO_ADMIN_TOKEN says otherwise: the only
default anywhere (the services have none), and only usable on loopback, where the launcher
binds them; a service bound beyond loopback refuses it."""


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where `huibao up` keeps its data: HUIBAO_DATA_DIR, else `.huibao/data` here."""
    return LauncherSettings.read(environ).data_directory()


DEFAULT_METRICS_PORT = 8004
"""The launcher's own `/metrics` port under `huibao up` (HUIBAO_STACK_METRICS_PORT)."""


def fixed_ports(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """The ports of `huibao up`: 8001-8003 unless HUIBAO_<NAME>_PORT is set."""
    return LauncherSettings.read(environ).fixed_ports()


class EmbeddedStack:
    """The whole platform as child processes of this one.

    Arguments (all optional):
        persistent: keep data (`huibao up`); otherwise a temporary directory removed on stop.
        data_dir: the persistent data directory (default `default_data_dir()`).
        services: which services to run (default all three; `()` for infrastructure only).
        ports: explicit ports by service; otherwise fixed (persistent) or free (throwaway).
        admin_token: default HUIBAO_ADMIN_TOKEN or `huibao-dev-admin`.
        clock, clock_start: the scheduler's HUIBAO_CLOCK (`system`/`manual`) and start instant.
        service_env: extra environment by service name.
        service_argv: a replacement command by service name (tests use it to simulate failures).
        infra: an already started `Infrastructure` to use; it is not stopped with the stack.
        settings: the launcher's settings (default `LauncherSettings.read(environ)`); the
            children start from its `environ`.
        environ: the environment to read settings from when `settings` is not given
            (default this process's).
        echo: a stream that also receives every service's log lines, prefixed by its name.
        ready_timeout: seconds each service has to answer `/health/ready`.
        parallel_start: start the services side by side instead of one after the other.
        supervise: restart a service, the broker or PostgreSQL that dies (`huibao up`,
            `huibao demo`); off by default so that tests may kill and restart parts
            themselves. See `huibao_stack.supervise`.
        restart_limit, restart_window: a part's `restart_limit`-th death within
            `restart_window` seconds stops the stack (HUIBAO_STACK_RESTART_LIMIT, default 5;
            HUIBAO_STACK_RESTART_WINDOW_SECONDS, default 60).
        metrics_port: where a supervised stack serves its own `/metrics`
            (HUIBAO_STACK_METRICS_PORT; default 8004 when persistent, else a free port).
    """

    def __init__(
        self,
        *,
        persistent: bool = False,
        data_dir: Path | None = None,
        services: Sequence[str] = SERVICES,
        ports: Mapping[str, int] | None = None,
        admin_token: str | None = None,
        clock: str | None = None,
        clock_start: str | None = None,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        service_argv: Mapping[str, Sequence[str]] | None = None,
        infra: Infrastructure | None = None,
        settings: LauncherSettings | None = None,
        environ: Mapping[str, str] | None = None,
        echo: IO[str] | None = None,
        ready_timeout: float = 90.0,
        parallel_start: bool = False,
        supervise: bool = False,
        restart_limit: int | None = None,
        restart_window: float | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings or LauncherSettings.read(environ)
        config = self.settings
        self.environ = dict(config.environ)
        """What every child's environment starts from (`env_for` adds the launcher's part)."""
        unknown = [s for s in services if s not in SERVICES]
        if unknown:
            raise StackError(f"unknown services {unknown}; known: {list(SERVICES)}")
        self.persistent = persistent
        self.service_names = tuple(services)
        self.admin_token = admin_token or config.admin_token or DEFAULT_ADMIN_TOKEN
        self.default_admin_token = not (admin_token or config.admin_token)
        self.clock = clock or config.clock or "system"
        self.clock_start = clock_start
        self.service_env = {k: dict(v) for k, v in (service_env or {}).items()}
        self.service_argv = {k: list(v) for k, v in (service_argv or {}).items()}
        self.echo = echo
        self.ready_timeout = ready_timeout
        self.parallel_start = parallel_start
        if persistent:
            self.run_dir = (data_dir or config.data_directory()).resolve()
            self._tmp: Path | None = None
        else:
            self._tmp = Path(tempfile.mkdtemp(prefix="huibao-"))
            self.run_dir = self._tmp
        self.log_dir = self.run_dir / "logs"
        base_ports = config.fixed_ports() if persistent else {}
        self.ports = {name: base_ports.get(name) or free_port() for name in SERVICES}
        self.ports.update(ports or {})
        self._owns_infra = infra is None
        self.infra = infra or Infrastructure(
            self.run_dir,
            persistent=persistent,
            database_url=config.database_url,
            bootstrap_servers=config.kafka_bootstrap_servers,
        )
        self._services: dict[str, list[ServiceProcess]] = {}
        self._started = False
        self.supervise = supervise
        self.restart_limit = restart_limit or config.restart_limit or 1
        self.restart_window = restart_window or config.restart_window_seconds
        default_metrics = DEFAULT_METRICS_PORT if persistent else 0
        if metrics_port is None:
            metrics_port = default_metrics if config.metrics_port is None else config.metrics_port
        self.metrics_port = metrics_port or free_port()
        self.metrics = StackMetrics([*self.service_names, "postgres", "broker"])
        self.failure: str | None = None
        """Why the supervisor stopped the stack (a part kept dying), once it has."""
        self.failed = asyncio.Event()
        """Set when the supervisor gives up on a part; the stack is then being stopped."""
        self._supervisor: asyncio.Task[None] | None = None
        self._metrics_server: asyncio.Server | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._stop_soon: asyncio.Future[None] | None = None

    # --- what the callers use --------------------------------------------------------------

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of the first replica of every service, by name."""
        return {name: f"http://127.0.0.1:{self.ports[name]}" for name in self.service_names}

    @property
    def metrics_url(self) -> str | None:
        """The launcher's own `/metrics` (restarts), served while supervising."""
        if self._metrics_server is None:
            return None
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def database_url(self) -> str:
        """DATABASE_URL of the services."""
        return self.infra.database_url

    @property
    def bootstrap_servers(self) -> str:
        """KAFKA_BOOTSTRAP_SERVERS of the services."""
        return self.infra.bootstrap_servers

    def service(self, name: str, replica: int = 1) -> ServiceProcess:
        """The handle of one replica of a service (1 is the one started with the stack)."""
        for proc in self._services.get(name, []):
            if proc.replica == replica:
                return proc
        raise KeyError(f"no replica {replica} of service {name!r}")

    def replicas(self, name: str) -> list[ServiceProcess]:
        """Every replica of a service started so far."""
        return list(self._services.get(name, []))

    def pids(self) -> list[int]:
        """Pids of every child process running now (services, broker, PostgreSQL)."""
        pids = [p.pid for ps in self._services.values() for p in ps if p.running() and p.pid]
        return pids + (self.infra.pids() if self._owns_infra else [])

    def env_for(self, name: str) -> dict[str, str]:
        """The environment a service process gets (without its HTTP port): DATABASE_URL,
        KAFKA_BOOTSTRAP_SERVERS, HUIBAO_ADMIN_TOKEN, HUIBAO_LOG_FORMAT=json,
        HUIBAO_{REPORTING,ROLLUP,SCHEDULER}_URL; the scheduler also HUIBAO_CLOCK(_START)."""
        env = {
            **self.environ,
            **self.infra.env(),
            "HUIBAO_ADMIN_TOKEN": self.admin_token,
            "HUIBAO_LOG_FORMAT": "json",
        }
        # every service learns where the others are (the scheduler reads the rollup's API)
        for other in SERVICES:
            env[f"HUIBAO_{other.upper()}_URL"] = f"http://127.0.0.1:{self.ports[other]}"
        if name == "scheduler":
            env["HUIBAO_CLOCK"] = self.clock
            if self.clock_start:
                env["HUIBAO_CLOCK_START"] = self.clock_start
        env.update(self.service_env.get(name, {}))
        return env

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the infrastructure, then every service; on any failure stop it all and raise."""
        if self._started:
            raise StackError("the stack is already started")
        self._started = True
        if self.default_admin_token and self.service_names:
            log.warning(
                "HUIBAO_ADMIN_TOKEN is not set: the services accept the development token %r"
                " as admin, a launcher default for loopback only (set HUIBAO_ADMIN_TOKEN)",
                DEFAULT_ADMIN_TOKEN,
            )
        try:
            if self.persistent:
                self._check_ports()
            if self._owns_infra:
                await self.infra.start()
            # services never create topics: the launcher makes those of every prefix they use
            for prefix in {self.env_for(n).get("HUIBAO_TOPIC_PREFIX") for n in self.service_names}:
                if prefix:
                    await self.infra.create_topics(prefix)
            procs = [self._new_process(name, self.ports[name], 1) for name in self.service_names]
            if self.parallel_start:
                await run_together(*(p.start() for p in procs))
            else:  # reporting first: it owns the `auth` schema the others read
                for proc in procs:
                    await proc.start()
            if self.supervise:
                await self._start_supervision()
        except BaseException:
            log.warning("start-up failed: stopping what was started")
            await self.stop()
            raise
        log.info("stack ready: %s", self.urls)

    def parts(self) -> list[Part]:
        """Every supervised process: each service replica, and the embedded PostgreSQL and
        broker when this stack owns them."""
        parts = [Part(p.name, p.label, p) for ps in self._services.values() for p in ps]
        if self._owns_infra:
            if self.infra.postgres is not None:
                parts.append(Part("postgres", "postgres", self.infra.postgres))
            if self.infra.broker is not None:
                parts.append(Part("broker", "broker", self.infra.broker))
        return parts

    async def _start_supervision(self) -> None:
        self._metrics_server = await serve_metrics(self.metrics, self.metrics_port)
        supervisor = Supervisor(
            self.parts,
            self.metrics,
            self._give_up,
            limit=self.restart_limit,
            window=self.restart_window,
        )
        self._supervisor = asyncio.create_task(supervisor.run(), name="stack-supervisor")
        log.info("supervising %s; metrics on %s", [p.label for p in self.parts()], self.metrics_url)

    async def _give_up(self, message: str) -> None:
        """A part keeps dying: remember why, tell the waiters, stop everything."""
        self.failure = message
        self.failed.set()
        log.error("stopping the stack: %s", message)
        self._stop_soon = asyncio.ensure_future(self.stop())

    async def wait_failed(self) -> str:
        """Wait until the supervisor gives up on a part; return its message."""
        await self.failed.wait()
        return self.failure or ""

    async def add_replica(
        self, name: str, port: int | None = None, env: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        """Start one more replica of a service on another port and wait until it is ready;
        `env` adds to (or overrides) its environment, e.g. a query-only rollup."""
        replica = max((p.replica for p in self._services.get(name, [])), default=0) + 1
        proc = self._new_process(name, port or free_port(), replica, env)
        try:
            await proc.start()
        except BaseException:
            self._services[name].remove(proc)
            raise
        return proc

    async def stop(self) -> None:
        """Stop every service (SIGTERM, SIGKILL after grace), then the broker and PostgreSQL.

        A throwaway stack's directory is removed. Safe to call more than once, also while
        another call runs (they wait for the same stop).
        """
        if self._stopping is None or self._stopping.done():
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        if self._metrics_server is not None:
            self._metrics_server.close()
            self._metrics_server = None
        procs = [p for ps in self._services.values() for p in ps]
        try:
            await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
            if self._owns_infra:
                await self.infra.stop()
        finally:
            # a stop interrupted half-way still must not leave anything behind
            for p in procs:
                if p.running():
                    await p.kill()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    async def __aenter__(self) -> EmbeddedStack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_sync(self) -> None:
        """`start()` for code without an event loop."""
        asyncio.run(self.start())

    def stop_sync(self) -> None:
        """`stop()` for code without an event loop."""
        asyncio.run(self.stop())

    def __enter__(self) -> EmbeddedStack:
        self.start_sync()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_sync()

    def _check_ports(self) -> None:
        for name in self.service_names:
            port = self.ports[name]
            if not port_is_free(port):
                raise StackError(
                    f"port {port} for {name} is in use (another `huibao up`?); "
                    f"set HUIBAO_{name.upper()}_PORT to another port"
                )
        if self.supervise and not port_is_free(self.metrics_port):
            raise StackError(
                f"port {self.metrics_port} for the launcher's metrics is in use (another "
                "`huibao up`?); set HUIBAO_STACK_METRICS_PORT to another port"
            )

    def _new_process(
        self, name: str, port: int, replica: int, env: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        proc = ServiceProcess(
            name,
            port=port,
            env={**self.env_for(name), **(env or {})},
            log_dir=self.log_dir,
            replica=replica,
            argv=self.service_argv.get(name),
            ready_timeout=self.ready_timeout,
            echo=self.echo,
        )
        self._services.setdefault(name, []).append(proc)
        return proc
