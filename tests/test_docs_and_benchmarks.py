"""The docs figure and the benchmarks are scripts users run: keep them working."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_planning_figure_draws(tmp_path: Path) -> None:
    figure = runpy.run_path(str(ROOT / "docs/figures/planning_figure.py"))
    out = tmp_path / "planning.png"
    figure["draw"](out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_planner_benchmark_prints_a_table_and_json() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/planner.py"), "--skip-resnet50",
         "--repeats", "3", "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    table, _, payload = done.stdout.partition("[")
    assert "synthetic-1000" in table
    rows = json.loads("[" + payload)
    assert {r["strategy"] for r in rows} == {"latency", "memory", "min-latency", "deadline"}
    assert all(r["median_ms"] > 0 for r in rows)


def test_config_map_benchmark_prints_a_table_and_json() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/config_map.py"), "--skip-resnet50",
         "--repeats", "1", "--candidates", "8", "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    table, _, payload = done.stdout.partition("[")
    assert "synthetic-1000" in table
    rows = json.loads("[" + payload)
    assert {r["objective"] for r in rows} == {
        "deadline", "accuracy>=0.9,latency", "accuracy>=0.9,cloud", "priorities",
    }  # fmt: skip
    for row in rows:
        assert (row["cuts"], row["candidates"], row["states"]) == (1000, 8, 100)
        # The splits are the stops: the input, the 8 candidates and the deepest split.
        assert row["points"] == 10 * 13
        assert row["total_ms"] > 0


def test_tuning_benchmark_prints_the_issue_s_json_shape_and_a_plot(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        return subprocess.run(
            [sys.executable, str(ROOT / "benchmarks/tuning.py"), "--patterns", "fixed:50ms",
             "bursty:10/500ms", "--optimisers", "ecogd", "max", "dvfs-b8", "dvfs-b16", *args],
            capture_output=True, text=True, check=True, timeout=300,
        ).stdout  # fmt: skip

    result = json.loads(run("--json"))
    assert result["emulated"] is True
    assert set(result["patterns"]) == {"fixed:50ms", "bursty:10/500ms"}
    for row in result["patterns"].values():
        assert set(row) == {"ecogd", "max", "dvfs-b8", "dvfs-b16", "dvfs"}
        for figures in row.values():
            assert {"converged_cost", "exploration_cost", "mean_ms", "p95_ms",
                    "energy_j_per_request"} <= set(figures)  # fmt: skip
        assert row["max"]["converged_cost"] == 1.0  # the reference itself
        assert row["ecogd"]["converged_cost"] < row["dvfs"]["converged_cost"]
    plot = tmp_path / "tuning.png"
    table = run("--plot", str(plot))
    assert "EMULATED" in table
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/tuning.py"), "--patterns", "sometimes"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
