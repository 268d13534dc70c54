"""Org-unit trees for tests: a city of counties, townships and branches with Chinese names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COUNTY_NAMES = ("清源县", "青山县", "河口县", "桃源县", "金川县", "石门县", "云溪县", "长岭县")
TOWNSHIP_NAMES = ("城关镇", "石桥镇", "柳河乡", "白沙镇", "双龙乡", "新华镇", "高坪乡", "龙泉镇")
DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """1 → 一, 12 → 十二, 25 → 二十五, 100 and above in plain digits."""
    if n < 10:
        return DIGITS[n]
    if n < 20:
        return "十" + (DIGITS[n % 10] if n % 10 else "")
    if n < 100:
        return DIGITS[n // 10] + "十" + (DIGITS[n % 10] if n % 10 else "")
    return str(n)


def _pick(names: tuple[str, ...], n: int) -> str:
    """The n-th name (1-based); past the list, the name gets a number so it stays unique."""
    base = names[(n - 1) % len(names)]
    rounds = (n - 1) // len(names)
    return base if rounds == 0 else f"{base[:-1]}{chinese_number(rounds + 1)}{base[-1]}"


def build_city(
    prefix: str,
    counties: int = 3,
    townships_per_county: int = 2,
    branches_per_township: int = 3,
    members: Callable[[int], int] = lambda i: 20 + i % 30,
) -> list[dict[str, Any]]:
    """A city tree as `PUT /v1/orgunits` takes it, parents before children (depth first).

    Ids: `prefix`, `prefix.c1`, `prefix.c1.t1`, `prefix.c1.t1.b1`. Branches carry
    `members(i)` party members, `i` counting branches from 0 in the order they are listed.
    """
    units: list[dict[str, Any]] = [{"id": prefix, "name": f"示范市{prefix}", "level": "city"}]
    i = 0
    for c in range(1, counties + 1):
        county = f"{prefix}.c{c}"
        cname = _pick(COUNTY_NAMES, c)
        units.append({"id": county, "name": cname, "level": "county", "parent": prefix})
        for t in range(1, townships_per_county + 1):
            township = f"{county}.t{t}"
            tname = cname + _pick(TOWNSHIP_NAMES, t)
            units.append({"id": township, "name": tname, "level": "township", "parent": county})
            for b in range(1, branches_per_township + 1):
                units.append(
                    {
                        "id": f"{township}.b{b}",
                        "name": f"{tname}第{chinese_number(b)}村党支部",
                        "level": "branch",
                        "parent": township,
                        "members": members(i),
                    }
                )
                i += 1
    return units
