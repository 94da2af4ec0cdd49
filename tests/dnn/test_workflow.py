"""The torch side of the framework-neutral workflow: every step, then the exported chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inferedge.core.exits import ExitHeadSpec
from inferedge.core.plan import PlanRequest
from inferedge.core.planner import make_plan
from inferedge.dnn.data import load_dataset, split_dataset
from inferedge.dnn.frameworks import get_backend, get_workflow
from inferedge.dnn.protocols import ProfileRequest, Schedule

MODEL = "tests.models:small_resnet"
SHAPE = (3, 16, 16)


def test_the_torch_workflow_trains_exits_observes_exports_and_loads(tmp_path: Path) -> None:
    data = load_dataset("digits", SHAPE)
    splits = split_dataset(data, 0.15, 0.15, seed=0)
    workflow = get_workflow("torch")
    backbone = workflow.new_backbone(MODEL, 10, SHAPE, seed=0)
    trained = workflow.train_backbone(backbone, splits, Schedule(1, 64, 1e-3), seed=0)
    assert trained.epochs == 1
    assert 0.0 <= trained.test_accuracy <= 1.0
    weights = tmp_path / f"backbone{workflow.weights_suffix}"
    workflow.save_backbone(backbone, weights)
    backbone = workflow.load_backbone(weights)

    base = {"model_ref": MODEL, "num_classes": 10, "input_shape": SHAPE,
            "batch_sizes": (1,), "warmup": 0, "repeats": 1}  # fmt: skip
    backend = get_backend("torch")
    edge = backend.profile(ProfileRequest(**base, device_name="edge", emulate_slowdown=4.0))  # type: ignore[arg-type]
    cloud = backend.profile(ProfileRequest(**base, device_name="cloud"))  # type: ignore[arg-type]
    plan = make_plan(edge, cloud, PlanRequest(strategy="memory", memory_fraction=0.5))
    exits = workflow.build_exits(plan, backbone, ExitHeadSpec(preset="minimal"), seed=0)
    assert [e.cut_index for e in exits] == [e.cut_index for e in plan.exits]
    workflow.train_exits(backbone, exits, splits, Schedule(1, 64, 1e-3), seed=0)
    assert [c.cut_index for c in workflow.head_costs(plan, exits)] == [e.cut_index for e in exits]
    observed = workflow.observe(plan, backbone, exits, splits.val, "val")
    assert observed.num_samples == len(splits.val)

    manifest = workflow.export(plan, backbone, exits, None, tmp_path / "artifacts")
    x = splits.test.x[:8]
    value = x
    for part in ("edge", "cloud"):
        for step in workflow.load_part(manifest, part, tmp_path / "artifacts"):  # type: ignore[arg-type]
            value = step.segment(value)
    with torch.inference_mode():
        expected = backbone.module(torch.from_numpy(x)).numpy()
    assert np.abs(value - expected).max() <= 1e-4
