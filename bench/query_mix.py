"""The benchmark's query mix: summary and children alternately, at the city, a county and
two townships in turn, any month of the workload; pure, from a seed."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from bench.generate import Tree

PathSpec = str | tuple[str, str]
"""A request path, or (label, path)."""


def query_mix(tree: Tree, months: list[str], seed: int) -> Callable[[int], tuple[str, str, str]]:
    """Request i → (endpoint, node, period): summary and children alternately, nodes by level."""
    levels = {lv: tree.of_level(lv) for lv in ("city", "county", "township")}
    order = ["city", "county", "township", "township"]

    def pick(i: int) -> tuple[str, str, str]:
        rng = random.Random(seed * 1_000_003 + i)
        nodes = levels[order[i % len(order)]]
        return ("summary" if i % 2 == 0 else "children", rng.choice(nodes), rng.choice(months))

    return pick


def mix_paths(tree: Tree, months: Sequence[str], count: int, seed: int) -> list[PathSpec]:
    """The first `count` requests of `query_mix` as labelled paths of the rollup's API."""
    pick = query_mix(tree, list(months), seed)
    out: list[PathSpec] = []
    for i in range(count):
        kind, node, period = pick(i)
        if kind == "summary":
            out.append((kind, f"/v1/nodes/{node}/summary?period={period}"))
        else:
            out.append(
                (kind, f"/v1/nodes/{node}/children?period={period}&metric=party_day.held&limit=100")
            )
    return out
