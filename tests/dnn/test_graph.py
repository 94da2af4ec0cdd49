"""Cut points (liveness over fx and export graphs, exact sub-models, costs) and model loading."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from inferedge.core.errors import ModelRefError
from inferedge.dnn.torch.graph import CutGraph, build_cut_graph
from inferedge.dnn.torch.loader import load_model
from tests.dnn.importable import write_module

INPUT = (3, 8, 8)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.bn = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))) + x)


class DenseBlock(nn.Module):
    """DenseNet style: every layer sees the concatenation of all earlier outputs."""

    def __init__(self, ch: int, growth: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv2d(ch + i * growth, growth, 3, padding=1) for i in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(torch.relu(layer(torch.cat(features, 1))))
        return torch.cat(features, 1)


class InceptionBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.branch1 = nn.Conv2d(ch, 4, 1)
        self.branch3 = nn.Sequential(nn.Conv2d(ch, 4, 1), nn.Conv2d(4, 4, 3, padding=1))
        self.pool = nn.Conv2d(ch, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1(x), self.branch3(x), pooled], 1)


class Net(nn.Module):
    """stem -> block -> global pool -> linear head."""

    def __init__(self, block: nn.Module, block_ch: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = block
        self.head = nn.Linear(block_ch, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(torch.relu(self.stem(x)))
        logits: torch.Tensor = self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return logits


def residual_net() -> Net:
    return Net(ResidualBlock(8), 8).eval()


def dense_net() -> Net:
    return Net(DenseBlock(8, 4, 3), 20).eval()


def inception_net() -> Net:
    return Net(InceptionBlock(8), 12).eval()


class Gated(nn.Module):
    """fx cannot trace the data-dependent `if`, but the children chain to the same output."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if x.sum() < 0:  # never true after a ReLU
            x = -x
        logits: torch.Tensor = self.classifier(self.pool(x))
        return logits


