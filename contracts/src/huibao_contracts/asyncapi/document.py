"""Assembling one AsyncAPI 3.0 document per service from the channels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from huibao_contracts import topics
from huibao_contracts.asyncapi.channels import (
    activity_channels,
    orgunit_channel,
    rejected_channel,
    scheduler_channels,
)
from huibao_contracts.asyncapi.parts import (
    GROUPS,
    KAFKA_BINDING,
    VERSION,
    Channel,
    Message,
    SchemaSet,
)
from huibao_contracts.envelope import STRUCTURED_CONTENT_TYPE


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
    schemas: SchemaSet,
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
    rep = SchemaSet()
    submitted, accepted = activity_channels(rep)
    reporting = _document(
        "reporting",
        "The front door. Consumes CloudEvents integrators publish on "
        f"`{topics.ACTIVITY_SUBMITTED}` (the same validation as `POST /v1/events`), and "
        "publishes, through its transactional outbox, accepted events, refusals and every "
        "change of the org-unit registry.",
        rep,
        sends=(accepted, rejected_channel(rep), orgunit_channel(rep)),
        receives=(submitted,),
    )
    roll = SchemaSet()
    _, accepted_r = activity_channels(roll)
    rollup = _document(
        "rollup",
        "Consumes accepted activity and org-unit changes and keeps the aggregates of every "
        "node and period, exactly once (applied offsets and revisions are stored with the "
        "aggregate change); its results are served over HTTP. It validates every accepted "
        "record against the same contract models and publishes what fails (a record "
        "reporting did not write) to the reject topic, with `huibao_channel: rollup`.",
        roll,
        sends=(rejected_channel(roll),),
        receives=(accepted_r, orgunit_channel(roll)),
    )
    sch = SchemaSet()
    scheduler = _document(
        "scheduler",
        "The calendar: opens, reminds, escalates and closes each monthly Party Day cycle and "
        "issues the quarterly feedback. Publishes through its outbox; deterministic ids "
        "(`kind/period/step[/unit]`) make a resent record recognisable by `source` + `id`.",
        sch,
        sends=scheduler_channels(sch),
        receives=(),
    )
    return {"reporting.json": reporting, "rollup.json": rollup, "scheduler.json": scheduler}
