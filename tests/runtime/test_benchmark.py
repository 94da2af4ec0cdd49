"""The cloud benchmarks are scripts users run: keep them working (timings not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cloud_batching_benchmark_prints_a_table_and_json() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/cloud_batching.py"),
         "--model", "tests.models:small_resnet", "--input-shape", "3,16,16",
         "--batch-sizes", "2,4", "--batches", "2", "--rounds", "1", "--json"],
        capture_output=True, text=True, check=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # the test model imports from the repo
    )  # fmt: skip
    table, _, payload = done.stdout.partition("[")
    assert "batched/s" in table
    rows = json.loads("[" + payload)
    assert [r["batch_size"] for r in rows] == [2, 4]
    for row in rows:
        assert row["plain_samples_per_s"] > 0
        assert row["batched_samples_per_s"] > 0
        assert 1.0 <= row["mean_batch"] <= row["batch_size"]


def test_deployed_cloud_benchmark_prints_tables_and_json(tmp_path: Path) -> None:
    out = tmp_path / "deployed.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.deployed_cloud",
         "--model", "small_resnet", "--input-shape", "3,16,16", "--demo-shape", "3,16,16",
         "--batch-sizes", "2", "--batches", "2", "--rounds", "1", "--rate", "20",
         "--seconds", "0.5", "--json", str(out)],
        capture_output=True, text=True, check=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert "deployed/s" in done.stdout
    assert "offered load" in done.stdout
    figures = json.loads(out.read_text())
    (row,) = figures["throughput"]
    assert row["batch_size"] == 2
    assert row["plain_samples_per_s"] > 0
    assert row["deployed_samples_per_s"] > 0
    assert 1.0 <= row["mean_batch"] <= 2.0
    assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    # Every request of each offered-load run got an answer or a named outcome.
    assert [r["worker"] for r in figures["offered"]] == ["before", "now"]
    for run in figures["offered"]:
        assert run["requests"] == 10
        assert sum(run["outcomes"].values()) == 10
