"""`KerasWorkflow` behind `get_workflow("tensorflow")`: the example pipeline's steps, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inferedge.api.convert import plan_request
from inferedge.api.documents import parse_documents
from inferedge.core.errors import InferedgeError, ModelRefError
from inferedge.core.exits import ExitHeadSpec, ExitSpecError
from inferedge.core.planner import make_plan
from inferedge.dnn.data import Splits
from inferedge.dnn.frameworks import get_backend, get_workflow
from inferedge.dnn.protocols import ProfileRequest, Schedule
from inferedge.dnn.tensorflow.layout import batch_to_internal
from inferedge.dnn.tensorflow.loader import load_model
from inferedge.dnn.tensorflow.workflow import KerasBackbone, KerasWorkflow
from tests.dnn.tensorflow.conftest import Planned

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "digits-keras.yaml"


def outputs(backbone: KerasBackbone, x: np.ndarray) -> np.ndarray:
    return np.asarray(backbone.graph.model(batch_to_internal(x), training=False))


def test_get_workflow_gives_the_keras_workflow() -> None:
    workflow = get_workflow("tensorflow")
    assert isinstance(workflow, KerasWorkflow)
    assert (workflow.framework, workflow.weights_suffix) == ("tensorflow", ".weights.h5")


def test_the_example_pipeline_runs_through_the_keras_workflow(
    tmp_path: Path, small_splits: Splits
) -> None:
    docs = parse_documents(EXAMPLE.read_text(), EXAMPLE.name)
    (pipeline,) = docs.pipelines
    spec = pipeline.spec
    assert spec.model.framework == "tensorflow"
    shape = spec.model.input_shape
    profiles = {p.metadata.name: p for p in docs.profiles}
    edge_resource = profiles[spec.edge.reference.profile]
    cloud_resource = profiles[spec.cloud.profile]

    workflow = get_workflow(spec.model.framework)
    backbone = workflow.new_backbone(spec.model.name, 10, shape, seed=spec.dataset.seed)
    schedule = spec.dataset.backbone_training
    # The example's schedule, shortened: this checks the steps fit together, not accuracy.
    workflow.train_backbone(
        backbone, small_splits, Schedule(2, schedule.batch_size, 3e-3, schedule.patience), seed=0
    )
    weights = tmp_path / f"backbone{workflow.weights_suffix}"
    workflow.save_backbone(backbone, weights)
    backbone = workflow.load_backbone(weights)

    backend = get_backend(spec.model.framework)
    measured = {}
    for role, resource in (("edge", edge_resource), ("cloud", cloud_resource)):
        measured[role] = backend.profile(
            ProfileRequest(
                model_ref=spec.model.name,
                num_classes=10,
                input_shape=shape,
                batch_sizes=resource.spec.profiling.batch_sizes,
                warmup=1,
                repeats=3,
                device_name=resource.metadata.name,
                emulate_slowdown=resource.spec.emulation.slowdown,
            )
        )
    assert measured["edge"].device.emulated_slowdown == 8
    # The memory strategy: the example's latency strategy can be infeasible on 3 timed runs of
    # a busy machine, and this test is about the steps fitting together, not about timing.
    request = plan_request(spec, edge_resource.spec).model_copy(
        update={"strategy": "memory", "memory_fraction": 0.5}
    )
    plan = make_plan(measured["edge"], measured["cloud"], request)
    assert plan.model.framework == "tensorflow"

    exits = workflow.build_exits(plan, backbone, spec.exits.head, seed=0)
    assert [e.cut_index for e in exits] == [e.cut_index for e in plan.exits]
    workflow.train_exits(backbone, exits, small_splits, Schedule(2, 64, 1e-3), seed=0)
    observations = workflow.observe(plan, backbone, exits, small_splits.val, "val")
    assert observations.num_samples == len(small_splits.val)

    manifest = workflow.export(plan, backbone, exits, None, tmp_path / "artifacts")
    x = small_splits.test.x[:8]
    value = x
    for part in ("edge", "cloud"):
        for step in workflow.load_part(manifest, part, tmp_path / "artifacts"):  # type: ignore[arg-type]
            value = step.segment(value)
    assert np.abs(value - outputs(backbone, x)).max() <= 1e-4


def test_observations_agree_with_the_backbone_and_the_heads(
    planned: Planned, workflow: KerasWorkflow, splits: Splits
) -> None:
    data = splits.val
    observations = workflow.observe(planned.plan, planned.backbone, planned.exits, data, "val")
    assert observations.split == "val"
    assert [(e.part, e.cut_index) for e in observations.exits] == [
        (e.part, e.cut_index) for e in planned.plan.exits
    ]
    predictions = outputs(planned.backbone, data.x).argmax(axis=1)
    assert observations.final.correct == tuple(bool(b) for b in predictions == data.y)
    assert observations.final.part == "cloud"
    for exit_handle, seen in zip(planned.exits, observations.exits, strict=True):
        activation = planned.backbone.graph.head(exit_handle.cut_index)(
            batch_to_internal(data.x), training=False
        )
        logits = np.asarray(exit_handle.model.model(activation, training=False), np.float64)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        assert np.allclose(seen.max_softmax, p.max(axis=1), atol=1e-6)
        assert seen.correct == tuple(bool(b) for b in p.argmax(axis=1) == data.y)
        assert all(0.0 <= e <= 1.0 for e in seen.entropy)
    # Trained exits on digits beat chance (0.1) by far.
    accuracies = [sum(e.correct) / len(e.correct) for e in observations.exits]
    assert min(accuracies) > 0.3
    # A deeper exit sees more of the backbone: it is not much worse than the first one.
    assert accuracies[-1] >= accuracies[0] - 0.05
    # Four epochs land between 0.80 and 0.82 here and at 0.796 on AVX2-only CPUs: 5x chance.
    assert planned.backbone_accuracy > 0.5


def test_head_costs_are_flops_and_parameter_bytes(
    planned: Planned, workflow: KerasWorkflow
) -> None:
    costs = workflow.head_costs(planned.plan, planned.exits)
    for cost, exit_point in zip(costs, planned.plan.exits, strict=True):
        assert len(exit_point.shape) == 3
        channels = exit_point.shape[0]
        pooled = channels * min(4, exit_point.shape[1]) ** 2  # the SDN preset pools to 4x4
        assert cost.cut_index == exit_point.cut_index
        assert cost.flops == 2 * pooled * 10
        assert cost.param_bytes == 4 * (pooled * 10 + 10 + 1)  # weights, bias, blend


def test_build_exits_checks_the_spec_against_each_exit(
    planned: Planned, workflow: KerasWorkflow
) -> None:
    first = planned.plan.exits[0]
    with pytest.raises(
        InferedgeError, match=rf"no exit head spec for the edge exit at cut {first.cut_index}"
    ):
        workflow.build_exits(planned.plan, planned.backbone, {}, seed=0)
    too_big = ExitHeadSpec(
        layers=({"type": "conv2d", "out_channels": 4, "kernel_size": 64},)  # type: ignore[arg-type]
    )
    with pytest.raises(
        ExitSpecError, match=rf"^edge exit at cut {first.cut_index} \({first.name}, "
    ):
        workflow.build_exits(planned.plan, planned.backbone, too_big, seed=0)


# A plan for a model of another framework, or for another model of the same framework.
OTHER_MODELS = [
    ({"framework": "torch"}, "torch model 'small_resnet'"),
    ({"source": "resnet50"}, "tensorflow model 'resnet50'"),
]


@pytest.mark.parametrize(("update", "planned_for"), OTHER_MODELS)
def test_a_plan_of_another_model_is_refused(
    planned: Planned,
    workflow: KerasWorkflow,
    small_splits: Splits,
    *,
    tmp_path: Path,
    update: dict[str, str],
    planned_for: str,
) -> None:
    model = planned.plan.model.model_copy(update=update)
    plan = planned.plan.model_copy(update={"model": model})
    refused = rf"^plan: the plan is for {planned_for}"
    with pytest.raises(InferedgeError, match=refused):
        workflow.build_exits(plan, planned.backbone, ExitHeadSpec(preset="sdn"), seed=0)
    with pytest.raises(InferedgeError, match=r"the weights hold tensorflow model 'small_resnet'"):
        workflow.observe(plan, planned.backbone, planned.exits, small_splits.val, "val")
    with pytest.raises(InferedgeError, match=refused):
        workflow.export(plan, planned.backbone, planned.exits, None, tmp_path)


def test_a_saved_model_cannot_become_a_backbone(tmp_path: Path, workflow: KerasWorkflow) -> None:
    path = tmp_path / "exported"
    load_model("small_resnet", 10, (3, 16, 16)).model.export(str(path), verbose=False)
    with pytest.raises(ModelRefError, match=r"one opaque layer: it can be profiled, but not cut"):
        workflow.new_backbone(str(path), 10, (3, 16, 16), seed=0)


def test_a_user_keras_file_keeps_its_weights_through_save_and_load(
    tmp_path: Path, workflow: KerasWorkflow
) -> None:
    from inferedge.dnn.tensorflow.export import save_model

    source = load_model("tests.dnn.tensorflow.models:nested_blocks", 10, (3, 16, 16), seed=7).model
    path = tmp_path / "mine.keras"
    save_model(source, path)
    backbone = workflow.new_backbone(str(path), 10, (3, 16, 16), seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    expected = np.asarray(source(batch_to_internal(x), training=False))
    assert np.abs(outputs(backbone, x) - expected).max() <= 1e-5
    weights = tmp_path / "mine.weights.h5"
    workflow.save_backbone(backbone, weights)
    reloaded = workflow.load_backbone(weights)
    assert reloaded.info.model_ref == str(path)
    assert reloaded.graph.cut_points == backbone.graph.cut_points
    assert np.array_equal(outputs(reloaded, x), outputs(backbone, x))


def test_only_the_tensorflow_package_imports_tensorflow() -> None:
    code = (
        "import sys\n"
        "import inferedge.dnn.frameworks, inferedge.dnn.protocols, inferedge.dnn.data\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "import inferedge.dnn.tensorflow.workflow, inferedge.dnn.tensorflow.backend\n"
        "assert 'tensorflow' in sys.modules\n"
        "assert 'torch' not in sys.modules, 'the Keras backend must not need torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=300)
