"""The threshold sweep: what a confidence threshold c_thr buys, in accuracy, latency and cost.

A request walks the plan's exits in path order; the first exit whose confidence is at least c_thr
answers, else the final classifier does. Latency per path is the planner's backbone prediction
plus the exit heads evaluated on the way (each head's FLOPs at its part's measured ms per FLOP).
Edge energy counts the edge segments a request runs, where the edge profile measured energy.
Cloud cost bills every offloaded request for the cloud segments it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from inferedge.core.calibration import ConfidenceKind, Observations
from inferedge.core.cost import CostModel
from inferedge.core.errors import InferedgeError
from inferedge.core.plan import Plan
from inferedge.core.planner import Tables, build_tables, edge_memory_bytes
from inferedge.core.profile import MeasuredProfile

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.30 + 0.05 * i, 2) for i in range(13))


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeadCost(_Frozen):
    """What one rendered exit head costs."""

    cut_index: int = Field(ge=1)
    flops: int = Field(ge=0, description="FLOPs for one sample.")
    param_bytes: int = Field(ge=0)


class Outcome(_Frozen):
    """The figures of one operating point (a threshold, a baseline or the oracle)."""

    name: str
    threshold: float | None = None
    accuracy: float = Field(ge=0.0, le=1.0)
    exit_shares: tuple[float, ...] = Field(
        description="Share of requests answered by each exit in path order, then the final."
    )
    offload_rate: float = Field(ge=0.0, le=1.0)
    latency_ms: float = Field(ge=0.0, description="Expected end-to-end latency.")
    latency_p95_ms: float = Field(ge=0.0)
    transfer_bytes: float = Field(ge=0.0, description="Expected bytes shipped per request.")
    edge_energy_mj: float | None = Field(default=None, description="Expected edge energy.")
    cloud_usd_per_million: float = Field(ge=0.0, description="Cloud cost per million requests.")
    edge_memory_bytes: int = Field(ge=0)
    cloud_memory_bytes: int = Field(ge=0)


class SweepReport(_Frozen):
    """Every threshold's outcome next to the baselines and the oracle bound."""

    plan_hash: str
    split: str = Field(description="The data split observed.")
    samples: int
    confidence: ConfidenceKind
    exit_cuts: tuple[int, ...] = Field(description="Cut index of each exit, then the final.")
    exit_parts: tuple[str, ...]
    exit_accuracy: tuple[float, ...] = Field(description="Accuracy of each exit on its own.")
    exit_latency_ms: tuple[float, ...] = Field(
        default=(), description="Latency of a request answered at each exit, heads included."
    )
    exit_cloud_ms: tuple[float, ...] = Field(
        default=(), description="Cloud compute of a request answered at each exit."
    )
    rows: tuple[Outcome, ...]
    edge_only: Outcome
    cloud_only: Outcome
    split_no_exits: Outcome
    oracle: Outcome


@dataclass(frozen=True)
class _Path:
    """One way out of the network: an exit or the final classifier."""

    part: str
    latency_ms: float
    transfer_bytes: int
    edge_segments: int  # edge segments 1..edge_segments ran
    cloud_ms: float  # cloud compute billed for this request
    correct: tuple[bool, ...]
    confidence: tuple[float, ...]


