"""deploy/schemas holds only schemas this project wrote, and every Strimzi and CloudNativePG
field the manifests use is listed with the upstream CRD it was checked against."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from deploy_support import DEPLOY, OVERLAYS, by_kind

Render = Callable[[str], list[dict[str, Any]]]
SCHEMAS = DEPLOY / "schemas"
README = SCHEMAS / "README.md"

# Everything deploy/schemas may hold: our own subset schemas and their README. A third-party
# schema (such as the compose-spec copy this replaced) comes from a package instead.
OUR_FILES = frozenset(
    {
        "README.md",
        "crds/kafka.strimzi.io/v1beta2/kafka.json",
        "crds/kafka.strimzi.io/v1beta2/kafkanodepool.json",
        "crds/kafka.strimzi.io/v1beta2/kafkatopic.json",
        "crds/kafka.strimzi.io/v1beta2/kafkauser.json",
        "crds/postgresql.cnpg.io/v1/cluster.json",
    }
)
# Kinds validated with our subsets, and the schema of each.
SUBSET_KINDS = {
    "Kafka": "crds/kafka.strimzi.io/v1beta2/kafka.json",
    "KafkaNodePool": "crds/kafka.strimzi.io/v1beta2/kafkanodepool.json",
    "KafkaTopic": "crds/kafka.strimzi.io/v1beta2/kafkatopic.json",
    "KafkaUser": "crds/kafka.strimzi.io/v1beta2/kafkauser.json",
    "Cluster": "crds/postgresql.cnpg.io/v1/cluster.json",
}
# Free-form maps: their keys are settings or resource names, not fields of the CRD.
FREE_FORM = frozenset({"config", "parameters", "limits", "requests"})
# $id or $schema values of well-known third-party schemas that must not be vendored again.
THIRD_PARTY_MARKERS = ("compose-spec", "json.schemastore.org", "kubernetes-json-schema")


def load(relative: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMAS / relative).read_text(encoding="utf-8"))
    return document


def used_fields(value: Any, path: str = "") -> set[str]:
    """Dotted paths of the fields set below `value` (lists as `[]`), not descending into
    free-form maps."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            field = f"{path}.{key}" if path else key
            found.add(field)
            if key not in FREE_FORM:
                found |= used_fields(item, field)
    elif isinstance(value, list):
        for item in value:
            found |= used_fields(item, f"{path}[]")
    return found


def checked_fields() -> dict[str, set[str]]:
    """Kind -> the field paths of its table in deploy/schemas/README.md."""
    tables: dict[str, set[str]] = {}
    kind = None
    for line in README.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### (\w+) \(", line)
        if heading:
            kind = heading.group(1)
            tables[kind] = set()
            continue
        row = re.match(r"^\| `(spec\.[^`]+)` \|[^|]+\| (S\d(?:, S\d)*) \|$", line)
        if row and kind:
            tables[kind].add(row.group(1))
    return tables


def in_schema(schema: dict[str, Any], path: str) -> bool:
    """True when our schema declares the field at `path` (dotted, `[]` for list items)."""
    node = schema
    for part in path.split("."):
        name, lists = part.rstrip("[]"), part.count("[]")
        properties = node.get("properties", {})
        if name not in properties:
            return False
        node = properties[name]
        for _ in range(lists):
            node = node.get("items", {})
    return True


def test_deploy_schemas_holds_only_our_files() -> None:
    files = {p.relative_to(SCHEMAS).as_posix() for p in SCHEMAS.rglob("*") if p.is_file()}
    assert files == OUR_FILES
    for relative in OUR_FILES - {"README.md"}:
        schema = load(relative)
        assert str(schema["$id"]).startswith("huibao:"), relative
        assert str(schema["description"]).startswith("Subset of the openAPIV3Schema"), relative


def test_no_third_party_schema_in_deploy() -> None:
    """No JSON Schema in deploy/ but ours, and no file that names a vendored schema."""
    ours = {SCHEMAS / relative for relative in OUR_FILES}
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".json":
            document = json.loads(text)
            if isinstance(document, dict) and "$schema" in document:
                assert path in ours, f"{path}: a JSON Schema we did not write"
        if path != README:
            for marker in THIRD_PARTY_MARKERS:
                assert marker not in path.name, path
                assert f'"$id": "https://{marker}' not in text, path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_used_field_is_checked_against_upstream(render: Render, overlay: str) -> None:
    """Each field a rendered Strimzi or CloudNativePG resource sets has a row (with its
    upstream source) in the README tables, and our schema declares it."""
    tables = checked_fields()
    assert set(tables) == set(SUBSET_KINDS)
    for kind, relative in SUBSET_KINDS.items():
        schema = load(relative)
        resources = by_kind(render(overlay), kind)
        assert resources, kind
        for name, resource in resources.items():
            fields = {f for f in used_fields(resource) if f.startswith("spec.")}
            unchecked = fields - tables[kind]
            assert not unchecked, f"{kind}/{name}: add to deploy/schemas/README.md: {unchecked}"
        for field in tables[kind]:
            assert in_schema(schema, field), f"{relative} has no {field}"


def test_the_field_walk_finds_a_new_field() -> None:
    resource = {"spec": {"a": [{"b": 1}], "config": {"x.y": 1}, "r": {"limits": {"cpu": 1}}}}
    assert used_fields(resource) == {
        "spec",
        "spec.a",
        "spec.a[].b",
        "spec.config",
        "spec.r",
        "spec.r.limits",
    }


def test_topic_operator_has_no_secret_prefix(render: Render) -> None:
    """secretPrefix exists on the User Operator only (Strimzi EntityUserOperatorSpec)."""
    (kafka,) = by_kind(render("dev"), "Kafka").values()
    validator = jsonschema.Draft202012Validator(load(SUBSET_KINDS["Kafka"]))
    assert not list(validator.iter_errors(kafka))
    user = copy.deepcopy(kafka)
    user["spec"]["entityOperator"]["userOperator"]["secretPrefix"] = "kafka-"
    assert not list(validator.iter_errors(user))
    topic = copy.deepcopy(kafka)
    topic["spec"]["entityOperator"]["topicOperator"]["secretPrefix"] = "kafka-"
    errors = list(validator.iter_errors(topic))
    assert errors
    assert any("secretPrefix" in error.message for error in errors)


def test_schemas_readme_names_the_current_file_names() -> None:
    text = README.read_text(encoding="utf-8")
    assert "compose-spec.json" not in text
    assert "`045-Crd-kafkanodepool.yaml`" in text
    assert not list(Path(SCHEMAS, "crds").glob("monitoring.coreos.com*"))
