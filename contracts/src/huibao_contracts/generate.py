"""Generate the committed contract documents: `python -m huibao_contracts.generate`.

- `contracts/schemas/`: one JSON Schema per activity type (the CloudEvent envelope with its
  typed `data`), plus the org-unit, org-unit change, cycle transition, notification,
  feedback report and field-error models;
- `contracts/asyncapi/`: the AsyncAPI 3.0 document of each service (`huibao_contracts.asyncapi`).

Tests regenerate both in memory and fail when the committed files drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from huibao_contracts import asyncapi
from huibao_contracts.activities import ACTIVITY_TYPES
from huibao_contracts.cycles import CycleTransition, Notification
from huibao_contracts.envelope import CloudEvent
from huibao_contracts.feedback import FeedbackReport
from huibao_contracts.orgunits import OrgUnit, OrgUnitChange
from huibao_contracts.rejects import FieldError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
ASYNCAPI_DIR = Path(__file__).resolve().parents[2] / "asyncapi"
BASE_URI = "https://huibao.example.org/schemas/"


def _activity_schema(type_name: str, payload: type[BaseModel]) -> dict[str, Any]:
    envelope = CloudEvent.model_json_schema()
    data = payload.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**envelope.pop("$defs", {}), **data.pop("$defs", {})}
    defs[payload.__name__] = data
    envelope["properties"]["type"] = {"const": type_name, "description": "Event type."}
    envelope["properties"]["data"] = {"$ref": f"#/$defs/{payload.__name__}"}
    envelope["title"] = type_name
    envelope["description"] = (payload.__doc__ or "").strip()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_URI}{type_name}.json",
        **envelope,
        "$defs": defs,
    }


def _model_schema(name: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_URI}{name}.json",
        **model.model_json_schema(),
    }


def documents() -> dict[str, dict[str, Any]]:
    """File name → schema document, for every committed schema."""
    docs = {f"{t}.json": _activity_schema(t, m) for t, m in ACTIVITY_TYPES.items()}
    models: dict[str, type[BaseModel]] = {
        "orgunit": OrgUnit,
        "orgunit.change": OrgUnitChange,
        "cycle.transition": CycleTransition,
        "notification": Notification,
        "feedback.report": FeedbackReport,
        "field-error": FieldError,
    }
    for name, model in models.items():
        docs[f"{name}.json"] = _model_schema(name, model)
    return docs


def render(doc: dict[str, Any]) -> str:
    """Stable text of a document: sorted keys, two-space indent, Chinese kept readable."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def asyncapi_documents() -> dict[str, dict[str, Any]]:
    """File name → AsyncAPI document, one per service."""
    return asyncapi.documents()


def _write(directory: Path, wanted: dict[str, dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, doc in wanted.items():
        (directory / name).write_text(render(doc), encoding="utf-8")
    sys.stdout.write(f"wrote {len(wanted)} documents to {directory}\n")


def main() -> int:
    """Write every document under contracts/schemas/ and contracts/asyncapi/."""
    _write(SCHEMA_DIR, documents())
    _write(ASYNCAPI_DIR, asyncapi_documents())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
