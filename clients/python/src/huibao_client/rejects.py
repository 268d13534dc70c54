"""Reading `huibao.activity.rejected`: why a submission (over Kafka or HTTP) was refused.

A reject record carries the original key, value and headers of what was submitted, plus
three headers of Huibao's: `huibao_reason` (the first error's reason code),
`huibao_errors` (every error as a JSON list of `{field, reason, message}`) and
`huibao_channel` (`kafka`, `http`, or `rollup` for an accepted record the rollup refused).
`rejected_record` turns one into a typed `RejectedRecord`, with the contract's
`FieldError`s. It needs no Kafka client: pass the key, value and headers your consumer read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from huibao_contracts.rejects import FieldError

_ERRORS: TypeAdapter[list[FieldError]] = TypeAdapter(list[FieldError])
OURS = frozenset({"huibao_reason", "huibao_errors", "huibao_channel"})
"""The headers Huibao adds to a reject record."""


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """One record of `huibao.activity.rejected`, read.

    Attributes:
        reason: the first error's reason code (`huibao_reason`).
        errors: every error, typed (`huibao_errors`); empty when the header is missing or
            is not a list of errors.
        channel: where the submission came in (`kafka`, `http`) or who refused it (`rollup`).
        key: the original key (the unit id, when the submitter set it).
        value: the original bytes, exactly as submitted.
        headers: the original headers, Huibao's three left out.
    """

    reason: str
    errors: tuple[FieldError, ...]
    channel: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def rejected_record(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> RejectedRecord:
    """The typed view of one reject record (its key, value and headers as a Kafka client
    gives them, e.g. aiokafka's `ConsumerRecord.key`, `.value`, `.headers`)."""
    ours = {k: (v or b"").decode("utf-8", "replace") for k, v in headers if k in OURS}
    try:
        errors = tuple(_ERRORS.validate_json(ours.get("huibao_errors", "[]")))
    except ValidationError:
        errors = ()
    return RejectedRecord(
        reason=ours.get("huibao_reason", ""),
        errors=errors,
        channel=ours.get("huibao_channel", ""),
        key=key,
        value=value or b"",
        headers=tuple((k, v or b"") for k, v in headers if k not in OURS),
    )
