"""The channels (topics) of the AsyncAPI documents, with their messages and examples."""

from __future__ import annotations

from typing import Any

from huibao_contracts import topics
from huibao_contracts.activities import ACTIVITY_TYPES
from huibao_contracts.asyncapi.parts import (
    EXAMPLE_ENVELOPE,
    SCHEDULER_TOPICS,
    SCHEDULER_TYPES,
    Channel,
    Message,
    SchemaSet,
    binary_headers,
    camel,
    example_payload,
    ref,
    structured_headers,
    unit_key,
)
from huibao_contracts.cycles import CycleTransition, Notification
from huibao_contracts.envelope import RECEIVED_EXTENSION, STRUCTURED_CONTENT_TYPE
from huibao_contracts.feedback import FeedbackReport
from huibao_contracts.orgunits import OrgUnitChange
from huibao_contracts.rejects import FieldError


def activity_channels(schemas: SchemaSet) -> tuple[Channel, Channel]:
    structured, binary, key = (
        structured_headers(schemas),
        binary_headers(schemas),
        unit_key(schemas),
    )
    submitted: list[Message] = []
    accepted: list[Message] = []
    for type_name, model in ACTIVITY_TYPES.items():
        base = camel(type_name)
        data = schemas.model(model)
        event = schemas.envelope(f"{model.__name__}Event", type_name, data)
        doc = (model.__doc__ or type_name).strip().splitlines()[0]
        payload = example_payload(model)
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
                        RECEIVED_EXTENSION: "2026-05-26T16:31:02.118+08:00",
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


def rejected_channel(schemas: SchemaSet) -> Channel:
    schemas.model(FieldError)
    headers = schemas.add(
        "RejectedHeaders",
        {
            "type": "object",
            "title": "Rejection headers",
            "description": "The reason of a refusal, added to the original record's headers.",
            "required": ["huibao_reason", "huibao_errors", "huibao_channel"],
            "properties": {
                "huibao_reason": {**ref("Reason"), "description": "Reason of the first error."},
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
                "huibao_channel": {
                    "enum": ["http", "kafka", "rollup"],
                    "description": "Where it came in (`rollup`: a record of the accepted "
                    "topic that fails the contract models, refused by the rollup).",
                },
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


def orgunit_channel(schemas: SchemaSet) -> Channel:
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
        json_headers(schemas),
        unit_key(schemas),
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


def json_headers(schemas: SchemaSet) -> dict[str, str]:
    return schemas.add(
        "JsonHeaders",
        {"type": "object", "properties": {"content-type": {"const": "application/json"}}},
    )


def scheduler_channels(schemas: SchemaSet) -> tuple[Channel, ...]:
    structured = structured_headers(schemas)
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
            unit_key(schemas),
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
            unit_key(schemas),
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
