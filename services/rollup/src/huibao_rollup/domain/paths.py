"""Paths through parents: root → unit, cut at a repeated node or an absurd depth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

MAX_DEPTH = 64
"""The longest path followed (a guard against cycles in bad data)."""


class UnknownUnitError(LookupError):
    """A unit (or one of its ancestors) has no version in the tree yet."""


ParentOf = Callable[[str, dt.date], str | None]


def chain(unit: str, day: dt.date, parent_on: ParentOf) -> tuple[str, ...]:
    """The path root → `unit` through `parent_on`, cut at a repeated node or `MAX_DEPTH`."""
    nodes = [unit]
    node: str | None = unit
    while node is not None:
        node = parent_on(node, day)
        if node is not None:
            if node in nodes or len(nodes) >= MAX_DEPTH:
                break
            nodes.append(node)
    nodes.reverse()
    return tuple(nodes)
