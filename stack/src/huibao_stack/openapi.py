"""Write the committed OpenAPI documents of the three services: `python -m huibao_stack.openapi`.

Each service's app is built (nothing is started or connected) and its OpenAPI document
written to `docs/openapi/<service>.json`; a test fails when they drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPENAPI_DIR = Path(__file__).resolve().parents[3] / "docs" / "openapi"


def documents() -> dict[str, dict[str, Any]]:
    """Service name → its OpenAPI document."""
    from huibao_reporting.bootstrap import build_app as reporting_app
    from huibao_reporting.settings import ReportingSettings
    from huibao_rollup.bootstrap import build_app as rollup_app
    from huibao_rollup.settings import RollupSettings
    from huibao_scheduler.bootstrap import build_app as scheduler_app
    from huibao_scheduler.settings import SchedulerSettings

    apps = {
        "reporting": reporting_app(ReportingSettings()),
        "rollup": rollup_app(RollupSettings()),
        "scheduler": scheduler_app(SchedulerSettings()),
    }
    return {name: app.openapi() for name, app in apps.items()}


def render(doc: dict[str, Any]) -> str:
    """Stable text of a document."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    """Write every document."""
    OPENAPI_DIR.mkdir(parents=True, exist_ok=True)
    for name, doc in documents().items():
        (OPENAPI_DIR / f"{name}.json").write_text(render(doc), encoding="utf-8")
    sys.stdout.write(f"wrote 3 OpenAPI documents to {OPENAPI_DIR}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
