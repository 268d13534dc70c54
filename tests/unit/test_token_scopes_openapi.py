"""Every operation of the three services says which scopes it needs, in OpenAPI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from huibao_platform.auth import SCOPES, InvalidScopeError, parse_scopes

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"
OPEN = {"/health/live", "/health/ready", "/ui/", "/ui/api/feedback/{id}"}
"""Operations without a token: the probes, the dashboard page and its proxy (which passes
the caller's token on to the scheduler, where the scope is checked)."""
NO_SCOPE = {("get", "/v1/whoami")}
"""A token may always ask who it is."""


@pytest.mark.parametrize("service", ["reporting", "rollup", "scheduler"])
def test_every_operation_names_its_scopes(service: str) -> None:
    doc = json.loads((DOCS / f"{service}.json").read_text(encoding="utf-8"))
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    seen = 0
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if path in OPEN:
                assert "security" not in op, (method, path)
                continue
            seen += 1
            (requirement,) = op["security"]
            scopes = requirement["HTTPBearer"]
            assert set(scopes) <= set(SCOPES), (method, path, scopes)
            assert bool(scopes) != ((method, path) in NO_SCOPE), (method, path, scopes)
    assert seen >= 3


def test_scopes_parse_in_their_order_and_unknown_ones_are_refused() -> None:
    assert parse_scopes(["read", "report", "read"]) == ("report", "read")
    with pytest.raises(InvalidScopeError, match="'sudo'"):
        parse_scopes(["read", "sudo"])
    with pytest.raises(InvalidScopeError, match="at least one"):
        parse_scopes([" "])
