"""Exit heads in torch: rendering spec layers, MixedPool, the backbone's classifier, source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from inferedge.core.exits import (
    AdaptivePool,
    ExitHeadSpec,
    ExitSpecError,
    Flatten,
    Linear,
    check_head,
)
from inferedge.dnn.torch.exits import (
    MixedPool,
    Taps,
    classifier_layers,
    frozen,
    render_head,
    resolve_layers,
    torch_source,
)
from inferedge.dnn.torch.graph import CutGraph, build_cut_graph
from inferedge.dnn.torch.zoo import build_model
from tests.dnn.backend_cases import HEADS, LAYERS, head_layers

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(HEADS))
def test_rendered_head_follows_the_checked_shapes(name: str) -> None:
    shape, layers = head_layers(name)
    torch.manual_seed(0)
    head = render_head(layers, shape, num_classes=7).eval()
    expected = check_head(layers, shape, 7, "test")
    x = torch.randn(5, *shape)
    for module, out_shape in zip(head, expected[1:], strict=True):
        x = module(x)
        assert tuple(x.shape[1:]) == out_shape
    assert x.shape == (5, 7)


def test_render_rejects_a_head_that_does_not_fit() -> None:
    layers = LAYERS.validate_python([{"type": "linear"}])
    with pytest.raises(ExitSpecError, match=r"edge exit 1: layer 0 \(linear\) needs a vector"):
        render_head(layers, (8, 4, 4), 10, where="edge exit 1")


def test_mixed_pool_blends_max_and_average_and_learns_the_blend() -> None:
    pool = MixedPool(2)
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    even = (F.adaptive_max_pool2d(x, 2) + F.adaptive_avg_pool2d(x, 2)) / 2
    torch.testing.assert_close(pool(x), even)
    with torch.no_grad():
        pool.blend.fill_(30.0)
    torch.testing.assert_close(pool(x), F.adaptive_max_pool2d(x, 2))
    pool.blend.data.zero_()
    pool(x).sum().backward()
    assert pool.blend.grad is not None
    assert float(pool.blend.grad) > 0  # max exceeds the mean here, so more max raises the sum


@pytest.mark.parametrize("name", sorted(HEADS))
def test_source_builds_the_same_module(name: str) -> None:
    shape, layers = head_layers(name)
    torch.manual_seed(1)
    rendered = render_head(layers, shape, num_classes=5).eval()
    source = torch_source(layers, shape, 5, class_name="MyHead")
    namespace: dict[str, object] = {}
    exec(compile(source, "<rendered>", "exec"), namespace)  # the test's own generated source
    built = namespace["MyHead"]
    assert isinstance(built, type)
    compiled = built().eval()
    assert {k: v.shape for k, v in compiled.state_dict().items()} == {
        k: v.shape for k, v in rendered.state_dict().items()
    }
    compiled.load_state_dict(rendered.state_dict())
    x = torch.randn(3, *shape)
    assert torch.equal(compiled(x), rendered(x))


def _ruff(source: str, command: str, *, check: bool) -> subprocess.CompletedProcess[str]:
    """`ruff <command>` of `source` as a file of this repository, as its checks see it."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", command, "--stdin-filename", "head.py", "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=check,
    )


def test_source_is_formatted_and_lint_clean() -> None:
    shape, layers = head_layers("sdn")
    source = torch_source(layers, shape, 10)
    assert "class MixedPool(nn.Module):" in source
    assert "MixedPool(4),  # -> 8x4x4" in source
    assert "nn.Linear(128, 10),  # -> 10" in source
    formatted = _ruff(source, "format", check=True)
    assert formatted.stdout == source
    lint = _ruff(source, "check", check=False)
    assert lint.returncode == 0, lint.stdout
    vector_shape, vector_layers = head_layers("vector")
    plain = torch_source(vector_layers, vector_shape, 3)
    assert "import torch\n" not in plain
    assert "MixedPool" not in plain
    with pytest.raises(ValueError, match="must be a Python identifier"):
        torch_source(vector_layers, vector_shape, 3, class_name="exit-head")


def _graph(model: nn.Module, shape: tuple[int, ...]) -> CutGraph:
    return build_cut_graph(model.eval(), torch.randn(1, *shape), name="m")


def test_classifier_of_zoo_models() -> None:
    torch.manual_seed(0)
    resnet = _graph(build_model("resnet18", 10, 16), (3, 16, 16))
    assert classifier_layers(resnet) == (
        AdaptivePool(mode="avg", output_size=1),
        Flatten(),
        Linear(),
    )
    vgg = _graph(build_model("vgg11", 10, 16), (3, 16, 16))
    # ceil-mode pools are expressible; at 16 px the last free 1x1 ops merge into `flatten`, so
    # the replicated classifier starts with VGG's last conv block
    replica = classifier_layers(vgg)
    assert replica[-3:] == (AdaptivePool(mode="avg", output_size=1), Flatten(), Linear())
    assert any(getattr(layer, "ceil_mode", False) for layer in replica)
    assert check_head(replica, (512, 2, 2), 10, "exit")[-1] == (10,)


