"""`inferedge run`'s preparation: one manifest to committed, verified artifacts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from inferedge.api.documents import DocumentError, Documents, parse_documents
from inferedge.core.link_trace import parse_trace
from inferedge.core.manifest import parse_manifest
from inferedge.core.profile import parse_profile
from inferedge.core.progress import ProgressCallback
from inferedge.core.space import parse_space
from inferedge.local.adapting import AdaptSettings, adapt_and_measure
from inferedge.local.runner import Prepared, prepare
from inferedge.report.adaptation import write_adaptation
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
    spec["model"] = {"name": "small_resnet", "inputShape": [3, 16, 16]}
    spec["dataset"]["backboneTraining"] = {"epochs": 3}
    spec["exits"]["training"] = {"epochs": 3}
    spec["partitioning"] = {"strategy": "memory", "memoryFraction": 0.5}
    spec.update(pipeline_spec)
    docs[0]["spec"]["profiling"] = {"batchSizes": [1], "repeats": 3}
    docs[1]["spec"]["profiling"] = {"batchSizes": [1], "repeats": 3}
    return yaml.safe_dump_all(docs)


@dataclass(frozen=True)
class Run:
    out: Path
    prepared: Prepared
    reporter: Quiet


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One full preparation (the backbone trained), shared by the tests that build on it."""
    out = tmp_path_factory.mktemp("trained")
    docs = parse_documents(small_manifest(), "m.yaml")
    reporter = Quiet()
    return Run(out, prepare(docs, docs.pipelines[0], out, reporter, "m.yaml"), reporter)


def given_weights(run: Run, **pipeline_spec: object) -> Documents:
    """The small manifest with the trained run's backbone as spec.model.weightsUri."""
    model = {
        "name": "small_resnet",
        "inputShape": [3, 16, 16],
        "weightsUri": str(run.out / "backbone.pt"),
    }
    return parse_documents(small_manifest(model=model, **pipeline_spec), "m.yaml")


def test_prepare_commits_verified_artifacts(trained: Run) -> None:
    out, prepared, reporter = trained.out, trained.prepared, trained.reporter
    for name in (
        "backbone.pt",
        "edge-profile.json",
        "cloud-profile.json",
        "plan.json",
        "exits.pt",
        "report/evaluation.json",
        "report/report.md",
    ):
        assert (out / name).is_file(), name
    store = LocalStore(out / "store")
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


def test_given_weights_are_not_trained_and_name_the_same_set_again(
    trained: Run, tmp_path: Path
) -> None:
    docs = given_weights(trained)
    reporter = Quiet()
    again = prepare(docs, docs.pipelines[0], tmp_path, reporter, "m.yaml")
    assert not any(bar.startswith("training small_resnet") for bar in reporter.bars)
    assert any("not trained" in line for line in reporter.lines)
    assert again.plan.hash == trained.prepared.plan.hash
    # The training inputs differ (weightsUri), so the set does; its weights are the given ones.
    assert again.prefix != trained.prepared.prefix
    given = (trained.out / "backbone.pt").read_bytes()
    assert (tmp_path / "backbone.pt").read_bytes() == given
    # Running it again names the same set, which is kept as it is.
    repeat = Quiet()
    prepare(docs, docs.pipelines[0], tmp_path, repeat, "m.yaml")
    assert any(line.startswith("already published") for line in repeat.lines)


def test_a_fixed_threshold_is_used_as_given(trained: Run, tmp_path: Path) -> None:
    docs = given_weights(trained, inference={"threshold": 0.42})
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


def test_an_adapting_pipeline_serves_its_policies_and_baselines_over_a_trace(
    trained: Run, tmp_path: Path
) -> None:
    adaptation = {"deadlineMs": 60, "switching": {"confirmations": 1, "minDwellS": 0}}
    docs = given_weights(trained, adaptation=adaptation)
    reporter = Quiet()
    prepared = prepare(docs, docs.pipelines[0], tmp_path, reporter, "m.yaml", threads=1)
    space = prepared.manifest.space
    assert space is not None
    # Profiled on the one thread its servers will run on.
    for role in ("edge", "cloud"):
        text = (tmp_path / f"{role}-profile.json").read_text()
        assert parse_profile(text, role).device.threads == 1
    assert space.candidates == tuple(range(1, prepared.plan.final_cut))
    trace = parse_trace("t_s,bandwidth_mbps,rtt_ms\n0,20,5\n2.5,0.5,5\n5,8,5\n", "t.csv")
    run = adapt_and_measure(
        prepared, prepared.splits.test, reporter, AdaptSettings(trace=trace, duration_s=7.5)
    )
    assert space.max_split == prepared.plan.final_cut  # the small model fits: both baselines
    for name in ("static", "adaptive", "oracle", "edge_only", "cloud_only"):
        policy = run.policies[name]
        assert policy.requests > 0, name
        assert policy.failed == 0, name
        assert run.timelines[name], name
    assert run.policies["static"].switches == 0
    assert {p.split for p in run.timelines["static"]} == {run.timelines["static"][0].split}
    # The baselines keep their routes over the whole trace: all edge, and all cloud.
    assert {p.split for p in run.timelines["edge_only"]} == {prepared.plan.final_cut}
    assert run.policies["edge_only"].bytes_per_request == 0
    assert {p.split for p in run.timelines["cloud_only"]} == {0}
    assert run.policies["cloud_only"].bytes_per_request > 0
    # The oracle is told the true link: check it away from the steps.
    for point in run.timelines["oracle"]:
        if all(abs(point.t_s - t) > 0.4 for t in (0.0, 2.5, 5.0)) and point.t_s < 7.5:
            truth = trace.at(point.t_s)
            assert (point.bandwidth_mbps, point.rtt_ms) == (truth.bandwidth_mbps, truth.rtt_ms)
    # The space file the edges built their maps from came with the report.
    inputs = parse_space((tmp_path / "report" / "space.json").read_bytes(), "space.json")
    assert inputs.plan_hash == prepared.plan.hash
    paths = write_adaptation(run, tmp_path / "report")
    assert all(p.stat().st_size > 0 for p in paths)
    for name in run.policies:
        assert "serving edge" in (tmp_path / "adaptation" / f"edge-{name}.log").read_text()
