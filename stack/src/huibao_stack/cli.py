"""The `huibao` command: `up`, `demo`, `topics`, `status`, `rebuild`, `verify` and
`token create`."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import re
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from huibao_contracts.calendar import CalendarRules
from huibao_contracts.orgunits import ORG_UNIT_ID_PATTERN
from huibao_platform.errors import HuibaoError
from huibao_platform.logs import configure_logging
from huibao_stack.credentials import create_exclusive, redact_url
from huibao_stack.errors import StackError
from huibao_stack.launch import run_stack
from huibao_stack.pg_runtime import SYSTEM_USER
from huibao_stack.settings import LauncherSettings
from huibao_stack.stack import EmbeddedStack

if TYPE_CHECKING:
    from huibao_rollup.settings import RollupSettings

STACK_ENV_FILE = "stack.env"
"""Written by `huibao up` next to its data: the addresses of the running stack."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `huibao` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = LauncherSettings.read()  # the one read of the environment
    except StackError as e:
        print(f"huibao: {e}", file=sys.stderr)
        return 2
    # the launcher logs like the services: JSON unless on a terminal (HUIBAO_LOG_FORMAT)
    fmt = settings.log_format
    configure_logging("launcher", fmt=fmt if fmt in ("json", "console") else "auto")
    logging.getLogger("huibao").setLevel(logging.INFO)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    command: Callable[[argparse.Namespace, LauncherSettings], int] = args.command
    try:
        return command(args, settings)
    except (StackError, HuibaoError) as e:  # PostgreSQL or the broker away: one line
        print(f"huibao: {e}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huibao",
        description="Run Huibao on this machine: embedded broker and PostgreSQL, three services.",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="run everything in the foreground until Ctrl-C (data kept in .huibao/data)",
        description="Start PostgreSQL, the broker and the three services; stop all on Ctrl-C. "
        "Data: HUIBAO_DATA_DIR or ./.huibao/data. Ports: HUIBAO_REPORTING_PORT (8001), "
        "HUIBAO_ROLLUP_PORT (8002), HUIBAO_SCHEDULER_PORT (8003). DATABASE_URL and "
        "KAFKA_BOOTSTRAP_SERVERS use external services instead of the embedded ones.",
    )
    up.add_argument("--logs", action="store_true", help="echo every service's log lines here")
    up.set_defaults(command=_cmd_up)

    demo = sub.add_parser("demo", help="simulate a quarter for a demo city on a throwaway stack")
    demo.add_argument("--logs", action="store_true", help="echo every service's log lines here")
    demo.set_defaults(command=_cmd_demo)

    topics = sub.add_parser(
        "topics",
        help="create the Huibao topics on KAFKA_BOOTSTRAP_SERVERS (services never do)",
        description="Create every missing Huibao topic and print one line per topic. New "
        "topics get HUIBAO_TOPIC_REPLICATION_FACTOR replicas (1), "
        "HUIBAO_TOPIC_MIN_INSYNC_REPLICAS (1) and the contract's partitions unless "
        "HUIBAO_TOPIC_PARTITIONS (JSON) says otherwise; existing topics are left as they are. "
        "KAFKA_SECURITY_PROTOCOL and KAFKA_SASL_* apply as for the services.",
    )
    topics.add_argument(
        "--bootstrap-servers",
        default=None,
        help="default: KAFKA_BOOTSTRAP_SERVERS",
    )
    topics.set_defaults(command=_cmd_topics)

    status = sub.add_parser(
        "status",
        help="the running services: readiness, version, consumer lag, outbox, cycles",
        description="Ask each running service over HTTP: /health/ready and /health/live "
        "(version), /metrics (consumer lag per consumer group and partition, outbox backlog) "
        "and the scheduler's GET /v1/cycles. URLs: HUIBAO_{REPORTING,ROLLUP,SCHEDULER}_URL, "
        "else those of the `huibao up` running here, else the default ports; token: "
        "HUIBAO_ADMIN_TOKEN, else the launcher's development token. Exit 1 unless every "
        "service is ready.",
    )
    status.add_argument("--timeout", type=float, default=5.0, help="seconds per request (5)")
    status.set_defaults(command=_cmd_status)

    for name, what in (
        ("verify", "compare every live aggregate with a rebuild from the stored facts"),
        ("rebuild", "replace every aggregate with its rebuild from the stored facts"),
    ):
        admin = sub.add_parser(
            name,
            help=what + " (rollup)",
            description=what.capitalize() + ", month by month with a progress bar, in this "
            "process against the rollup's database: DATABASE_URL, else that of the `huibao "
            "up` running here. "
            + (
                "Prints each difference and their count; exit 1 if there is any."
                if name == "verify"
                else "Runs in one transaction; the rollup's writers wait until it commits."
            ),
        )
        admin.add_argument("--no-progress", action="store_true", help="no progress bar")
        admin.set_defaults(command=_cmd_verify if name == "verify" else _cmd_rebuild)

    token = sub.add_parser("token", help="manage bearer tokens")
    token_sub = token.add_subparsers(required=True, metavar="ACTION")
    create = token_sub.add_parser(
        "create",
        help="create a token bound to an org unit (printed once)",
        description="Create a bearer token bound to an org unit in the database of DATABASE_URL, "
        "or of the running `huibao up`. The unit's whole subtree is its reach; the unit must "
        "be in the registry (the same rule as POST /v1/tokens).",
    )
    create.add_argument("--unit", required=True, help="org-unit id the token is bound to")
    create.add_argument("--label", default="", help="a note on who holds it")
    create.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE[,SCOPE]",
        help="what the token may do: report, read, approve, admin; repeat it or give a comma "
        "list (default: report,read)",
    )
    create.set_defaults(command=_cmd_token_create)
    return parser


