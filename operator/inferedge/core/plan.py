"""The plan: where to split, where the exits go, and what the planner predicts for it."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferedge.core.cost import CostModel
from inferedge.core.errors import PlanningError
from inferedge.core.link import Link
from inferedge.core.placement import PARETO_80_20_ALPHA, Placement
from inferedge.core.roles import Role
from inferedge.core.versioned import parse_versioned

PLAN_SCHEMA_VERSION: Final = "inferedge.io/plan/v1"
MAX_EXITS_PER_PART = 3

Strategy = Literal["latency", "memory", "min-latency", "deadline"]
CostMetric = Literal["flops", "latency"]
ExitCount = Annotated[int, Field(ge=0, le=MAX_EXITS_PER_PART)]
Accuracy = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanRequest(_Frozen):
    """What the user asks of the planner (besides the two profiles)."""

    strategy: Strategy = Field(default="latency", description="How the split point is chosen.")
    placement: Placement = Field(default="linear", description="How exits are spread in a part.")
    edge_exits: ExitCount = Field(default=1, description="Early exits in the edge part.")
    cloud_exits: ExitCount = Field(default=1, description="Early exits in the cloud part.")
    link: Link = Field(default_factory=Link)
    batch_size: int = Field(default=1, gt=0, description="Profiled batch size to plan for.")
    memory_fraction: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="memory strategy: the edge prefix may need at most this share of the model.",
    )
    deadline_ms: float | None = Field(
        default=None, gt=0.0, description="deadline strategy: end-to-end latency bound."
    )
    exit_accuracy: dict[int, Accuracy] | None = Field(
        default=None,
        description="deadline strategy: estimated accuracy of an exit at each cut index; "
        "cuts left out get the FLOPs-based estimate (see docs/planning.md).",
    )
    final_accuracy: Accuracy = Field(
        default=1.0, description="Accuracy of the full model, the scale for exit estimates."
    )
    pareto_alpha: float = Field(default=PARETO_80_20_ALPHA, gt=0.0)
    cost_metric: CostMetric = Field(
        default="flops", description="Cost axis along which exits are placed."
    )
    cost_model: CostModel = Field(default_factory=CostModel)

    @model_validator(mode="after")
    def _deadline_needs_bound(self) -> PlanRequest:
        if self.strategy == "deadline" and self.deadline_ms is None:
            raise ValueError("strategy 'deadline' needs deadline_ms")
        return self


class ExitPoint(_Frozen):
    """One early exit and the latency of a request that leaves there."""

    part: Role
    cut_index: int = Field(ge=0)
    name: str
    shape: tuple[int, ...]
    position: float = Field(ge=0.0, le=1.0, description="Normalised cost along its part.")
    latency_ms: float = Field(ge=0.0, description="Predicted latency when a request exits here.")
    estimated_accuracy: float | None = None


class PartSummary(_Frozen):
    """One side of the split: segments first..last (inclusive; empty when first > last)."""

    device: str
    first_segment: int
    last_segment: int
    flops: int = Field(ge=0)
    compute_ms: float = Field(ge=0.0)
    param_bytes: int = Field(ge=0)
    peak_activation_bytes: int = Field(ge=0)
    memory_bytes: int = Field(ge=0, description="Parameters plus peak activations.")
    energy_mj: float | None = Field(
        default=None, description="Edge energy of the part, where the profile measured it."
    )

    @property
    def empty(self) -> bool:
        """True when the part runs no segment (cloud-only or edge-only plans)."""
        return self.first_segment > self.last_segment


class ModelRef(_Frozen):
    """Identity of the planned model: what the plan hash is about."""

    name: str
    framework: str
    source: str
    input_shape: tuple[int, ...]
    num_classes: int
    num_cuts: int


class Plan(_Frozen):
    """A deterministic plan with a stable hash over its decisions."""

    schema_version: Literal["inferedge.io/plan/v1"] = PLAN_SCHEMA_VERSION
    model: ModelRef
    request: PlanRequest
    split: int = Field(ge=0, description="Cut index: the edge runs segments 1..split.")
    split_name: str
    final_cut: int = Field(ge=1, description="Cut where the final classifier answers.")
    exits: tuple[ExitPoint, ...]
    transfer_bytes: int = Field(ge=0, description="Bytes offloaded per request (one batch).")
    transfer_ms: float = Field(ge=0.0)
    edge: PartSummary
    cloud: PartSummary
    final_latency_ms: float = Field(ge=0.0, description="Latency of the full path.")
    cloud_usd_per_million: float = Field(
        ge=0.0, description="Cloud cost per million offloaded requests."
    )
    estimated_accuracy: float | None = Field(
        default=None, description="deadline strategy: accuracy estimate of the chosen exit."
    )
    notes: tuple[str, ...] = ()
    hash: str = Field(default="", description="sha256 prefix over model, split and exits.")

    def edge_exits(self) -> tuple[ExitPoint, ...]:
        """The exits that run on the edge, in order."""
        return tuple(e for e in self.exits if e.part == "edge")

    def cloud_exits(self) -> tuple[ExitPoint, ...]:
        """The exits that run in the cloud, in order."""
        return tuple(e for e in self.exits if e.part == "cloud")


def plan_hash(model: ModelRef, split: int, final_cut: int, exits: tuple[ExitPoint, ...]) -> str:
    """Hash of what gets built (model, split, truncation, exit positions), not of predictions.

    Re-profiling that changes predicted latencies but not the decisions keeps the hash, so
    artifacts keyed by it are reused rather than rebuilt.
    """
    payload = {
        "model": model.model_dump(mode="json"),
        "split": split,
        "final_cut": final_cut,
        "exits": [[e.part, e.cut_index] for e in exits],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_plan(text: str, source: str) -> Plan:
    """Parse and validate a plan's JSON text (as `inferedge plan -o` writes it)."""
    return parse_versioned(
        text,
        source,
        Plan,
        version=PLAN_SCHEMA_VERSION,
        error=PlanningError,
        hint="re-run `inferedge plan` with this version",
    )
