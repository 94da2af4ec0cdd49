"""`inferedge run`'s preparation: one manifest to committed, verified artifacts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from inferedge.api.documents import DocumentError, parse_documents
from inferedge.core.manifest import parse_manifest
from inferedge.core.progress import ProgressCallback
from inferedge.local.runner import prepare
from inferedge.storage import LocalStore
from inferedge.storage.artifacts import is_committed, read_manifest

ROOT = Path(__file__).resolve().parents[2]


class Quiet:
    """A reporter that keeps what it was told, for assertions."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bars: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    @contextlib.contextmanager
    def progress(self, title: str) -> Iterator[ProgressCallback]:
        self.bars.append(title)
        yield lambda done, total: None


def small_manifest(**pipeline_spec: object) -> str:
    docs = list(yaml.safe_load_all((ROOT / "examples" / "digits-pipeline.yaml").read_text()))
    spec = docs[2]["spec"]
    spec["model"] = {"name": "tests.models:small_resnet", "inputShape": [3, 16, 16]}
    spec["dataset"]["backboneTraining"] = {"epochs": 3}
    spec["exits"]["training"] = {"epochs": 3}
    spec["partitioning"] = {"strategy": "memory", "memoryFraction": 0.5}
    spec.update(pipeline_spec)
    docs[0]["spec"]["profiling"] = {"batchSizes": [1], "repeats": 3}
    docs[1]["spec"]["profiling"] = {"batchSizes": [1], "repeats": 3}
    return yaml.safe_dump_all(docs)


def test_prepare_commits_verified_artifacts(tmp_path: Path) -> None:
    docs = parse_documents(small_manifest(), "m.yaml")
    reporter = Quiet()
    prepared = prepare(docs, docs.pipelines[0], tmp_path, reporter, "m.yaml")
    for name in (
        "backbone.pt",
        "edge-profile.json",
        "cloud-profile.json",
        "plan.json",
        "exits.pt",
        "report/evaluation.json",
        "report/report.md",
    ):
        assert (tmp_path / name).is_file(), name
    store = LocalStore(tmp_path / "store")
    assert is_committed(store, prepared.prefix)
    manifest = parse_manifest(read_manifest(store, prepared.prefix), "manifest")
    assert manifest.plan.hash == prepared.plan.hash
    assert manifest.calibration == prepared.evaluation.calibration
    assert prepared.edge.device.emulated_slowdown == 8
    plan_dir, set_id = prepared.prefix.rsplit("/", 1)
    assert plan_dir == f"default/digits/{prepared.plan.hash}"
    assert len(set_id) == 16
    assert any(line.startswith("plan ") for line in reporter.lines)
    # The steps ran as child processes; their news and progress came back as lines and bars.
    assert any(line.startswith("backbone: test accuracy") for line in reporter.lines)
    assert len(reporter.bars) == 4, reporter.bars  # two profiles, backbone, exits


def test_given_weights_are_not_trained_and_name_the_same_set_again(tmp_path: Path) -> None:
    first = tmp_path / "first"
    docs = parse_documents(small_manifest(), "m.yaml")
    trained = prepare(docs, docs.pipelines[0], first, Quiet(), "m.yaml")
    model = {
        "name": "tests.models:small_resnet",
        "inputShape": [3, 16, 16],
        "weightsUri": str(first / "backbone.pt"),
    }
    docs = parse_documents(small_manifest(model=model), "m.yaml")
    reporter = Quiet()
    again = prepare(docs, docs.pipelines[0], tmp_path / "second", reporter, "m.yaml")
    assert not any(bar.startswith("training tests.models") for bar in reporter.bars)
    assert any("not trained" in line for line in reporter.lines)
    assert again.plan.hash == trained.plan.hash
    # The same weights name the same set; the training inputs (weightsUri) differ, so the id
    # differs from the first run's, and the set's weights are byte for byte the given ones.
    assert again.prefix != trained.prefix
    assert (tmp_path / "second" / "backbone.pt").read_bytes() == (
        first / "backbone.pt"
    ).read_bytes()
    repeat = Quiet()
    prepare(docs, docs.pipelines[0], tmp_path / "second", repeat, "m.yaml")
    assert any(line.startswith("already published") for line in repeat.lines)


def test_a_fixed_threshold_is_used_as_given(tmp_path: Path) -> None:
    docs = parse_documents(small_manifest(inference={"threshold": 0.42}), "m.yaml")
    prepared = prepare(docs, docs.pipelines[0], tmp_path, Quiet(), "m.yaml")
    # In effect: the fixed threshold, with its predicted figures from the test sweep.
    assert prepared.evaluation.calibration.threshold == 0.42
    assert 0.42 in {row.threshold for row in prepared.evaluation.test.rows}
    # The set keeps what calibration chose, as in a cluster: a fixed threshold is served
    # from the runtime config, so changing it never re-exports.
    assert prepared.manifest.calibration is not None
    chosen = prepared.manifest.calibration.threshold
    assert chosen in {row.threshold for row in prepared.evaluation.val.rows}


def test_a_profile_of_the_wrong_role_is_refused(tmp_path: Path) -> None:
    text = small_manifest(cloud={"profile": "jetson-orin-nano"}, edge={"profile": "cloud-cpu"})
    docs = parse_documents(text, "m.yaml")
    with pytest.raises(DocumentError, match=r"spec\.edge\.profile 'cloud-cpu' is a"):
        prepare(docs, docs.pipelines[0], tmp_path, Quiet(), "m.yaml")
