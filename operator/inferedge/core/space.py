"""An exported operating space: what it holds, which points it serves, and the file of its
figures.

A space's artifact set is the export of its space plan (`core.space_plan`): segment files cut
at every stop, a head at every candidate. Its manifest says so in `Manifest.space`, and lists
one more file, `edge/space.json` (`SpaceInputs`): what the evaluation saw each candidate exit
say of each sample, both profiles, and the pipeline's objective and link grid. From it the edge
works out every point's figures (`core.operating_space`) and the configuration map
(`core.config_map`) itself, so a corrected profile or another link grid needs no new file.

`route_steps` is the one place that says which files an operating point runs: the runtime
builds its partitions from it, and `check_point` refuses a point the set cannot serve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferedge.core.calibration import ConfidenceKind, Observations
from inferedge.core.config_map import (
    AccuracyFloor,
    ConfigurationMap,
    Deadline,
    Metric,
    Objective,
    Priorities,
    build_map,
)
from inferedge.core.errors import InferedgeError
from inferedge.core.link import Link
from inferedge.core.manifest import Manifest, SpaceSection, Step, chain
from inferedge.core.operating_space import (
    MAX_EXITS_PER_PART,
    CandidateExit,
    OperatingPoint,
    PointFigures,
    SpaceLimits,
    enumerate_space,
    route_figures,
    with_overhead,
    with_tail,
)
from inferedge.core.placement import Placement
from inferedge.core.plan import Plan
from inferedge.core.planner import build_tables
from inferedge.core.point_text import point_text
from inferedge.core.profile import MeasuredProfile, Segment
from inferedge.core.roles import Role
from inferedge.core.sweep import DEFAULT_THRESHOLDS
from inferedge.core.versioned import parse_versioned

SPACE_SCHEMA_VERSION: Final = "inferedge.io/space/v1"
SPACE_FILE: Final = "edge/space.json"


class SpaceError(InferedgeError):
    """An operating point the artifact set cannot serve, or a malformed space file."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectiveSpec(_Frozen):
    """What the configuration map optimises, as `spec.adaptation` states it."""

    kind: Literal["deadline", "accuracy", "priorities"]
    deadline_ms: float | None = Field(default=None, gt=0.0)
    deadline_quantile: float | None = Field(default=0.95, gt=0.0, le=1.0)
    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    minimise: Literal["latency", "cloud_cost"] = "latency"
    order: tuple[Metric, ...] = ("accuracy", "latency")
    tolerance: float = Field(default=0.01, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _bounds_given(self) -> ObjectiveSpec:
        if self.kind == "deadline" and self.deadline_ms is None:
            raise ValueError("objective 'deadline' needs deadline_ms")
        if self.kind == "accuracy" and self.min_accuracy is None:
            raise ValueError("objective 'accuracy' needs min_accuracy")
        if len(set(self.order)) != len(self.order) or not self.order:
            raise ValueError(f"order: expected distinct metrics, got {list(self.order)}")
        return self

    def objective(self) -> Objective:
        """The objective `core.config_map` takes."""
        if self.kind == "deadline":
            assert self.deadline_ms is not None
            return Deadline(self.deadline_ms, self.deadline_quantile)
        if self.kind == "accuracy":
            assert self.min_accuracy is not None
            return AccuracyFloor(self.min_accuracy, self.minimise)
        return Priorities(self.order, self.deadline_ms, self.min_accuracy, self.tolerance)


class LinkGrid(_Frozen):
    """The link states the configuration map is precomputed for."""

    bandwidths_mbps: tuple[float, ...] = Field(min_length=1, max_length=64)
    rtts_ms: tuple[float, ...] = Field(min_length=1, max_length=64)


class SpaceCandidate(_Frozen):
    """One candidate exit as the evaluation saw it, and what its head costs on each side."""

    cut_index: int = Field(ge=1)
    confidence: tuple[float, ...]
    correct: tuple[bool, ...]
    edge_head_ms: float = Field(ge=0.0)
    cloud_head_ms: float = Field(ge=0.0)


class SpaceInputs(_Frozen):
    """`edge/space.json`: everything the edge needs to work out the space and its map."""

    schema_version: Literal["inferedge.io/space/v1"] = SPACE_SCHEMA_VERSION
    plan_hash: str
    max_split: int = Field(ge=0)
    placement: Placement = "linear"
    thresholds: tuple[float, ...] = Field(min_length=1)
    batch_size: int = Field(ge=1)
    edge: MeasuredProfile
    cloud: MeasuredProfile
    candidates: tuple[SpaceCandidate, ...]
    final_correct: tuple[bool, ...] = Field(min_length=1)
    objective: ObjectiveSpec
    grid: LinkGrid
    link: Link = Field(description="The link the DeviceProfile declares: the starting point's.")
    overhead_ms: float = Field(
        default=0.0,
        ge=0.0,
        description="Per-request serving time outside the model calls and the link, as the "
        "edge measured it (`corrected`); 0 in the file, where nothing is measured yet.",
    )
    tail_factor: float = Field(
        default=1.0,
        ge=1.0,
        description="Served requests' time over their path's prediction at the objective's "
        "quantile, as the edge measured it (`corrected`); each path's time is scaled by it "
        "where the deadline is tested (`operating_space.with_tail`).",
    )

    def _exits(self) -> list[CandidateExit]:
        return [
            CandidateExit(c.cut_index, c.confidence, c.correct, c.edge_head_ms, c.cloud_head_ms)
            for c in self.candidates
        ]

    def points(self) -> list[PointFigures]:
        """Every operating point with its link-free figures."""
        tables = build_tables(self.edge, self.cloud, self.batch_size)
        candidates = self._exits()
        limits = SpaceLimits(
            max_split=self.max_split, thresholds=self.thresholds, placement=self.placement
        )
        points = enumerate_space(tables, candidates, self.final_correct, limits)
        return [self._served(p) for p in points]

    def route_points(self, route: OperatingPoint) -> list[PointFigures]:
        """`route` (split and exits, checked by the caller with `check_point`) at every
        threshold: what a pinned edge serves, placed or not."""
        tables = build_tables(self.edge, self.cloud, self.batch_size)
        points = route_figures(tables, self._exits(), self.final_correct, self.thresholds, route)
        return [self._served(p) for p in points]

    def _served(self, figures: PointFigures) -> PointFigures:
        """`figures` with what serving adds: the per-request overhead, and the tail."""
        return with_tail(with_overhead(figures, self.overhead_ms), self.tail_factor)

    def configuration_map(self, points: Sequence[PointFigures] | None = None) -> ConfigurationMap:
        """The best point per link state of the grid under the objective."""
        return build_map(
            self.points() if points is None else points,
            sorted(set(self.grid.bandwidths_mbps)),
            sorted(set(self.grid.rtts_ms)),
            self.objective.objective(),
        )


def space_inputs(
    plan: Plan,
    profiles: tuple[MeasuredProfile, MeasuredProfile],
    observations: Observations,
    head_flops: Mapping[int, int],
    *,
    confidence: ConfidenceKind,
    objective: ObjectiveSpec,
    grid: LinkGrid,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> SpaceInputs:
    """The space file of a space plan (`core.space_plan`), from what the evaluation observed of
    every candidate exit. A head's time on each side is its time as served where that side's
    profile timed it, else its FLOPs at that side's whole-model rate."""
    edge, cloud = profiles
    t = build_tables(edge, cloud, plan.request.batch_size)
    k = t.num_cuts
    flops = max(t.cum_flops[k], 1)  # per sample, as head FLOPs are; the times are per batch
    edge_rate, cloud_rate = t.edge_ms(k) / flops, t.cloud_ms(0, k) / flops
    planned = [e.cut_index for e in plan.exits]
    observed = [o.cut_index for o in observations.exits]
    if observed != planned:
        raise SpaceError(f"observations of exits {observed} are not of the plan's {planned}")
    missing = [c for c in planned if c not in head_flops]
    if missing:
        raise SpaceError(f"no head FLOPs for the exits at cuts {missing}")
    return SpaceInputs(
        plan_hash=plan.hash,
        max_split=plan.split,
        placement=plan.request.placement,
        thresholds=tuple(thresholds),
        batch_size=plan.request.batch_size,
        edge=edge,
        cloud=cloud,
        candidates=tuple(
            SpaceCandidate(
                cut_index=o.cut_index,
                confidence=o.confidence(confidence),
                correct=o.correct,
                edge_head_ms=_head_ms(edge, o.cut_index, t.batch_size, head_flops, edge_rate),
                cloud_head_ms=_head_ms(cloud, o.cut_index, t.batch_size, head_flops, cloud_rate),
            )
            for o in observations.exits
        ),
        final_correct=observations.final.correct,
        objective=objective,
        grid=grid,
        link=plan.request.link,
    )


def _head_ms(
    profile: MeasuredProfile, cut: int, batch: int, flops: Mapping[int, int], rate: float
) -> float:
    timed = profile.head_ms(cut, batch)
    return flops[cut] * rate if timed is None else timed


def corrected(
    inputs: SpaceInputs,
    segments: Mapping[tuple[int, int], float],
    heads: Mapping[int, float],
    *,
    cloud_factor: float = 1.0,
    overhead_ms: float | None = None,
    tail_factor: float | None = None,
) -> SpaceInputs:
    """The space file with the edge's times as the edge measured them serving, the cloud's
    times scaled by `cloud_factor` (what the cloud reported over what was predicted), and,
    when given, the edge's measured per-request `overhead_ms` (`SpaceInputs.overhead_ms`) and
    `tail_factor` (`SpaceInputs.tail_factor`, at least 1).

    `segments` maps a served step (start cut, end cut) to its measured milliseconds; the
    profile's segments inside it are scaled by measured / profiled, and segments no step has
    measured yet by the median of those factors (the device and the serving code are the same
    there). `heads` maps a candidate's cut to its measured head time; unmeasured heads are
    scaled alike. Measurements of nothing (0 ms profiled) are ignored. The cloud reports one
    compute time per offload, not per segment, so all its segments and heads share the factor.
    """
    batch = inputs.batch_size
    profiled = inputs.edge.request_ms(batch)
    factor: dict[int, float] = {}  # segment index (1-based) -> measured / profiled
    for (start, end), measured in segments.items():
        span = sum(profiled[start:end])
        if span > 0 and 0 <= start < end <= len(profiled):
            factor.update(dict.fromkeys(range(start + 1, end + 1), measured / span))
    default = median(factor.values()) if factor else 1.0
    edge = _scaled(
        inputs.edge, batch, [factor.get(seg.index, default) for seg in inputs.edge.segments]
    )
    head_factors = [
        heads[c.cut_index] / c.edge_head_ms
        for c in inputs.candidates
        if c.cut_index in heads and c.edge_head_ms > 0
    ]
    head_default = median(head_factors) if head_factors else default
    candidates = tuple(
        c.model_copy(
            update={
                "edge_head_ms": heads.get(c.cut_index, c.edge_head_ms * head_default),
                "cloud_head_ms": c.cloud_head_ms * cloud_factor,
            }
        )
        for c in inputs.candidates
    )
    cloud = inputs.cloud
    if cloud_factor != 1.0:
        cloud = _scaled(cloud, batch, [cloud_factor] * len(cloud.segments))
    update: dict[str, object] = {"edge": edge, "cloud": cloud, "candidates": candidates}
    if overhead_ms is not None:
        update["overhead_ms"] = overhead_ms
    if tail_factor is not None:
        update["tail_factor"] = max(tail_factor, 1.0)
    return inputs.model_copy(update=update)


def edge_factor(before: SpaceInputs, after: SpaceInputs) -> float:
    """The edge's whole-model time after a correction over before it."""
    total = sum(before.edge.request_ms(before.batch_size))
    now = sum(after.edge.request_ms(after.batch_size))
    return now / total if total > 0 else 1.0


def _scaled(profile: MeasuredProfile, batch: int, factors: Sequence[float]) -> MeasuredProfile:
    """`profile` with each segment's times at `batch` (served ones included) multiplied by its
    factor, so `request_ms` reads the corrected times whichever it reads."""

    def segment(seg: Segment, factor: float) -> Segment:
        measurements = tuple(
            m.model_copy(update={"median_ms": m.median_ms * factor, "p95_ms": m.p95_ms * factor})
            if m.batch_size == batch
            else m
            for m in seg.measurements
        )
        return seg.model_copy(update={"measurements": measurements})

    update: dict[str, object] = {
        "segments": tuple(segment(s, f) for s, f in zip(profile.segments, factors, strict=True))
    }
    if profile.served is not None and batch == 1:
        served = [ms * f for ms, f in zip(profile.served.segments_ms, factors, strict=True)]
        update["served"] = profile.served.model_copy(update={"segments_ms": tuple(served)})
    return profile.model_copy(update=update)


def dump_space(inputs: SpaceInputs) -> bytes:
    """The space file's canonical bytes."""
    return (inputs.model_dump_json() + "\n").encode()


def parse_space(data: bytes | str, source: str) -> SpaceInputs:
    """Parse and validate a space file; one-line errors name the source and the field."""
    return parse_versioned(
        data,
        source,
        SpaceInputs,
        version=SPACE_SCHEMA_VERSION,
        error=SpaceError,
        hint="re-export the artifacts with this version of inferedge",
    )


def check_point(space: SpaceSection, final_cut: int, point: OperatingPoint) -> None:
    """Refuse (SpaceError, naming what is wrong) a point the set's files cannot serve; its
    threshold is the dataplane's to check, as any c_thr is."""
    splits = [s for s in space.stops if s <= space.max_split]
    if point.split not in splits:
        raise SpaceError(f"split {point.split}: expected one of the served splits {splits}")
    candidates = set(space.candidates)
    for part, exits, low, high in (
        ("edge", point.edge_exits, 1, point.split),
        ("cloud", point.cloud_exits, point.split + 1, final_cut - 1),
    ):
        if list(exits) != sorted(set(exits)) or len(exits) > MAX_EXITS_PER_PART:
            raise SpaceError(
                f"{part} exits {list(exits)}: expected at most {MAX_EXITS_PER_PART} distinct "
                "cuts, ascending"
            )
        stray = [c for c in exits if c not in candidates or not low <= c <= high]
        if stray:
            raise SpaceError(
                f"{part} exits {stray}: expected candidates at cuts {low}..{high} "
                f"(candidates {sorted(candidates)})"
            )


def route_steps(manifest: Manifest, part: Role, point: OperatingPoint) -> tuple[Step, ...]:
    """The steps `part` runs at `point`: the chain's segments on its side of the split, with a
    head only where the point activates an exit. The last cloud step ends at the final
    classifier; an edge part that reaches the output does too. A set that is not an operating
    space serves only the two baselines this way (`check_baseline`)."""
    if manifest.space is None:
        check_baseline(manifest.plan.hash, manifest.plan.final_cut, point)
    else:
        check_point(manifest.space, manifest.plan.final_cut, point)
    active = set(point.edge_exits if part == "edge" else point.cloud_exits)
    steps = chain(manifest)
    if part == "edge":
        mine = [s for s in steps if s.end <= point.split]
    else:
        mine = [s for s in steps if s.start >= point.split]
    return tuple(s.model_copy(update={"head": s.head if s.end in active else None}) for s in mine)


def check_baseline(plan_hash: str, final_cut: int, point: OperatingPoint) -> None:
    """Refuse (SpaceError) any point but a baseline's of a set that is not an operating space:
    `0/-/-` (cloud-only: the raw input shipped to the cloud) or `K/-/-` (edge-only: the whole
    model on the edge), neither with exits."""
    if point.split in (0, final_cut) and not point.edge_exits and not point.cloud_exits:
        return
    raise SpaceError(
        f"plan {plan_hash} is not an operating space: besides its own plan it serves only the "
        f"baselines 0/-/- (cloud-only) and {final_cut}/-/- (edge-only), got {point_text(point)}"
    )
