"""Backbone and exit training on real digits, and saving / loading backbone weights."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from inferedge.core.errors import InferedgeError
from inferedge.core.exits import ExitHeadSpec, ExitSpecError
from inferedge.dnn.data import Splits, load_dataset, split_dataset
from inferedge.dnn.torch.exits import render_head, resolve_layers
from inferedge.dnn.torch.graph import CutGraph, build_cut_graph
from inferedge.dnn.torch.train import train_backbone, train_exits
from inferedge.dnn.torch.weights import (
    WeightsError,
    load_weights,
    read_weights_info,
    save_weights,
)
from tests.dnn.backend_cases import BAD_SCHEDULES

SHAPE = (3, 16, 16)


def tiny_cnn(width: int = 8) -> nn.Sequential:
    """Two conv blocks with BatchNorm and a linear classifier: cut 2 is 8x16x16, cut 4 16x8x8."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


@pytest.fixture(scope="module")
def splits() -> Splits:
    digits = load_dataset("digits", SHAPE)
    return split_dataset(digits.subset(np.arange(600), "digits600"), seed=0)


@pytest.fixture(scope="module")
def trained(splits: Splits) -> tuple[nn.Module, CutGraph]:
    torch.manual_seed(0)
    model = tiny_cnn()
    train_backbone(model, splits, epochs=4, batch_size=32, lr=0.01, seed=0, patience=4)
    return model, build_cut_graph(model, torch.zeros(1, *SHAPE), name="tiny")


def _recorder(calls: list[tuple[int, int]]) -> Callable[[int, int], None]:
    def record(done: int, total: int) -> None:
        calls.append((done, total))

    return record


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_backbone_learns_and_ends_with_the_best_epochs_weights(splits: Splits) -> None:
    torch.manual_seed(0)
    model = tiny_cnn()
    calls: list[tuple[int, int]] = []
    per_epoch: list[dict[str, torch.Tensor]] = []
    batches = 14  # 420 training images in batches of 32, the last one holding 4

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if done % batches == 0:
            per_epoch.append(copy.deepcopy(model.state_dict()))

    rng_before = torch.random.get_rng_state()
    result = train_backbone(
        model, splits, epochs=5, batch_size=32, lr=0.01, seed=0, patience=5, progress=progress
    )
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert len(splits.train) == 420
    assert [e.epoch for e in result.history] == [1, 2, 3, 4, 5]
    assert not result.stopped_early
    assert result.test_accuracy > 0.8  # chance is 0.1
    accuracies = [e.val_accuracy for e in result.history]
    assert result.best_epoch == 1 + accuracies.index(max(accuracies))
    assert result.val_accuracy == max(accuracies)
    assert _states_equal(model.state_dict(), per_epoch[result.best_epoch - 1])
    # Whether epoch 4 or 5 wins hangs on one of 90 validation images, which differs between
    # CPUs; either way the weights kept are the best epoch's, not simply the last ones.
    assert _states_equal(model.state_dict(), per_epoch[-1]) == (result.best_epoch == 5)
    assert not model.training
    assert calls == [(i, 5 * batches) for i in range(1, 5 * batches + 1)]