# --- up and demo ---------------------------------------------------------------------------


def _cmd_up(args: argparse.Namespace, settings: LauncherSettings) -> int:
    stack = EmbeddedStack(
        persistent=True,
        supervise=True,
        echo=sys.stdout if args.logs else None,
        settings=settings,
    )

    async def serve(stack: EmbeddedStack) -> int:
        env_file = stack.run_dir / STACK_ENV_FILE
        body = (
            f"DATABASE_URL={stack.database_url}\n"
            f"KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap_servers}\n"
            + "".join(f"HUIBAO_{n.upper()}_URL={u}\n" for n, u in stack.urls.items())
            + f"HUIBAO_STACK_METRICS_URL={stack.metrics_url or ''}\n"
        )
        env_file.unlink(missing_ok=True)  # a stale one from a killed run; never followed
        os.close(create_exclusive(env_file, body.encode(), 0o600))  # it holds the password
        try:
            _print_banner(stack)
            await asyncio.Event().wait()  # until SIGINT or SIGTERM cancels us
        finally:
            env_file.unlink(missing_ok=True)
        return 0  # pragma: no cover (the wait above only ends by cancellation)

    return asyncio.run(run_stack(stack, serve))


def _cmd_demo(args: argparse.Namespace, settings: LauncherSettings) -> int:
    from huibao_stack import demo

    quarter = demo.demo_quarter()
    clock_start = dt.datetime.combine(quarter.first_day, dt.time(), tzinfo=CalendarRules().tz)
    stack = EmbeddedStack(
        clock="manual",
        clock_start=clock_start.isoformat(),
        echo=sys.stdout if args.logs else None,
        supervise=True,
        settings=settings,
    )

    async def run(stack: EmbeddedStack) -> int:
        endpoints = demo.Endpoints(
            reporting=stack.urls["reporting"],
            rollup=stack.urls["rollup"],
            scheduler=stack.urls["scheduler"],
            bootstrap_servers=stack.bootstrap_servers,
            admin_token=stack.admin_token,
        )
        try:
            await demo.run_demo(endpoints, quarter)
        except demo.DemoError as e:
            print(f"\nThe demo failed: {e}", file=sys.stderr)
            return 1
        print(
            "\nCity staff see this in the dashboard the rollup serves at /ui/: run `make up`,"
            f" open http://127.0.0.1:8002/ui/ and sign in with the token {stack.admin_token}"
        )
        return 0

    return asyncio.run(run_stack(stack, run))


