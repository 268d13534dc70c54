"""The results of `make bench` as a table: each figure, what was measured, the target and
whether it was met (targets from `bench.common.TARGETS`, kept apart from measurements)."""

from __future__ import annotations

from typing import Any

from bench.common import TARGETS

Row = tuple[str, str, str, str]
"""figure, measured, target, met ("yes", "NO" or "" when the figure has no target)."""


def fmt(v: Any) -> str:
    """A measured value as the table shows it."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.3f}" if v < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


class _Rows:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def __call__(self, name: str, value: Any, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("yes" if ok else "NO")
        self.rows.append((name, fmt(value), target, verdict))


def table(out: dict[str, Any]) -> list[Row]:
    """The rows of a results document, the sections it holds in order."""
    row = _Rows()
    _throughput(row, out.get("throughput"), out.get("raw_consume"))
    _freshness(row, out.get("freshness"))
    _queries(row, out.get("query"))
    _close(row, out.get("close"))
    _memory(row, out.get("peak_rss_mib", {}))
    return row.rows


def _throughput(row: _Rows, tp: dict[str, Any] | None, raw: dict[str, Any] | None) -> None:
    want = TARGETS["e2e_events_per_s"]
    if tp:
        rate = tp["events_per_s"]
        row("e2e throughput, events/s (city)", rate, f"≥ {want:,}", rate >= want)
        row(
            "  events / seconds / exact",
            f"{tp['events']:,} / {tp['elapsed_s']} s / {tp['exact']}",
            "exact",
            tp["exact"],
        )
        cpu = tp.get("cpu_us_per_event") or {}
        if cpu:
            row("  CPU µs per event, all processes", cpu["total"])
            for part, us in cpu.items():
                if part != "total":
                    row(f"    {part}", us)
            row("  rate the CPU alone allows, events/s", tp["cpu_bound_events_per_s"])
    if raw:
        row("raw consume, events/s (same broker)", raw["events_per_s"])
        r, least = raw.get("e2e_over_raw"), TARGETS["e2e_over_raw"]
        row("  e2e / raw", r, f"≥ {least:g}", r is not None and r >= least)


def _freshness(row: _Rows, fr: dict[str, Any] | None) -> None:
    if not fr:
        return
    rate, p99 = TARGETS["freshness_rate"], TARGETS["freshness_p99_s"]
    row("freshness rate, events/s", fr["rate"], f"{rate:,}", fr["rate"] >= rate)
    row("freshness p50, s", fr["p50_s"])
    row("freshness p99, s", fr["p99_s"], f"< {p99:g}", 0 <= fr["p99_s"] < p99)


def _latency(row: _Rows, figures: dict[str, Any], kind: str, where: str, judged: bool) -> None:
    """p50 / p99 of `kind` (when measured); `judged`: the summary's p99 against its target."""
    if kind not in figures:
        return
    f, p99 = figures[kind], TARGETS["summary_p99_ms"]
    target, ok = "", None
    if judged and kind == "summary":
        target, ok = f"p99 < {p99:g}", f["p99_ms"] < p99
    row(f"{kind} p50 / p99, ms ({where})", f"{f['p50_ms']} / {f['p99_ms']}", target, ok)


def _queries(row: _Rows, q: dict[str, Any] | None) -> None:
    if not q:
        return
    api, base = q["api"], q["naive"]
    rate = TARGETS["query_rate"]
    row("events/s ingested while querying", q["ingest_rate"])
    row(
        "query rate achieved, req/s (API)",
        api["achieved_rate"],
        f"{rate:,}",
        api["achieved_rate"] >= 0.95 * rate,
    )
    for kind in ("summary", "children"):
        _latency(row, api, kind, "API", judged=True)
        _latency(row, base, kind, "naive CTE", judged=False)
    rep = q.get("api_query_replica")
    if rep:
        row("query rate achieved, req/s (query-only replica)", rep["achieved_rate"])
        for kind in ("summary", "children"):
            _latency(row, rep, kind, "query-only replica", judged=True)
    row("query rate achieved, req/s (naive)", base["achieved_rate"])
    for kind, r in q.get("ratio", {}).items():
        row(
            f"  naive / API {kind} (p50, p99)",
            f"{r['p50_naive_over_api']}x, {r['p99_naive_over_api']}x",
        )


def _close(row: _Rows, c: dict[str, Any] | None) -> None:
    if not c or "monthly_close_s" not in c:
        return
    n, at = c["tree"]["branches"], TARGETS["close_branches"]
    row(f"national sample branches (x{c['tree']['factor']:.0f} = country)", n)
    if "throughput" in c:
        row("  e2e events/s on the large tree", c["throughput"]["events_per_s"])
    row("  tree load (registry + rollup), s", c["tree_load"]["visible_in_rollup_s"])
    row("  monthly cycle, all steps, s", c["monthly_cycle_total_s"])
    within = TARGETS["close_s"]
    ok = c["monthly_close_s"] < within if n >= at else None
    row("  monthly close step, s", c["monthly_close_s"], f"< {within:g} @ {at // 10**6}M", ok)
    row("  quarterly feedback, s", c["feedback_s"])


def _memory(row: _Rows, peaks: dict[str, float]) -> None:
    most = TARGETS["service_rss_mib"]
    for label, mib in sorted(peaks.items()):
        service = not ("postgres" in label or "broker" in label)
        row(
            f"peak RSS {label}, MiB",
            round(mib, 1),
            f"< {most}" if service else "",
            mib < most if service else None,
        )


def render(rows: list[Row]) -> str:
    """The rows as a fixed-width text table with a header."""
    head = ("figure", "measured", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    fmt_ = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt_.format(*head), line, *(fmt_.format(*r) for r in rows)])
