"""HTTP client of the rollup query API (docs/architecture.md), with the admin token.

Every failure (connection refused, timeout, 5xx, unexpected answer) is raised as
`RollupUnavailableError`: the step that needed the data does not run and is retried at the
next tick. Paginated listings are followed to their end. The client reads one parent's
listings or one page at a time; walking the tree is the caller's (`service_layer.tree_walk`), so
nothing here holds more than one family.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from huibao_contracts.cycles import CycleKind
from huibao_scheduler.domain.units import Metrics, Unit
from huibao_scheduler.errors import RollupUnavailableError
from huibao_scheduler.service_layer.ports import Listed

_BRANCH = "branch"


class RollupClient:
    """The `RollupReader` port over HTTP: roots, nodes, summaries, children listings and
    completeness, read from the rollup."""

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

    async def reachable(self) -> bool:
        """True when the rollup answers its liveness probe (a readiness check)."""
        try:
            response = await self._http.get("/health/live", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

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

    async def listing(self, parent: Unit, periods: Sequence[str]) -> list[Listed]:
        """Every child of `parent` with its metrics for each of `periods` (one listing each).

        Children come in the order the listings first show them; a child missing from a
        period's listing has no figures for that period.
        """
        answers = await asyncio.gather(*(self.children(parent, p) for p in periods))
        out: dict[str, Listed] = {}
        for period, rows in zip(periods, answers, strict=True):
            for unit, metrics in rows:
                if unit.id not in out:
                    out[unit.id] = (unit, {})
                out[unit.id][1][period] = metrics
        return list(out.values())

    async def root_figures(self, roots: Sequence[Unit], periods: Sequence[str]) -> list[Listed]:
        """Each root with its summary for each of `periods`."""
        answers = await asyncio.gather(*(self.summary(r.id, p) for r in roots for p in periods))
        figures = iter(answers)
        return [(r, {p: next(figures) for p in periods}) for r in roots]

    async def missing_pages(
        self, node: str, period: str
    ) -> AsyncIterator[tuple[dict[str, Any], list[Unit]]]:
        """The Party Day completeness of `node` for a month, page by page of missing units.

        Yields the answer's body (its figures) with each page's units: a caller streams
        the missing branches without holding them all.
        """
        offset = 0
        while True:
            body = await self._get(
                f"/v1/nodes/{node}/completeness",
                {
                    "cycle": CycleKind.PARTY_DAY.value,
                    "period": period,
                    "limit": self._page,
                    "offset": offset,
                },
            )
            page = body.pop("missing_units")
            missing = [
                Unit(
                    item["id"],
                    item["name"],
                    _BRANCH,
                    item.get("parent"),
                    tuple(str(p) for p in item.get("path") or ()),
                )
                for item in page["items"]
            ]
            yield body, missing
            offset += len(missing)
            if not missing or offset >= int(page["total"]):
                return
