"""Real partitions for the runtime tests: a small residual CNN, profiled, planned, exported.

Built once per session into a local artifact store, under four plans: `main` (two exits on each
side), `other` (one on each side, for hot swaps and plan mismatches), `no-edge-exit` (none on
the edge, so a failed offload has nothing to fall back on) and `whole` (all on the edge with two
exits, as a site's pools serve it); and `space`, an operating space with
a head at every cut (its space file's observations are made up: serving does not read them).
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import torch
from torch import nn

from inferedge.core.exits import ExitHeadSpec
from inferedge.core.link import Link
from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.profile import MeasuredProfile
from inferedge.core.roles import Role
from inferedge.core.space import LinkGrid, ObjectiveSpec, SpaceCandidate, SpaceInputs
from inferedge.core.space_plan import make_space_plan
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.torch.backend import TorchBackend
from inferedge.dnn.torch.graph import build_cut_graph
from inferedge.dnn.torch.loader import load_model
from inferedge.dnn.torch.pipeline import Backbone
from inferedge.dnn.torch.weights import WeightsInfo
from inferedge.dnn.torch.workflow import TorchWorkflow
from inferedge.runtime.partition import Partition
from inferedge.runtime.partition_loading import load_partition
from inferedge.steps.export import export_to_store
from inferedge.storage.artifacts import read_manifest
from inferedge.storage.local import LocalStore
from inferedge.transport.client import Messenger
from inferedge.transport.server import EmbeddedNats

MODEL = "tests.models:small_resnet"
SHAPE = (3, 16, 16)
CLASSES = 10
PLANS = {
    "main": PlanRequest(strategy="memory", memory_fraction=0.5, edge_exits=2, cloud_exits=2),
    "other": PlanRequest(strategy="memory", memory_fraction=0.5, edge_exits=1, cloud_exits=1),
    "no-edge-exit": PlanRequest(
        strategy="memory", memory_fraction=0.5, edge_exits=0, cloud_exits=1
    ),
    "whole": PlanRequest(strategy="memory", memory_fraction=1.0, edge_exits=2, cloud_exits=0),
}


@dataclass(frozen=True)
class Exported:
    """The session's artifact store, what is in it, and the model it was cut from."""

    store: LocalStore
    prefixes: dict[str, str]
    plans: dict[str, Plan]
    model: nn.Module
    cache: Path

    def pin(self, prefix: str) -> str:
        """The sha256 of the manifest under `prefix`: what a trusted side pins a server to."""
        return hashlib.sha256(read_manifest(self.store, prefix)).hexdigest()

    def load(self, plan: str, part: Role, *, whole_chain: bool = False) -> Partition:
        """Load one part of one plan through the shared download cache."""
        prefix = self.prefixes[plan]
        return load_partition(
            self.store, prefix, part, self.cache, self.pin(prefix), whole_chain=whole_chain
        )

    def predict(self, x: np.ndarray) -> list[int]:
        """The full model's argmax, the answer the final classifier must give."""
        with torch.inference_mode():
            predictions: list[int] = self.model(torch.from_numpy(x)).argmax(1).tolist()
        return predictions