class FunctionalVGG(nn.Module):
    """An ImageNet-style VGG classifier (7x7 pool, two hidden layers) in functional style."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc1 = nn.Linear(4 * 7 * 7, 24)
        self.fc2 = nn.Linear(24, 24)
        self.out = nn.Parameter(torch.randn(6, 24))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.conv(x)), 2)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 7), 1)
        x = F.dropout(F.relu(self.fc1(x)), 0.5, training=self.training)
        x = nn.functional.dropout(self.fc2(x).relu(), p=0.3, training=self.training)
        return F.linear(x, self.out)


VGG_CLASSIFIER = LAYERS.validate_python(
    [
        {"type": "adaptive_pool", "mode": "avg", "output_size": 7},
        {"type": "flatten"},
        {"type": "linear", "out_features": 24},
        {"type": "relu"},
        {"type": "dropout", "p": 0.5},
        {"type": "linear", "out_features": 24},
        {"type": "relu"},
        {"type": "dropout", "p": 0.3},
        {"type": "linear", "bias": False},
    ]
)


def test_classifier_from_functional_calls_and_from_an_export_graph() -> None:
    model = FunctionalVGG().eval()
    graph = _graph(model, (3, 16, 16))
    assert graph.cut_points[-1].shape == (6,)
    assert classifier_layers(graph) == VGG_CLASSIFIER
    exported = torch.export.export(model, (torch.randn(1, 3, 16, 16),)).module()
    export_graph = build_cut_graph(exported, torch.randn(1, 3, 16, 16), name="e", exported=True)
    assert classifier_layers(export_graph) == VGG_CLASSIFIER


def test_classifier_from_modules_starting_with_a_pool() -> None:
    # As in VGG at 224 px: the 7x7 adaptive pool of a 7x7 map is free, so the last map cut
    # falls before the max-pool.
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((7, 7)),
        nn.Flatten(),
        nn.Linear(196, 8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, 6),
    )
    expected = LAYERS.validate_python(
        [
            {"type": "maxpool", "kernel_size": 2, "stride": 2},
            {"type": "adaptive_pool", "output_size": 7},
            {"type": "flatten"},
            {"type": "linear", "out_features": 8},
            {"type": "relu"},
            {"type": "dropout", "p": 0.5},
            {"type": "linear"},
        ]
    )
    assert classifier_layers(_graph(model, (3, 14, 14))) == expected


class Branchy(nn.Module):
    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = act
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(self.conv(x), 1).flatten(1)
        logits: torch.Tensor = self.fc(self.act(pooled))
        return logits


def test_classifier_that_cannot_be_expressed_is_empty() -> None:
    assert classifier_layers(_graph(Branchy(nn.ReLU6()), (3, 6, 6))) == ()
    assert classifier_layers(_graph(Branchy(nn.Identity()), (3, 6, 6))) == (
        AdaptivePool(output_size=1),
        Flatten(),
        Linear(),
    )


class DataDependent(nn.Module):
    """Branches on a value, which fx cannot trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum() > 0 else -x


def test_classifier_of_a_model_traced_as_a_chain_of_children() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        DataDependent(),
        nn.Sequential(nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.Linear(16, 5)),
    )
    graph = _graph(model, (3, 6, 6))
    assert graph.tracing == "sequential"
    assert classifier_layers(graph) == (
        AdaptivePool(mode="max", output_size=2),
        Flatten(),
        Linear(),
    )


def test_resolve_layers_presets_and_explicit() -> None:
    graph = _graph(Branchy(nn.ReLU()), (3, 8, 8))
    sdn = resolve_layers(ExitHeadSpec(preset="sdn"), (16, 8, 8), graph)
    assert sdn[0] == AdaptivePool(mode="mixed", output_size=4)
    replica = resolve_layers(ExitHeadSpec(preset="replicate-classifier"), (16, 8, 8), graph)
    assert [layer.type for layer in replica] == ["adaptive_pool", "flatten", "relu", "linear"]
    explicit = LAYERS.validate_python([{"type": "flatten"}, {"type": "linear"}])
    assert resolve_layers(ExitHeadSpec(layers=explicit), (16, 8, 8), graph) == explicit
    bad = _graph(Branchy(nn.ReLU6()), (3, 8, 8))
    with pytest.raises(ExitSpecError, match="could not be expressed"):
        resolve_layers(ExitHeadSpec(preset="replicate-classifier"), (16, 8, 8), bad)


def test_taps_return_the_activations_at_each_cut_and_frozen_restores_state() -> None:
    model = Branchy(nn.ReLU())
    graph = _graph(model, (3, 8, 8))
    x = torch.randn(2, 3, 8, 8)
    cuts = [graph.num_cuts, 0, 1]
    out, same, first = Taps(graph, cuts)(x)
    torch.testing.assert_close(out, model(x))
    assert torch.equal(same, x)
    torch.testing.assert_close(first, graph.head(1)(x))
    with pytest.raises(ExitSpecError, match="exit at cut 99: out of range"):
        Taps(graph, [99])
    model.train()
    model.conv.weight.requires_grad_(False)
    with frozen(model):
        assert not model.training
        assert not model.conv.training
        assert not any(p.requires_grad for p in model.parameters())
    assert model.training
    assert model.conv.training
    assert not model.conv.weight.requires_grad
    assert model.fc.weight.requires_grad