def _print_banner(stack: EmbeddedStack) -> None:
    token = stack.admin_token
    lines = ["", "Huibao is running. Ctrl-C stops everything.", ""]
    for name, url in stack.urls.items():
        lines.append(f"  {name:<10} {url}   (API docs {url}/docs)")
    lines += [
        "",
        f"  admin token   {token}"
        + (
            "   (the launcher's development default: loopback only)"
            if stack.default_admin_token
            else ""
        ),
        f"    e.g. curl -H 'Authorization: Bearer {token}' {stack.urls.get('rollup', '')}/v1/roots",
        f"  DATABASE_URL={redact_url(stack.database_url)}",
        f"    (with its password in {stack.run_dir / STACK_ENV_FILE}, mode 600)",
        f"  KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap_servers}",
        f"  launcher metrics {stack.metrics_url} (restarts of parts that died)",
        f"  data  {stack.run_dir}",
        f"  logs  {stack.log_dir}",
    ]
    pg = stack.infra.postgres
    if pg is not None and not pg.data_dir.is_relative_to(stack.run_dir):
        lines.append(
            f"  PostgreSQL's data  {pg.data_dir}   (as root: where {SYSTEM_USER} reaches it)"
        )
    lines.append("")
    print("\n".join(lines), flush=True)


# --- topics and tokens ---------------------------------------------------------------------


def _cmd_topics(args: argparse.Namespace, settings: LauncherSettings) -> int:
    from huibao_platform.errors import BrokerUnavailableError
    from huibao_stack.broker import create_topics

    servers = args.bootstrap_servers or settings.kafka_bootstrap_servers
    if not servers:
        print("Set KAFKA_BOOTSTRAP_SERVERS (or pass --bootstrap-servers).", file=sys.stderr)
        return 2
    from pydantic import ValidationError

    try:
        made = asyncio.run(create_topics(servers))
    except BrokerUnavailableError as e:
        print(f"huibao topics: {e}", file=sys.stderr)
        return 1
    except ValidationError as e:
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            print(f"huibao topics: {where}: {err['msg']}", file=sys.stderr)
        return 2
    for t in made:
        what = "created" if t.created else "already there"
        print(
            f"{t.name:<28} {what:<13} partitions={t.partitions} "
            f"replication_factor={t.replication_factor}"
        )
    return 0


def _running_stack_env(settings: LauncherSettings) -> dict[str, str]:
    """The addresses `huibao up` wrote next to its data, when it is this user's own file:
    one that someone else wrote (or anyone may read) could point `huibao status` and its
    admin token at a server of theirs, so it is ignored."""
    path = settings.data_directory() / STACK_ENV_FILE
    try:
        st = path.lstat()
    except FileNotFoundError:
        return {}
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        print(f"huibao: ignoring {path}: not a mode-600 file of this user", file=sys.stderr)
        return {}
    pairs = (
        line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line
    )
    return dict(pairs)


def _cmd_token_create(args: argparse.Namespace, settings: LauncherSettings) -> int:
    if not re.fullmatch(ORG_UNIT_ID_PATTERN, args.unit):
        print(f"{args.unit!r} is not an org-unit id", file=sys.stderr)
        return 2
    database_url = settings.database_url or _running_stack_env(settings).get("DATABASE_URL")
    if not database_url:
        print("Set DATABASE_URL, or start `huibao up` in this directory first.", file=sys.stderr)
        return 2
    scopes = [s for arg in args.scope for s in arg.split(",")] if args.scope else None
    from huibao_reporting.service_layer.tokens import TokenRefusedError

    try:
        token, granted = asyncio.run(_create_token(database_url, args.unit, args.label, scopes))
    except TokenRefusedError as e:
        print(f"refused: {e.field}: {e.message} ({e.reason})", file=sys.stderr)
        return 1
    print(token)
    print(f"token for {args.unit} with scopes {','.join(granted)}", file=sys.stderr)
    return 0


