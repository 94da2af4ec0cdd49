"""Parity with the torch backend: one architecture, two frameworks, the same decisions.

The same network written in torch and in Keras must give the same cut points (shapes, sizes,
FLOPs, parameter bytes), hence the same plan from the same timings, the same exit heads (costs,
and outputs once the weights are copied across) and the same confidence numbers.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from inferedge.core.exits import preset_layers
from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.profile import CutPoint, Segment, SegmentMeasurement
from inferedge.core.synthetic import assemble_profile
from inferedge.dnn.confidence import softmax_stats
from inferedge.dnn.tensorflow.backend import KerasBackend
from inferedge.dnn.tensorflow.exits import AdaptivePool2D, render_head
from inferedge.dnn.tensorflow.graph import model_flops, weight_bytes
from inferedge.dnn.tensorflow.layout import batch_to_internal
from inferedge.dnn.tensorflow.workflow import KerasWorkflow
from inferedge.dnn.torch import confidence as torch_confidence
from inferedge.dnn.torch import exits as torch_exits
from inferedge.dnn.torch.backend import TorchBackend
from tests.dnn.backend_cases import HEADS, head_layers
from tests.dnn.tensorflow.conftest import Planned

SHAPE = (3, 16, 16)


def plain_cnn_torch(num_classes: int = 10) -> nn.Module:
    """`tests.dnn.tensorflow.models:plain_cnn`, in torch."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 32),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(32, num_classes),
    )


# (torch reference, Keras reference) of the same architecture.
TWINS = {
    "residual": ("tests.models:small_resnet", "small_resnet"),
    "plain": (
        "tests.dnn.tensorflow.test_parity:plain_cnn_torch",
        "tests.dnn.tensorflow.models:plain_cnn",
    ),
}


def structure(cuts: tuple[CutPoint, ...]) -> list[tuple[object, ...]]:
    """Everything about cut points but their names, which each framework picks."""
    return [
        (c.index, c.shape, c.dtype, c.activation_bytes, c.cum_flops, c.cum_param_bytes)
        for c in cuts
    ]


@pytest.fixture(scope="module")
def twin_cuts() -> dict[str, tuple[tuple[CutPoint, ...], tuple[CutPoint, ...]]]:
    return {
        name: (
            TorchBackend().cut_points(torch_ref, 10, SHAPE),
            KerasBackend().cut_points(keras_ref, 10, SHAPE),
        )
        for name, (torch_ref, keras_ref) in TWINS.items()
    }


@pytest.mark.parametrize("name", TWINS)
def test_same_architecture_gives_the_same_cut_points(
    name: str, twin_cuts: dict[str, tuple[tuple[CutPoint, ...], tuple[CutPoint, ...]]]
) -> None:
    torch_cuts, keras_cuts = twin_cuts[name]
    assert len(keras_cuts) >= 8
    assert structure(keras_cuts) == structure(torch_cuts)


def flops_profile(cuts: tuple[CutPoint, ...], device: str, ms_per_gflop: float) -> Any:
    """A profile whose latencies are FLOPs at a fixed speed: the same for both frameworks."""
    segments = [
        Segment(
            index=i,
            flops=cut.cum_flops - prev.cum_flops,
            param_bytes=cut.cum_param_bytes - prev.cum_param_bytes,
            measurements=(
                SegmentMeasurement(
                    batch_size=1,
                    median_ms=(cut.cum_flops - prev.cum_flops) / 1e9 * ms_per_gflop + 0.01,
                    p95_ms=(cut.cum_flops - prev.cum_flops) / 1e9 * ms_per_gflop + 0.02,
                    samples=1,
                    peak_memory_bytes=2 * cut.activation_bytes,
                ),
            ),
        )
        for i, (prev, cut) in enumerate(pairwise(cuts), start=1)
    ]
    return assemble_profile(
        cuts,
        segments,
        device_name=device,
        memory_bytes=2**30,
        model_name="twin",
        input_shape=SHAPE,
        num_classes=10,
        batch_sizes=(1,),
    )


def decisions(plan: Plan) -> tuple[object, ...]:
    exits = [(e.part, e.cut_index, e.shape, round(e.position, 9)) for e in plan.exits]
    return (plan.split, plan.final_cut, exits, plan.transfer_bytes)


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize(
    "request_",
    [
        PlanRequest(placement="pareto", edge_exits=2, cloud_exits=2),
        PlanRequest(strategy="memory", memory_fraction=0.4, edge_exits=3, cloud_exits=1),
    ],
)
def test_same_timings_give_the_same_plan(
    name: str,
    request_: PlanRequest,
    twin_cuts: dict[str, tuple[tuple[CutPoint, ...], tuple[CutPoint, ...]]],
) -> None:
    plans = [
        make_plan(flops_profile(cuts, "edge", 200.0), flops_profile(cuts, "cloud", 5.0), request_)
        for cuts in twin_cuts[name]
    ]
    assert plans[0].exits
    assert decisions(plans[0]) == decisions(plans[1])


