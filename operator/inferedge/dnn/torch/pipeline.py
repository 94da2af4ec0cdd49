"""The torch steps of a pipeline, shared by the CLI and the local runner.

Load a trained backbone and check a plan against it; build, save and load exit heads for a plan;
cost them; observe them on data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from inferedge.core.calibration import Observations
from inferedge.core.errors import one_line
from inferedge.core.exits import ExitHeadSpec, Layer
from inferedge.core.plan import Plan
from inferedge.core.roles import Role
from inferedge.core.sweep import HeadCost
from inferedge.dnn.data import Dataset
from inferedge.dnn.protocols import ExitsFileError
from inferedge.dnn.torch.exits import render_head, resolve_layers
from inferedge.dnn.torch.graph import CutGraph, build_cut_graph
from inferedge.dnn.torch.loader import load_model
from inferedge.dnn.torch.observe import observe
from inferedge.dnn.torch.weights import WeightsInfo, load_weights, read_weights_info
from inferedge.dnn.weights import check_plan_matches

EXITS_FORMAT = "inferedge.exits/v1"
_LAYERS = TypeAdapter(tuple[Layer, ...])


@dataclass(frozen=True)
class Backbone:
    """A model with its trained weights and its cut graph."""

    module: nn.Module
    graph: CutGraph
    info: WeightsInfo


@dataclass(frozen=True)
class TrainedExit:
    """One exit head of a plan: where it sits, what it is, and the module."""

    cut_index: int
    part: Role
    layers: tuple[Layer, ...]
    module: nn.Module


def load_backbone(weights: Path) -> Backbone:
    """The model a weights file belongs to, with those weights loaded, and its cut graph."""
    info = read_weights_info(weights)
    loaded = load_model(info.model_ref, info.num_classes, info.input_shape)
    load_weights(
        loaded.module,
        weights,
        model_ref=info.model_ref,
        num_classes=info.num_classes,
        input_shape=info.input_shape,
    )
    example = torch.zeros(1, *info.input_shape)
    graph = build_cut_graph(
        loaded.module, example, name=loaded.name, exported=loaded.kind == "export"
    )
    return Backbone(loaded.module, graph, info)


def check_plan(plan: Plan, backbone: Backbone, source: str) -> None:
    """Refuse a plan made for another model than the backbone (one line naming both)."""
    names = [c.name for c in backbone.graph.cut_points]
    check_plan_matches(plan, "torch", backbone.info, names, source)


def build_exits(
    plan: Plan, backbone: Backbone, spec: ExitHeadSpec | Mapping[int, ExitHeadSpec], seed: int
) -> list[TrainedExit]:
    """Untrained heads for every exit of the plan; each is shape-checked against its exit."""
    torch.manual_seed(seed)
    exits = []
    for e in plan.exits:
        head_spec = spec if isinstance(spec, ExitHeadSpec) else spec.get(e.cut_index)
        if head_spec is None:
            raise ExitsFileError(f"no exit head spec for the {e.part} exit at cut {e.cut_index}")
        layers = resolve_layers(head_spec, e.shape, backbone.graph)
        where = f"{e.part} exit at cut {e.cut_index} ({e.name}, {'x'.join(map(str, e.shape))})"
        module = render_head(layers, e.shape, plan.model.num_classes, where)
        exits.append(TrainedExit(e.cut_index, e.part, layers, module.eval()))
    return exits


def head_costs(plan: Plan, exits: Sequence[TrainedExit]) -> list[HeadCost]:
    """FLOPs (one sample) and parameter bytes of every head, for the sweep's latency model."""
    shapes = {e.cut_index: e.shape for e in plan.exits}
    costs = []
    for ex in exits:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            ex.module(torch.zeros(1, *shapes[ex.cut_index]))
        params = sum(p.numel() * p.element_size() for p in ex.module.parameters())
        costs.append(
            HeadCost(cut_index=ex.cut_index, flops=counter.get_total_flops(), param_bytes=params)
        )
    return costs


def observe_exits(
    plan: Plan, backbone: Backbone, exits: Sequence[TrainedExit], data: Dataset, split: str
) -> Observations:
    """What every exit and the final classifier say about each sample of `data`."""
    final_part: Role = "edge" if plan.split >= plan.final_cut else "cloud"
    return observe(
        backbone.graph,
        [(e.cut_index, e.part, e.module) for e in exits],
        plan.final_cut,
        data,
        split_name=split,
        final_part=final_part,
    )


def save_exits(path: Path, plan: Plan, exits: Sequence[TrainedExit]) -> None:
    """Write the heads (declarative layers plus weights) for `plan`, atomically."""
    payload: dict[str, Any] = {
        "format": EXITS_FORMAT,
        "plan_hash": plan.hash,
        "exits": [
            {
                "cut_index": e.cut_index,
                "part": e.part,
                "layers": _LAYERS.dump_json(e.layers).decode(),
                "state_dict": {k: v.detach().cpu() for k, v in e.module.state_dict().items()},
            }
            for e in exits
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def load_exits(path: Path, plan: Plan) -> list[TrainedExit]:
    """Rebuild the heads saved for `plan`: layers are re-validated, never executed as code."""
    if not path.is_file():
        raise ExitsFileError(f"{path}: no such exits file (run `inferedge train-exits` first)")
    try:
        payload = torch.load(path, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for foreign files
        raise ExitsFileError(f"{path}: not an inferedge exits file ({one_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != EXITS_FORMAT:
        raise ExitsFileError(f"{path}: not an inferedge exits file (format {EXITS_FORMAT})")
    if payload.get("plan_hash") != plan.hash:
        raise ExitsFileError(
            f"{path}: trained for plan {payload.get('plan_hash')}, not {plan.hash}; "
            "re-run `inferedge train-exits` for this plan"
        )
    shapes = {e.cut_index: (e.part, e.shape) for e in plan.exits}
    exits = []
    for entry in payload["exits"]:
        cut = entry["cut_index"]
        if cut not in shapes:
            raise ExitsFileError(f"{path}: has an exit at cut {cut} that the plan does not")
        try:
            layers = _LAYERS.validate_json(entry["layers"])
        except ValidationError as exc:
            raise ExitsFileError(f"{path}: exit at cut {cut}: {one_line(exc)}") from None
        part, shape = shapes[cut]
        module = render_head(layers, shape, plan.model.num_classes, f"exit at cut {cut}")
        try:
            module.load_state_dict(entry["state_dict"])
        except RuntimeError as exc:
            raise ExitsFileError(f"{path}: exit at cut {cut}: {one_line(exc)}") from None
        exits.append(TrainedExit(cut, part, layers, module.eval()))
    if sorted(e.cut_index for e in exits) != sorted(shapes):
        raise ExitsFileError(f"{path}: holds exits at {[e.cut_index for e in exits]}, "
                             f"the plan has {sorted(shapes)}")  # fmt: skip
    return exits
