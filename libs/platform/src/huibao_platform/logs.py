"""structlog configured in one place: contextvars first, JSON when not on a terminal.

The JSON lines follow the Elastic Common Schema (ECS, https://www.elastic.co/docs/reference/ecs),
flat: every key is a dotted ECS name (`@timestamp`, `log.level`, `log.logger`, `message`,
`service.name`, `ecs.version`, `event.action`, `error.type`, `error.message`,
`error.stack_trace`, `http.request.id`, `trace.id`, ...) or, for what ECS does not define,
a name under `huibao.` (`huibao.records`, `huibao.route`...). docs/operations.md holds the
mapping. Lines logged by libraries through the standard library (uvicorn, aiokafka,
asyncpg, faststream) go through the same renderer, so every line a service writes is one
JSON object; an exception is never text inside `message`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import structlog

ECS_VERSION = "8.11.0"
"""The ECS release whose field names the lines use."""

CUSTOM = "huibao."
"""The namespace of every field ECS does not define (ECS: nest custom fields under a proper
name, so that a future ECS field cannot collide with them)."""

_RENAMED: dict[str, str] = {
    "request_id": "http.request.id",
    "method": "http.request.method",
    "status": "http.response.status_code",
    "event_id": "event.id",  # the CloudEvent `id` the line is about
    "event_source": "event.provider",  # the CloudEvent `source`
    "principal": "organization.id",  # the org unit the bearer token is bound to, or `admin`
}
"""Keys our code logs under a short name, and their ECS names."""

_FIRST = ("@timestamp", "log.level", "message")
"""Keys written first, in this order, as the ecs-logging specification asks."""

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _exc_info(value: object) -> _ExcInfo | None:
    """What `exc_info=` (True, an exception, or a `sys.exc_info()` tuple) designates."""
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return (value[0], value[1], value[2])
    if value is True:
        current = sys.exc_info()
        if current[1] is not None and current[0] is not None:
            return (current[0], current[1], current[2])
    return None


def _type_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return (
        kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"
    )


def _error_fields(info: _ExcInfo) -> dict[str, str]:
    kind, exc, tb = info
    return {
        "error.type": _type_name(kind),
        "error.message": str(exc),
        "error.stack_trace": "".join(traceback.format_exception(kind, exc, tb)).rstrip("\n"),
    }


def _traceback_text(text: str) -> dict[str, str]:
    """A traceback a library logged as text (uvicorn's failed start-up): its last line
    names the exception."""
    last = text.rstrip().splitlines()[-1]
    kind, _, message = last.partition(": ")
    return {"error.type": kind.strip(), "error.message": message, "error.stack_trace": text}


def to_ecs(event_dict: Mapping[str, Any], *, service: str, ours: bool = True) -> dict[str, Any]:
    """One log event as a flat ECS document.

    `ours` says the line comes from our structlog call, whose event is an identifier
    (`http_request`, `batch_applied`): it is also the `event.action`. A library's line has
    only a `message`. A multi-line message keeps its first line; the whole text goes to
    `event.original` (or, when it is a traceback, to the `error.*` fields).
    """
    ed = dict(event_dict)
    out: dict[str, Any] = {
        "@timestamp": ed.pop("timestamp", None) or _now(),
        "log.level": ed.pop("level", "info"),
    }
    message = str(ed.pop("event", ""))
    logger = ed.pop("logger", None) or ed.pop("logger_name", None)
    extra: dict[str, Any] = {}
    info = _exc_info(ed.pop("exc_info", None))
    error = ed.pop("error", None)
    if info is not None:
        extra.update(_error_fields(info))
    elif isinstance(error, BaseException):
        extra.update(_error_fields((type(error), error, error.__traceback__)))
    elif error is not None:
        extra["error.message"] = str(error)  # an error our code described (`error=str(e)`)
    if "\n" in message:
        first, _, _ = message.partition("\n")
        if message.startswith("Traceback (most recent call last):") and info is None:
            extra.update(_traceback_text(message))
            message = message.rstrip().splitlines()[-1]  # `KeyError: 'x'`
        else:
            extra["event.original"] = message
            message = first
    out["message"] = message
    if ours and message:
        out["event.action"] = message
    out["log.logger"] = logger or "root"
    out["service.name"] = ed.pop("service", None) or service
    out["ecs.version"] = ECS_VERSION
    traceparent = ed.pop("traceparent", None)
    if isinstance(traceparent, str) and traceparent.count("-") == 3:
        out["trace.id"] = traceparent.split("-")[1]
        out[f"{CUSTOM}traceparent"] = traceparent
    duration = ed.pop("duration_ms", None)
    if isinstance(duration, int | float):
        out["event.duration"] = int(duration * 1_000_000)  # ECS: nanoseconds
    stack = ed.pop("stack", None)
    if stack is not None:
        out[f"{CUSTOM}stack"] = stack
    for key, value in ed.items():
        if key.startswith("_"):
            continue
        out[_RENAMED.get(key, key if "." in key else f"{CUSTOM}{key}")] = value
    out.update(extra)
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, default=repr)


def ecs_line(
    message: str,
    *,
    logger: str,
    service: str,
    level: str = "info",
    **fields: Any,
) -> str:
    """One JSON line with the field names of every other line (no trailing newline): for a
    process that writes a line into a log file itself, such as the launcher in each child's
    log."""
    return _json(
        to_ecs({"event": message, "level": level, "logger": logger, **fields}, service=service)
    )


class _EcsRenderer:
    """The last processor: the event as a flat ECS JSON line."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __call__(self, _: object, __: str, event_dict: structlog.typing.EventDict) -> str:
        ours = bool(event_dict.pop("_from_structlog", True))
        event_dict.pop("_record", None)
        return _json(to_ecs(event_dict, service=self.service, ours=ours))


class _LevelFilter(logging.Filter):
    """Our lines pass at the configured level (structlog filtered them already; stdlib
    loggers named `huibao*` too); a library's only from WARNING up."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.library_level = max(logging.WARNING, level)

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "_logger") or record.name.startswith("huibao"):
            return record.levelno >= self.level
        return record.levelno >= self.library_level


def configure_logging(service: str, level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard library for one service process: one handler on
    stderr, one renderer (ECS JSON, or console text on a terminal) for structlog's lines
    and the standard library's alike."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    threshold = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        _EcsRenderer(service)
        if json_output
        # plain tracebacks: rich's would print every frame's locals (a token, a member)
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    if not json_output:
        structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=(
                [renderer]
                if json_output
                else [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
            ),
            foreign_pre_chain=shared,
        )
    )
    handler.addFilter(_LevelFilter(threshold))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(threshold)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    # Libraries that install their own text handler when imported (faststream writes coloured
    # lines to stderr): drop it, so their records reach the JSON handler above.
    for library in ("faststream",):
        lib = logging.getLogger(library)
        lib.handlers.clear()
        lib.propagate = True
        lib.setLevel(logging.NOTSET)
    # Python's warnings would bypass logging and print plain text.
    logging.captureWarnings(True)
    # An exception nobody caught (in the main thread or another) is a line too, not a
    # traceback printed on stderr.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    sys.unraisablehook = _log_unraisable


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("huibao.uncaught").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or args.exc_type is SystemExit:
        return
    logging.getLogger("huibao.uncaught").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _log_unraisable(args: Any) -> None:
    """What Python would print as `Exception ignored in: ...` (a failing `__del__`)."""
    exc = args.exc_value
    logging.getLogger("huibao.uncaught").error(
        "%s: %r",
        args.err_msg or "Exception ignored in",
        args.object,
        exc_info=(type(exc), exc, args.exc_traceback) if exc is not None else None,
    )


def get_logger(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