def _profiles() -> tuple[MeasuredProfile, MeasuredProfile]:
    base = {"model_ref": MODEL, "num_classes": CLASSES, "input_shape": SHAPE,
            "batch_sizes": (1,), "warmup": 0, "repeats": 1}  # fmt: skip
    backend = TorchBackend()
    cloud = backend.profile(ProfileRequest(**base, device_name="cloud"))  # type: ignore[arg-type]
    edge = backend.profile(
        ProfileRequest(**base, device_name="edge", emulate_slowdown=3.0)  # type: ignore[arg-type]
    )
    return edge, cloud


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Every plan of PLANS exported and committed to one local store (untrained exit heads)."""
    torch.manual_seed(0)
    loaded = load_model(MODEL, CLASSES, SHAPE)
    module = loaded.module.eval()
    graph = build_cut_graph(module, torch.zeros(1, *SHAPE), name=loaded.name)
    backbone = Backbone(module, graph, WeightsInfo(MODEL, CLASSES, SHAPE, torch.__version__))
    edge, cloud = _profiles()
    root = tmp_path_factory.mktemp("runtime")
    store = LocalStore(root / "store")
    prefixes, plans = {}, {}
    workflow = TorchWorkflow()
    for name, request in PLANS.items():
        plan = make_plan(edge, cloud, request)
        offloads = 0 < plan.split < plan.final_cut
        assert offloads != (name == "whole"), "every test plan but `whole` must offload"
        exits = workflow.build_exits(plan, backbone, ExitHeadSpec(preset="minimal"), seed=1)
        prefixes[name] = export_to_store(
            plan,
            workflow,
            backbone,
            exits,
            store,
            calibration=None,
            namespace="default",
            pipeline=name,
            set_id=plan.hash,
        ).prefix
        plans[name] = plan
    space = make_space_plan(edge, cloud, PlanRequest(), candidate_count=None)
    exits = workflow.build_exits(space, backbone, ExitHeadSpec(preset="minimal"), seed=1)
    prefixes["space"] = export_to_store(
        space,
        workflow,
        backbone,
        exits,
        store,
        calibration=None,
        namespace="default",
        pipeline="space",
        set_id=space.hash,
        space=made_up_space(space, edge, cloud),
    ).prefix
    plans["space"] = space
    assert len({p.hash for p in plans.values()}) == len(PLANS) + 1
    return Exported(store, prefixes, plans, module, root / "cache")


def made_up_space(plan: Plan, edge: MeasuredProfile, cloud: MeasuredProfile) -> SpaceInputs:
    """A space file for `plan` whose exits said random things of 50 samples."""
    rng = np.random.default_rng(0)
    samples = 50
    return SpaceInputs(
        plan_hash=plan.hash,
        max_split=plan.split,
        thresholds=(0.5, 0.8, 1.0),
        batch_size=1,
        edge=edge,
        cloud=cloud,
        candidates=tuple(
            SpaceCandidate(
                cut_index=e.cut_index,
                confidence=tuple(rng.uniform(0.1, 1.0, samples).tolist()),
                correct=tuple(bool(c) for c in rng.integers(0, 2, samples)),
                edge_head_ms=0.1,
                cloud_head_ms=0.05,
            )
            for e in plan.exits
        ),
        final_correct=tuple(bool(c) for c in rng.integers(0, 2, samples)),
        objective=ObjectiveSpec(kind="deadline", deadline_ms=50.0),
        grid=LinkGrid(bandwidths_mbps=(1.0, 10.0, 100.0), rtts_ms=(0.0, 50.0)),
        link=Link(bandwidth_mbps=10.0, rtt_ms=0.0),
    )


@pytest.fixture(scope="session")
def edge_part(exported: Exported) -> Partition:
    """The edge part of the main plan."""
    return exported.load("main", "edge")


@pytest.fixture(scope="session")
def cloud_part(exported: Exported) -> Partition:
    """The cloud part of the main plan."""
    return exported.load("main", "cloud")


@pytest.fixture
def images() -> Callable[[int], np.ndarray]:
    """`images(n)`: n random input samples, the same ones for the same n in every test."""

    def make(n: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)

    return make


def infer(url: str, x: np.ndarray, model: str = "main") -> dict[str, Any]:
    """POST one JSON inference of `x` to the edge at `url`; the decoded response."""
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}  # fmt: skip
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@pytest_asyncio.fixture
async def server() -> AsyncIterator[EmbeddedNats]:
    """A nats-server of its own for one test, without authorization."""
    async with EmbeddedNats() as running:
        yield running


@pytest_asyncio.fixture
async def messenger(server: EmbeddedNats) -> AsyncIterator[Messenger]:
    """A Messenger connected to the test's own nats-server."""
    async with await Messenger.connect(server.url) as m:
        yield m
