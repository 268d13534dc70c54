"""The examples of docs/integrators.md run as written, and its envelope claims hold.

Every fenced block with a title (```` ```bash title=curl_event ````, ```` ```python
title=publish_aiokafka ````) is an example: bash blocks run with `bash -euo pipefail` (they
call `curl --fail-with-body`), python blocks with this interpreter, all with `HUIBAO_URL`,
`HUIBAO_ROLLUP_URL`, `HUIBAO_TOKEN` and `KAFKA_BOOTSTRAP_SERVERS` pointing at a stack of
their own, fresh (empty database, empty broker), in the order the guide shows them; any
failure fails the test with the example's output. The one wait between them: before the
first example that reads results (`consume_confluent`), until the rollup shows what was
sent, as a reader would. The rollup must then show exactly what the examples sent: nothing
lost, nothing counted twice, the dry run and the refused event not at all.

The envelope section's claims (required attributes, the extension rule, content types, both
modes over HTTP and Kafka, the key) are a table of cases sent to the running reporting
service; for each, the committed JSON Schema, OpenAPI or AsyncAPI document must give the
server's verdict.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.v1 import http as v1_http
from cloudevents.v1 import kafka as v1_kafka
from tests.support.topics import Record, headers_dict, read_topic
from tests.support.tree import build_city
from tests.support.waits import wait_until

from huibao_contracts import topics
from huibao_stack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integrators.md"
BLOCK = re.compile(r"^```(?P<lang>\w+) title=(?P<title>\w+)\n(?P<body>.*?)^```$", re.M | re.S)
ORDER = (
    "curl_orgunits",
    "curl_event",
    "curl_batch",
    "curl_dry_run",
    "curl_correction",
    "curl_token",
    "publish_aiokafka",
    "publish_confluent",
    "consume_confluent",
    "curl_summary",
)
"""The examples in the order the guide shows them (checked, not assumed)."""
READS = "consume_confluent"
"""The first example that reads results: the rollup must have caught up before it runs."""


def examples() -> dict[str, tuple[str, str]]:
    """Title → (language, code) of every titled block of the guide, in document order."""
    found = {m["title"]: (m["lang"], m["body"]) for m in BLOCK.finditer(DOC.read_text("utf-8"))}
    assert found, "no titled examples in docs/integrators.md"
    return found


def test_every_example_is_run_in_document_order_and_has_a_known_language() -> None:
    found = examples()
    assert tuple(found) == ORDER
    assert {lang for lang, _ in found.values()} == {"bash", "python"}
    for title, (lang, code) in found.items():
        if lang == "python":
            compile(code, title, "exec")
        else:  # a refusal must fail the example and still show Huibao's answer
            assert "curl -f" not in code, title
            assert code.count("curl ") == code.count("--fail-with-body"), title


async def run(lang: str, code: str, env: dict[str, str], workdir: Path, title: str) -> str:
    """Run one example; return its stdout (failing the test with its output otherwise)."""
    if lang == "python":
        path = workdir / f"{title}.py"
        path.write_text(code, encoding="utf-8")
        argv = [sys.executable, str(path)]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", code]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, (
        f"{title} failed ({proc.returncode}):\n{out.decode()}\n{err.decode()}"
    )
    return out.decode()


def guide_env(stack: Any, home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "HUIBAO_URL": stack.urls["reporting"],
        "HUIBAO_ROLLUP_URL": stack.urls["rollup"],
        "HUIBAO_TOKEN": stack.admin_token,
        "KAFKA_BOOTSTRAP_SERVERS": stack.infra.bootstrap_servers,
    }


# held: b1 (corrected to 28), b2 (22), b3 over aiokafka (20), b4 over confluent-kafka (18);
# lessons: t1 over HTTP (45), b1 over aiokafka (30). Not the dry run, not the refused one.
EXPECTED = {
    "party_day.held": 4,
    "party_day.attendees": 28 + 22 + 20 + 18,
    "lesson.delivered": 2,
    "lesson.audience": 45 + 30,
}


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl examples need curl")
async def test_the_integrator_guide_works_top_to_bottom_on_a_fresh_stack(tmp_path: Path) -> None:
    stack = EmbeddedStack(clock="manual", clock_start="2026-06-01T00:00:00+08:00")
    await stack.start()
    try:
        out: dict[str, Any] = {}
        for title, (lang, code) in examples().items():
            if title == READS:
                await rolled_up(stack)
            text = await run(lang, code, guide_env(stack, tmp_path), tmp_path, title)
            out[title] = json.loads(text) if lang == "bash" else text
    finally:
        await stack.stop()

    assert out["curl_orgunits"]["created"] == 7, out["curl_orgunits"]
    assert out["curl_token"]["unit"] == "qy-t1"
    assert out["curl_token"]["scopes"] == ["report", "read"]
    assert out["curl_token"]["token"]
    assert out["curl_event"]["results"][0]["status"] == "accepted"
    batch = out["curl_batch"]["results"]
    assert [r["status"] for r in batch] == ["accepted", "accepted", "duplicate", "rejected"]
    assert batch[3]["errors"][0] == {
        "field": "data.attendees",
        "reason": "invalid_field",
        "message": "attendees cannot exceed members",
    }
    assert out["curl_dry_run"]["results"][0]["status"] == "accepted"
    assert out["curl_correction"]["results"][0]["status"] == "accepted"
    assert out["publish_aiokafka"].strip() == "sent 2 events"
    assert out["publish_confluent"].strip() == "sent 1 event"
    assert {k: out["curl_summary"]["metrics"][k] for k in EXPECTED} == EXPECTED
    ids = {f"qy-evt-{n}" for n in ("0001", "0002", "0003", "0006", "0010", "0011", "0020")}
    consumed = out["consume_confluent"]
    assert consumed.startswith(f"{len(ids)} accepted events:"), consumed
    for ident in ids:
        assert ident in consumed, (ident, consumed)


async def rolled_up(stack: Any) -> None:
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:

        async def done() -> dict[str, Any] | None:
            r = await client.get(
                f"{stack.urls['rollup']}/v1/nodes/qy-city/summary", params={"period": "2026-10"}
            )
            metrics: dict[str, Any] = r.json().get("metrics", {})
            return metrics if all(metrics.get(k) == v for k, v in EXPECTED.items()) else None

        await wait_until(done, timeout=30, interval=0.3, message="the guide's events")


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl examples need curl")
async def test_a_refused_example_fails_and_shows_the_answer(stack: Any, tmp_path: Path) -> None:
    """The guide's curl style on a unit nobody imported: non-zero exit, Huibao's errors shown."""
    _, code = examples()["curl_event"]
    code = code.replace("qy-b1", f"nowhere{uuid.uuid4().hex[:6]}")
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", code,
        env=guide_env(stack, tmp_path), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 22, out  # curl: the HTTP answer was an error
    assert json.loads(out)["errors"][0]["reason"] == "unknown_unit", out


# --- the envelope: the server's verdict and the documents' verdict --------------------------

LESSON = "huibao.lesson.delivered.v1"
JSON_SCHEMA = json.loads((ROOT / "contracts/schemas" / f"{LESSON}.json").read_text("utf-8"))
OPENAPI = json.loads((ROOT / "docs/openapi/reporting.json").read_text("utf-8"))
ASYNCAPI = json.loads((ROOT / "contracts/asyncapi/reporting.json").read_text("utf-8"))


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """`pattern` as JSON Schema means it (ECMA-262): `$` is the end of the string. Python's
    `re.search` would also let `$` match before a final newline."""
    if not validator.is_type(instance, "string"):
        return
    regex = (
        pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
    )
    if not re.search(regex, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern}
)


def valid(schema: dict[str, Any], instance: Any, root: dict[str, Any] | None = None) -> bool:
    """Whether `instance` validates; `$ref`s resolve inside `root` (the whole document)."""
    whole = {**(root or {}), **schema} if root is not None else schema
    return not list(Validator(whole).iter_errors(instance))


def lesson(unit: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"env-{uuid.uuid4().hex}",
        "source": "/tests/envelope",
        "type": LESSON,
        "subject": unit,
        "datacontenttype": "application/json",
        "data": {
            "activity_id": f"env-ls-{uuid.uuid4().hex[:12]}-{n}",
            "date": "2026-10-12",
            "speaker_role": "leading_cadre",
            "topic": "我来讲党课",
            "audience": 10,
        },
        **extra,
    }


def without(event: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != name}


def extensions(count: int) -> dict[str, Any]:
    return {f"ext{i}": i for i in range(count)}


ENVELOPE_CASES: list[tuple[str, Any, bool]] = [
    # (case, how the base event changes, accepted?) — the base has 7 attributes
    ("base", lambda e: e, True),
    *[
        (f"no {name}", lambda e, n=name: without(e, n), False)
        for name in ("specversion", "id", "source", "type", "subject", "data")
    ],
    ("no datacontenttype", lambda e: without(e, "datacontenttype"), True),
    ("datacontenttype text/plain", lambda e: {**e, "datacontenttype": "text/plain"}, False),
    ("foobar", lambda e: {**e, "foobar": "x"}, True),
    ("partitionkey", lambda e: {**e, "partitionkey": e["subject"]}, True),
    ("Foo_Bar", lambda e: {**e, "Foo_Bar": "x"}, False),
    ("foo-bar", lambda e: {**e, "foo-bar": "x"}, False),
    ("FOOBAR", lambda e: {**e, "FOOBAR": "x"}, False),
    ("a 20-char name", lambda e: {**e, "a" * 20: "x"}, True),
    ("a 21-char name", lambda e: {**e, "a" * 21: "x"}, False),
    ("a name with a final newline", lambda e: {**e, "foobar\n": "x"}, False),
    ("a 1000-char value", lambda e: {**e, "foobar": "x" * 1000}, True),
    ("a 1001-char value", lambda e: {**e, "foobar": "x" * 1001}, False),
    ("an int32 value", lambda e: {**e, "foobar": 2**31 - 1, "foobaz": -(2**31)}, True),
    ("an int beyond 32 bits", lambda e: {**e, "foobar": 2**31}, False),
    ("a boolean value", lambda e: {**e, "foobar": True}, True),
    ("a fraction", lambda e: {**e, "foobar": 1.5}, False),
    ("a null value", lambda e: {**e, "foobar": None}, False),
    ("an array value", lambda e: {**e, "foobar": ["x"]}, False),
    ("an object value", lambda e: {**e, "foobar": {"x": 1}}, False),
    ("31 attributes", lambda e: {**e, **extensions(24)}, True),
    ("32 attributes", lambda e: {**e, **extensions(25)}, False),
]


def culprit(base: dict[str, Any], event: dict[str, Any]) -> set[str]:
    """The attribute a case adds, removes or changes (none when it adds many)."""
    changed = (set(base) ^ set(event)) | {k for k in base if k in event and base[k] != event[k]}
    return changed if len(changed) == 1 else set()


async def tree(stack: Any) -> str:
    prefix = f"env{uuid.uuid4().hex[:6]}"
    units = build_city(prefix, counties=1, townships_per_county=1, branches_per_township=1)
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        r = await client.put(f"{stack.urls['reporting']}/v1/orgunits", json=units)
        assert r.status_code == 200, r.text
    return f"{prefix}.c1.t1"


def auth(stack: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.admin_token}"}


def openapi_schema(media_type: str) -> dict[str, Any] | None:
    """The request schema OpenAPI declares for `media_type` on POST /v1/events, if any."""
    content = OPENAPI["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    found: dict[str, Any] | None = content.get(media_type.partition(";")[0].strip().lower())
    return None if found is None else found["schema"]


async def test_the_envelope_rule_is_the_same_in_the_server_and_the_schemas(stack: Any) -> None:
    unit = await tree(stack)
    url = f"{stack.urls['reporting']}/v1/events"
    disagree = []
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        for n, (case, change, accepted) in enumerate(ENVELOPE_CASES):
            base = lesson(unit, n)
            event = change(base)
            r = await client.post(
                url,
                params={"dry_run": "true"},
                content=orjson.dumps(event),
                headers={"content-type": "application/cloudevents+json"},
            )
            assert r.status_code in (200, 422), (case, r.status_code, r.text)
            server = r.status_code == 200
            if not server:  # refused with the reason, naming the attribute; never a 500
                errors = r.json()["errors"]
                assert {e["reason"] for e in errors} == {"invalid_envelope"}, (case, r.text)
                assert all("." not in e["field"] for e in errors), (case, errors)  # one name
                culprits = culprit(base, event)
                assert all(
                    any(e["field"].split(".")[0] == c or repr(c) in e["message"] for e in errors)
                    for c in culprits
                ), (case, culprits, errors)
            schema = openapi_schema("application/cloudevents+json")
            assert schema is not None
            verdicts = (server, valid(JSON_SCHEMA, event), valid(schema, event))
            if verdicts != (accepted,) * 3:
                disagree.append(
                    (case, dict(zip(("server", "schema", "openapi"), verdicts, strict=True)))
                )
    assert not disagree, disagree


HTTP_CASES: list[tuple[str, str, bool]] = [
    ("application/cloudevents+json", "event", True),
    ("application/json", "event", True),
    ("application/cloudevents+json; charset=utf-8", "event", True),
    ("application/cloudevents-batch+json", "batch", True),
    ("application/json", "batch", True),
    ("application/cloudevents+json", "batch", False),  # one event per this media type
    ("application/cloudevents-batch+json", "event", False),
    ("text/plain", "event", False),
    ("application/xml", "event", False),
    ("application/json", "binary", False),  # HTTP binary mode: ce-* headers, data as body
]


async def test_http_content_types_and_modes_agree_with_openapi(stack: Any) -> None:
    unit = await tree(stack)
    url = f"{stack.urls['reporting']}/v1/events"
    disagree = []
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        for n, (media_type, shape, accepted) in enumerate(HTTP_CASES):
            event = lesson(unit, n)
            headers = {"content-type": media_type}
            body: Any = event
            if shape == "batch":
                body = [event]
            elif shape == "binary":
                body = event["data"]
                headers |= {f"ce-{k}": v for k, v in event.items() if k != "data"}
            r = await client.post(
                url, params={"dry_run": "true"}, content=orjson.dumps(body), headers=headers
            )
            results = r.json().get("results", [])
            server = r.status_code == 200 and [x["status"] for x in results] == ["accepted"]
            if shape == "binary":  # refused, naming the attributes it looked for in the body
                assert r.status_code == 422, r.text
                fields = {e["field"] for e in r.json()["errors"]}
                assert {"specversion", "id", "source", "type", "subject"} <= fields, fields
            elif not accepted and openapi_schema(media_type) is None:
                assert r.status_code == 415, r.text
                assert r.json()["errors"][0]["reason"] == "unsupported_media_type"
            elif not accepted:  # a declared media type with the other shape of body
                assert r.status_code == 400, r.text
                assert r.json()["errors"][0]["reason"] == "invalid_envelope"
            schema = openapi_schema(media_type)
            documented = schema is not None and valid(schema, body)
            if (server, documented) != (accepted, accepted):
                disagree.append((media_type, shape, {"server": server, "openapi": documented}))
    assert not disagree, disagree


def _message_matches(message: dict[str, Any], headers: dict[str, str], value: Any) -> bool:
    return valid(message["headers"], headers, ASYNCAPI) and valid(
        message["payload"], value, ASYNCAPI
    )


def asyncapi_accepts(headers: dict[str, str], value: Any) -> bool:
    """Whether some message of `huibao.activity.submitted` in the AsyncAPI document fits."""
    channel = next(
        c for c in ASYNCAPI["channels"].values() if c["address"] == topics.ACTIVITY_SUBMITTED
    )
    messages = [
        ASYNCAPI["components"]["messages"][m["$ref"].rsplit("/", 1)[1]]
        for m in channel["messages"].values()
    ]
    return any(_message_matches(m, headers, value) for m in messages)


KafkaCase = tuple[str, bytes | None, dict[str, str], Any, bool, str]


def kafka_cases(unit: str) -> list[KafkaCase]:
    """(case, key, headers, value, accepted?, id) of records for `huibao.activity.submitted`."""
    cases: list[KafkaCase] = []

    def structured(case: str, content_type: str | None, accepted: bool, **kw: Any) -> None:
        event = lesson(unit, len(cases), **kw.pop("extra", {}))
        hdrs = {} if content_type is None else {"content-type": content_type}
        key = kw.get("key", unit.encode())
        cases.append((case, key, hdrs, event, accepted, event["id"]))

    def binary(case: str, content_type: str | None, accepted: bool, **attrs: str) -> None:
        event = lesson(unit, len(cases))
        hdrs = {f"ce_{k}": v for k, v in event.items() if k not in ("data", "datacontenttype")}
        hdrs |= {f"ce_{k}": v for k, v in attrs.items()}
        if content_type is not None:
            hdrs["content-type"] = content_type
        cases.append((case, unit.encode(), hdrs, event["data"], accepted, event["id"]))

    structured("structured, application/cloudevents+json", "application/cloudevents+json", True)
    structured("structured, application/json (the SDK's 1.x API)", "application/json", True)
    structured("structured, with parameters", "application/json; charset=utf-8", True)
    structured("structured, no content-type", None, True)
    structured("structured, text/plain", "text/plain", False)
    structured("structured, no key", "application/cloudevents+json", True, key=None)
    structured("structured, foobar", None, True, extra={"foobar": "x"})
    structured("structured, Foo_Bar", None, False, extra={"Foo_Bar": "x"})
    structured("structured, a 21-char name", None, False, extra={"a" * 21: "x"})
    event = lesson(unit, len(cases))  # the cloudevents SDK's 1.x API, structured mode
    sdk = v1_kafka.to_structured(
        v1_http.CloudEvent({k: v for k, v in event.items() if k != "data"}, event["data"]),
        key_mapper=lambda e: e["subject"],
    )
    assert sdk.headers == {"content-type": b"application/json"}, sdk.headers
    sdk_headers = {k: v.decode() for k, v in sdk.headers.items()}
    sdk_key = sdk.key.encode() if isinstance(sdk.key, str) else sdk.key
    cases.append(
        (
            "structured, the SDK's 1.x API",
            sdk_key,
            sdk_headers,
            orjson.loads(sdk.value),
            True,
            event["id"],
        )
    )
    binary("binary, application/json", "application/json", True)
    binary("binary, no content-type", None, True)
    binary("binary, application/cloudevents+json", "application/cloudevents+json", False)
    binary("binary, text/plain", "text/plain", False)
    binary("binary, ce_datacontenttype", None, True, datacontenttype="application/json")
    binary("binary, ce_datacontenttype text/plain", None, False, datacontenttype="text/plain")
    return cases


def _ident(record: Record) -> str | None:
    ce_id = headers_dict(record).get("ce_id")
    if ce_id:
        return ce_id.decode()
    try:
        event = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    return event.get("id") if isinstance(event, dict) else None


async def test_kafka_modes_content_types_and_key_agree_with_asyncapi(stack: Any) -> None:
    unit = await tree(stack)
    cases = kafka_cases(unit)
    boot = stack.infra.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=boot)
    await producer.start()
    try:
        for _case, key, hdrs, value, _accepted, _id in cases:
            await producer.send_and_wait(
                topics.ACTIVITY_SUBMITTED,
                key=key,
                value=orjson.dumps(value),
                headers=[(k, v.encode()) for k, v in hdrs.items()],
            )
    finally:
        await producer.stop()

    wanted = {ident for *_, ident in cases}

    async def verdicts() -> dict[str, tuple[bool, Record]] | None:
        seen: dict[str, tuple[bool, Record]] = {}
        for topic, accepted in (
            (topics.ACTIVITY_ACCEPTED, True),
            (topics.ACTIVITY_REJECTED, False),
        ):
            for record in await read_topic(boot, topic):
                ident = _ident(record)
                if ident in wanted:
                    seen[ident] = (accepted, record)
        return seen if set(seen) == wanted else None

    seen = await wait_until(verdicts, timeout=30, interval=0.5, message="every case decided")
    disagree = []
    for case, _key, hdrs, value, accepted, ident in cases:
        server, record = seen[ident]
        documented = asyncapi_accepts(hdrs, value)
        if (server, documented) != (accepted, accepted):
            disagree.append((case, {"server": server, "asyncapi": documented}))
        if not server and "content-type" in hdrs and case.endswith("plain"):
            rejected = headers_dict(record)
            assert rejected["huibao_reason"] == b"invalid_envelope"
            assert orjson.loads(rejected["huibao_errors"])[0]["field"] == "content-type"
        if server and "foobar" in value:  # passed on unchanged
            assert orjson.loads(record.value or b"")["foobar"] == "x"
    assert not disagree, disagree


async def test_huibaoreceived_sent_by_an_integrator_is_replaced(stack: Any) -> None:
    unit = await tree(stack)
    event = lesson(unit, 0, huibaoreceived="1999-01-01T00:00:00+00:00")
    async with httpx.AsyncClient(timeout=30, headers=auth(stack)) as client:
        r = await client.post(
            f"{stack.urls['reporting']}/v1/events",
            content=orjson.dumps(event),
            headers={"content-type": "application/cloudevents+json"},
        )
    assert r.status_code == 202, r.text

    async def relayed() -> Record | None:
        for record in await read_topic(stack.infra.bootstrap_servers, topics.ACTIVITY_ACCEPTED):
            if _ident(record) == event["id"]:
                return record
        return None

    record = await wait_until(relayed, timeout=30, interval=0.5, message="the accepted event")
    assert not orjson.loads(record.value or b"")["huibaoreceived"].startswith("1999")