async def _create_token(
    database_url: str, unit: str, label: str, scopes: list[str] | None
) -> tuple[str, tuple[str, ...]]:
    """Issue a token through reporting's own rule (`issue_token`), as the admin would."""
    from huibao_platform.auth import ADMIN, TokenStore
    from huibao_platform.db import create_pool
    from huibao_reporting.adapters import schema
    from huibao_reporting.adapters.registry_repo import PgRegistryStore
    from huibao_reporting.service_layer.registry import Registry
    from huibao_reporting.service_layer.tokens import issue_token

    pool = await create_pool(database_url, min_size=1, max_size=2, attempts=3)
    try:
        await schema.install(pool)  # idempotent; the registry and auth tables exist after it
        made = await issue_token(
            Registry(PgRegistryStore(pool)),
            TokenStore(pool, admin_token=""),
            ADMIN,
            unit,
            label,
            scopes,
        )
        return made.token, made.scopes
    finally:
        await pool.close()


# --- status, rebuild and verify ----------------------------------------------------------


def _service_urls(settings: LauncherSettings) -> dict[str, str]:
    """Where each service answers: HUIBAO_<NAME>_URL, the running `huibao up`, or the
    default port on loopback."""
    from huibao_stack.services import DEFAULT_PORTS, SERVICES

    running = _running_stack_env(settings)
    urls = {}
    for name in SERVICES:
        key = f"HUIBAO_{name.upper()}_URL"
        urls[name] = (
            settings.service_url(name)
            or running.get(key)
            or f"http://127.0.0.1:{DEFAULT_PORTS[name]}"
        ).rstrip("/")
    return urls


def _cmd_status(args: argparse.Namespace, settings: LauncherSettings) -> int:
    from huibao_platform.settings import DEVELOPMENT_ADMIN_TOKEN
    from huibao_stack.status import gather, render

    token = settings.admin_token or DEVELOPMENT_ADMIN_TOKEN
    report = asyncio.run(gather(_service_urls(settings), token, timeout=args.timeout))
    print(render(report))
    return 0 if report.all_ready else 1


def _rollup_settings(settings: LauncherSettings) -> RollupSettings | None:
    database_url = settings.database_url or _running_stack_env(settings).get("DATABASE_URL")
    if not database_url:
        return None
    from huibao_rollup.settings import RollupSettings

    return RollupSettings(DATABASE_URL=database_url)


def _progress(enabled: bool, label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress callback (months done, months in all) drawing a rich bar on stderr, and
    the function that closes it; nothing drawn when disabled or stderr is no terminal."""
    if not enabled or not sys.stderr.isatty():
        return (lambda done, total: None), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        f"[bold]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        "months",
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(label, total=None)
    bar.start()

    def tell(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return tell, bar.stop


def _cmd_verify(args: argparse.Namespace, launcher: LauncherSettings) -> int:
    from huibao_rollup.entrypoints import admin

    settings = _rollup_settings(launcher)
    if settings is None:
        print("Set DATABASE_URL, or start `huibao up` in this directory first.", file=sys.stderr)
        return 2
    tell, close = _progress(not args.no_progress, "verify")
    try:
        diffs = asyncio.run(admin.differences(settings, tell))
    finally:
        close()
    for d in diffs:
        print(f"{d.node}\t{d.period}\t{d.metric}\tlive={d.live}\trebuilt={d.rebuilt}")
    print(f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


def _cmd_rebuild(args: argparse.Namespace, launcher: LauncherSettings) -> int:
    from huibao_rollup.entrypoints import admin

    settings = _rollup_settings(launcher)
    if settings is None:
        print("Set DATABASE_URL, or start `huibao up` in this directory first.", file=sys.stderr)
        return 2
    tell, close = _progress(not args.no_progress, "rebuild")
    try:
        rows = asyncio.run(admin.rebuilt(settings, tell))
    finally:
        close()
    print(f"rebuilt {rows} aggregate row(s) from facts")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