def _ms_per_flop(compute_ms: float, flops: int) -> float:
    return compute_ms / flops if flops > 0 else 0.0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def _paths(
    plan: Plan,
    t: Tables,
    obs: Observations,
    heads: dict[int, HeadCost],
    kind: ConfidenceKind,
    *,
    profiles: tuple[MeasuredProfile, MeasuredProfile],
) -> list[_Path]:
    """Every way out, in path order. A head costs its time as served where the profile timed
    it, else its FLOPs at its part's rate."""
    observed = [*obs.exits, obs.final]
    planned = [(e.part, e.cut_index) for e in plan.exits] + [
        ("edge" if plan.split >= plan.final_cut else "cloud", plan.final_cut)
    ]
    if [(o.part, o.cut_index) for o in observed] != planned:
        raise InferedgeError(
            f"observations do not match plan {plan.hash}: observed exits "
            f"{[(o.part, o.cut_index) for o in observed]}, plan has {planned}"
        )
    missing = [e.cut_index for e in plan.exits if e.cut_index not in heads]
    if missing:
        raise InferedgeError(f"no head cost given for exits at cuts {missing}")
    edge_rate = _ms_per_flop(plan.edge.compute_ms, plan.edge.flops)
    cloud_rate = _ms_per_flop(plan.cloud.compute_ms, plan.cloud.flops)
    offloads = plan.split < plan.final_cut
    head_ms_edge = head_ms_cloud = 0.0
    paths = []
    for exit_point, o in zip(plan.exits, obs.exits, strict=False):
        cut = exit_point.cut_index
        head = heads[cut].flops * t.batch_size
        if exit_point.part == "edge":
            timed = profiles[0].head_ms(cut, t.batch_size)
            head_ms_edge += head * edge_rate if timed is None else timed
            paths.append(
                _Path("edge", exit_point.latency_ms + head_ms_edge, 0, exit_point.cut_index,
                      0.0, o.correct, o.confidence(kind))
            )  # fmt: skip
        else:
            timed = profiles[1].head_ms(cut, t.batch_size)
            head_ms_cloud += head * cloud_rate if timed is None else timed
            cloud_ms = t.cloud_ms(plan.split, exit_point.cut_index) + head_ms_cloud
            paths.append(
                _Path("cloud", exit_point.latency_ms + head_ms_edge + head_ms_cloud,
                      plan.transfer_bytes, plan.split, cloud_ms, o.correct, o.confidence(kind))
            )  # fmt: skip
    final_cloud_ms = t.cloud_ms(plan.split, plan.final_cut) + head_ms_cloud if offloads else 0.0
    paths.append(
        _Path(
            "cloud" if offloads else "edge",
            plan.final_latency_ms + head_ms_edge + (head_ms_cloud if offloads else 0.0),
            plan.transfer_bytes if offloads else 0,
            plan.split if offloads else plan.final_cut,
            final_cloud_ms,
            obs.final.correct,
            (1.0,) * obs.num_samples,
        )
    )
    return paths


@dataclass(frozen=True)
class _Scorer:
    """Turns a choice of path per sample into an Outcome."""

    paths: list[_Path]
    cost: CostModel
    memory: tuple[int, int]  # edge, cloud
    energy_prefix: list[float] | None

    def outcome(self, name: str, choice: list[int], threshold: float | None = None) -> Outcome:
        n = len(choice)
        chosen = [self.paths[c] for c in choice]
        latencies = [p.latency_ms for p in chosen]
        cloud_usd = sum(
            self.cost.usd_per_request(p.cloud_ms, self.memory[1])
            for p in chosen
            if p.part == "cloud"
        )
        shares = [0] * len(self.paths)
        for c in choice:
            shares[c] += 1
        energy = self.energy_prefix
        return Outcome(
            name=name,
            threshold=threshold,
            accuracy=sum(p.correct[i] for i, p in enumerate(chosen)) / n,
            exit_shares=tuple(s / n for s in shares),
            offload_rate=sum(p.part == "cloud" for p in chosen) / n,
            latency_ms=sum(latencies) / n,
            latency_p95_ms=_p95(latencies),
            transfer_bytes=sum(p.transfer_bytes for p in chosen) / n,
            edge_energy_mj=None
            if energy is None
            else sum(energy[p.edge_segments] for p in chosen) / n,
            cloud_usd_per_million=cloud_usd / n * 1e6,
            edge_memory_bytes=self.memory[0],
            cloud_memory_bytes=self.memory[1],
        )


def _energy_prefix(edge: MeasuredProfile, batch_size: int) -> list[float] | None:
    energies = [s.at(batch_size).energy_mj for s in edge.segments]
    if any(e is None for e in energies):
        return None
    out = [0.0]
    for e in energies:
        out.append(out[-1] + (e or 0.0))
    return out


