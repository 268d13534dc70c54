"""The benchmark's pure parts: its settings, percentiles, query mix, results table, and an
import graph without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from bench import run as bench_run
from bench.common import TARGETS, pct
from bench.generate import city_tree
from bench.query_mix import mix_paths, query_mix
from bench.report import render, table
from bench.settings import PHASES, BenchSettings
from pydantic import ValidationError

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_settings_defaults_and_what_a_run_records(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BENCH_EVENTS", "BENCH_PHASES", "BENCH_FRESH_SECONDS", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    params = BenchSettings().params()
    assert params == {
        "events": 100_000,
        "branches": 7_000,
        "scale": 50_000,
        "fresh_rate": 5_000,
        "fresh_seconds": 20,
        "query_rate": 500,
        "query_seconds": 15,
        "query_ingest_rate": 1_000,
        "timeout": 300,
        "seed": 7,
        "phases": ["city", "close"],
    }


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_EVENTS", "2000")
    monkeypatch.setenv("BENCH_FRESH_SECONDS", "2.5")
    monkeypatch.setenv("BENCH_PHASES", " close ")
    monkeypatch.setenv("BENCH_SEED", "")  # empty: the default
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    cfg = BenchSettings()
    assert (cfg.events, cfg.fresh_seconds, cfg.phases, cfg.seed) == (2000, 2.5, ["close"], 7)
    assert cfg.bootstrap_servers == "k:9092"
    assert "bootstrap_servers" not in cfg.params()


@pytest.mark.parametrize(
    ("name", "value", "field", "reason"),
    [
        ("BENCH_PHASES", "city,nightly", "phases", "nightly"),
        ("BENCH_PHASES", ",", "phases", "no phase"),
        ("BENCH_EVENTS", "0", "events", "greater than 0"),
        ("BENCH_TIMEOUT", "soon", "timeout", "valid number"),
    ],
)
def test_bad_settings_name_the_field_and_the_reason(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str, reason: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as e:
        BenchSettings()
    assert [err["loc"] for err in e.value.errors()] == [(field,)]
    assert reason in str(e.value)


def test_pct_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert (pct(values, 0.5), pct(values, 0.99), pct(values, 1.0)) == (50.0, 99.0, 100.0)
    assert pct([3.0], 0.99) == 3.0
    assert pct([], 0.5) is None


def test_query_mix_alternates_and_repeats_itself() -> None:
    tree = city_tree(120, root="qc", seed=1)
    months = ["2026-06", "2026-07"]
    pick = query_mix(tree, months, seed=5)
    kinds = [pick(i)[0] for i in range(8)]
    assert kinds == ["summary", "children"] * 4
    assert [pick(i)[1] for i in range(0, 8, 4)] == [tree.root, tree.root]
    assert all(pick(i)[1] in tree.of_level("county") for i in range(1, 40, 4))
    assert mix_paths(tree, months, 50, seed=5) == mix_paths(tree, months, 50, seed=5)
    assert mix_paths(tree, months, 50, seed=5) != mix_paths(tree, months, 50, seed=6)
    second = mix_paths(tree, months, 2, seed=5)[1]
    assert isinstance(second, tuple)
    label, path = second
    assert label == "children"
    assert path.startswith("/v1/nodes/")
    assert "metric=party_day.held" in path


def _results() -> dict:  # type: ignore[type-arg]
    lat = {"p50_ms": 1.5, "p99_ms": 12.0}
    return {
        "targets": TARGETS,
        "throughput": {
            "events_per_s": 60_000,
            "events": 100_000,
            "elapsed_s": 1.7,
            "exact": False,
            "cpu_us_per_event": {"rollup": 20.0, "total": 30.0},
            "cpu_bound_events_per_s": 66_000,
        },
        "raw_consume": {"events_per_s": 200_000, "e2e_over_raw": 0.3},
        "freshness": {"rate": 5000, "p50_s": 0.2, "p99_s": 0.8},
        "query": {
            "ingest_rate": 1000,
            "api": {"achieved_rate": 480.0, "summary": lat, "children": lat},
            "naive": {"achieved_rate": 300.0, "summary": lat},
            "ratio": {"summary": {"p50_naive_over_api": 3.0, "p99_naive_over_api": 4.0}},
        },
        "close": {
            "tree": {"branches": 50_000, "factor": 20.0},
            "tree_load": {"visible_in_rollup_s": 30.5},
            "monthly_cycle_total_s": 12.0,
            "monthly_close_s": 70.0,
            "feedback_s": 5.0,
        },
        "peak_rss_mib": {"city/rollup": 2000.0, "city/broker": 3000.0},
    }


def test_table_judges_each_figure_against_its_target() -> None:
    rows = {name.strip(): (value, target, met) for name, value, target, met in table(_results())}
    assert rows["e2e throughput, events/s (city)"] == ("60,000", "≥ 50,000", "yes")
    assert rows["events / seconds / exact"] == ("100,000 / 1.7 s / False", "exact", "NO")
    assert rows["rollup"] == ("20.0", "", "")
    assert rows["e2e / raw"] == ("0.300", "≥ 0.5", "NO")
    assert rows["freshness p99, s"] == ("0.800", "< 1", "yes")
    assert rows["query rate achieved, req/s (API)"] == ("480.0", "500", "yes")
    assert rows["summary p50 / p99, ms (API)"] == ("1.5 / 12.0", "p99 < 10", "NO")
    assert rows["children p50 / p99, ms (API)"] == ("1.5 / 12.0", "", "")
    assert rows["summary p50 / p99, ms (naive CTE)"] == ("1.5 / 12.0", "", "")
    assert "children p50 / p99, ms (naive CTE)" not in rows
    assert rows["naive / API summary (p50, p99)"] == ("3.0x, 4.0x", "", "")
    # the close target is for a million branches: a sample is not judged
    assert rows["monthly close step, s"] == ("70.0", "< 60 @ 1M", "")
    assert rows["peak RSS city/rollup, MiB"] == ("2,000.0", "< 1024", "NO")
    assert rows["peak RSS city/broker, MiB"] == ("3,000.0", "", "")


def test_an_empty_run_renders_a_header_and_aligned_rows() -> None:
    assert table({}) == []
    text = render(table(_results()))
    lines = text.splitlines()
    assert lines[0].split() == ["figure", "measured", "target", "met"]
    assert set(lines[1]) == {"-", " "}
    assert len({len(line) for line in lines[:2]}) == 1
    assert all(len(line) <= len(lines[1]) for line in lines)


def test_bench_has_no_import_cycle() -> None:
    modules = {f.stem: f for f in BENCH.glob("*.py") if f.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name, f in modules.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "bench":
                graph[name] |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bench."):
                graph[name].add(node.module.split(".", 1)[1])  # type: ignore[union-attr]
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name[6:] for a in node.names if a.name.startswith("bench.")}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import cycle: {' → '.join([*path, name])}"
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            visit(dep, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert {"run", "city", "query_load", "http_load"} <= set(graph)


async def test_make_bench_refuses_bad_settings_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tuple(bench_run.PHASES) == PHASES  # what the settings accept is what runs
    monkeypatch.setenv("BENCH_PHASES", "nightly")
    assert await bench_run.main() == 2
    err = capsys.readouterr().err
    assert "phases" in err
    assert "nightly" in err
