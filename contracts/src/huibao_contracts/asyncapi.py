"""AsyncAPI 3.0 documents of the three services, built from the contracts alone.

One document per service (`reporting`, `rollup`, `scheduler`) describes the Kafka topics it
sends to and receives from: the channel (topic, partitions), the record key, the message
(payload schema from the pydantic models, CloudEvents structured or binary mode as Kafka
headers) and an example. `huibao_contracts.generate` writes them to `contracts/asyncapi/`;
a test regenerates them in memory and fails when the committed files drift.

Every `$ref` points inside its own document (`#/components/...`, `#/channels/...`), so a
document can be read by any AsyncAPI tool without the JSON Schema files beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from huibao_contracts import topics
from huibao_contracts.activities import ACTIVITY_TYPES, ActivityBase
from huibao_contracts.cycles import CycleTransition, Notification
from huibao_contracts.envelope import STRUCTURED_CONTENT_TYPE, AcceptedExtensions, CloudEvent
from huibao_contracts.feedback import FeedbackReport
from huibao_contracts.orgunits import ORG_UNIT_ID_PATTERN, OrgUnitChange
from huibao_contracts.rejects import FieldError

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
    topics.CYCLE_EVENTS: "huibao.cycle.transition.v1",
    topics.NOTIFICATIONS: "huibao.notification.v1",
    topics.FEEDBACK_ISSUED: "huibao.feedback.issued.v1",
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


class _Schemas:
    """Collects `components.schemas`: models with their nested definitions hoisted."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def model(self, model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
        for name, nested in schema.pop("$defs", {}).items():
            self.items.setdefault(name, nested)
        self.items[model.__name__] = schema
        return _ref(model.__name__)

    def add(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        self.items[name] = schema
        return _ref(name)

    def envelope(
        self, name: str, type_name: str, data: dict[str, Any], *, accepted: bool = False
    ) -> dict[str, str]:
        """A CloudEvent schema whose `type` is `type_name` and whose `data` is `data`."""
        env = CloudEvent.model_json_schema(ref_template=SCHEMAS + "{model}")
        env["title"] = type_name
        env["properties"]["type"] = {"const": type_name, "description": "Event type."}
        env["properties"]["data"] = data
        if accepted:
            ext = AcceptedExtensions.model_json_schema()["properties"]["huibaoreceived"]
            env["properties"]["huibaoreceived"] = {
                **ext,
                "description": "Extension attribute: when reporting stored the event (RFC 3339).",
            }
            env["required"] = [*env["required"], "huibaoreceived"]
        return self.add(name, env)


def _camel(type_name: str) -> str:
    """`huibao.party_day.held.v1` → `partyDayHeld`."""
    words = type_name.removeprefix("huibao.").rsplit(".", 1)[0].replace("_", ".").split(".")
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _example_payload(model: type[ActivityBase]) -> dict[str, Any]:
    """A valid payload made of the first example of every field that has one."""
    values = {n: f.examples[0] for n, f in model.model_fields.items() if f.examples}
    return model.model_validate(values).model_dump(mode="json", exclude_defaults=True)


def _binary_headers(schemas: _Schemas) -> dict[str, str]:
    attrs = CloudEvent.model_json_schema()["properties"]
    props: dict[str, Any] = {}
    for name in (
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
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
        "const": "application/json",
        "description": "The media type of the value (becomes `datacontenttype`).",
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


def _structured_headers(schemas: _Schemas) -> dict[str, str]:
    return schemas.add(
        "CloudEventStructuredHeaders",
        {
            "type": "object",
            "title": "CloudEvents structured mode",
            "description": "Kafka headers of a structured-mode CloudEvent: the whole event is "
            "the JSON record value. Without any `ce_specversion` header a record is read as "
            "structured even when `content-type` is missing.",
            "properties": {
                "content-type": {
                    "const": STRUCTURED_CONTENT_TYPE,
                    "description": "Media type of a structured CloudEvent.",
                }
            },
        },
    )


def _unit_key(schemas: _Schemas) -> dict[str, Any]:
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


def _activity_channels(schemas: _Schemas) -> tuple[Channel, Channel]:
    structured, binary, key = (
        _structured_headers(schemas),
        _binary_headers(schemas),
        _unit_key(schemas),
    )
    submitted: list[Message] = []
    accepted: list[Message] = []
    for type_name, model in ACTIVITY_TYPES.items():
        base = _camel(type_name)
        data = schemas.model(model)
        event = schemas.envelope(f"{model.__name__}Event", type_name, data)
        doc = (model.__doc__ or type_name).strip().splitlines()[0]
        payload = _example_payload(model)
        example = {**EXAMPLE_ENVELOPE, "type": type_name, "data": payload}
        type_header = schemas.add(
            f"{model.__name__}BinaryHeaders",
            {"allOf": [binary, {"properties": {"ce_type": {"const": type_name}}}]},
        )
        submitted.append(
            Message(
                f"{base}Structured",
                f"{type_name} (structured)",
                doc,
                STRUCTURED_CONTENT_TYPE,
                event,
                structured,
                key,
                {"headers": {"content-type": STRUCTURED_CONTENT_TYPE}, "payload": example},
            )
        )
        binary_example_headers = {
            f"ce_{k}": v for k, v in example.items() if k not in ("data", "datacontenttype")
        }
        submitted.append(
            Message(
                f"{base}Binary",
                f"{type_name} (binary)",
                doc,
                "application/json",
                data,
                type_header,
                key,
                {
                    "headers": {**binary_example_headers, "content-type": "application/json"},
                    "payload": payload,
                },
            )
        )
        full = model.model_validate(payload).model_dump(mode="json")
        accepted.append(
            Message(
                f"{base}Accepted",
                f"{type_name} (accepted)",
                doc,
                STRUCTURED_CONTENT_TYPE,
                schemas.envelope(f"{model.__name__}Accepted", type_name, data, accepted=True),
                structured,
                key,
                {
                    "headers": {"content-type": STRUCTURED_CONTENT_TYPE},
                    "payload": {
                        **example,
                        "data": full,
                        "huibaoreceived": "2026-05-26T16:31:02.118+08:00",
                    },
                },
            )
        )
    return (
        Channel(
            "activitySubmitted",
            topics.ACTIVITY_SUBMITTED,
            "Integrators publish CloudEvents here, structured (`content-type: "
            f"{STRUCTURED_CONTENT_TYPE}`, the event as JSON value) or binary (`ce_*` headers, "
            "the JSON `data` as value). Reporting validates each one exactly as over HTTP: "
            f"valid events go to `{topics.ACTIVITY_ACCEPTED}`, everything else to "
            f"`{topics.ACTIVITY_REJECTED}`. `source` + `id` identifies a message; a repeat "
            "is a duplicate and changes nothing.",
            tuple(submitted),
        ),
        Channel(
            "activityAccepted",
            topics.ACTIVITY_ACCEPTED,
            "Validated, durable activity events, relayed from reporting's outbox in commit "
            "order per unit: the integrator's envelope, `data` normalised by the payload "
            "model (defaults filled in), and the `huibaoreceived` extension attribute. A "
            "correction reuses `activity_id` with a higher `revision`; `retracted: true` "
            "withdraws the activity.",
            tuple(accepted),
        ),
    )


def _rejected_channel(schemas: _Schemas) -> Channel:
    schemas.model(FieldError)
    headers = schemas.add(
        "RejectedHeaders",
        {
            "type": "object",
            "title": "Rejection headers",
            "description": "The reason of a refusal, added to the original record's headers.",
            "required": ["huibao_reason", "huibao_errors", "huibao_channel"],
            "properties": {
                "huibao_reason": {**_ref("Reason"), "description": "Reason of the first error."},
                "huibao_errors": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": "JSON list of `FieldError` objects: `field`, `reason`, "
                    "`message`.",
                    "examples": [
                        '[{"field":"data.attendees","reason":"invalid_field",'
                        '"message":"attendees cannot exceed members"}]'
                    ],
                },
                "huibao_channel": {"enum": ["http", "kafka"], "description": "Where it came in."},
            },
        },
    )
    message = Message(
        "activityRejected",
        "A refused submission",
        "The original bytes of a refused event.",
        "application/octet-stream",
        {
            "description": "The original bytes, unchanged (for HTTP, the event as JSON).",
            "type": "string",
            "format": "binary",
        },
        headers,
        {
            "type": ["string", "null"],
            "description": "The unit id when it could be read, else the original key.",
        },
        {
            "headers": {
                "huibao_reason": "invalid_field",
                "huibao_channel": "kafka",
                "huibao_errors": '[{"field":"data.attendees","reason":"invalid_field",'
                '"message":"attendees cannot exceed members"}]',
            },
            "payload": '{"specversion":"1.0", ...}',
        },
    )
    return Channel(
        "activityRejected",
        topics.ACTIVITY_REJECTED,
        "Every refused submission, from HTTP and Kafka: the original bytes (and headers), with "
        "the reason code and the field errors in headers. Nothing here is counted.",
        (message,),
    )


def _orgunit_channel(schemas: _Schemas) -> Channel:
    change = schemas.model(OrgUnitChange)
    example = {
        "seq": 42,
        "kind": "move",
        "effective": "2026-07-01",
        "unit": {
            "id": "br-0001",
            "name": "城关镇第一村党支部",
            "level": "branch",
            "parent": "tw-0004",
            "members": 31,
            "opened": None,
            "closed": None,
        },
        "path": ["city", "cn-01", "tw-0004", "br-0001"],
        "merged_into": None,
    }
    message = Message(
        "orgUnitChange",
        "Org-unit change",
        (OrgUnitChange.__doc__ or "").strip().splitlines()[0],
        "application/json",
        change,
        _json_headers(schemas),
        _unit_key(schemas),
        {"headers": {"content-type": "application/json"}, "payload": example},
    )
    return Channel(
        "orgunitChanges",
        topics.ORGUNIT_CHANGES,
        "Every change of the org-unit registry (import, move, merge, close) with its "
        "effective date, in registry order on one partition. Published through the same "
        "outbox as accepted events, so a unit's creation precedes any event naming it.",
        (message,),
    )


def _json_headers(schemas: _Schemas) -> dict[str, str]:
    return schemas.add(
        "JsonHeaders",
        {"type": "object", "properties": {"content-type": {"const": "application/json"}}},
    )


def _scheduler_channels(schemas: _Schemas) -> tuple[Channel, ...]:
    structured = _structured_headers(schemas)
    cycle_key = {
        "type": "string",
        "pattern": "^(party_day|feedback):[0-9]{4}-(Q[1-4]|[0-9]{2})$",
        "description": "Record key: `kind:period`.",
        "examples": ["party_day:2026-05"],
    }
    specs: tuple[tuple[str, str, str, dict[str, Any], dict[str, Any], dict[str, Any]], ...] = (
        (
            topics.CYCLE_EVENTS,
            "party_day/2026-05/deadline_passed",
            "party_day.2026-05",
            schemas.model(CycleTransition),
            cycle_key,
            {
                "kind": "party_day",
                "period": "2026-05",
                "step": "deadline_passed",
                "state": "deadline_passed",
                "due_at": "2026-05-30T00:00:00+08:00",
                "ran_at": "2026-05-30T00:00:01+08:00",
                "skipped": False,
            },
        ),
        (
            topics.NOTIFICATIONS,
            "party_day.not_reported/2026-05/overdue_reminded/br-0001",
            "br-0001",
            schemas.model(Notification),
            _unit_key(schemas),
            {
                "kind": "party_day.not_reported",
                "to": "br-0001",
                "period": "2026-05",
                "text": "城关镇第一村党支部：5月主题党日尚未报送，请于29日前完成。",
                "details": {},
            },
        ),
        (
            topics.FEEDBACK_ISSUED,
            "feedback/2026-Q2/cn-01",
            "cn-01",
            schemas.model(FeedbackReport),
            _unit_key(schemas),
            {
                "unit": "cn-01",
                "name": "清源县",
                "level": "county",
                "parent": "city",
                "quarter": "2026-Q2",
                "previous_quarter": "2026-Q1",
                "issued_at": "2026-07-10T09:00:00+08:00",
                "metrics": {"party_day.held": 1140},
                "previous": {"party_day.held": 1101},
                "change": {"party_day.held": 39},
                "ranks": [],
                "months": [],
                "children": [],
                "attention": [],
            },
        ),
    )
    channels = []
    for topic, event_id, subject, data, key, payload in specs:
        type_name = SCHEDULER_TYPES[topic]
        name = data["$ref"].rsplit("/", 1)[1]
        example = {
            "specversion": "1.0",
            "id": event_id,
            "source": "/huibao/scheduler",
            "type": type_name,
            "subject": subject,
            "time": "2026-05-30T00:00:01+08:00",
            "datacontenttype": "application/json",
            "data": payload,
        }
        message = Message(
            name[0].lower() + name[1:],
            type_name,
            f"A CloudEvent `{type_name}`.",
            STRUCTURED_CONTENT_TYPE,
            schemas.envelope(f"{name}Event", type_name, data),
            structured,
            key,
            {"headers": {"content-type": STRUCTURED_CONTENT_TYPE}, "payload": example},
        )
        words = topic.split(".")[1:]
        channel_id = words[0] + "".join(w.capitalize() for w in words[1:])
        channels.append(Channel(channel_id, topic, SCHEDULER_TOPICS[topic], (message,)))
    return tuple(channels)


def _channel_doc(c: Channel) -> dict[str, Any]:
    return {
        "address": c.topic,
        "title": c.topic,
        "description": c.description,
        "messages": {m.id: {"$ref": f"#/components/messages/{m.id}"} for m in c.messages},
        "bindings": {
            "kafka": {
                "topic": c.topic,
                "partitions": topics.PARTITIONS[c.topic],
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _message_doc(m: Message) -> dict[str, Any]:
    return {
        "name": m.id,
        "title": m.title,
        "summary": m.summary,
        "contentType": m.content_type,
        "headers": m.headers,
        "payload": m.payload,
        "bindings": {"kafka": {"key": m.key, "bindingVersion": KAFKA_BINDING}},
        "examples": [{"name": f"{m.id}Example", **m.example}],
    }


def _operation(action: str, c: Channel, service: str) -> dict[str, Any]:
    verb = "Publishes to" if action == "send" else "Consumes"
    op: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{c.id}"},
        "summary": f"{verb} `{c.topic}`.",
        "messages": [{"$ref": f"#/channels/{c.id}/messages/{m.id}"} for m in c.messages],
    }
    if action == "receive" and service in GROUPS:
        op["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [GROUPS[service]]},
                "bindingVersion": KAFKA_BINDING,
            }
        }
    return op


def _document(
    service: str,
    description: str,
    schemas: _Schemas,
    sends: Iterable[Channel],
    receives: Iterable[Channel],
) -> dict[str, Any]:
    ops = [("send", c) for c in sends] + [("receive", c) for c in receives]
    channels = {c.id: c for _, c in ops}
    messages = {m.id: m for c in channels.values() for m in c.messages}
    return {
        "asyncapi": "3.0.0",
        "id": f"urn:huibao:{service}",
        "info": {
            "title": f"Huibao {service}",
            "version": VERSION,
            "description": description,
            "externalDocs": {
                "description": "Integrator guide",
                "url": "https://huibao.example.org/docs/integrators",
            },
        },
        "defaultContentType": STRUCTURED_CONTENT_TYPE,
        "servers": {
            "embedded": {
                "host": "127.0.0.1:{port}",
                "protocol": "kafka",
                "description": "The embedded Tansu broker of `huibao up` (its address is "
                "printed at start-up). Topics live in memory.",
                "variables": {"port": {"description": "Broker port printed by `huibao up`."}},
            },
            "production": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "Apache Kafka (docker-compose, Strimzi): the address in "
                "`KAFKA_BOOTSTRAP_SERVERS`.",
                "variables": {"bootstrap": {"default": "kafka:9092"}},
            },
        },
        "channels": {cid: _channel_doc(c) for cid, c in channels.items()},
        "operations": {
            f"{action}{c.id[0].upper()}{c.id[1:]}": _operation(action, c, service)
            for action, c in ops
        },
        "components": {
            "schemas": dict(sorted(schemas.items.items())),
            "messages": {mid: _message_doc(m) for mid, m in messages.items()},
        },
    }


def documents() -> dict[str, dict[str, Any]]:
    """File name → AsyncAPI 3.0 document, one per service."""
    rep = _Schemas()
    submitted, accepted = _activity_channels(rep)
    reporting = _document(
        "reporting",
        "The front door. Consumes CloudEvents integrators publish on "
        f"`{topics.ACTIVITY_SUBMITTED}` (the same validation as `POST /v1/events`), and "
        "publishes, through its transactional outbox, accepted events, refusals and every "
        "change of the org-unit registry.",
        rep,
        sends=(accepted, _rejected_channel(rep), _orgunit_channel(rep)),
        receives=(submitted,),
    )
    roll = _Schemas()
    _, accepted_r = _activity_channels(roll)
    rollup = _document(
        "rollup",
        "Consumes accepted activity and org-unit changes and keeps the aggregates of every "
        "node and period, exactly once (applied offsets and revisions are stored with the "
        "aggregate change). Publishes nothing; its results are served over HTTP.",
        roll,
        sends=(),
        receives=(accepted_r, _orgunit_channel(roll)),
    )
    sch = _Schemas()
    scheduler = _document(
        "scheduler",
        "The calendar: opens, reminds, escalates and closes each monthly Party Day cycle and "
        "issues the quarterly feedback. Publishes through its outbox; deterministic ids "
        "(`kind/period/step[/unit]`) make a resent record recognisable by `source` + `id`.",
        sch,
        sends=_scheduler_channels(sch),
        receives=(),
    )
    return {"reporting.json": reporting, "rollup.json": rollup, "scheduler.json": scheduler}
