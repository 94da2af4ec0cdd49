"""Shared fixtures: running the real `inferedge` command in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inferedge.core.profile import dump_profile
from inferedge.core.synthetic import synthetic_profile
from tests.clitools import RunCli


@pytest.fixture
def run_cli() -> RunCli:
    """Run `python -m inferedge ARGS...` and return the completed process (text mode)."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inferedge", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            check=False,
        )

    return run


@pytest.fixture
def profile_pair(tmp_path: Path) -> tuple[Path, Path]:
    """An edge and a cloud profile of one synthetic 50-cut model, written as JSON files."""
    edge = tmp_path / "edge.json"
    cloud = tmp_path / "cloud.json"
    edge.write_text(dump_profile(synthetic_profile(50, ms_per_gflop=60, device_name="edge")))
    cloud.write_text(dump_profile(synthetic_profile(50, ms_per_gflop=6, device_name="cloud")))
    return edge, cloud
