"""Building blocks of the AsyncAPI documents: constants, messages, channels, schemas, headers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from huibao_contracts import topics
from huibao_contracts.accepted import AcceptedCloudEvent
from huibao_contracts.activities import ActivityBase
from huibao_contracts.cycles import NOTIFICATION_TYPE, TRANSITION_TYPE
from huibao_contracts.envelope import (
    KAFKA_BINARY_CONTENT_TYPE,
    KAFKA_STRUCTURED_CONTENT_TYPE,
    RECEIVED_EXTENSION,
    STRUCTURED_CONTENT_TYPE,
    AcceptedExtensions,
    CloudEvent,
)
from huibao_contracts.feedback import FEEDBACK_ISSUED_TYPE
from huibao_contracts.orgunits import ORG_UNIT_ID_PATTERN

VERSION: Final = "1.0.0"
"""Version of the event contracts the documents describe (additive changes keep it)."""
KAFKA_BINDING: Final = "0.5.0"
SCHEMAS: Final = "#/components/schemas/"

GROUPS: Final[Mapping[str, str]] = {
    "reporting": "huibao-reporting",
    "rollup": "huibao-rollup",
}
"""Default consumer group of each consuming service (a test checks the services' settings)."""

SCHEDULER_TYPES: Final[Mapping[str, str]] = {
    topics.CYCLE_EVENTS: TRANSITION_TYPE,
    topics.NOTIFICATIONS: NOTIFICATION_TYPE,
    topics.FEEDBACK_ISSUED: FEEDBACK_ISSUED_TYPE,
}
"""CloudEvent `type` of what the scheduler publishes on each of its topics."""

SCHEDULER_TOPICS: Final[Mapping[str, str]] = {
    topics.CYCLE_EVENTS: "Each step of the monthly Party Day and quarterly feedback cycles "
    "(opened, reminded, deadline passed, escalated, issued, closed), once per step.",
    topics.NOTIFICATIONS: "Reminders, escalations and dispatch summaries, each addressed to "
    "one org unit (the record key).",
    topics.FEEDBACK_ISSUED: "The quarterly feedback report of every unit, issued on the "
    "configured day after the quarter ends.",
}
"""What each of the scheduler's topics carries."""

EXAMPLE_ENVELOPE: Final[Mapping[str, Any]] = {
    "specversion": "1.0",
    "id": "evt-7f3a",
    "source": "/platforms/qingyuan-dangjian",
    "subject": "br-0001",
    "time": "2026-05-26T16:30:00+08:00",
    "datacontenttype": "application/json",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One kind of record on a topic."""

    id: str
    title: str
    summary: str
    content_type: str
    payload: dict[str, Any]
    headers: dict[str, Any]
    key: dict[str, Any]
    example: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Channel:
    """One topic, its key and its messages."""

    id: str
    topic: str
    description: str
    messages: tuple[Message, ...]


def ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


class SchemaSet:
    """Collects `components.schemas`: models with their nested definitions hoisted."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def model(self, model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
        for name, nested in schema.pop("$defs", {}).items():
            self.items.setdefault(name, nested)
        self.items[model.__name__] = schema
        return ref(model.__name__)

    def add(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        self.items[name] = schema
        return ref(name)

    def envelope(
        self, name: str, type_name: str, data: dict[str, Any], *, accepted: bool = False
    ) -> dict[str, str]:
        """A CloudEvent schema whose `type` is `type_name` and whose `data` is `data`."""
        env = CloudEvent.model_json_schema(ref_template=SCHEMAS + "{model}")
        env["title"] = type_name
        env["properties"]["type"] = {"const": type_name, "description": "Event type."}
        env["properties"]["data"] = data
        if accepted:
            ext = AcceptedExtensions.model_json_schema()["properties"][RECEIVED_EXTENSION]
            env["properties"][RECEIVED_EXTENSION] = {
                **ext,
                "description": "Extension attribute: when reporting stored the event (RFC 3339).",
            }
            env["required"] = [*env["required"], RECEIVED_EXTENSION]
            env["maxProperties"] = AcceptedCloudEvent.MAX_ATTRIBUTES
        return self.add(name, env)


def camel(type_name: str) -> str:
    """`huibao.party_day.held.v1` → `partyDayHeld`."""
    words = type_name.removeprefix("huibao.").rsplit(".", 1)[0].replace("_", ".").split(".")
    return words[0] + "".join(w.capitalize() for w in words[1:])


def example_payload(model: type[ActivityBase]) -> dict[str, Any]:
    """A valid payload made of the first example of every field that has one."""
    values = {n: f.examples[0] for n, f in model.model_fields.items() if f.examples}
    return model.model_validate(values).model_dump(mode="json", exclude_defaults=True)


def binary_headers(schemas: SchemaSet) -> dict[str, str]:
    attrs = CloudEvent.model_json_schema()["properties"]
    props: dict[str, Any] = {}
    for name in (
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",  # read too, though `content-type` is the binding's way to say it
        "dataschema",
        "traceparent",
        "tracestate",
    ):
        spec = attrs[name]
        string = next((s for s in spec.get("anyOf", []) if s.get("type") == "string"), spec)
        props[f"ce_{name}"] = {
            **{k: v for k, v in string.items() if k != "title"},
            "description": spec.get("description", f"CloudEvents attribute `{name}`."),
        }
    props["content-type"] = {
        "type": "string",
        "pattern": f"^{KAFKA_BINARY_CONTENT_TYPE}$",
        "examples": ["application/json"],
        "description": "The media type of the value (becomes `datacontenttype`): "
        "`application/json`, parameters allowed; absent means `application/json`.",
    }
    return schemas.add(
        "CloudEventBinaryHeaders",
        {
            "type": "object",
            "title": "CloudEvents binary mode",
            "description": "Kafka headers of a binary-mode CloudEvent: every attribute in a "
            "`ce_<name>` header (UTF-8), the JSON `data` as the record value. Other headers "
            "are allowed and ignored.",
            "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject"],
            "properties": props,
        },
    )


def structured_headers(schemas: SchemaSet) -> dict[str, str]:
    return schemas.add(
        "CloudEventStructuredHeaders",
        {
            "type": "object",
            "title": "CloudEvents structured mode",
            "description": "Kafka headers of a structured-mode CloudEvent: the whole event is "
            "the JSON record value. Without any `ce_specversion` header a record is read as "
            "structured, also when `content-type` is missing.",
            "properties": {
                "content-type": {
                    "type": "string",
                    "pattern": f"^{KAFKA_STRUCTURED_CONTENT_TYPE}$",
                    "examples": [STRUCTURED_CONTENT_TYPE, "application/json"],
                    "description": "Media type of a structured CloudEvent: "
                    "`application/cloudevents+json`, or `application/json` (what the "
                    "cloudevents SDK's 1.x API sends), parameters allowed. Reporting refuses "
                    "another one on `huibao.activity.submitted` (`invalid_envelope`, field "
                    "`content-type`).",
                }
            },
        },
    )


def unit_key(schemas: SchemaSet) -> dict[str, Any]:
    return schemas.add(
        "OrgUnitKey",
        {
            "type": "string",
            "pattern": ORG_UNIT_ID_PATTERN,
            "description": "Record key: the org-unit id (the event's `subject`), so one unit's "
            "records stay in order on one partition.",
            "examples": ["br-0001"],
        },
    )
