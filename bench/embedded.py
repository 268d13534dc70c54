"""What the component benchmarks share: an embedded PostgreSQL and broker unless given
external ones, and the CPU time of server processes."""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import psutil


async def infrastructure(
    stack: AsyncExitStack, database: str | None, bootstrap: str | None, name: str
) -> tuple[str, str, dict[str, int]]:
    """PostgreSQL URL and Kafka bootstrap servers; the embedded ones (database `name`) are
    started for whatever is not given and stopped with `stack`. Answers also the pids of
    the embedded servers by name (`postgres`, `broker`)."""
    from huibao_stack.broker import EmbeddedBroker
    from huibao_stack.postgres import EmbeddedPostgres

    servers: dict[str, int] = {}
    if not database:
        pg = EmbeddedPostgres()
        await pg.start()
        stack.push_async_callback(pg.close)
        database = await pg.create_database(name)
        servers["postgres"] = pg.pid or 0
    if not bootstrap:
        run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        broker = EmbeddedBroker(log_path=run_dir / "broker.log", create_topics=False)
        await broker.start()
        stack.push_async_callback(broker.close)
        bootstrap = broker.bootstrap_servers
        servers["broker"] = broker.pid or 0
    return database, bootstrap, servers


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process `pid` and all its children so far."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total
