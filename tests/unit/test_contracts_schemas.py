"""The committed JSON Schema documents match the code; regenerate with `make schemas`."""

import json

from huibao_contracts.generate import SCHEMA_DIR, documents, render


def test_committed_schemas_match_the_models() -> None:
    wanted = documents()
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(wanted), "schema files added or removed: run `make schemas`"
    for name, doc in wanted.items():
        committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
        assert committed == render(doc), f"{name} drifted from the code: run `make schemas`"


def test_party_day_schema_documents_its_fields_with_examples() -> None:
    doc = json.loads((SCHEMA_DIR / "huibao.party_day.held.v1.json").read_text(encoding="utf-8"))
    payload = doc["$defs"]["PartyDayHeld"]
    assert payload["additionalProperties"] is False
    for field in ("activity_id", "revision", "date", "retracted", "members", "attendees", "theme"):
        assert payload["properties"][field]["description"], field
    assert doc["properties"]["type"] == {
        "const": "huibao.party_day.held.v1",
        "description": "Event type.",
    }
