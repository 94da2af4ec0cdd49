"""The docs figure and the planner benchmark are scripts users run: keep them working."""

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