def sweep(
    plan: Plan,
    edge: MeasuredProfile,
    cloud: MeasuredProfile,
    obs: Observations,
    heads: list[HeadCost],
    *,
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    confidence: ConfidenceKind = "max_softmax",
) -> SweepReport:
    """Outcomes for every threshold, the three baselines and the oracle, on one data split."""
    if not thresholds or any(not 0.0 <= c <= 1.0 for c in thresholds):
        raise InferedgeError(f"thresholds must be in [0, 1], got {list(thresholds)}")
    t = build_tables(edge, cloud, plan.request.batch_size)
    head_costs = {h.cut_index: h for h in heads}
    paths = _paths(plan, t, obs, head_costs, confidence, profiles=(edge, cloud))
    n = obs.num_samples
    if n == 0:
        raise InferedgeError(f"no samples observed in split {obs.split!r}")
    edge_heads = sum(head_costs[e.cut_index].param_bytes for e in plan.edge_exits())
    cloud_heads = sum(head_costs[e.cut_index].param_bytes for e in plan.cloud_exits())
    memory = (plan.edge.memory_bytes + edge_heads, plan.cloud.memory_bytes + cloud_heads)
    energy = _energy_prefix(edge, t.batch_size)
    last = len(paths) - 1

    def first_confident(i: int, c: float) -> int:
        return next((j for j in range(last) if paths[j].confidence[i] >= c), last)

    cost = plan.request.cost_model
    scorer = _Scorer(paths, cost, memory, energy)
    rows = tuple(
        scorer.outcome(f"c_thr={c:.2f}", [first_confident(i, c) for i in range(n)], c)
        for c in thresholds
    )
    oracle = scorer.outcome(
        "oracle", [next((j for j in range(last) if paths[j].correct[i]), last) for i in range(n)]
    )

    final_correct = obs.final.correct
    K = t.num_cuts
    whole = edge_memory_bytes(t)[K]
    whole_cloud_ms = t.cloud_ms(0, K)
    ship_input = plan.request.link.transfer_ms(t.transfer_bytes[0])
    full_edge = _Path("edge", t.edge_ms(K), 0, K, 0.0, final_correct, ())
    full_cloud = _Path(
        "cloud", ship_input + whole_cloud_ms, t.transfer_bytes[0], 0, whole_cloud_ms,
        final_correct, (),
    )  # fmt: skip
    final = paths[last]
    no_exits = _Path(
        final.part,
        plan.final_latency_ms,
        final.transfer_bytes,
        final.edge_segments,
        t.cloud_ms(plan.split, plan.final_cut) if final.part == "cloud" else 0.0,
        final_correct,
        (),
    )
    plan_memory = (plan.edge.memory_bytes, plan.cloud.memory_bytes)
    everyone = [0] * n
    return SweepReport(
        plan_hash=plan.hash,
        split=obs.split,
        samples=n,
        confidence=confidence,
        exit_cuts=tuple(o.cut_index for o in (*obs.exits, obs.final)),
        exit_parts=tuple(o.part for o in (*obs.exits, obs.final)),
        exit_accuracy=tuple(sum(o.correct) / n for o in (*obs.exits, obs.final)),
        exit_latency_ms=tuple(p.latency_ms for p in paths),
        exit_cloud_ms=tuple(p.cloud_ms for p in paths),
        rows=rows,
        edge_only=_Scorer([full_edge], cost, (whole, 0), energy).outcome("edge-only", everyone),
        cloud_only=_Scorer([full_cloud], cost, (0, whole), energy).outcome("cloud-only", everyone),
        split_no_exits=_Scorer([no_exits], cost, plan_memory, energy).outcome(
            "split, no exits", everyone
        ),
        oracle=oracle,
    )


def choose_threshold(
    report: SweepReport, target_accuracy: float, objective: str = "latency"
) -> Outcome:
    """The threshold with the lowest expected latency (or cost) whose accuracy meets the target.

    Ties go to the higher threshold (the more conservative one).
    """
    if objective not in ("latency", "cost"):
        raise InferedgeError(f"objective must be 'latency' or 'cost', got {objective!r}")
    meeting = [r for r in report.rows if r.accuracy + 1e-12 >= target_accuracy]
    if not meeting:
        best = max(report.rows, key=lambda r: r.accuracy)
        raise InferedgeError(
            f"no threshold reaches target accuracy {target_accuracy:.4f} on the {report.split} "
            f"split: the best is {best.accuracy:.4f} at {best.name}"
        )

    def key(r: Outcome) -> tuple[float, float]:
        value = r.latency_ms if objective == "latency" else r.cloud_usd_per_million
        return (value, -(r.threshold or 0.0))

    return min(meeting, key=key)


def choose_or_most_accurate(
    report: SweepReport, target_accuracy: float, objective: str = "latency"
) -> tuple[Outcome, str | None]:
    """`choose_threshold`, or, when no threshold meets the target, the most accurate one.

    The second value is None when the target was met, else the reason it was not.
    """
    try:
        return choose_threshold(report, target_accuracy, objective), None
    except InferedgeError as exc:
        best = max(report.rows, key=lambda r: (r.accuracy, -(r.threshold or 0.0)))
        return best, str(exc)