class Stuck(nn.Module):
    """A model training cannot change: its only trainable parameter has zero gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 16 * 16, 10).requires_grad_(False)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(x.flatten(1)) + 0 * self.dummy
        return logits


def test_backbone_stops_after_patience_epochs_without_improvement(splits: Splits) -> None:
    calls: list[tuple[int, int]] = []
    result = train_backbone(
        Stuck(),
        splits,
        epochs=10,
        batch_size=64,
        lr=0.1,
        seed=0,
        patience=2,
        progress=_recorder(calls),
    )
    assert len(result.history) == 3
    assert result.best_epoch == 1
    assert result.stopped_early
    assert calls[-1] == (70, 70)  # 10 epochs of 7 batches were planned
    assert calls[-2] == (21, 70)


def test_backbone_training_is_reproducible(splits: Splits) -> None:
    torch.manual_seed(0)
    initial = tiny_cnn(width=4)
    runs = []
    for seed in (3, 3, 4):
        model = copy.deepcopy(initial)
        train_backbone(model, splits, epochs=1, batch_size=32, lr=0.01, seed=seed, patience=1)
        runs.append(model.state_dict())
    assert _states_equal(runs[0], runs[1])
    assert not _states_equal(runs[0], runs[2])


@pytest.mark.parametrize(("kwargs", "message"), BAD_SCHEDULES)
def test_training_rejects_bad_schedules(
    splits: Splits, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InferedgeError, match=f"^training: {message}"):
        train_backbone(tiny_cnn(), splits, **kwargs)


def _sdn_heads(graph: CutGraph, cuts: tuple[int, ...], seed: int) -> list[tuple[int, nn.Module]]:
    torch.manual_seed(seed)
    spec = ExitHeadSpec(preset="sdn")
    heads: list[tuple[int, nn.Module]] = []
    for cut in cuts:
        shape = graph.cut_points[cut].shape
        heads.append((cut, render_head(resolve_layers(spec, shape, graph), shape, 10)))
    return heads


def test_exit_training_leaves_the_backbone_bit_for_bit_unchanged(
    trained: tuple[nn.Module, CutGraph], splits: Splits
) -> None:
    model, graph = trained
    x = torch.from_numpy(splits.test.x)
    with torch.no_grad():
        before_out = model(x)
    before_state = copy.deepcopy(model.state_dict())
    assert any(k.endswith("num_batches_tracked") for k in before_state)
    # In train mode BatchNorm would update its statistics on every forward pass.
    model.train()
    heads = _sdn_heads(graph, (2, 4), seed=0)
    initial = [copy.deepcopy(head.state_dict()) for _, head in heads]
    result = train_exits(graph, heads, splits, epochs=2, batch_size=32, lr=0.01, seed=0)
    assert model.training
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert _states_equal(model.state_dict(), before_state)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), before_out)
    assert result.cached
    assert len(result.val_accuracy) == 2
    assert min(result.test_accuracy) > 0.3  # chance is 0.1
    for (_, head), start in zip(heads, initial, strict=True):
        assert not head.training
        assert not _states_equal(head.state_dict(), start)


def test_exit_training_is_reproducible_with_or_without_the_cache(
    trained: tuple[nn.Module, CutGraph], splits: Splits
) -> None:
    _, graph = trained
    weights = []
    for limit in (2**30, 2**30, 0):
        heads = _sdn_heads(graph, (2, 4), seed=5)
        calls: list[tuple[int, int]] = []
        result = train_exits(
            graph,
            heads,
            splits,
            epochs=2,
            batch_size=64,
            lr=0.01,
            seed=1,
            cache_limit_bytes=limit,
            progress=_recorder(calls),
        )
        assert result.cached == (limit > 0)
        assert calls[-1] == (14, 14)
        weights.append([head.state_dict() for _, head in heads])
    assert all(_states_equal(a, b) for a, b in zip(weights[0], weights[1], strict=True))
    for cached, recomputed in zip(weights[0], weights[2], strict=True):
        for key, value in cached.items():
            torch.testing.assert_close(recomputed[key], value, rtol=1e-4, atol=1e-5)


def test_exit_training_rejects_bad_heads(
    trained: tuple[nn.Module, CutGraph], splits: Splits
) -> None:
    _, graph = trained
    with pytest.raises(InferedgeError, match="at least one exit head"):
        train_exits(graph, [], splits)
    with pytest.raises(ExitSpecError, match=r"exit at cut 9: out of range 0\.\.6"):
        train_exits(graph, [(9, nn.Linear(2, 2))], splits)


def test_weights_round_trip(trained: tuple[nn.Module, CutGraph], tmp_path: Path) -> None:
    model, _ = trained
    path = tmp_path / "w" / "backbone.pt"
    info = save_weights(model, path, model_ref="tests:tiny", num_classes=10, input_shape=SHAPE)
    assert info.framework_version == torch.__version__
    assert read_weights_info(path) == info
    assert list(path.parent.iterdir()) == [path]  # no partial file left behind
    fresh = tiny_cnn()
    loaded = load_weights(fresh, path, model_ref="tests:tiny", num_classes=10, input_shape=SHAPE)
    assert loaded == info
    assert _states_equal(fresh.state_dict(), model.state_dict())


def test_weights_errors_say_what_does_not_fit(
    trained: tuple[nn.Module, CutGraph], tmp_path: Path
) -> None:
    model, _ = trained
    path = tmp_path / "backbone.pt"
    save_weights(model, path, model_ref="tests:tiny", num_classes=10, input_shape=SHAPE)
    with pytest.raises(WeightsError, match=r"nothing\.pt: no such weights file"):
        load_weights(
            tiny_cnn(), tmp_path / "nothing.pt", model_ref="x", num_classes=1, input_shape=SHAPE
        )
    with pytest.raises(
        WeightsError,
        match=r"holds weights of model 'tests:tiny' \(10 classes, 3x16x16\), "
        r"not 'resnet18' \(10 classes, 3x16x16\)",
    ):
        load_weights(tiny_cnn(), path, model_ref="resnet18", num_classes=10, input_shape=SHAPE)
    with pytest.raises(
        WeightsError,
        match=r"0.weight: shape \(8, 3, 3, 3\) in the file, \(4, 3, 3, 3\) in the model",
    ):
        load_weights(
            tiny_cnn(width=4), path, model_ref="tests:tiny", num_classes=10, input_shape=SHAPE
        )
    longer = nn.Sequential(*tiny_cnn(), nn.ReLU(), nn.Linear(10, 10))
    with pytest.raises(WeightsError, match=r"missing key '10.weight' \(and 1 more\)"):
        load_weights(longer, path, model_ref="tests:tiny", num_classes=10, input_shape=SHAPE)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(WeightsError, match="not an inferedge weights file"):
        read_weights_info(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("hello")
    with pytest.raises(WeightsError, match=r"garbage\.pt: not a readable weights file"):
        read_weights_info(garbage)
