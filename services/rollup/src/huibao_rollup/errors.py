"""The rollup's own exceptions; driver errors are translated at the adapter edge.

A `QueryError` names the field at fault and why; which HTTP status each kind answers is
the HTTP entrypoint's business (`huibao_rollup.entrypoints.http.STATUS`).
"""

from __future__ import annotations

from huibao_platform.errors import HuibaoError


class RollupError(HuibaoError):
    """Base of the rollup's errors."""


class QueryError(RollupError):
    """A request the rollup cannot answer: the `field` at fault, a `reason`, a message."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message


class InvalidQueryError(QueryError):
    """A malformed argument: a period, a metric, a range."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, "invalid_field", message)


class UnknownNodeError(QueryError):
    """No org unit has the id asked about."""

    def __init__(self, message: str) -> None:
        super().__init__("id", "not_found", message)


class OutOfScopeError(QueryError):
    """The node lies outside the caller's subtree."""

    def __init__(self, message: str) -> None:
        super().__init__("id", "out_of_scope", message)


class FencedError(RollupError):
    """Another replica applied past the position this batch expected."""

    def __init__(self, partitions: list[int]) -> None:
        super().__init__(f"partitions moved on by another replica: {partitions}")
        self.partitions = partitions
