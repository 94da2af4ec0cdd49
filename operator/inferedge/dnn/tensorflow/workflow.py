"""`KerasWorkflow`: the `inferedge.dnn.protocols.Workflow` steps for Keras models.

Backbones are `KerasBackbone`s (the user's model, its cut graph and what identifies it) and
exits carry `KerasHead`s (the declarative layers and the rendered model); both stay inside this
package, since the caller only hands them back. Data arrives as `dnn.data` gives it, N x C x H x
W float32, and loaded parts take and return the shapes their manifest records; the
channels-last layout Keras computes in never leaves this package.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from pydantic import TypeAdapter, ValidationError

from inferedge.core.calibration import Observations
from inferedge.core.errors import InferedgeError, ModelRefError, one_line
from inferedge.core.exits import ExitHeadSpec, Layer
from inferedge.core.manifest import Calibration, Manifest
from inferedge.core.plan import Plan
from inferedge.core.progress import ProgressCallback
from inferedge.core.roles import Role
from inferedge.core.sweep import HeadCost
from inferedge.dnn.data import Dataset, Splits
from inferedge.dnn.protocols import (
    ExitHandle,
    ExitsFileError,
    ExitsTrained,
    RunnableStep,
    Schedule,
    Trained,
)
from inferedge.dnn.tensorflow import export as _export
from inferedge.dnn.tensorflow import train as _train
from inferedge.dnn.tensorflow.exits import render_head, resolve_layers
from inferedge.dnn.tensorflow.graph import CutGraph, build_cut_graph, model_flops, weight_bytes
from inferedge.dnn.tensorflow.layout import describe
from inferedge.dnn.tensorflow.loader import LoadedModel, load_model
from inferedge.dnn.tensorflow.observe import observe
from inferedge.dnn.tensorflow.weights import (
    SUFFIX,
    WeightsInfo,
    check_suffix,
    load_weights,
    read_weights_info,
    save_weights,
)
from inferedge.dnn.weights import check_plan_matches

_DEFAULT_PATIENCE = 5
EXITS_FORMAT = "inferedge.keras-exits/v1"
EXITS_SUFFIX = ".npz"
_META = "meta"
_LAYERS = TypeAdapter(tuple[Layer, ...])


@dataclass(frozen=True)
class KerasBackbone:
    """A Keras model, its cut graph, and what identifies it.

    `model` is the model as the reference gave it (its weights are what is saved);
    `graph.model` is its flat functional view, sharing the same layers and weights.
    """

    model: Any
    graph: CutGraph
    info: WeightsInfo
    name: str


@dataclass(frozen=True)
class KerasHead:
    """One exit head: its declarative layers and the Keras model rendered from them."""

    layers: tuple[Layer, ...]
    model: Any


class KerasWorkflow:
    """Everything between a model name and served parts, for Keras 3 on TensorFlow."""

    framework = "tensorflow"
    weights_suffix = SUFFIX
    exits_suffix = EXITS_SUFFIX

    def new_backbone(
        self, model_ref: str, num_classes: int, input_shape: tuple[int, ...], seed: int
    ) -> KerasBackbone:
        """A freshly initialised zoo model or factory model, or the user's `.keras` file (with
        the weights it holds), with its cut graph."""
        keras.utils.set_random_seed(seed)  # factories draw their weights from the global seed
        loaded = load_model(model_ref, num_classes, input_shape, seed=seed)
        return _backbone(loaded, model_ref, num_classes, input_shape)

    def train_backbone(
        self,
        backbone: KerasBackbone,
        splits: Splits,
        schedule: Schedule,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> Trained:
        """Train in place on `splits.train`, early-stopping on `splits.val`."""
        _check_data(backbone, splits.train)
        result = _train.train_backbone(
            backbone.graph.model,
            splits,
            epochs=schedule.epochs,
            batch_size=schedule.batch_size,
            lr=schedule.learning_rate,
            seed=seed,
            patience=schedule.patience or _DEFAULT_PATIENCE,
            progress=progress,
        )
        return Trained.of(result)

    def save_backbone(self, backbone: KerasBackbone, path: Path) -> None:
        """Write the weights (`.weights.h5`) with the model reference, classes and input shape."""
        info = backbone.info
        save_weights(
            backbone.model,
            path,
            model_ref=info.model_ref,
            num_classes=info.num_classes,
            input_shape=info.input_shape,
        )

    def load_backbone(self, path: Path) -> KerasBackbone:
        """The backbone a weights file belongs to, with those weights and its cut graph."""
        check_suffix(path)
        info = read_weights_info(path)
        loaded = load_model(info.model_ref, info.num_classes, info.input_shape)
        # The cut graph first: tracing builds a Sequential model, which Keras must have built
        # before it loads weights. The graph shares the model's layers, so it sees them too.
        backbone = _backbone(loaded, info.model_ref, info.num_classes, info.input_shape)
        load_weights(
            backbone.model,
            path,
            model_ref=info.model_ref,
            num_classes=info.num_classes,
            input_shape=info.input_shape,
        )
        return backbone

    def check_plan(self, plan: Plan, backbone: KerasBackbone, source: str) -> None:
        """Refuse a plan made for another model than the backbone (one line naming both)."""
        check_plan(plan, backbone, source)

    def build_exits(
        self,
        plan: Plan,
        backbone: KerasBackbone,
        spec: ExitHeadSpec | Mapping[int, ExitHeadSpec],
        seed: int,
    ) -> list[ExitHandle]:
        """Untrained, shape-checked heads for every exit of `plan`."""
        check_plan(plan, backbone, "plan")
        keras.utils.set_random_seed(seed)
        exits = []
        for e in plan.exits:
            head_spec = spec if isinstance(spec, ExitHeadSpec) else spec.get(e.cut_index)
            if head_spec is None:
                raise InferedgeError(
                    f"no exit head spec for the {e.part} exit at cut {e.cut_index}"
                )
            layers = resolve_layers(head_spec, e.shape, backbone.graph)
            where = f"{e.part} exit at cut {e.cut_index} ({e.name}, {describe(e.shape)})"
            model = render_head(layers, e.shape, plan.model.num_classes, where)
            exits.append(ExitHandle(e.cut_index, e.part, KerasHead(layers, model)))
        return exits

    def train_exits(  # noqa: PLR0917  (the Workflow protocol's signature)
        self,
        backbone: KerasBackbone,
        exits: Sequence[ExitHandle],
        splits: Splits,
        schedule: Schedule,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> ExitsTrained:
        """Train the heads in place on the frozen backbone (BatchNorm statistics included)."""
        if not exits:
            return ExitsTrained((), (), 0, 0.0)
        _check_data(backbone, splits.train)
        result = _train.train_exits(
            backbone.graph,
            [(e.cut_index, _head(e).model) for e in exits],
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
        """Write the heads for `plan` as one `.npz`: a JSON entry (format, plan hash, each
        head's cut and declarative layers) and every head's weights as plain arrays, so loading
        runs no code and unpickles nothing. Written under a temporary name, then renamed."""
        meta = {
            "format": EXITS_FORMAT,
            "plan_hash": plan.hash,
            "exits": [
                {
                    "cut_index": e.cut_index,
                    "part": e.part,
                    "layers": json.loads(_LAYERS.dump_json(_head(e).layers)),
                }
                for e in exits
            ],
        }
        arrays: dict[str, np.ndarray] = {_META: np.array(json.dumps(meta))}
        for i, e in enumerate(exits):
            for j, weight in enumerate(_head(e).model.get_weights()):
                arrays[f"exit{i}_w{j}"] = np.asarray(weight)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        with partial.open("wb") as file:
            np.savez(file, allow_pickle=False, **arrays)
        os.replace(partial, path)

    def load_exits(self, path: Path, plan: Plan) -> list[ExitHandle]:
        """Rebuild the heads saved for `plan`: layers are re-validated, never executed as code."""
        if not path.is_file():
            raise ExitsFileError(f"{path}: no such exits file (run `inferedge train-exits` first)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            meta = json.loads(str(arrays.pop(_META)))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ExitsFileError(
                f"{path}: not an inferedge Keras exits file ({one_line(exc)})"
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != EXITS_FORMAT:
            raise ExitsFileError(f"{path}: not an inferedge Keras exits file ({EXITS_FORMAT})")
        if meta.get("plan_hash") != plan.hash:
            raise ExitsFileError(
                f"{path}: trained for plan {meta.get('plan_hash')}, not {plan.hash}; "
                "re-run `inferedge train-exits` for this plan"
            )
        shapes = {e.cut_index: (e.part, e.shape) for e in plan.exits}
        exits = []
        for i, entry in enumerate(meta.get("exits", [])):
            cut = entry.get("cut_index") if isinstance(entry, dict) else None
            if cut not in shapes:
                raise ExitsFileError(f"{path}: has an exit at cut {cut} that the plan does not")
            try:
                layers = _LAYERS.validate_python(entry.get("layers"))
            except ValidationError as exc:
                raise ExitsFileError(f"{path}: exit at cut {cut}: {one_line(exc)}") from None
            part, shape = shapes[cut]
            model = render_head(layers, shape, plan.model.num_classes, f"exit at cut {cut}")
            count = len(model.get_weights())
            names = [f"exit{i}_w{j}" for j in range(count)]
            missing = [n for n in names if n not in arrays]
            if missing:
                raise ExitsFileError(f"{path}: exit at cut {cut}: missing weights {missing[0]}")
            try:
                model.set_weights([arrays.pop(n) for n in names])
            except ValueError as exc:
                raise ExitsFileError(f"{path}: exit at cut {cut}: {one_line(exc)}") from None
            exits.append(ExitHandle(cut, part, KerasHead(layers, model)))
        if arrays:
            raise ExitsFileError(f"{path}: holds weights no head takes ({sorted(arrays)[0]})")
        if sorted(e.cut_index for e in exits) != sorted(shapes):
            raise ExitsFileError(
                f"{path}: holds exits at {[e.cut_index for e in exits]}, "
                f"the plan has {sorted(shapes)}"
            )
        return exits

    def head_costs(self, plan: Plan, exits: Sequence[ExitHandle]) -> list[HeadCost]:
        """FLOPs (one sample) and parameter bytes of every head, counted as torch counts them."""
        return [
            HeadCost(
                cut_index=e.cut_index,
                flops=model_flops(_head(e).model),
                param_bytes=sum(weight_bytes(_head(e).model).values()),
            )
            for e in exits
        ]

    def observe(
        self,
        plan: Plan,
        backbone: KerasBackbone,
        exits: Sequence[ExitHandle],
        data: Dataset,
        split: str,
    ) -> Observations:
        """What every exit and the final classifier say about each sample of `data`."""
        check_plan(plan, backbone, "plan")
        _check_data(backbone, data)
        final_part: Role = "edge" if plan.split >= plan.final_cut else "cloud"
        return observe(
            backbone.graph,
            [(e.cut_index, e.part, _head(e).model) for e in exits],
            plan.final_cut,
            data,
            split_name=split,
            final_part=final_part,
        )

    def export(
        self,
        plan: Plan,
        backbone: KerasBackbone,
        exits: Sequence[ExitHandle],
        calibration: Calibration | None,
        out_dir: Path,
    ) -> Manifest:
        """Write both parts' `.keras` files under `out_dir` and return their manifest."""
        check_plan(plan, backbone, "plan")
        heads = {e.cut_index: _head(e).model for e in exits}
        files, steps = _export.export_partitions(backbone.graph, plan, heads, out_dir)
        return _export.make_manifest(plan, files, steps, calibration)

    def load_part(
        self, manifest: Manifest, part: Role, root: Path, *, whole_chain: bool = False
    ) -> list[RunnableStep]:
        """Load a part's files from `root`, refusing any file whose sha256 differs."""
        return _export.load_part(manifest, part, root, whole_chain=whole_chain)


def _backbone(
    loaded: LoadedModel, model_ref: str, num_classes: int, input_shape: tuple[int, ...]
) -> KerasBackbone:
    if loaded.kind == "savedmodel":
        raise ModelRefError(
            f"SavedModel {model_ref!r} is one opaque layer: it can be profiled, but not cut, "
            "trained or exported; save the model in Keras format (.keras) instead"
        )
    graph = build_cut_graph(loaded.model, input_shape, name=loaded.name)
    output_shape = graph.cut_points[-1].shape
    if output_shape != (num_classes,):
        raise ModelRefError(
            f"model {loaded.name!r} outputs shape {output_shape} per sample, "
            f"expected ({num_classes},) for num_classes={num_classes}"
        )
    info = WeightsInfo(model_ref, num_classes, tuple(input_shape), str(keras.__version__))
    return KerasBackbone(model=loaded.model, graph=graph, info=info, name=loaded.name)


def _head(handle: ExitHandle) -> KerasHead:
    if not isinstance(handle.model, KerasHead):
        raise InferedgeError(
            f"exit at cut {handle.cut_index}: expected a Keras head, got "
            f"{type(handle.model).__name__} (exits come from KerasWorkflow.build_exits)"
        )
    return handle.model


def _check_data(backbone: KerasBackbone, data: Dataset) -> None:
    if data.input_shape != backbone.info.input_shape:
        raise InferedgeError(
            f"dataset {data.name!r} holds images of {describe(data.input_shape)}, "
            f"the model takes {describe(backbone.info.input_shape)}"
        )


def check_plan(plan: Plan, backbone: KerasBackbone, source: str) -> None:
    """Refuse a plan made for another model than the backbone (one line naming both)."""
    names = [c.name for c in backbone.graph.cut_points]
    check_plan_matches(plan, "tensorflow", backbone.info, names, source)
