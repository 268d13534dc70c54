"""`huibao-scheduler` / `python -m huibao_scheduler`: serve the scheduler."""

from __future__ import annotations

from huibao_platform.logs import configure_logging
from huibao_platform.serve import serve, service_arguments
from huibao_scheduler.bootstrap import build_app
from huibao_scheduler.settings import SchedulerSettings


def main(argv: list[str] | None = None) -> None:
    """Answer `--help` / `--version`, or load settings, configure logging, serve."""
    service_arguments("huibao-scheduler", __doc__ or "").parse_args(argv)
    settings = SchedulerSettings()
    configure_logging("scheduler", settings.log_level, settings.log_format)
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
