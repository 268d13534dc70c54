"""The committed AsyncAPI documents: up to date, well formed, self-consistent, true to the code.

Regenerate with `make schemas`. "Well formed" is checked structurally (the AsyncAPI 3.0 keys
every tool needs, every `$ref` resolving inside its document, operations naming messages of
their own channel) and by validating every message example against its own schemas.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, get_type_hints

import pytest
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from huibao_contracts import topics
from huibao_contracts.activities import ACTIVITY_TYPES
from huibao_contracts.asyncapi import GROUPS, SCHEDULER_TYPES
from huibao_contracts.envelope import CloudEvent
from huibao_contracts.feedback import FeedbackReport
from huibao_contracts.generate import ASYNCAPI_DIR, asyncapi_documents, render

DOCS = asyncapi_documents()
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")


def test_committed_asyncapi_documents_match_the_code() -> None:
    on_disk = {p.name for p in ASYNCAPI_DIR.glob("*.json")}
    assert on_disk == {"reporting.json", "rollup.json", "scheduler.json"} == set(DOCS), (
        "AsyncAPI files added or removed: run `make schemas`"
    )
    for name, doc in DOCS.items():
        committed = (ASYNCAPI_DIR / name).read_text(encoding="utf-8")
        assert committed == render(doc), f"{name} drifted from the code: run `make schemas`"


def _refs(node: Any, path: str = "#") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield path, node["$ref"]
        for k, v in node.items():
            yield from _refs(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _refs(v, f"{path}/{i}")


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """The node a local `#/a/b` reference points at (KeyError when it does not exist)."""
    assert ref.startswith("#/"), f"{ref} is not a local reference"
    node: Any = doc
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.mark.parametrize("name", sorted(DOCS))
def test_document_has_the_asyncapi_3_structure(name: str) -> None:
    doc = DOCS[name]
    assert doc["asyncapi"] == "3.0.0"
    for key in ("title", "version", "description"):
        assert doc["info"][key], key
    for key in ("servers", "channels", "operations", "components"):
        assert doc[key], key
    for server in doc["servers"].values():
        assert server["protocol"] == "kafka"
        assert server["host"]
        for var in re.findall(r"{(\w+)}", server["host"]):
            assert var in server["variables"], var
    for section in ("schemas", "messages"):
        for key in doc["components"][section]:
            assert COMPONENT_KEY.match(key), key
    for cid, channel in doc["channels"].items():
        assert COMPONENT_KEY.match(cid)
        assert channel["address"] in topics.ALL_TOPICS
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == channel["address"]
        assert kafka["partitions"] == topics.PARTITIONS[channel["address"]]
        assert channel["messages"], cid
    for oid, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), oid
        channel_ref = op["channel"]["$ref"]
        resolve(doc, channel_ref)
        for m in op["messages"]:
            assert m["$ref"].startswith(channel_ref + "/messages/"), (oid, m)
    for mid, message in doc["components"]["messages"].items():
        for key in ("name", "title", "contentType", "payload", "headers", "examples"):
            assert message[key], (mid, key)
        assert message["bindings"]["kafka"]["key"], mid


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_reference_resolves_inside_its_document(name: str) -> None:
    doc = DOCS[name]
    refs = list(_refs(doc))
    assert refs
    for where, ref in refs:
        try:
            resolve(doc, ref)
        except (KeyError, IndexError, ValueError) as e:
            raise AssertionError(f"{name}: {where} → {ref} does not resolve") from e


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_schema_is_valid_and_every_example_matches_its_message(name: str) -> None:
    doc = DOCS[name]
    for sid, schema in doc["components"]["schemas"].items():
        Draft7Validator.check_schema(schema)  # AsyncAPI schemas are a superset of draft 7
        assert "$defs" not in schema, sid
    root = {k: v for k, v in doc.items() if k != "$schema"}

    def validator(pointer: str) -> Draft202012Validator:
        return Draft202012Validator({**root, "$ref": pointer}, format_checker=FormatChecker())

    for mid, message in doc["components"]["messages"].items():
        base = f"#/components/messages/{mid}"
        for example in message["examples"]:
            for part in ("payload", "headers"):
                errors = list(validator(f"{base}/{part}").iter_errors(example[part]))
                assert not errors, f"{name} {mid} example {part}: {errors[0].message}"


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for op in doc["operations"].values():
        topic = resolve(doc, op["channel"]["$ref"])["address"]
        out[(op["action"], topic)] = {m["$ref"].rsplit("/", 1)[1] for m in op["messages"]}
    return out


def test_who_publishes_and_who_consumes_each_topic() -> None:
    reporting, rollup, scheduler = (
        _operations(DOCS[f"{s}.json"]) for s in ("reporting", "rollup", "scheduler")
    )
    assert set(reporting) == {
        ("receive", topics.ACTIVITY_SUBMITTED),
        ("send", topics.ACTIVITY_ACCEPTED),
        ("send", topics.ACTIVITY_REJECTED),
        ("send", topics.ORGUNIT_CHANGES),
    }
    assert set(rollup) == {
        ("receive", topics.ACTIVITY_ACCEPTED),
        ("receive", topics.ORGUNIT_CHANGES),
        ("send", topics.ACTIVITY_REJECTED),  # accepted records failing the contract models
    }
    assert set(scheduler) == {("send", t) for t in SCHEDULER_TYPES}
    assert (
        reporting[("send", topics.ACTIVITY_ACCEPTED)]
        == rollup[("receive", topics.ACTIVITY_ACCEPTED)]
    )
    covered = {t for ops in (reporting, rollup, scheduler) for _, t in ops}
    assert covered == set(topics.ALL_TOPICS)


def test_every_activity_type_is_described_in_both_cloudevents_modes() -> None:
    doc = DOCS["reporting.json"]
    messages = doc["components"]["messages"]
    by_type: dict[str, set[str]] = {}
    for m in messages.values():
        example = m["examples"][0]
        if not isinstance(example["payload"], dict):
            continue  # the rejected topic carries the original bytes
        ce_type = example["headers"].get("ce_type") or example["payload"].get("type")
        by_type.setdefault(str(ce_type), set()).add(m["title"].rsplit("(", 1)[-1].rstrip(")"))
    for t in ACTIVITY_TYPES:
        assert by_type[t] == {"structured", "binary", "accepted"}, t
    binary = doc["components"]["schemas"]["CloudEventBinaryHeaders"]
    assert set(binary["required"]) == {
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
    }


def test_examples_are_valid_huibao_events() -> None:
    """The examples integrators copy pass the same models reporting validates with."""
    for m in DOCS["reporting.json"]["components"]["messages"].values():
        example = m["examples"][0]
        if m["title"].endswith("(structured)"):
            event = CloudEvent.model_validate(example["payload"])
            ACTIVITY_TYPES[event.type].model_validate(event.data)
        elif m["title"].endswith("(accepted)"):
            payload = {k: v for k, v in example["payload"].items() if k != "huibaoreceived"}
            event = CloudEvent.model_validate(payload)
            data = ACTIVITY_TYPES[event.type].model_validate(event.data)
            assert data.model_dump(mode="json") == event.data  # normalised: every field
        elif m["title"].endswith("(binary)"):
            ACTIVITY_TYPES[example["headers"]["ce_type"]].model_validate(example["payload"])


def test_documents_agree_with_the_services() -> None:
    """Group ids, scheduler types and the feedback report match the services' code."""
    from huibao_reporting.settings import ReportingSettings
    from huibao_rollup.settings import RollupSettings
    from huibao_scheduler.domain import feedback

    assert GROUPS["reporting"] == ReportingSettings.model_fields["kafka_group_id"].default
    assert GROUPS["rollup"] == RollupSettings.model_fields["consumer_group"].default
    assert SCHEDULER_TYPES == {  # the wire names, as integrators read them
        topics.CYCLE_EVENTS: "huibao.cycle.transition.v1",
        topics.NOTIFICATIONS: "huibao.notification.v1",
        topics.FEEDBACK_ISSUED: "huibao.feedback.issued.v1",
    }
    # the scheduler builds the contract's model
    assert get_type_hints(feedback.build_reports)["return"] == list[FeedbackReport]
    schema = DOCS["scheduler.json"]["components"]["schemas"]["FeedbackReport"]
    model = FeedbackReport.model_json_schema(ref_template="#/components/schemas/{model}")
    assert schema == {k: v for k, v in model.items() if k != "$defs"}
