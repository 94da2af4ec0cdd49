"""`TorchWorkflow`: the `inferedge.dnn.protocols.Workflow` steps for PyTorch models.

A thin adapter over the torch modules the CLI already uses (`pipeline`, `train`, `export`):
backbones are `pipeline.Backbone`s and exits carry `pipeline.TrainedExit`s, and loaded steps
wrap the exported modules as numpy-in, numpy-out callables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import torch

from inferedge.core.calibration import Observations
from inferedge.core.exits import ExitHeadSpec
from inferedge.core.manifest import Calibration, Manifest
from inferedge.core.plan import Plan
from inferedge.core.progress import ProgressCallback
from inferedge.core.roles import Role
from inferedge.core.sweep import HeadCost
from inferedge.dnn.data import Dataset, Splits
from inferedge.dnn.protocols import (
    ExitHandle,
    ExitsTrained,
    RunnableStep,
    Schedule,
    Trained,
)
from inferedge.dnn.torch import export as _export
from inferedge.dnn.torch import pipeline as _pipeline
from inferedge.dnn.torch import train as _train
from inferedge.dnn.torch.graph import build_cut_graph
from inferedge.dnn.torch.loader import load_model
from inferedge.dnn.torch.weights import WeightsInfo, save_weights

_DEFAULT_PATIENCE = 5


def _trained(exits: Sequence[ExitHandle]) -> list[_pipeline.TrainedExit]:
    return [cast(_pipeline.TrainedExit, e.model) for e in exits]


class TorchWorkflow:
    """Everything between a model name and served parts, for PyTorch."""

    framework = "torch"
    weights_suffix = ".pt"
    exits_suffix = ".pt"

    def new_backbone(
        self, model_ref: str, num_classes: int, input_shape: tuple[int, ...], seed: int
    ) -> _pipeline.Backbone:
        """A freshly initialised zoo or factory model (or the user's `.pt2`), with its cut graph."""
        torch.manual_seed(seed)
        loaded = load_model(model_ref, num_classes, input_shape)
        graph = build_cut_graph(
            loaded.module,
            torch.zeros(1, *input_shape),
            name=loaded.name,
            exported=loaded.kind == "export",
        )
        info = WeightsInfo(model_ref, num_classes, input_shape, torch.__version__)
        return _pipeline.Backbone(loaded.module, graph, info)

    def train_backbone(
        self,
        backbone: _pipeline.Backbone,
        splits: Splits,
        schedule: Schedule,
        *,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> Trained:
        """Train in place on `splits.train`, early-stopping on `splits.val`."""
        result = _train.train_backbone(
            backbone.module,
            splits,
            epochs=schedule.epochs,
            batch_size=schedule.batch_size,
            lr=schedule.learning_rate,
            seed=seed,
            patience=schedule.patience or _DEFAULT_PATIENCE,
            progress=progress,
        )
        return Trained.of(result)

    def save_backbone(self, backbone: _pipeline.Backbone, path: Path) -> None:
        """Write the state dict with the model reference, classes and input shape."""
        info = backbone.info
        save_weights(
            backbone.module,
            path,
            model_ref=info.model_ref,
            num_classes=info.num_classes,
            input_shape=info.input_shape,
        )

    def load_backbone(self, path: Path) -> _pipeline.Backbone:
        """The backbone a weights file belongs to, with those weights and its cut graph."""
        return _pipeline.load_backbone(path)

    def check_plan(self, plan: Plan, backbone: _pipeline.Backbone, source: str) -> None:
        """Refuse a plan made for another model than the backbone (one line naming both)."""
        _pipeline.check_plan(plan, backbone, source)

    def build_exits(
        self,
        plan: Plan,
        backbone: _pipeline.Backbone,
        spec: ExitHeadSpec | Mapping[int, ExitHeadSpec],
        seed: int,
    ) -> list[ExitHandle]:
        """Untrained, shape-checked heads for every exit of `plan`."""
        return [
            ExitHandle(e.cut_index, e.part, e)
            for e in _pipeline.build_exits(plan, backbone, spec, seed)
        ]

    def train_exits(
        self,
        backbone: _pipeline.Backbone,
        exits: Sequence[ExitHandle],
        splits: Splits,
        schedule: Schedule,
        *,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> ExitsTrained:
        """Train the heads in place on the frozen backbone (BatchNorm statistics included)."""
        if not exits:
            return ExitsTrained((), (), 0, 0.0)
        result = _train.train_exits(
            backbone.graph,
            [(e.cut_index, e.module) for e in _trained(exits)],
            splits,
            epochs=schedule.epochs,
            batch_size=schedule.batch_size,
            lr=schedule.learning_rate,
            seed=seed,
            patience=schedule.patience or _DEFAULT_PATIENCE,
            progress=progress,
        )
        return ExitsTrained(
            result.val_accuracy, result.test_accuracy, result.best_epoch, result.seconds
        )

    def save_exits(self, path: Path, plan: Plan, exits: Sequence[ExitHandle]) -> None:
        """Write the heads' layers and state dicts for `plan` (a `torch.save` file), atomically."""
        _pipeline.save_exits(path, plan, _trained(exits))

    def load_exits(self, path: Path, plan: Plan) -> list[ExitHandle]:
        """The heads saved for `plan`: layers re-validated, tensors loaded with weights_only."""
        return [ExitHandle(e.cut_index, e.part, e) for e in _pipeline.load_exits(path, plan)]

    def head_costs(self, plan: Plan, exits: Sequence[ExitHandle]) -> list[HeadCost]:
        """FLOPs (one sample) and parameter bytes of every head."""
        return _pipeline.head_costs(plan, _trained(exits))

    def observe(
        self,
        plan: Plan,
        backbone: _pipeline.Backbone,
        exits: Sequence[ExitHandle],
        data: Dataset,
        split: str,
    ) -> Observations:
        """What every exit and the final classifier say about each sample of `data`."""
        return _pipeline.observe_exits(plan, backbone, _trained(exits), data, split)

    def export(
        self,
        plan: Plan,
        backbone: _pipeline.Backbone,
        exits: Sequence[ExitHandle],
        calibration: Calibration | None,
        out_dir: Path,
    ) -> Manifest:
        """Write both parts' `.pt2` files under `out_dir` and return their manifest."""
        heads = {e.cut_index: e.module for e in _trained(exits)}
        files, steps = _export.export_partitions(backbone.graph, plan, heads, out_dir)
        return _export.make_manifest(plan, files, steps, calibration)

    def load_part(
        self, manifest: Manifest, part: Role, root: Path, *, whole_chain: bool = False
    ) -> list[RunnableStep]:
        """Load a part's files from `root`, refusing any file whose sha256 differs."""
        return [
            RunnableStep(
                s.step,
                _export.array_fn(s.segment),
                _export.array_fn(s.head) if s.head is not None else None,
            )
            for s in _export.load_part(manifest, part, root, whole_chain=whole_chain)
        ]
