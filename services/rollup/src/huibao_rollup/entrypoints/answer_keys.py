"""The defaults of the cached routes and the keys their answers are kept under, in one place.

The routes (`entrypoints.http`) and the fast path (`entrypoints.fast_answers`) must give
the same arguments the same defaults and keep the same answer under the same key: both
take them from here.
"""

from __future__ import annotations

from typing import Any

from huibao_contracts.periods import Period

DEFAULT_METRIC = "party_day.held"
"""The metric children are ranked by when none is asked for."""
DEFAULT_LIMIT = 100
"""The page size when none is asked for (capped by `page_size_max`)."""
DEFAULT_OFFSET = 0


def page_size(limit: int, cap: int) -> int:
    """The page size answered for `limit`: at most `cap`."""
    return min(limit, cap)


def summary_key(node: str, period: Period) -> tuple[Any, ...]:
    """The key of a node's summary in a period."""
    return ("summary", node, str(period))


def children_key(node: str, period: Period, metric: str, size: int, offset: int) -> tuple[Any, ...]:
    """The key of one page of a node's children ranked by `metric`."""
    return ("children", node, str(period), metric, size, offset)
