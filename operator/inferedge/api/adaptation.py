"""`spec.adaptation`: serve an operating space and follow the link, instead of one frozen plan
(see docs/adaptation.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferedge.api.base import CelRule, Spec, cel
from inferedge.core.link import Link
from inferedge.core.space import LinkGrid, ObjectiveSpec

Bandwidth = Annotated[float, Field(gt=0, le=100_000)]
Rtt = Annotated[float, Field(ge=0, le=60_000)]
PriorityMetric = Literal["accuracy", "latency", "cloudCost"]
AdaptMode = Literal["follow", "off", "oracle"]
"""How an edge serving a space picks its point (`inferedge serve --adapt`)."""

# Edgent's range (50 kbps to 1 Mbps) and beyond it to a good LAN, spaced geometrically.
DEFAULT_BANDWIDTHS_MBPS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
DEFAULT_RTTS_MS = (0.0, 10.0, 25.0, 50.0, 100.0, 200.0)


def _default_priorities() -> list[PriorityMetric]:
    return ["accuracy", "latency"]


class LinkGridSpec(Spec):
    """The link states the configuration map is precomputed for."""

    bandwidths_mbps: list[Bandwidth] = Field(
        default_factory=lambda: list(DEFAULT_BANDWIDTHS_MBPS),
        min_length=1,
        max_length=64,
        description="Bandwidths (Mbps) of the grid, in any order.",
    )
    rtts_ms: list[Rtt] = Field(
        default_factory=lambda: list(DEFAULT_RTTS_MS),
        min_length=1,
        max_length=64,
        description="Round-trip times (ms) of the grid, in any order.",
    )


class SwitchingSpec(Spec):
    """The hysteresis of a switch between operating points."""

    confirmations: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive link estimates that must pick the same new point.",
    )
    min_dwell_s: float = Field(
        default=2.0, ge=0, le=3600, description="Seconds a point is kept at least."
    )


class AdaptationSpec(Spec):
    """Train exits at candidate cuts, export them as one operating space, and let the edge
    switch split, exits and threshold as the measured link changes."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="!has(self.objective) || self.objective != 'deadline' || has(self.deadlineMs)",
                message="objective 'deadline' needs deadlineMs",
                mirrors="AdaptationSpec._bounds",
                field_path=".deadlineMs",
                reason="FieldValueRequired",
            ),
            CelRule(
                rule="!has(self.objective) || self.objective != 'accuracy' "
                "|| has(self.minAccuracy)",
                message="objective 'accuracy' needs minAccuracy",
                mirrors="AdaptationSpec._bounds",
                field_path=".minAccuracy",
                reason="FieldValueRequired",
            ),
            CelRule(
                rule="!has(self.priorities) || "
                "self.priorities.all(m, self.priorities.filter(n, n == m).size() == 1)",
                message="priorities must name each metric at most once",
                mirrors="AdaptationSpec._bounds",
                field_path=".priorities",
            ),
        )
    )

    objective: Literal["deadline", "accuracy", "priorities"] = Field(
        default="deadline",
        description="deadline: the most accurate point within deadlineMs (Edgent); accuracy: "
        "the fastest (or cheapest, minimise cloudCost) point at least minAccuracy accurate; "
        "priorities: SPINN's hard limits, then the metrics in priorities order.",
    )
    deadline_ms: float | None = Field(
        default=None, gt=0, le=3.6e6, description="Latency bound of each request, ms."
    )
    deadline_quantile: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="objective deadline: the share of requests that must meet deadlineMs.",
    )
    min_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Accuracy floor, 0..1."
    )
    minimise: Literal["latency", "cloudCost"] = Field(
        default="latency", description="objective accuracy: what to minimise above the floor."
    )
    priorities: list[PriorityMetric] = Field(
        default_factory=_default_priorities,
        min_length=1,
        max_length=3,
        description="objective priorities: metrics in order, each kept within tolerance.",
    )
    tolerance: float = Field(
        default=0.01, ge=0, lt=1, description="objective priorities: relative slack per metric."
    )
    candidate_exits: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Exit heads to train, spread along the edge's cost; default: one per cut.",
    )
    link_grid: LinkGridSpec = Field(
        default_factory=LinkGridSpec, description="Link states of the configuration map."
    )
    switching: SwitchingSpec = Field(
        default_factory=SwitchingSpec, description="Hysteresis of operating-point switches."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AdaptationSpec:
        if self.objective == "deadline" and self.deadline_ms is None:
            raise ValueError("objective 'deadline' needs deadlineMs")
        if self.objective == "accuracy" and self.min_accuracy is None:
            raise ValueError("objective 'accuracy' needs minAccuracy")
        if len(set(self.priorities)) != len(self.priorities):
            raise ValueError("priorities must name each metric at most once")
        return self

    def objective_spec(self) -> ObjectiveSpec:
        """The objective as `core.space` takes it."""
        metric = {"accuracy": "accuracy", "latency": "latency", "cloudCost": "cloud_cost"}
        return ObjectiveSpec.model_validate(
            {
                "kind": self.objective,
                "deadline_ms": self.deadline_ms,
                "deadline_quantile": self.deadline_quantile,
                "min_accuracy": self.min_accuracy,
                "minimise": metric[self.minimise],
                "order": tuple(metric[m] for m in self.priorities),
                "tolerance": self.tolerance,
            }
        )

    def grid(self) -> LinkGrid:
        """The link grid as `core.space` takes it."""
        return LinkGrid(
            bandwidths_mbps=tuple(sorted(set(self.link_grid.bandwidths_mbps))),
            rtts_ms=tuple(sorted(set(self.link_grid.rtts_ms))),
        )


class PointReport(BaseModel):
    """One operating point as GET /adaptation shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: int
    edge_exits: tuple[int, ...]
    cloud_exits: tuple[int, ...]
    threshold: float
    accuracy: float = Field(description="Expected accuracy (the evaluation's).")
    latency_ms: float = Field(description="Expected mean latency on the link it was chosen for.")
    feasible: bool = Field(description="Whether it meets the objective there.")


class AdaptationReport(BaseModel):
    """What the edge's adapter is doing: GET /adaptation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: AdaptMode
    point: PointReport
    link: Link = Field(description="The link the point was chosen for (estimated or true).")
    latest: Link = Field(description="The link last told of: the live estimate, or the true one.")
    switches: int = Field(ge=0)
    corrections: int = Field(ge=0, description="Maps rebuilt from the edge's measured times.")
    edge_time_factor: float = Field(
        description="Measured / profiled edge time, the median over the segments served so far "
        "(1 until measured)."
    )
    cloud_time_factor: float = Field(
        default=1.0,
        description="Reported / predicted cloud compute per offload, the median of the recent "
        "ones (1 until measured).",
    )
    overhead_ms: float = Field(
        default=0.0,
        description="Measured per-request serving time outside the model calls and the link, "
        "added to every point's predictions (0 until measured).",
    )
    tail_factor: float = Field(
        default=1.0,
        ge=1.0,
        description="Served requests' time over their path's prediction at the objective's "
        "quantile; every path's time is scaled by it where the deadline is tested (1 until "
        "measured).",
    )
    points: int = Field(ge=1, description="Operating points in the space.")
    states: int = Field(ge=1, description="Link states of the configuration map.")
