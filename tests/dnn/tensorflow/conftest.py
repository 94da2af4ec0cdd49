"""Shared fixtures of the Keras backend's tests: digits, and one trained and planned backbone.

Training and profiling happen once per session; tests that need to change a model build their
own, so the shared ones stay as the fixtures made them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from inferedge.core.exits import ExitHeadSpec
from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.profile import MeasuredProfile
from inferedge.dnn.data import Splits, load_dataset, split_dataset
from inferedge.dnn.protocols import ExitHandle, ProfileRequest, Schedule
from inferedge.dnn.tensorflow.backend import KerasBackend
from inferedge.dnn.tensorflow.workflow import KerasBackbone, KerasWorkflow

SHAPE = (3, 16, 16)
MODEL = "small_resnet"


@dataclass(frozen=True)
class Planned:
    """A trained small_resnet, its two profiles, a plan with exits, and the trained exits."""

    backbone: KerasBackbone
    edge: MeasuredProfile
    cloud: MeasuredProfile
    plan: Plan
    exits: list[ExitHandle]
    backbone_accuracy: float


@pytest.fixture(scope="session")
def workflow() -> KerasWorkflow:
    return KerasWorkflow()


@pytest.fixture(scope="session")
def splits() -> Splits:
    """Real digits at 3x16x16: 1,257 train / 270 val / 270 test images."""
    return split_dataset(load_dataset("digits", SHAPE), seed=0)


@pytest.fixture(scope="session")
def small_splits(splits: Splits) -> Splits:
    """A quarter of each split, for tests that train something of their own."""
    return Splits(
        *(
            ds.subset(np.arange(len(ds) // 4), f"{ds.name}/4")
            for ds in (splits.train, splits.val, splits.test)
        )
    )


@pytest.fixture(scope="session")
def planned(workflow: KerasWorkflow, splits: Splits) -> Planned:
    backbone = workflow.new_backbone(MODEL, 10, SHAPE, seed=0)
    trained = workflow.train_backbone(backbone, splits, Schedule(4, 64, 3e-3), seed=0)
    base = ProfileRequest(
        MODEL, 10, SHAPE, batch_sizes=(1,), warmup=1, repeats=3, device_name="cloud"
    )
    backend = KerasBackend()
    cloud = backend.profile(base)
    edge = backend.profile(
        ProfileRequest(MODEL, 10, SHAPE, (1,), 1, 3, device_name="edge", emulate_slowdown=8.0)
    )
    # Half the model on the edge, so both parts have steps and exits.
    request = PlanRequest(
        strategy="memory", memory_fraction=0.5, placement="pareto", edge_exits=2, cloud_exits=1
    )
    plan = make_plan(edge, cloud, request)
    assert 0 < plan.split < plan.final_cut
    exits = workflow.build_exits(plan, backbone, ExitHeadSpec(preset="sdn"), seed=0)
    workflow.train_exits(backbone, exits, splits, Schedule(4, 64, 3e-3), seed=0)
    return Planned(backbone, edge, cloud, plan, exits, trained.test_accuracy)
