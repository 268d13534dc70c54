"""A demo city: counties, townships and branches with realistic, skewed member counts.

Pure and seeded, so every run builds the same city.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COUNTIES = ("清源县", "临溪县", "云台区", "白沙县")
TOWNSHIP_NAMES = ("城关镇", "东岗镇", "西河乡", "南山镇", "北塘乡", "柳湾镇", "石桥乡")
BRANCH_KINDS = ("村党支部", "社区党支部", "机关党支部", "企业党支部", "学校党支部")


@dataclass(frozen=True, slots=True)
class DemoCity:
    """The tree as OrgUnit-shaped dicts, plus quick lookups used by the activity generator."""

    root: str
    units: tuple[dict[str, object], ...]
    branches: tuple[str, ...]
    members: dict[str, int]
    county_of: dict[str, str]
    township_of: dict[str, str]


def build_demo_city(
    root: str = "demo-city",
    townships_per_county: int = 6,
    branches_per_township: int = 24,
    seed: int = 7,
) -> DemoCity:
    """4 counties x 6 townships x 24 branches = 576 branches, about 16,000 members."""
    rng = random.Random(seed)
    units: list[dict[str, object]] = [{"id": root, "name": "示范市", "level": "city"}]
    branches: list[str] = []
    members: dict[str, int] = {}
    county_of: dict[str, str] = {}
    township_of: dict[str, str] = {}
    for c, cname in enumerate(COUNTIES, start=1):
        county = f"{root}.c{c}"
        units.append({"id": county, "name": cname, "level": "county", "parent": root})
        for t in range(1, townships_per_county + 1):
            township = f"{county}.t{t}"
            tname = TOWNSHIP_NAMES[(t - 1) % len(TOWNSHIP_NAMES)]
            units.append(
                {"id": township, "name": f"{cname}{tname}", "level": "township", "parent": county}
            )
            for b in range(1, branches_per_township + 1):
                branch = f"{township}.b{b:02d}"
                # Skewed sizes: most branches 12-40 members, a few large ones up to ~150.
                size = int(min(150, max(3, rng.lognormvariate(3.25, 0.45))))
                kind = BRANCH_KINDS[rng.randrange(len(BRANCH_KINDS))]
                units.append(
                    {
                        "id": branch,
                        "name": f"{tname}第{b}{kind}",
                        "level": "branch",
                        "parent": township,
                        "members": size,
                    }
                )
                branches.append(branch)
                members[branch] = size
                county_of[branch] = county
                township_of[branch] = township
    return DemoCity(root, tuple(units), tuple(branches), members, county_of, township_of)
