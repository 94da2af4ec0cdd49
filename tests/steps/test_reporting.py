"""How steps report, and how `inferedge run` runs one as a child process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inferedge.api.jobs import ExportJob
from inferedge.core.errors import InferedgeError
from inferedge.core.progress import ProgressCallback
from inferedge.local.runner import run_step
from inferedge.steps.reporting import LineReporter, Progress, parse_progress
from inferedge.storage import LocalStore, StoreError, fetch_object, read_text


def test_progress_lines_round_trip_and_stay_short() -> None:
    out = io.StringIO()
    reporter = LineReporter(out)
    reporter.info("plan 0123: split after cut 3")
    with reporter.progress("training 2 exits") as progress:
        for done in range(101):
            progress(done, 100)
    lines = out.getvalue().splitlines()
    assert lines[0] == "plan 0123: split after cut 3"
    parsed = [parse_progress(line) for line in lines[1:]]
    assert parsed[0] == Progress("training 2 exits", 0, 100)
    assert parsed[-1] == Progress("training 2 exits", 100, 100)
    assert len(parsed) == 11  # one line per tenth, not one per step
    assert parse_progress(lines[0]) is None


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bars: list[tuple[str, list[tuple[int, int]]]] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    @contextmanager
    def progress(self, title: str) -> Iterator[ProgressCallback]:
        seen: list[tuple[int, int]] = []
        self.bars.append((title, seen))
        yield lambda done, total: seen.append((done, total))


def test_a_failed_step_raises_its_own_last_line(tmp_path: Path) -> None:
    job = ExportJob(
        store=str(tmp_path), plan_key="ns/p/plans/none.json", training_prefix="t",
        namespace="ns", pipeline="p",
    )  # fmt: skip
    with pytest.raises(InferedgeError) as caught:
        run_step(job, Recorder())
    text = str(caught.value)
    assert text.startswith("inferedge cluster export: ")
    assert "none.json" in text
    assert "\n" not in text


def test_objects_are_fetched_from_paths_and_text_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"\xff\xfe")
    assert fetch_object(str(path), tmp_path / "ignored") == path
    assert fetch_object(f"file://{path}", tmp_path / "ignored") == path
    with pytest.raises(StoreError, match="no such file"):
        fetch_object(str(tmp_path / "missing.pt"), tmp_path / "x")
    with pytest.raises(StoreError, match="expected s3://bucket/key"):
        fetch_object("s3://bucket/", tmp_path / "x")
    store = LocalStore(tmp_path / "store")
    store.put_bytes("a/plan.json", b"\xff\xfe")
    with pytest.raises(StoreError, match="not UTF-8"):
        read_text(store, "a/plan.json")
