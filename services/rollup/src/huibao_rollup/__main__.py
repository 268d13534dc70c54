"""`huibao-rollup`: serve the rollup (default), or `rebuild` / `verify` its aggregates."""

from __future__ import annotations

import asyncio
import sys

from huibao_platform.logs import configure_logging
from huibao_platform.serve import serve, service_arguments
from huibao_rollup.settings import RollupSettings


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `huibao-rollup` console script."""
    parser = service_arguments("huibao-rollup", __doc__ or "")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=("serve", "rebuild", "verify"),
        help="serve the API and consumers (default); rebuild every aggregate "
        "from the stored facts; verify live aggregates against a rebuild",
    )
    args = parser.parse_args(argv)
    settings = RollupSettings()
    configure_logging("rollup", settings.log_level, settings.log_format)
    if args.command == "serve":
        from huibao_rollup.bootstrap import build_app

        serve(build_app(settings), settings)
        return 0
    from huibao_rollup.entrypoints.admin import rebuild, verify

    return asyncio.run(rebuild(settings) if args.command == "rebuild" else verify(settings))


if __name__ == "__main__":
    sys.exit(main())