def torch_head_costs(head: nn.Module, in_shape: tuple[int, ...]) -> tuple[int, int]:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        head.eval()(torch.zeros(1, *in_shape))
    return counter.get_total_flops(), sum(p.numel() * p.element_size() for p in head.parameters())


@pytest.mark.parametrize("name", HEADS)
def test_rendered_heads_cost_the_same(name: str) -> None:
    in_shape, spec = head_layers(name)
    keras_head = render_head(spec, in_shape, 10)
    torch_head = torch_exits.render_head(spec, in_shape, 10)
    keras_costs = (model_flops(keras_head), sum(weight_bytes(keras_head).values()))
    assert keras_costs == torch_head_costs(torch_head, in_shape)
    assert keras_costs[0] > 0


def test_exits_of_the_same_plan_sit_at_the_same_place_and_cost_the_same(
    planned: Planned, workflow: KerasWorkflow
) -> None:
    # The plan the Keras backbone was planned with, applied to its torch twin: same cuts, same
    # shapes, and heads rendered from one spec cost the same in both frameworks.
    torch_cuts = TorchBackend().cut_points("tests.models:small_resnet", 10, SHAPE)
    assert structure(torch_cuts) == structure(planned.backbone.graph.cut_points)
    costs = workflow.head_costs(planned.plan, planned.exits)
    for exit_point, cost in zip(planned.plan.exits, costs, strict=True):
        assert torch_cuts[exit_point.cut_index].shape == exit_point.shape
        layers = preset_layers("sdn", exit_point.shape, ())
        torch_head = torch_exits.render_head(layers, exit_point.shape, 10)
        assert (cost.flops, cost.param_bytes) == torch_head_costs(torch_head, exit_point.shape)


def copy_weights(torch_head: nn.Module, keras_head: Any) -> None:
    """Put the torch head's weights (and BatchNorm statistics) into the Keras head."""
    torch_layers = [
        m for m in torch_head.modules() if any(True for _ in m.parameters(recurse=False))
    ]
    keras_layers = [layer for layer in keras_head.layers if layer.weights]
    assert len(torch_layers) == len(keras_layers)
    for source, target in zip(torch_layers, keras_layers, strict=True):
        if isinstance(source, nn.Conv2d):
            arrays = [source.weight.permute(2, 3, 1, 0)]
            arrays += [source.bias] if source.bias is not None else []
        elif isinstance(source, nn.Linear):
            arrays = [source.weight.T]
            arrays += [source.bias] if source.bias is not None else []
        elif isinstance(source, nn.BatchNorm1d | nn.BatchNorm2d):
            assert source.running_mean is not None
            assert source.running_var is not None
            arrays = [source.weight, source.bias, source.running_mean, source.running_var]
        else:
            assert isinstance(source, torch_exits.MixedPool)
            assert isinstance(target, AdaptivePool2D)
            arrays = [source.blend]
        target.set_weights([a.detach().numpy() for a in arrays])


@pytest.mark.parametrize("name", HEADS)
def test_heads_compute_what_torch_heads_compute_with_the_same_weights(name: str) -> None:
    in_shape, spec = head_layers(name)
    torch.manual_seed(0)
    torch_head = torch_exits.render_head(spec, in_shape, 10).eval()
    with torch.no_grad():
        for module in torch_head.modules():
            if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                # Statistics away from (0, 1), so using them differently would show.
                module.running_mean.uniform_(-1, 1)  # type: ignore[union-attr]
                module.running_var.uniform_(0.5, 2)  # type: ignore[union-attr]
            if isinstance(module, torch_exits.MixedPool):
                module.blend.fill_(0.7)
    keras_head = render_head(spec, in_shape, 10)
    copy_weights(torch_head, keras_head)
    x = np.random.default_rng(3).standard_normal((4, *in_shape)).astype(np.float32)
    with torch.no_grad():
        expected = torch_head(torch.from_numpy(x)).numpy()
    got = np.asarray(keras_head(batch_to_internal(x), training=False))
    assert np.abs(got - expected).max() <= 1e-5


def test_confidence_is_computed_like_torchs() -> None:
    rng = np.random.default_rng(0)
    logits = np.concatenate(
        [
            rng.standard_normal((200, 10)).astype(np.float32) * 4,
            np.array([[1e3, -1e3] + [0.0] * 8, [0.0] * 10, [-50.0] * 9 + [60.0]], np.float32),
        ]
    )
    top, entropy, prediction = softmax_stats(logits)
    t_top, t_entropy, t_prediction = torch_confidence.softmax_stats(torch.from_numpy(logits))
    assert np.abs(top - t_top.numpy()).max() <= 1e-14
    assert np.abs(entropy - t_entropy.numpy()).max() <= 1e-14
    assert np.array_equal(prediction, t_prediction.numpy())
    assert top.dtype == entropy.dtype == np.float64
    assert entropy[-3] == 0.0
    assert entropy[-2] == pytest.approx(1.0)
    one_class = softmax_stats(np.zeros((2, 1), np.float32))
    assert list(one_class[0]) == [1.0, 1.0]
    assert list(one_class[1]) == [0.0, 0.0]
