"""`huibao-reporting`: run the reporting service (port 8001 by default)."""

from __future__ import annotations

from huibao_platform.logs import configure_logging
from huibao_platform.serve import serve, service_arguments
from huibao_reporting.bootstrap import build_app
from huibao_reporting.settings import ReportingSettings


def main(argv: list[str] | None = None) -> None:
    """Answer `--help` / `--version`, or load settings, configure logging and serve."""
    service_arguments("huibao-reporting", __doc__ or "").parse_args(argv)
    settings = ReportingSettings()
    configure_logging("reporting", settings.log_level, settings.log_format)
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