class Branchy(nn.Module):
    """Untraceable, and its children do not form a chain (both read the input)."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 4, 1)
        self.right = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left: torch.Tensor = self.left(x)
        if x.mean() > 100:
            return left
        right: torch.Tensor = self.right(x)
        return left + right


def example(batch: int = 1) -> torch.Tensor:
    return torch.randn((batch, *INPUT), generator=torch.Generator().manual_seed(1))


def cut(model: nn.Module) -> CutGraph:
    return build_cut_graph(model, example(), name=type(model).__name__)


def names(graph: CutGraph) -> list[str]:
    return [c.name for c in graph.cut_points]


def check_exact(graph: CutGraph, model: nn.Module, x: torch.Tensor) -> None:
    """Every head/tail split and the chain of all segments reproduce the model bit for bit."""
    with torch.no_grad():
        expected = model(x)
        for k in range(graph.num_cuts + 1):
            assert torch.equal(graph.tail(k)(graph.head(k)(x)), expected), f"split at cut {k}"
        value = x
        for i in range(1, graph.num_cuts + 1):
            value = graph.segment(i)(value)
        assert torch.equal(value, expected)


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        # The stem conv's own cut is dropped: only a free ReLU lies between it and the next.
        (residual_net, ["x", "relu", "relu_2", "flatten", "head"]),
        (dense_net, ["x", "relu", "cat_3", "flatten", "head"]),
        (inception_net, ["x", "relu", "cat", "flatten", "head"]),
    ],
)
def test_blocks_are_never_cut_inside(factory: Callable[[], Net], expected: list[str]) -> None:
    model = factory()
    graph = cut(model)
    assert graph.tracing == "fx"
    assert names(graph) == expected
    check_exact(graph, model, example())
    check_exact(graph, model, example(batch=3))


@pytest.mark.parametrize("factory", [residual_net, dense_net, inception_net])
def test_cumulative_costs_end_at_the_whole_model(factory: Callable[[], Net]) -> None:
    model = factory()
    graph = cut(model)
    cuts = graph.cut_points
    assert cuts[0].cum_flops == 0
    assert cuts[0].cum_param_bytes == 0
    for before, after in pairwise(cuts):
        assert after.cum_flops >= before.cum_flops
        assert after.cum_param_bytes >= before.cum_param_bytes
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example())
    assert cuts[-1].cum_flops == counter.get_total_flops() > 0
    assert cuts[-1].cum_param_bytes == sum(p.numel() * p.element_size() for p in model.parameters())


def test_cut_points_describe_the_tensor() -> None:
    cuts = cut(residual_net()).cut_points
    assert [c.index for c in cuts] == list(range(len(cuts)))
    assert cuts[0].shape == INPUT
    assert cuts[1].shape == (8, 8, 8)
    assert cuts[1].activation_bytes == 8 * 8 * 8 * 4
    assert cuts[-1].shape == (10,)
    assert {c.dtype for c in cuts} == {"float32"}


def test_shared_parameters_are_counted_once() -> None:
    layer = nn.Linear(4, 4)
    model = nn.Sequential(layer, nn.ReLU(), layer).eval()
    graph = build_cut_graph(model, torch.randn(1, 4), name="shared")
    assert graph.cut_points[-1].cum_param_bytes == (16 + 4) * 4


def test_peak_memory_counts_live_storage_once() -> None:
    graph = cut(residual_net())
    # Segment 3 (block output -> flatten) holds the 8x8x8 block output and the 8-value pool
    # result; the flatten is a view of the pool result and allocates nothing.
    assert names(graph)[2:4] == ["relu_2", "flatten"]
    assert graph.segment_peak_bytes(3) == (8 * 8 * 8 + 8) * 4
    # Segment 2 runs the block: while a layer runs, its input and output are held next to the
    # skip input, three 8x8x8 tensors.
    assert graph.segment_peak_bytes(2) == 3 * 8 * 8 * 8 * 4


def test_sub_model_indices_are_checked() -> None:
    graph = cut(residual_net())
    with pytest.raises(IndexError):
        graph.segment(0)
    with pytest.raises(IndexError):
        graph.head(graph.num_cuts + 1)


def test_sub_models_share_the_parameters() -> None:
    model = residual_net()
    graph = cut(model)
    own = {id(p) for p in model.parameters()}
    assert {id(p) for p in graph.segment(1).parameters()} <= own


def test_untraceable_model_falls_back_to_its_children() -> None:
    model = Gated().eval()
    graph = cut(model)
    assert graph.tracing == "sequential"
    assert names(graph) == ["x", "features", "pool", "classifier"]
    check_exact(graph, model, example())


def test_untraceable_unchained_model_is_a_clear_error() -> None:
    with pytest.raises(ModelRefError) as err:
        cut(Branchy().eval())
    message = str(err.value)
    assert message.startswith("cannot find cut points in model 'Branchy': fx tracing failed (")
    assert "symbolically traced variables cannot be used as inputs to control flow" in message
    assert "\n" not in message


def test_model_failing_on_the_input_is_a_clear_error() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(5, 2)).eval()
    with pytest.raises(ModelRefError, match=r"^model 'm' fails on an input of shape \(3, 8, 8\)"):
        build_cut_graph(model, example(), name="m")


class TwoInputs(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class TwoOutputs(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x + 1, x - 1


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (TwoInputs(), "takes 2 inputs; only single-input models can be cut"),
        (TwoOutputs(), "must return a single tensor to be cut"),
        (nn.Identity(), "has no layers between its input and its output"),
    ],
)
def test_uncuttable_models_are_clear_errors(model: nn.Module, message: str) -> None:
    with pytest.raises(ModelRefError, match=message):
        build_cut_graph(model, example(), name="m")


def test_exported_program_round_trip(tmp_path: Path) -> None:
    model = residual_net()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (example(batch=2),), dynamic_shapes={"x": {0: batch}})
    path = tmp_path / "residual.pt2"
    torch.export.save(program, path)

    loaded = load_model(str(path), num_classes=10, input_shape=INPUT)
    assert loaded.kind == "export"
    assert loaded.name == "residual"
    graph = build_cut_graph(loaded.module, example(), name=loaded.name, exported=True)
    assert graph.tracing == "export"
    # Same cuts as fx finds on the source model, though the export graph has aten ops and
    # fetches every parameter before its input.
    traced = cut(model).cut_points
    strip = [(c.shape, c.cum_flops, c.cum_param_bytes) for c in traced]
    assert [(c.shape, c.cum_flops, c.cum_param_bytes) for c in graph.cut_points] == strip
    check_exact(graph, loaded.module, example(batch=2))


# --- Loading model references ---

MODELS_PY = """
from torch import nn


