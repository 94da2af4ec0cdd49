"""How an InferencePipeline's split is planned: the split point's strategy and the exits."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from inferedge.api.base import CelRule, LinkSpec, Spec, cel
from inferedge.api.model_spec import TrainingSpec
from inferedge.core.exits import ExitHeadSpec
from inferedge.core.placement import PARETO_80_20_ALPHA


class PartitioningSpec(Spec):
    """How the split point is chosen (see docs/planning.md)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                # Written to hold before defaulting too: the API server also checks `default: {}`.
                rule="!has(self.strategy) || self.strategy != 'deadline' || has(self.deadlineMs)",
                message="strategy 'deadline' needs deadlineMs",
                mirrors="PartitioningSpec._deadline",
                field_path=".deadlineMs",
                reason="FieldValueRequired",
            )
        )
    )

    strategy: Literal["latency", "memory", "min-latency", "deadline"] = Field(
        default="latency",
        description="latency: deepest cut whose edge prefix is no slower than the whole "
        "network in the cloud; memory: deepest cut within memoryFraction of the model's "
        "memory; min-latency: Neurosurgeon's end-to-end minimum; deadline: Edgent's most "
        "accurate plan within deadlineMs.",
    )
    memory_fraction: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="strategy memory: the edge part may hold at most this share of the "
        "model's memory.",
    )
    deadline_ms: float | None = Field(
        default=None, gt=0, le=3.6e6, description="Latency budget, ms (strategy deadline)."
    )
    link: LinkSpec | None = Field(default=None, description="Default: the edge profile's link.")
    batch_size: int = Field(
        default=1, ge=1, le=4096, description="Batch size the plan is made for (a profiled one)."
    )

    @model_validator(mode="after")
    def _deadline(self) -> PartitioningSpec:
        if self.strategy == "deadline" and self.deadline_ms is None:
            raise ValueError("strategy 'deadline' needs deadlineMs")
        return self


class ExitsSpec(Spec):
    """Where the early exits go and what they are."""

    placement: Literal["linear", "pareto"] = Field(
        default="linear",
        description="linear: evenly spaced in FLOPs; pareto: denser early (EdgeLessPart).",
    )
    edge: int = Field(default=1, ge=0, le=3, description="Exits in the edge part.")
    cloud: int = Field(default=1, ge=0, le=3, description="Exits in the cloud part.")
    pareto_alpha: float = Field(
        default=PARETO_80_20_ALPHA,
        gt=0,
        le=100,
        description="Shape of the pareto placement (1.161 is the 80/20 rule).",
    )
    head: ExitHeadSpec = Field(
        default_factory=lambda: ExitHeadSpec(preset="sdn"),
        description="A preset or a declarative layer list; never code.",
    )
    training: TrainingSpec = Field(
        default_factory=TrainingSpec,
        description="Schedule for training the exit heads on the frozen backbone.",
    )
