"""`inferedge dispatch`, `serve --pool` and `--stage`: bad flags and files: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_inferedge


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{", "Invalid JSON"),
        ('{"namespace": "default"}', "pipeline: Field required"),
    ],
)
def test_a_bad_site_file_is_named(tmp_path: Path, content: str, named: str) -> None:
    site = tmp_path / "site.json"
    site.write_text(content)
    done = run_inferedge("dispatch", "--site", site)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert named in lines[0]
    assert str(site) in lines[0]


def test_a_missing_site_file_is_named(tmp_path: Path) -> None:
    done = run_inferedge("dispatch", "--site", tmp_path / "nope.json")
    assert done.returncode == 2
    assert "nope.json" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--pool", "nano"], "--pool and --replica go together"),
        (["--pool", "Nano", "--replica", "r"], "expected a DNS-1123 label"),
        (["--stage", "0:3"], "--stage: only a replica of a site's pool"),
        (["--pool", "a", "--replica", "r", "--stage", "3:3"], "START < END"),
        (["--pool", "a", "--replica", "r", "--stage", "x"], "two cut indices"),
        (
            ["--pool", "a", "--replica", "r", "--stage", "0:3", "--answer-at-exit", "1"],
            "a stage runs its cuts, not a version",
        ),
    ],
)
def test_pool_flags_are_checked(flags: list[str], named: str) -> None:
    done = run_inferedge(
        "serve", "edge", "--store", "/nonexistent",
        "--prefix", f"default/p/{'0' * 16}/{'0' * 16}",
        "--manifest-sha256", "0" * 64, *flags,
    )  # fmt: skip
    assert done.returncode == 2
    assert named in done.stderr
    assert "Traceback" not in done.stderr
