"""Keras training on real digits: the backbone, then exits on a frozen backbone; weights files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest

from inferedge.core.errors import InferedgeError
from inferedge.core.exits import ExitHeadSpec
from inferedge.dnn.data import Splits
from inferedge.dnn.protocols import Schedule
from inferedge.dnn.tensorflow.backend import prepare
from inferedge.dnn.tensorflow.compat import quiet_variable_export
from inferedge.dnn.tensorflow.exits import render_head, resolve_layers
from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import batch_to_internal
from inferedge.dnn.tensorflow.train import train_backbone, train_exits
from inferedge.dnn.tensorflow.weights import (
    WeightsError,
    load_weights,
    read_weights_info,
    save_weights,
)
from inferedge.dnn.tensorflow.workflow import KerasWorkflow
from tests.dnn.backend_cases import BAD_SCHEDULES

SHAPE = (3, 16, 16)
PLAIN = "tests.dnn.tensorflow.models:plain_cnn"


def weights_of(model: Any) -> list[np.ndarray]:
    """Every variable of `model`, BatchNorm statistics included, as copies."""
    return [np.array(v.numpy()) for v in model.weights]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def fresh(seed: int = 0) -> CutGraph:
    keras.utils.set_random_seed(seed)
    return prepare(PLAIN, 10, SHAPE, seed=seed)[1]


def test_backbone_learns_and_ends_with_the_best_epochs_weights(small_splits: Splits) -> None:
    graph = fresh()
    per_epoch: list[list[np.ndarray]] = []
    calls: list[tuple[int, int]] = []
    batches = -(-len(small_splits.train) // 32)

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if done % batches == 0:
            per_epoch.append(weights_of(graph.model))

    result = train_backbone(
        graph.model, small_splits, epochs=6, batch_size=32, lr=0.01, seed=0, progress=progress
    )
    assert [e.epoch for e in result.history] == [1, 2, 3, 4, 5, 6]
    # Chance is 0.1; after 6 epochs on 314 images accuracy still climbs fast, so where it
    # lands (0.70 here) moves with the CPU's float rounding: 4x chance leaves room for that.
    assert result.test_accuracy > 0.4
    accuracies = [e.val_accuracy for e in result.history]
    assert result.val_accuracy == max(accuracies)
    best = [
        e.epoch
        for e in result.history
        if (e.val_accuracy, -e.val_loss)
        == max((h.val_accuracy, -h.val_loss) for h in result.history)
    ]
    assert result.best_epoch == best[0]
    assert same(weights_of(graph.model), per_epoch[result.best_epoch - 1])
    assert calls == [(i, 6 * batches) for i in range(1, 6 * batches + 1)]


def test_backbone_training_is_reproducible(small_splits: Splits) -> None:
    runs = []
    for seed in (3, 3, 4):
        graph = fresh(seed=0)
        train_backbone(graph.model, small_splits, epochs=1, batch_size=32, lr=0.01, seed=seed)
        runs.append(weights_of(graph.model))
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])


def test_backbone_stops_after_patience_epochs_without_improvement(small_splits: Splits) -> None:
    graph = prepare("tests.dnn.tensorflow.models:stuck", 10, SHAPE)[1]
    calls: list[tuple[int, int]] = []
    before = weights_of(graph.model)
    result = train_backbone(
        graph.model,
        small_splits,
        epochs=10,
        batch_size=64,
        lr=0.1,
        seed=0,
        patience=2,
        progress=lambda *call: calls.append(call),
    )
    assert len(result.history) == 3
    assert result.best_epoch == 1
    assert result.stopped_early
    assert calls[-1] == (50, 50)  # 10 epochs of 5 batches were planned
    assert calls[-2] == (15, 50)
    assert same(weights_of(graph.model), before)


@pytest.mark.parametrize(("kwargs", "message"), BAD_SCHEDULES)
def test_training_rejects_bad_schedules(
    small_splits: Splits, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InferedgeError, match=f"^training: {message}"):
        train_backbone(fresh().model, small_splits, **kwargs)


def _heads(graph: CutGraph, cuts: tuple[int, ...], spec: ExitHeadSpec) -> list[tuple[int, Any]]:
    keras.utils.set_random_seed(1)
    heads = []
    for cut in cuts:
        shape = graph.cut_points[cut].shape
        heads.append((cut, render_head(resolve_layers(spec, shape, graph), shape, 10)))
    return heads


# A head with its own BatchNorm, which must train while the backbone's stays put.
BN_HEAD = ExitHeadSpec(
    layers=(
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},  # type: ignore[arg-type]
        {"type": "batchnorm"},  # type: ignore[arg-type]
        {"type": "relu"},  # type: ignore[arg-type]
        {"type": "adaptive_pool", "mode": "mixed", "output_size": 2},  # type: ignore[arg-type]
        {"type": "flatten"},  # type: ignore[arg-type]
        {"type": "linear"},  # type: ignore[arg-type]
    )
)


def test_exit_training_leaves_the_backbone_bit_for_bit_unchanged(
    small_splits: Splits,
) -> None:
    graph = fresh()
    train_backbone(graph.model, small_splits, epochs=2, batch_size=32, lr=0.01, seed=0)
    x = batch_to_internal(small_splits.test.x)
    before_out = np.asarray(graph.model(x, training=False))
    before = weights_of(graph.model)
    assert len(graph.model.non_trainable_weights) == 2  # BatchNorm's moving mean and variance
    heads = _heads(graph, (2, 4), BN_HEAD)
    initial = [weights_of(head) for _, head in heads]
    result = train_exits(graph, heads, small_splits, epochs=3, batch_size=32, lr=0.01, seed=0)
    assert same(weights_of(graph.model), before)
    assert np.array_equal(np.asarray(graph.model(x, training=False)), before_out)
    assert result.cached
    assert len(result.val_accuracy) == 2
    assert min(result.test_accuracy) > 0.3  # chance is 0.1
    for (_, head), start in zip(heads, initial, strict=True):
        after = weights_of(head)
        # Kernels, and the head's own BatchNorm statistics, moved.
        assert all(not np.array_equal(a, b) for a, b in zip(after, start, strict=True))


def test_exit_training_without_a_cache_trains_the_same_heads(small_splits: Splits) -> None:
    graph = fresh()
    results = []
    for limit in (2**40, 0):
        heads = _heads(graph, (3,), ExitHeadSpec(preset="sdn"))
        result = train_exits(
            graph, heads, small_splits, epochs=2, batch_size=32, lr=0.01, seed=0,
            cache_limit_bytes=limit,
        )  # fmt: skip
        results.append((result, weights_of(heads[0][1])))
    (cached, cached_weights), (uncached, uncached_weights) = results
    assert (cached.cached, uncached.cached) == (True, False)
    # The backbone is a fixed function: the same activations reach the heads either way.
    for a, b in zip(cached_weights, uncached_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_training_needs_something_to_train(small_splits: Splits) -> None:
    with pytest.raises(InferedgeError, match="needs at least one exit head"):
        train_exits(fresh(), [], small_splits)
    frozen = fresh()
    frozen.model.trainable = False
    with pytest.raises(InferedgeError, match=r"^training: model '.*' has no trainable weights$"):
        train_backbone(frozen.model, small_splits)


def test_weights_round_trip_and_refuse_other_models(tmp_path: Path) -> None:
    graph = fresh(seed=0)
    path = tmp_path / "plain.weights.h5"
    info = save_weights(graph.model, path, model_ref=PLAIN, num_classes=10, input_shape=SHAPE)
    assert read_weights_info(path) == info
    assert info.describe() == f"{PLAIN!r} (10 classes, 3x16x16)"
    other = fresh(seed=5)
    assert not same(weights_of(other.model), weights_of(graph.model))
    load_weights(other.model, path, model_ref=PLAIN, num_classes=10, input_shape=SHAPE)
    assert same(weights_of(other.model), weights_of(graph.model))
    assert not list(tmp_path.glob(".*partial*"))

    with pytest.raises(WeightsError, match=r"holds weights of model .* not 'small_resnet'"):
        load_weights(other.model, path, model_ref="small_resnet", num_classes=10, input_shape=SHAPE)


def save_plain_weights(model: Any, path: Path) -> None:
    with quiet_variable_export():
        model.save_weights(path)


def test_weights_files_that_are_not_ours_are_one_line_errors(tmp_path: Path) -> None:
    missing = tmp_path / "none.weights.h5"
    with pytest.raises(WeightsError, match="no such weights file"):
        read_weights_info(missing)
    text = tmp_path / "text.weights.h5"
    text.write_text("hello")
    with pytest.raises(WeightsError, match="not a readable weights file"):
        read_weights_info(text)
    plain_keras = tmp_path / "keras.weights.h5"
    save_plain_weights(fresh().model, plain_keras)
    with pytest.raises(WeightsError, match="not an inferedge weights file"):
        read_weights_info(plain_keras)
    broken = tmp_path / "broken.weights.h5"
    save_plain_weights(fresh().model, broken)
    with h5py.File(broken, "a") as f:
        f.attrs["inferedge"] = '{"format": "inferedge.weights/v1", "num_classes": "ten"}'
    with pytest.raises(WeightsError, match="malformed inferedge weights file"):
        read_weights_info(broken)
    with pytest.raises(WeightsError, match=r"must end in '.weights.h5'"):
        save_weights(fresh().model, tmp_path / "w.h5", model_ref=PLAIN, num_classes=10,
                     input_shape=SHAPE)  # fmt: skip


def test_weights_of_another_architecture_do_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "resnet.weights.h5"
    _, resnet = prepare("small_resnet", 10, SHAPE)
    save_weights(resnet.model, path, model_ref=PLAIN, num_classes=10, input_shape=SHAPE)
    with pytest.raises(WeightsError, match="does not fit the model") as info:
        load_weights(fresh().model, path, model_ref=PLAIN, num_classes=10, input_shape=SHAPE)
    assert "\n" not in str(info.value)


def test_workflow_trains_saves_and_loads_a_sequential_model(
    workflow: KerasWorkflow, small_splits: Splits, tmp_path: Path
) -> None:
    backbone = workflow.new_backbone(PLAIN, 10, (3, 8, 8), seed=0)
    with pytest.raises(InferedgeError, match=r"holds images of 3x16x16, the model takes 3x8x8"):
        workflow.train_backbone(backbone, small_splits, Schedule(1, 32, 0.01), seed=0)
    backbone = workflow.new_backbone(PLAIN, 10, SHAPE, seed=0)
    trained = workflow.train_backbone(
        backbone, small_splits, Schedule(2, 32, 0.01, patience=None), seed=0
    )
    assert trained.epochs == 2
    assert 0.1 < trained.test_accuracy <= 1.0
    # The user's Sequential model (not only its traced graph) carries the weights to disk.
    path = tmp_path / "plain.weights.h5"
    workflow.save_backbone(backbone, path)
    reloaded = workflow.load_backbone(path)
    x = batch_to_internal(small_splits.test.x)
    assert np.array_equal(
        np.asarray(reloaded.graph.model(x, training=False)),
        np.asarray(backbone.graph.model(x, training=False)),
    )
