"""A plain `inferedge run` of the small torch manifest, made once for the tests that read it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_inferedge
from tests.local.test_runner_prepare import small_manifest

ARRIVALS = "fixed:60ms@6s,bursty:4/60ms@6s"  # the same rate, then 4 times as many
"""The tuning phase of the small run: a steady rate, then bursts."""


@pytest.fixture(scope="session")
def small_manifest_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small torch manifest (small_resnet on digits, 3 epochs) as a file."""
    path = tmp_path_factory.mktemp("manifest") / "small.yaml"
    path.write_text(small_manifest())
    return path


@pytest.fixture(scope="session")
def small_run(
    small_manifest_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The output folder and the process of one whole run of the small manifest, with two
    swept thresholds and a two-step tuning phase; the torch run and the Keras run compare
    their reports against it."""
    out = tmp_path_factory.mktemp("small-run") / "run"
    result = run_inferedge(
        "run", "-f", small_manifest_file, "-o", out,
        "--thresholds", "0.5,1", "--tuning-arrivals", ARRIVALS,
    )  # fmt: skip
    return out, result
