"""The space file of a pipeline with `spec.adaptation`: what its candidate exits said of the
validation split, for the edge's configuration map (`core.space`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.core.errors import InfeasibleError
from inferedge.core.plan import Plan
from inferedge.core.point_text import point_label
from inferedge.core.profile import MeasuredProfile
from inferedge.core.space import (
    SPACE_FILE,
    SpaceInputs,
    dump_space,
    parse_space,
    space_inputs,
)
from inferedge.dnn.data import Splits
from inferedge.dnn.protocols import ExitHandle, Workflow

SPACE_NAME = SPACE_FILE.rsplit("/", 1)[-1]


def write_space(
    plan: Plan,
    *,
    workflow: Workflow,
    backbone: object,
    exits: Sequence[ExitHandle],
    profiles: tuple[MeasuredProfile, MeasuredProfile],
    splits: Splits,
    spec: InferencePipelineSpec,
    out_dir: Path,
) -> Path:
    """Observe every candidate exit on the validation split (the split c_thr is chosen on) and
    write the space file under `out_dir`; returns its path."""
    assert spec.adaptation is not None
    observations = workflow.observe(plan, backbone, exits, splits.val, "val")
    costs = workflow.head_costs(plan, exits)
    inputs = space_inputs(
        plan,
        profiles,
        observations,
        {c.cut_index: c.flops for c in costs},
        confidence=spec.inference.confidence,
        objective=spec.adaptation.objective_spec(),
        grid=spec.adaptation.grid(),
    )
    check_reachable(inputs)
    path = out_dir / SPACE_NAME
    path.write_bytes(dump_space(inputs))
    return path


def check_reachable(inputs: SpaceInputs) -> None:
    """Refuse (`InfeasibleError`, one line) an objective that no operating point meets on any
    link state of the grid: the edge would serve a point that misses it on every link."""
    table = inputs.configuration_map()
    if any(entry.feasible for entry in table.entries):
        return
    best = min(table.entries, key=lambda entry: entry.latency_ms)
    spec = inputs.objective
    if spec.kind == "deadline":
        share = spec.deadline_quantile
        goal = f"deadline {spec.deadline_ms:g} ms " + (
            "on average" if share is None else f"for {share:.0%} of requests"
        )
    elif spec.kind == "accuracy":
        goal = f"minimum accuracy {spec.min_accuracy:.1%}"
    else:
        goal = "priorities' bounds"
    raise InfeasibleError(
        f"spec.adaptation: no operating point meets the {goal} on any link of the grid; the "
        f"fastest, {point_label(best.figures.point)}, takes {best.latency_ms:.1f} ms on "
        f"average at {best.link.bandwidth_mbps:g} Mbps / {best.link.rtt_ms:g} ms, with "
        f"accuracy {best.figures.accuracy:.1%}"
    )


def read_space(path: Path) -> SpaceInputs | None:
    """The space file at `path`, validated; None when there is none (no adaptation)."""
    if not path.is_file():
        return None
    return parse_space(path.read_bytes(), str(path))
