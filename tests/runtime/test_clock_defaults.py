"""The defaults an agent found, kept for the next agent of the same boot (a killed agent cannot
put the clocks back), on a fake Xavier NX sysfs tree."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from inferedge.runtime.clock_defaults import FILE_NAME, boot_id, recorded_defaults
from inferedge.runtime.clocks import discover_clocks
from tests.runtime import sysfs_trees as trees
from tests.runtime.sysfs_trees import limits

BOOT = "6f1c1a4e-2a4b-4c1e-9a55-0d2b1c3e4f50"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    sysfs = tmp_path / "root"
    trees.xavier_nx(sysfs)
    return sysfs


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def test_the_first_agent_records_what_it_found_and_a_clean_stop_removes_it(
    root: Path, run_dir: Path
) -> None:
    clocks = discover_clocks(root)
    with recorded_defaults(clocks, run_dir, BOOT) as used:
        record = run_dir / FILE_NAME
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        body = json.loads(record.read_text())
        assert body["boot_id"] == BOOT
        assert body["domains"]["policy0"] == {
            "min_khz": clocks.domains[0].default_min_khz,
            "max_khz": clocks.domains[0].default_max_khz,
        }
        assert sorted(body["domains"]) == sorted(d.name for d in clocks.domains)
        assert used.domains == clocks.domains
    assert not record.exists()


def test_after_a_crash_the_next_agent_restores_the_first_defaults(
    root: Path, run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    defaults = limits(root)
    first = discover_clocks(root)
    crashed = recorded_defaults(first, run_dir, BOOT)
    used = crashed.__enter__()  # killed inside the block: it never ends
    used.pin("cpu", 1)
    used.pin("gpu", 1)
    pinned = limits(root)
    assert pinned != defaults
    found_now = discover_clocks(root)
    assert found_now.domains[0].default_max_khz < first.domains[0].default_max_khz
    with caplog.at_level(logging.WARNING), recorded_defaults(found_now, run_dir, BOOT) as used:
        used.restore()
        assert limits(root) == defaults
    assert "an earlier agent of this boot left the clocks pinned" in caplog.text


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ('{"boot_id": "another-boot", "domains": {}}', None),  # a reboot reset the clocks
        ("not json", "clock-defaults.json: (root): Invalid JSON"),
        (json.dumps({"boot_id": BOOT, "domains": {"policy0": {"min_khz": 1, "max_khz": 2}}}),
         "names domains ['policy0'], this node has"),
        ("x" * 70_000, "over 65536 bytes"),
    ],
)  # fmt: skip
def test_a_record_of_another_boot_or_one_that_is_not_valid_is_replaced(
    root: Path, run_dir: Path, caplog: pytest.LogCaptureFixture, record: str, why: str | None
) -> None:
    (run_dir / FILE_NAME).write_text(record)
    clocks = discover_clocks(root)
    with caplog.at_level(logging.WARNING), recorded_defaults(clocks, run_dir, BOOT) as used:
        assert used.domains == clocks.domains
        assert json.loads((run_dir / FILE_NAME).read_text())["boot_id"] == BOOT
    if why is None:
        assert caplog.text == ""
    else:
        assert why in caplog.text
        assert "using the limits found now" in caplog.text


def test_a_recorded_pair_that_is_not_a_range_is_not_used(
    root: Path, run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = discover_clocks(root)
    domains = {d.name: {"min_khz": 2000, "max_khz": 1000} for d in clocks.domains}
    (run_dir / FILE_NAME).write_text(json.dumps({"boot_id": BOOT, "domains": domains}))
    with caplog.at_level(logging.WARNING), recorded_defaults(clocks, run_dir, BOOT) as used:
        assert used.domains == clocks.domains
    assert "not usable" in caplog.text


def test_a_failed_block_keeps_the_record_and_no_boot_id_records_nothing(
    root: Path, run_dir: Path, tmp_path: Path
) -> None:
    clocks = discover_clocks(root)
    with pytest.raises(RuntimeError), recorded_defaults(clocks, run_dir, BOOT):
        raise RuntimeError("the restore at exit failed")
    assert (run_dir / FILE_NAME).exists()  # the clocks may still be pinned
    (run_dir / FILE_NAME).unlink()
    with recorded_defaults(clocks, run_dir, None) as used:
        assert used is clocks
        assert not (run_dir / FILE_NAME).exists()
    assert boot_id(tmp_path / "no-such-file") is None
    (tmp_path / "boot_id").write_text(BOOT + "\n")
    assert boot_id(tmp_path / "boot_id") == BOOT