def small(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(192, num_classes))


def fixed():
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 3))


class Factory:
    @staticmethod
    def build(**kwargs):
        return nn.Sequential(nn.Flatten(), nn.Linear(192, kwargs["num_classes"]))


def not_a_model(num_classes=10):
    return "model"


def broken(num_classes=10):
    raise RuntimeError("weights missing\\nsecond line")


NOT_CALLABLE = 5
"""


@pytest.fixture
def models_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of an importable module of model factories, written to a temp directory."""
    return write_module("inferedge_test_models", MODELS_PY, tmp_path, monkeypatch)


def linear_out(module: nn.Module) -> int:
    last = list(module.modules())[-1]
    assert isinstance(last, nn.Linear)
    return last.out_features


def test_callable_gets_num_classes_and_eval_mode(models_module: str) -> None:
    loaded = load_model(f"{models_module}:small", num_classes=7, input_shape=INPUT)
    assert (loaded.kind, loaded.name, loaded.source) == (
        "callable",
        "small",
        f"{models_module}:small",
    )
    assert linear_out(loaded.module) == 7
    assert not loaded.module.training


def test_callable_without_num_classes_is_called_bare(models_module: str) -> None:
    assert linear_out(load_model(f"{models_module}:fixed", 7, INPUT).module) == 3


def test_dotted_attribute_and_kwargs_factory(models_module: str) -> None:
    assert linear_out(load_model(f"{models_module}:Factory.build", 5, INPUT).module) == 5


def test_zoo_name_loads_in_eval_mode() -> None:
    loaded = load_model("resnet18", num_classes=10, input_shape=(3, 32, 32))
    assert (loaded.kind, loaded.name) == ("zoo", "resnet18")
    assert not loaded.module.training


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("resnet1000", r"^unknown model 'resnet1000': not a zoo name \(.*resnet18"),
        (":small", r"must look like package.module:callable"),
        ("no_such_package_xyz:make", r"^cannot import module 'no_such_package_xyz' for model"),
        ("{mod}:missing", r"^module '{mod}' has no attribute 'missing'$"),
        ("{mod}:NOT_CALLABLE", r"^'{mod}:NOT_CALLABLE' is not callable \(it is a int\)$"),
        ("{mod}:not_a_model", r"returned a str, expected a torch.nn.Module$"),
        ("{mod}:broken", r"^calling '{mod}:broken' failed: RuntimeError: weights missing$"),
    ],
)
def test_bad_references_are_one_line_errors(models_module: str, ref: str, message: str) -> None:
    with pytest.raises(ModelRefError, match=message.format(mod=models_module)) as err:
        load_model(ref.format(mod=models_module), 10, INPUT)
    assert "\n" not in str(err.value)


def test_zoo_models_need_square_rgb_inputs() -> None:
    with pytest.raises(
        ModelRefError, match=r"takes square RGB images \(3, N, N\), got .*\(3, 32, 16\)"
    ):
        load_model("resnet18", 10, (3, 32, 16))


def test_missing_and_foreign_pt2_files_are_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt2"
    with pytest.raises(ModelRefError, match=r"missing.pt2' does not exist$"):
        load_model(str(missing), 10, INPUT)
    foreign = tmp_path / "foreign.pt2"
    foreign.write_bytes(b"not a zip archive")
    with pytest.raises(ModelRefError, match=r"foreign.pt2': not a torch.export archive: ") as err:
        load_model(str(foreign), 10, INPUT)
    assert "\n" not in str(err.value)
