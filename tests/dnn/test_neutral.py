"""The framework-neutral halves of the backends, run without any framework."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from inferedge.core.errors import InferedgeError, ModelRefError
from inferedge.core.profile import CutPoint
from inferedge.dnn import profiling
from inferedge.dnn.cuts import kept_cuts, segment_peaks
from inferedge.dnn.modelref import call_factory, unknown_model
from inferedge.dnn.observing import check_exit_path, record_observations
from inferedge.dnn.training import batch_slices, cache_fits, mean_scores, num_batches
from tests.dnn import profiling_helpers as helpers


@pytest.mark.parametrize(("n", "batch_size"), [(10, 3), (10, 4), (9, 3), (1, 4), (5, 1), (7, 7)])
def test_batches_are_what_progress_counts(n: int, batch_size: int) -> None:
    slices = list(batch_slices(n, batch_size))
    assert len(slices) == num_batches(n, batch_size)
    sizes = [len(range(n)[s]) for s in slices]
    # Only a trailing single sample is left out, and only when it is not the only one.
    assert sum(sizes) in (n, n - 1)
    assert all(size > 1 for size in sizes) or sizes == [1] * len(sizes)


def test_mean_scores_sum_losses_over_classifiers_and_count_each_accuracy() -> None:
    seen: list[slice] = []

    def scores(batch: slice) -> list[tuple[float, int]]:
        seen.append(batch)
        size = batch.stop - batch.start
        return [(1.0 * size, size), (2.0 * size, 0)]

    loss, accuracies = mean_scores(5, 2, scores)
    assert seen == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert (loss, accuracies) == (3.0, (1.0, 0.0))


def cut(k: int, flops: int, nbytes: int) -> CutPoint:
    """Cut point `k` after `flops` FLOPs, holding a float32 vector of `nbytes` bytes."""
    return CutPoint(
        index=k,
        name=f"c{k}",
        shape=(nbytes // 4,),
        activation_bytes=nbytes,
        cum_flops=flops,
        cum_param_bytes=0,
    )


def test_cuts_before_free_work_are_dropped_and_peaks_cover_each_segment() -> None:
    costs = {"in": (0, 0, 8), "a": (10, 0, 16), "relu": (10, 0, 16), "out": (20, 0, 4)}
    candidates = [("in", 0), ("a", 1), ("relu", 2), ("out", 5)]
    cuts = kept_cuts(candidates, lambda value, _: costs[value])
    assert cuts == [("in", 0), ("relu", 2), ("out", 5)]
    running = [8, 30, 16, 50, 40, 4]
    assert segment_peaks(cuts, lambda value: costs[value][2], running) == (30, 50)
    assert cache_fits([cut(0, 0, 8), cut(1, 1, 16), cut(2, 2, 4)], [1, 1, 2], 10, 200)
    assert not cache_fits([cut(0, 0, 8), cut(1, 1, 16), cut(2, 2, 4)], [1, 2], 10, 199)


def test_measure_chain_feeds_each_segment_its_predecessors_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    helpers.fake_clock(monkeypatch, range(1, 21))
    sensor = helpers.fake_sensor(monkeypatch)
    inputs: list[tuple[int, int]] = []

    def segment(i: int) -> Callable[[int], int]:
        def run(value: int) -> int:
            inputs.append((i, value))
            return value * 10

        return run

    request = helpers.profile_request("chain", (3, 4, 4), repeats=20, emulate_slowdown=2.0)
    cut_points = [cut(0, 0, 48), cut(1, 100, 16), cut(2, 250, 4)]
    segments = profiling.measure_chain(
        [segment(1), segment(2)],
        cut_points,
        request,
        first_input=lambda batch_size: batch_size,
        peak_bytes_per_sample=lambda i: 100 * i,
        model_name="chain",
        sensor=sensor,
    )
    assert [s.flops for s in segments] == [100, 150]
    assert {(i, v) for i, v in inputs} == {(1, 1), (2, 10), (1, 2), (2, 20)}
    for i, segment_profile in enumerate(segments, start=1):
        for m in segment_profile.measurements:
            assert m.peak_memory_bytes == 100 * i * m.batch_size
            assert (m.median_ms, m.p95_ms) == pytest.approx((21.0, 38.0))
            assert m.energy_mj == pytest.approx(12.0 / 20)

    def failing(value: int) -> int:
        raise ValueError("boom\nsecond line")

    with pytest.raises(ModelRefError, match=r"^model 'chain' fails in segment 1 at batch size 1: "):
        profiling.measure_chain(
            [failing],
            cut_points[:2],
            request,
            first_input=lambda batch_size: batch_size,
            peak_bytes_per_sample=lambda i: 0,
            model_name="chain",
        )


def test_observations_record_each_classifier_per_sample() -> None:
    labels = np.array([0, 1, 1])

    def classify(batch: slice) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        n = len(labels[batch])
        edge = (np.full(n, 0.5), np.full(n, 0.25), np.zeros(n, np.int64))
        final = (np.full(n, 0.9), np.full(n, 0.1), np.ones(n, np.int64))
        return [edge, final]

    observed = record_observations(
        [(1, "edge")], (3, "cloud"), labels, classify, split_name="val", batch_size=2
    )
    assert observed.exits[0].correct == (True, False, False)
    assert observed.final.correct == (False, True, True)
    assert observed.exits[0].max_softmax == (0.5, 0.5, 0.5)
    with pytest.raises(InferedgeError, match="an edge exit cannot follow a cloud exit"):
        check_exit_path([(1, "cloud"), (2, "edge")], 3, "cloud", num_cuts=3, batch_size=1)
    with pytest.raises(InferedgeError, match="batch_size must be >= 1, got 0"):
        check_exit_path([(1, "edge")], 3, "cloud", num_cuts=3, batch_size=0)


def test_model_references_name_every_form_the_framework_takes() -> None:
    error = unknown_model("nope", ["a", "b"], ["a .pt2 file"])
    assert str(error) == (
        "unknown model 'nope': not a zoo name (a, b), a package.module:callable or a .pt2 file"
    )
    error = unknown_model("nope", ["a"], ["a .keras file", "a SavedModel directory"])
    assert str(error).endswith("a package.module:callable, a .keras file or a SavedModel directory")
    name, built = call_factory("collections:OrderedDict", 3)
    assert (name, built) == ("OrderedDict", {})
    with pytest.raises(ModelRefError, match=r"must look like package\.module:callable"):
        call_factory(":x", 3)
