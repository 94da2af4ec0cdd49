"""Partitions: loading from the store through the cache, per-row early exits, confidences."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from inferedge.core.calibration import ConfidenceKind
from inferedge.core.manifest import MANIFEST_NAME, Calibration, ManifestError
from inferedge.dnn.frameworks import get_workflow
from inferedge.dnn.slowdown import slowed_call
from inferedge.runtime import partition as partition_module
from inferedge.runtime.partition import Partition, PartitionError, exit_confidence
from inferedge.runtime.partition_loading import load_partition
from inferedge.runtime.policy import degraded_choice
from inferedge.storage.artifacts import read_manifest
from inferedge.storage.base import IntegrityError
from inferedge.storage.local import LocalStore
from tests.runtime.conftest import SHAPE, Exported

Images = Callable[..., np.ndarray]


def test_partition_describes_its_plan(edge_part: Partition, cloud_part: Partition) -> None:
    plan = edge_part.manifest.plan
    assert edge_part.plan_hash == cloud_part.plan_hash == plan.hash
    assert edge_part.input_shape == SHAPE
    assert edge_part.output_shape == cloud_part.input_shape
    assert cloud_part.output_shape == (10,)
    assert not edge_part.answers_everything
    assert cloud_part.answers_everything
    cuts = [e.cut_index for e in plan.exits]
    assert [edge_part.exit_cut(i) for i in range(len(cuts))] == cuts
    assert edge_part.exit_cut(edge_part.final_exit_index) == plan.final_cut
    assert edge_part.final_exit_index == len(cuts) == 4


def test_threshold_zero_answers_every_row_at_the_first_exit(
    edge_part: Partition, images: Images
) -> None:
    outcome = edge_part.run_edge(images(5), threshold=0.0)
    assert outcome.pending == ()
    assert outcome.activation.shape == (0, *edge_part.output_shape)
    first_cut = edge_part.manifest.plan.exits[0].cut_index
    assert all(a is not None and (a.exit_index, a.cut_index) == (0, first_cut)
               for a in outcome.answers)  # fmt: skip


def test_above_one_reaches_the_final_classifier_and_matches_the_model(
    exported: Exported, edge_part: Partition, cloud_part: Partition, images: Images
) -> None:
    x = images(6)
    outcome = edge_part.run_edge(x, threshold=1.5)
    assert outcome.pending == tuple(range(6))
    assert outcome.activation.shape == (6, *edge_part.output_shape)
    # every edge exit spoke about every pending row, in path order
    assert all([c.exit_index for c in cands] == [0, 1] for cands in outcome.candidates)
    results = cloud_part.run_cloud(outcome.activation, [1.5] * 6)
    assert [r.exit_index for r in results] == [cloud_part.final_exit_index] * 6
    assert [r.prediction for r in results] == exported.predict(x)


def test_rows_of_a_batch_leave_independently(cloud_part: Partition, edge_part: Partition,
                                              images: Images) -> None:  # fmt: skip
    activation = edge_part.run_edge(images(16), threshold=2.0).activation
    first_cloud_exit = cloud_part.run_cloud(activation, [0.0] * 16)
    confidences = sorted(r.confidence for r in first_cloud_exit)
    # Half the rows answer there; midway between two rows, since a row run alone (batch of
    # one) computes its confidence with other kernels and may land a rounding error below.
    threshold = (confidences[7] + confidences[8]) / 2
    mixed = cloud_part.run_cloud(activation, [threshold] * 16)
    alone = [cloud_part.run_cloud(activation[i : i + 1], [threshold])[0] for i in range(16)]
    first = cloud_part.exit_index_of(cloud_part.manifest.plan.cloud_exits()[0].cut_index)
    for row, result in enumerate(mixed):
        assert (result.exit_index == first) == (first_cloud_exit[row].confidence >= threshold)
        assert result.exit_index == alone[row].exit_index
        assert result.prediction == alone[row].prediction
        assert result.confidence == pytest.approx(alone[row].confidence, abs=1e-5)
    assert {r.exit_index for r in mixed} > {first}  # some rows went on


def test_per_row_thresholds(cloud_part: Partition, edge_part: Partition, images: Images) -> None:
    activation = edge_part.run_edge(images(2), threshold=2.0).activation
    results = cloud_part.run_cloud(activation, [0.0, 2.0])
    assert results[0].exit_index == 2
    assert results[1].exit_index == cloud_part.final_exit_index


def test_candidates_give_the_degraded_choice(edge_part: Partition, images: Images) -> None:
    outcome = edge_part.run_edge(images(4), threshold=2.0)
    for candidates in outcome.candidates:
        choice = degraded_choice(candidates)
        assert choice is not None
        assert choice.confidence == max(c.confidence for c in candidates)


def test_entropy_confidence() -> None:
    certain = np.array([[100.0, 0.0, 0.0]], np.float32)
    uniform = np.zeros((1, 3), np.float32)
    kinds: tuple[ConfidenceKind, ...] = ("max_softmax", "entropy")
    for kind in kinds:
        high, prediction = exit_confidence(certain, kind)
        assert high == pytest.approx([1.0])
        assert prediction == [0]
    assert exit_confidence(uniform, "entropy")[0] == pytest.approx([0.0], abs=1e-12)
    assert exit_confidence(uniform, "max_softmax")[0] == pytest.approx([1 / 3])
    one_class = np.zeros((2, 1), np.float32)
    assert exit_confidence(one_class, "entropy")[0] == [1.0, 1.0]  # one class: certain


def test_partition_uses_the_manifest_confidence_kind(
    exported: Exported, edge_part: Partition, images: Images
) -> None:
    calibration = Calibration(
        confidence="entropy", threshold=0.5, split="val", accuracy=0.9, exit_accuracy={},
        expected_latency_ms=1.0, offload_rate=0.5,
    )  # fmt: skip
    manifest = edge_part.manifest.model_copy(update={"calibration": calibration})
    entropic = Partition(manifest, "edge", edge_part.steps)
    assert entropic.kind == "entropy"
    x = images(3)
    by_entropy = entropic.run_edge(x, 2.0).candidates
    by_softmax = edge_part.run_edge(x, 2.0).candidates
    assert [c.prediction for row in by_entropy for c in row] == [
        c.prediction for row in by_softmax for c in row
    ]
    assert all(e.confidence < s.confidence for re, rs in zip(by_entropy, by_softmax, strict=True)
               for e, s in zip(re, rs, strict=True))  # fmt: skip


@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (np.zeros((2, 3, 8, 8), np.float32), r"input shape must be \[N, 3, 16, 16\], got \[2, 3"),
        (np.zeros((0, 3, 16, 16), np.float32), "input holds no sample"),
        (np.array([["a"]]), "input must hold real numbers"),
        (np.zeros((16, 16), np.float32), r"input shape must be \[N, 3, 16, 16\]"),
    ],
)
def test_wrong_input_is_refused(edge_part: Partition, x: np.ndarray, fragment: str) -> None:
    with pytest.raises(PartitionError, match=fragment):
        edge_part.run_edge(x, 0.5)


def test_one_sample_and_other_dtypes_are_accepted(edge_part: Partition, images: Images) -> None:
    sample = images(1)[0].astype(np.float64)
    assert edge_part.batch(sample).shape == (1, *SHAPE)
    assert edge_part.batch(sample).dtype == np.float32
    read_only = images(2)
    read_only.flags.writeable = False
    assert edge_part.run_edge(read_only, 0.0).answers[1] is not None


def test_a_part_needs_its_own_steps(exported: Exported, edge_part: Partition) -> None:
    with pytest.raises(PartitionError, match="not the cloud steps"):
        Partition(edge_part.manifest, "cloud", edge_part.steps)
    with pytest.raises(PartitionError, match="has no classifier"):
        edge_part.run_cloud(np.zeros((1, *SHAPE), np.float32), [0.5])


def test_load_uses_the_cache_and_heals_a_corrupted_copy(
    exported: Exported, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    prefix = exported.prefixes["main"]
    first = load_partition(exported.store, prefix, "cloud", cache, exported.pin(prefix))
    root = cache / first.plan_hash / first.prefix.rsplit("/", 1)[-1]
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.pt2"))
    assert files
    assert all(f.startswith("cloud/") for f in files)
    target = root / files[0]
    target.write_bytes(b"corrupted")
    with caplog.at_level(logging.WARNING, logger="inferedge.runtime.partition"):
        again = load_partition(exported.store, prefix, "cloud", cache, exported.pin(prefix))
    assert "downloading it again" in caplog.text
    assert again.plan_hash == first.plan_hash
    steps = get_workflow(again.manifest.framework).load_part(again.manifest, "cloud", root)
    assert len(steps) == len(again.steps)


def test_load_refuses_a_corrupted_store(exported: Exported, tmp_path: Path,
                                        edge_part: Partition) -> None:  # fmt: skip
    store = LocalStore(tmp_path / "store")
    prefix = exported.prefixes["main"]
    for key in exported.store.list(prefix):
        store.put_bytes(key, exported.store.get_bytes(key))
    name = edge_part.steps[0].step.segment
    store.put_bytes(f"{prefix}/{name}", b"tampered")
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        load_partition(store, prefix, "edge", tmp_path / "cache", exported.pin(prefix))


def test_load_refuses_a_manifest_that_is_not_the_pinned_one(
    exported: Exported, tmp_path: Path
) -> None:
    """Whoever can write to the bucket can rewrite a manifest and its file digests together;
    the pin comes from elsewhere, so the set is refused before any of its files is read."""
    store = LocalStore(tmp_path / "store")
    prefix = exported.prefixes["main"]
    pin = exported.pin(prefix)
    manifest = read_manifest(exported.store, prefix)
    store.put_bytes(f"{prefix}/{MANIFEST_NAME}", manifest.replace(b"{", b"{ ", 1))
    cache = tmp_path / "cache"
    with pytest.raises(PartitionError, match=r"is not the pinned [0-9a-f]{12}…; refusing") as err:
        load_partition(store, prefix, "edge", cache, pin)
    assert "\n" not in str(err.value)
    assert not cache.exists()


def test_load_refuses_a_manifest_under_another_plans_prefix(
    exported: Exported, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    source = exported.prefixes["main"]
    wrong = f"default/main/{'0' * 16}/{'1' * 16}"
    for key in exported.store.list(source):
        store.put_bytes(wrong + key.removeprefix(source), exported.store.get_bytes(key))
    with pytest.raises(PartitionError, match=r"holds plan \w+, but its prefix names another"):
        load_partition(store, wrong, "edge", tmp_path / "cache", exported.pin(source))


@pytest.mark.parametrize("prefix", ["default/main", "default/main/../x/y", "default/Main/a/b"])
def test_load_refuses_a_malformed_prefix_before_reading(
    exported: Exported, tmp_path: Path, prefix: str
) -> None:
    with pytest.raises(ManifestError, match=r"prefix|DNS-1123|hex"):
        load_partition(exported.store, prefix, "edge", tmp_path / "cache", "0" * 64)


def test_a_slowdown_stretches_the_model_calls_and_counts_them(
    edge_part: Partition, images: Images, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each call's own measured time is recorded, so the test compares the walk's report with
    # the calls it made rather than two walks timed apart (which a busy host can reorder).
    measured: list[float] = []
    factors: set[float] = set()

    def timed(
        fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, slowdown: float
    ) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        out, seconds = slowed_call(fn, x, slowdown)
        measured.append(seconds)
        factors.add(slowdown)
        assert (time.perf_counter() - started) >= seconds
        return out, seconds

    monkeypatch.setattr(partition_module, "slowed_call", timed)
    x = images(1)
    plain = edge_part.run_edge(x, threshold=2.0)
    plain_calls, plain_ms = len(measured), sum(measured) * 1000
    assert factors == {1.0}
    measured.clear()
    factors.clear()
    started = time.perf_counter()
    slowed = edge_part.run_edge(x, threshold=2.0, slowdown=6.0)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert plain.compute_ms == pytest.approx(plain_ms)
    assert plain_ms > 0
    # The walk makes the same calls, is held for the stretched model time, and reports that.
    assert len(measured) == plain_calls > 0
    assert factors == {6.0}
    assert slowed.compute_ms == pytest.approx(sum(measured) * 1000)
    assert elapsed_ms >= slowed.compute_ms
    np.testing.assert_array_equal(slowed.activation, plain.activation)
    with pytest.raises(PartitionError, match="compute_slowdown must be a finite number >= 1"):
        edge_part.run_edge(x, threshold=2.0, slowdown=0.5)
