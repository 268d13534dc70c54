"""The committed OpenAPI documents match the services; regenerate with `make schemas`."""

from huibao_stack.openapi import OPENAPI_DIR, documents, render


def test_committed_openapi_documents_match_the_apps() -> None:
    for name, doc in documents().items():
        path = OPENAPI_DIR / f"{name}.json"
        assert path.exists(), f"{path} is missing: run `make schemas`"
        assert path.read_text(encoding="utf-8") == render(doc), (
            f"{path.name} drifted from the code: run `make schemas`"
        )


def test_every_documented_api_route_is_there() -> None:
    docs = documents()
    assert {"/v1/events", "/v1/orgunits", "/v1/tokens"} <= set(docs["reporting"]["paths"])
    assert {
        "/v1/nodes/{id}/summary",
        "/v1/nodes/{id}/children",
        "/v1/nodes/{id}/completeness",
        "/v1/nodes/{id}/series",
    } <= set(docs["rollup"]["paths"])
    assert {"/v1/cycles", "/v1/cycles/{kind}/{period}/run"} <= set(docs["scheduler"]["paths"])
    assert any(p.startswith("/v1/feedback/") for p in docs["scheduler"]["paths"])
