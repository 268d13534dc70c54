"""The examples of docs/integrators.md run as written against the embedded stack.

Every fenced block with a title (```` ```bash title=curl_event ````, ```` ```python
title=publish_aiokafka ````) is an example: bash blocks run with `bash` (they call `curl`),
python blocks with this interpreter, all with `HUIBAO_URL`, `HUIBAO_ROLLUP_URL`,
`HUIBAO_TOKEN` and `KAFKA_BOOTSTRAP_SERVERS` pointing at the stack. The examples' org-unit
ids (`qy-…`) are given a fresh prefix so the test never meets another test's units. Then
the rollup must show exactly what the examples sent: nothing lost, nothing counted twice,
the dry run and the refused event not at all.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.waits import wait_until

pytestmark = [pytest.mark.stack]

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrators.md"
BLOCK = re.compile(r"^```(?P<lang>\w+) title=(?P<title>\w+)\n(?P<body>.*?)^```$", re.M | re.S)
ORDER = (
    "curl_orgunits",
    "curl_token",
    "curl_event",
    "curl_batch",
    "curl_dry_run",
    "curl_correction",
    "publish_aiokafka",
    "publish_confluent",
)
AFTER_ROLLUP = ("consume_confluent", "curl_summary")


def examples() -> dict[str, tuple[str, str]]:
    """Title → (language, code) of every titled block of the guide."""
    found = {m["title"]: (m["lang"], m["body"]) for m in BLOCK.finditer(DOC.read_text("utf-8"))}
    assert found, "no titled examples in docs/integrators.md"
    return found


def test_every_example_is_run_and_has_a_known_language() -> None:
    found = examples()
    assert set(found) == set(ORDER) | set(AFTER_ROLLUP)
    assert {lang for lang, _ in found.values()} == {"bash", "python"}
    for title, (lang, code) in found.items():
        if lang == "python":
            compile(code, title, "exec")


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


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl examples need curl")
async def test_the_integrator_guide_examples_work(stack: Any, tmp_path: Path) -> None:
    prefix = f"ig{uuid.uuid4().hex[:6]}"
    found = {
        title: (lang, re.sub(r"\bqy-", f"{prefix}-", code))
        for title, (lang, code) in examples().items()
    }
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HUIBAO_URL": stack.urls["reporting"],
        "HUIBAO_ROLLUP_URL": stack.urls["rollup"],
        "HUIBAO_TOKEN": stack.admin_token,
        "KAFKA_BOOTSTRAP_SERVERS": stack.infra.bootstrap_servers,
    }
    out = {t: json.loads(o) if t.startswith("curl") else o for t, o in [
        (t, await run(*found[t], env, tmp_path, t)) for t in ORDER
    ]}  # fmt: skip

    assert out["curl_orgunits"]["created"] == 7, out["curl_orgunits"]
    assert out["curl_token"]["unit"] == f"{prefix}-t1"
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

    # held: b1 (corrected to 28), b2 (22), b3 over aiokafka (20), b4 over confluent-kafka (18);
    # lessons: t1 over HTTP (45), b1 over aiokafka (30). Not the dry run, not the refused one.
    expected = {
        "party_day.held": 4,
        "party_day.attendees": 28 + 22 + 20 + 18,
        "lesson.delivered": 2,
        "lesson.audience": 45 + 30,
    }
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:

        async def rolled_up() -> dict[str, Any] | None:
            r = await client.get(
                f"{stack.urls['rollup']}/v1/nodes/{prefix}-city/summary",
                params={"period": "2026-10"},
            )
            metrics: dict[str, Any] = r.json().get("metrics", {})
            return metrics if all(metrics.get(k) == v for k, v in expected.items()) else None

        await wait_until(rolled_up, timeout=30, interval=0.3, message="the guide's events")

    summary = json.loads(await run(*found["curl_summary"], env, tmp_path, "curl_summary"))
    assert {k: summary["metrics"][k] for k in expected} == expected
    consumed = await run(*found["consume_confluent"], env, tmp_path, "consume_confluent")
    ids = {f"{prefix}-evt-{n}" for n in ("0001", "0002", "0003", "0006", "0010", "0011", "0020")}
    assert consumed.startswith(f"{len(ids)} accepted events:"), consumed
    for ident in ids:
        assert ident in consumed, (ident, consumed)
