"""benchmarks/cloud_batching.py is a script users run: keep it working (timings not checked)."""

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
