"""HTTP client of the rollup query API (docs/architecture.md), with the admin token.

Every failure (connection refused, timeout, 5xx, unexpected answer) is raised as
`RollupUnavailableError`: the step that needed the data does not run and is retried at the
next tick. Paginated listings are followed to their end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx
import orjson

from huibao_scheduler.domain.units import Metrics, Tree, Unit
from huibao_scheduler.errors import RollupUnavailableError

_BRANCH = "branch"


class RollupClient:
    """Reads roots, nodes, summaries, children listings and completeness from the rollup."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        page_size: int = 1000,
        concurrency: int = 8,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._page = page_size
        self._slots = asyncio.Semaphore(concurrency)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self._slots:
            try:
                response = await self._http.get(path, params=params)
            except httpx.HTTPError as e:
                raise RollupUnavailableError(f"rollup GET {path} failed: {e!r}") from e
        if response.status_code != 200:
            raise RollupUnavailableError(
                f"rollup GET {path} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            body: dict[str, Any] = orjson.loads(response.content)
        except orjson.JSONDecodeError as e:
            raise RollupUnavailableError(f"rollup GET {path} answered invalid JSON: {e}") from e
        return body

    async def roots(self) -> list[Unit]:
        """The roots of every tree the rollup knows."""
        body = await self._get("/v1/roots")
        return [Unit(r["id"], r["name"], r["level"], None, (r["id"],)) for r in body["items"]]

    async def summary(self, node: str, period: str) -> Metrics:
        """Every public metric of `node` for `period`."""
        body = await self._get(f"/v1/nodes/{node}/summary", {"period": period})
        metrics: Metrics = body["metrics"]
        return metrics

    async def children(self, parent: Unit, period: str) -> list[tuple[Unit, Metrics]]:
        """Every child of `parent` with its metrics for `period` (all pages)."""
        out: list[tuple[Unit, Metrics]] = []
        offset = 0
        while True:
            body = await self._get(
                f"/v1/nodes/{parent.id}/children",
                {
                    "period": period,
                    "metric": "party_day.held",
                    "limit": self._page,
                    "offset": offset,
                },
            )
            items = body["items"]
            for item in items:
                path = (*parent.path, item["id"])
                unit = Unit(item["id"], item["name"], item["level"], parent.id, path)
                out.append((unit, item.get("metrics") or {}))
            offset += len(items)
            if not items or offset >= int(body["total"]):
                return out

    async def completeness(self, node: str, period: str) -> tuple[dict[str, Any], list[Unit]]:
        """The Party Day completeness of `node` for a month and every missing unit (all pages)."""
        missing: list[Unit] = []
        offset = 0
        while True:
            body = await self._get(
                f"/v1/nodes/{node}/completeness",
                {"cycle": "party_day", "period": period, "limit": self._page, "offset": offset},
            )
            page = body["missing_units"]
            for item in page["items"]:
                path = item.get("path") or ()
                missing.append(
                    Unit(
                        item["id"],
                        item["name"],
                        _BRANCH,
                        item.get("parent"),
                        tuple(str(p) for p in path),
                    )
                )
            offset += len(page["items"])
            if not page["items"] or offset >= int(page["total"]):
                return body, missing

    async def walk(self, roots: Iterable[Unit], periods: Iterable[str]) -> Tree:
        """Walk every tree from `roots` through the children listings of the first period.

        Each non-branch unit's children are listed for every period in `periods` (the first
        one also discovers the tree), so the tree carries every child's figures by period;
        the roots' own figures come from their summaries.
        """
        wanted = list(periods)
        tree = Tree()
        frontier = list(roots)
        for root in frontier:
            tree.add(root)
        root_figures = await asyncio.gather(
            *(self.summary(r.id, p) for r in frontier for p in wanted)
        )
        pairs = [(r, p) for r in frontier for p in wanted]
        for (root, period), metrics in zip(pairs, root_figures, strict=True):
            tree.add(root, period, metrics)
        while frontier:
            listings = await asyncio.gather(
                *(self.children(u, p) for u in frontier for p in wanted)
            )
            calls = [(u, p) for u in frontier for p in wanted]
            next_frontier: list[Unit] = []
            for (_, period), rows in zip(calls, listings, strict=True):
                for unit, metrics in rows:
                    known = unit.id in tree.units
                    tree.add(unit, period, metrics)
                    if not known and unit.level != _BRANCH:
                        next_frontier.append(unit)
            frontier = next_frontier
        return tree
