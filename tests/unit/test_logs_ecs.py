"""The log renderer in a process of its own, configured as a service configures it: every
line JSON with the ECS names, exceptions in `error.*` whoever logs them (our structlog
call, a library through the standard library, uvicorn's traceback text, nobody), and never
a line break in `message`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

from tests.support.logs import action, parse_line

from huibao_platform.logs import ECS_VERSION, ecs_line

PROGRAM = textwrap.dedent(
    """
    import logging, threading, warnings
    import structlog
    from huibao_platform.logs import configure_logging, get_logger

    configure_logging("probe", "info", "json")
    log = get_logger("huibao_probe.consumer")
    structlog.contextvars.bind_contextvars(request_id="r1", principal="unit-1")
    log.info("batch_applied", records=3, duration_ms=1.25, group="g")
    log.debug("not at info")
    try:
        {}["missing"]
    except KeyError:
        log.exception("step_failed", step="close")
        logging.getLogger("aiokafka.consumer").error("fetch failed\\nsecond line", exc_info=True)
    logging.getLogger("aiokafka.consumer").info("a library's info: dropped")
    logging.getLogger("uvicorn.error").error(
        "Traceback (most recent call last):\\n  File \\"x.py\\", line 1\\nRuntimeError: boom"
    )
    log.warning("batch_retry", error="connection refused")
    warnings.warn("careful")
    class Leaky:
        def __del__(self):
            raise OSError("in __del__")
    Leaky()
    worker = threading.Thread(target=lambda: 1 / 0, name="worker")
    worker.start()
    worker.join()
    raise ValueError("fatal")
    """
)


def run_probe() -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout == ""
    lines = [parse_line(raw, f"stderr:{n}") for n, raw in enumerate(done.stderr.splitlines(), 1)]
    return done.returncode, lines


def test_every_line_is_ecs_json_and_exceptions_are_structured() -> None:
    code, lines = run_probe()
    assert code == 1  # the uncaught exception still ends the process
    by_message = {line["message"]: line for line in lines}
    assert "not at info" not in by_message
    assert "a library's info: dropped" not in by_message
    for line in lines:
        assert line["service.name"] == "probe"
        assert line["ecs.version"] == ECS_VERSION
        assert line["@timestamp"].endswith("Z")

    applied = by_message["batch_applied"]
    assert action(applied) == "batch_applied"
    assert applied["log.logger"] == "huibao_probe.consumer"
    assert applied["log.level"] == "info"
    assert applied["huibao.records"] == 3
    assert applied["event.duration"] == 1_250_000  # nanoseconds
    assert applied["huibao.group"] == "g"  # ECS's `group` is another thing
    assert applied["http.request.id"] == "r1"
    assert applied["organization.id"] == "unit-1"

    failed = by_message["step_failed"]  # our log.exception
    assert (failed["log.level"], failed["huibao.step"]) == ("error", "close")
    assert failed["error.type"] == "KeyError"
    assert failed["error.message"] == "'missing'"
    assert failed["error.stack_trace"].startswith("Traceback (most recent call last):")
    assert failed["error.stack_trace"].endswith("KeyError: 'missing'")

    library = by_message["fetch failed"]  # a library's logger.error(..., exc_info=True)
    assert library["log.logger"] == "aiokafka.consumer"
    assert "event.action" not in library
    assert library["error.type"] == "KeyError"
    assert library["event.original"] == "fetch failed\nsecond line"

    told = by_message["RuntimeError: boom"]  # uvicorn logs a failed start-up's traceback
    assert (told["error.type"], told["error.message"]) == ("RuntimeError", "boom")
    assert "File" in told["error.stack_trace"]

    retry = by_message["batch_retry"]
    assert retry["error.message"] == "connection refused"
    assert "error.type" not in retry

    [warned] = [line for line in lines if line["log.logger"] == "py.warnings"]
    assert "UserWarning: careful" in warned["message"]

    [ignored] = [line for line in lines if line["message"].startswith("Exception ignored in")]
    assert (ignored["error.type"], ignored["error.message"]) == ("OSError", "in __del__")

    thread = by_message["uncaught exception in thread worker"]
    assert thread["error.type"] == "ZeroDivisionError"
    uncaught = by_message["uncaught exception"]
    assert (uncaught["log.level"], uncaught["error.type"]) == ("critical", "ValueError")
    assert uncaught["error.message"] == "fatal"


def test_a_line_written_by_hand_has_the_same_names() -> None:
    line = parse_line(ecs_line("child_starting", logger="x.y", service="launcher", child="a"))
    assert action(line) == "child_starting"
    assert (line["log.logger"], line["service.name"], line["huibao.child"]) == (
        "x.y",
        "launcher",
        "a",
    )
