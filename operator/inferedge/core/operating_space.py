"""The operating space: every (split, active exits, threshold) the exported artifacts can serve,
with the figures of each that do not depend on the link.

The artifacts hold exit heads at a set of candidate cuts. An operating point splits at cut s
(0: the cloud runs everything; K: the edge does), activates up to three candidates per part,
never straddling the split (edge exits at cuts 1..s, cloud exits at cuts s+1..K-1), and answers
at the first active exit whose confidence reaches the threshold. Which exits a part activates is
the placement the planner uses (linear or Pareto over that part's cost), applied to the
candidates inside it.

A point's mean latency on a link is `compute_ms + offload_rate * link.transfer_ms(bytes)`: the
only link-dependent term is the offloaded share times one transfer of the split's activation.
So everything per sample (who answers where, right or wrong, at what compute) is worked out once
per point, here, and a configuration map over many link states (`core.config_map`) only does
that arithmetic. Samples are bit sets (Python ints): one AND and one popcount per exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from inferedge.core.errors import PlanningError
from inferedge.core.link import Link
from inferedge.core.placement import Placement, place_exits
from inferedge.core.planner import Tables
from inferedge.core.sweep import DEFAULT_THRESHOLDS

MAX_EXITS_PER_PART = 3


@dataclass(frozen=True)
class CandidateExit:
    """A trained exit head at one cut: what it said of each evaluation sample, and its cost."""

    cut_index: int
    confidence: tuple[float, ...]
    correct: tuple[bool, ...]
    edge_head_ms: float
    cloud_head_ms: float


@dataclass(frozen=True)
class OperatingPoint:
    """What the edge and the cloud serve: the split, the active exits, the threshold."""

    split: int
    edge_exits: tuple[int, ...]
    cloud_exits: tuple[int, ...]
    threshold: float


@dataclass(frozen=True)
class AnswerPath:
    """Where a share of the requests is answered, and the compute on their way there."""

    share: float
    compute_ms: float
    offloaded: bool  # these requests also pay one transfer of the split's activation


@dataclass(frozen=True)
class PointFigures:
    """One point's expected figures per request, apart from the link."""

    point: OperatingPoint
    accuracy: float
    compute_ms: float  # edge and cloud compute, heads included, on the way to the answer
    offload_rate: float
    transfer_bytes: int  # the split's activation, shipped by each offloaded request
    cloud_ms: float  # cloud compute (what the cloud bills), over all requests
    paths: tuple[AnswerPath, ...] = ()  # each exit, then the final classifier, in path order

    @property
    def cloud_per_offload_ms(self) -> float:
        """The cloud compute of one offloaded request, on average (0 when none is)."""
        return self.cloud_ms / self.offload_rate if self.offload_rate > 0.0 else 0.0

    def latency_ms(self, link: Link) -> float:
        """Mean latency on `link`."""
        if self.offload_rate == 0.0:
            return self.compute_ms
        return self.compute_ms + self.offload_rate * link.transfer_ms(self.transfer_bytes)

    def within(self, link: Link, deadline_ms: float) -> float:
        """The share of requests answered within `deadline_ms` on `link`."""
        transfer = link.transfer_ms(self.transfer_bytes)
        return sum(
            p.share
            for p in self.paths
            if p.compute_ms + (transfer if p.offloaded else 0.0) <= deadline_ms
        )


@dataclass(frozen=True)
class SpaceLimits:
    """What bounds the space: the edge's memory (the deepest split), exits, thresholds."""

    max_split: int
    max_exits_per_part: int = MAX_EXITS_PER_PART
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    placement: Placement = "linear"


def _mask(flags: Sequence[bool]) -> int:
    return sum(1 << i for i, flag in enumerate(flags) if flag)


@dataclass(frozen=True)
class _Masks:
    correct: dict[int, int]  # by cut
    confident: dict[tuple[int, float], int]  # by (cut, threshold)
    final: int
    everyone: int
    samples: int


def _masks(
    candidates: Sequence[CandidateExit], final_correct: Sequence[bool], thresholds: Sequence[float]
) -> _Masks:
    n = len(final_correct)
    for c in candidates:
        if len(c.confidence) != n or len(c.correct) != n:
            raise PlanningError(
                f"candidate exit at cut {c.cut_index}: expected {n} samples like the final "
                f"classifier, got {len(c.confidence)} confidences and {len(c.correct)} answers"
            )
    confident: dict[tuple[int, float], int] = {}
    for c in candidates:
        confident.update(_confident(c, thresholds))
    return _Masks(
        correct={c.cut_index: _mask(c.correct) for c in candidates},
        confident=confident,
        final=_mask(final_correct),
        everyone=(1 << n) - 1,
        samples=n,
    )


def _confident(
    candidate: CandidateExit, thresholds: Sequence[float]
) -> dict[tuple[int, float], int]:
    """The samples at least that confident, per threshold: each sample is added once, walking
    the thresholds down (a thousand candidates at a thousand samples take a fraction of a
    second, where a comparison per sample and threshold took seconds)."""
    order = sorted(range(len(candidate.confidence)), key=candidate.confidence.__getitem__)
    out, mask = {}, 0
    for threshold in sorted(thresholds, reverse=True):
        while order and candidate.confidence[order[-1]] >= threshold:
            mask |= 1 << order.pop()
        out[(candidate.cut_index, threshold)] = mask
    return out


def _placed(
    cuts: Sequence[int],
    cost: Sequence[float],
    *,
    first: int,
    last: int,
    n: int,
    placement: Placement,
) -> tuple[int, ...]:
    """Up to `n` of `cuts` (ascending, all within first..last) spread along the part's cost."""
    if len(cuts) <= n:
        return tuple(cuts)
    span = cost[last] - cost[first]
    positions = [
        (cost[c] - cost[first]) / span if span > 0 else (c - first) / max(last - first, 1)
        for c in cuts
    ]
    return tuple(cuts[i] for i in place_exits(n, positions, end_is_exit=True, placement=placement))


def spread_cuts(tables: Tables, count: int, placement: Placement = "linear") -> list[int]:
    """Up to `count` cuts (of 1..K-1) spread along the edge's cost: where to train candidate
    exits when one per cut would be too many."""
    inner = list(range(1, tables.num_cuts))
    edge_cost = list(tables.edge_prefix_ms)
    return list(
        _placed(inner, edge_cost, first=0, last=tables.num_cuts, n=count, placement=placement)
    )


def enumerate_space(
    tables: Tables,
    candidates: Sequence[CandidateExit],
    final_correct: Sequence[bool],
    limits: SpaceLimits,
) -> list[PointFigures]:
    """Every point of the space with its link-free figures, splits ascending, then thresholds."""
    k = tables.num_cuts
    if not 0 <= limits.max_split <= k:
        raise PlanningError(f"max_split: expected 0..{k}, got {limits.max_split}")
    cuts = sorted(c.cut_index for c in candidates)
    if len(set(cuts)) != len(cuts) or any(not 0 < c < k for c in cuts):
        raise PlanningError(f"candidate exits: expected distinct cuts in 1..{k - 1}, got {cuts}")
    if not final_correct:
        raise PlanningError("final_correct: expected at least one evaluation sample")
    masks = _masks(candidates, final_correct, limits.thresholds)
    heads = {c.cut_index: (c.edge_head_ms, c.cloud_head_ms) for c in candidates}
    cloud_cost = list(tables.cloud_prefix_ms)
    edge_cost = list(tables.edge_prefix_ms)
    n = limits.max_exits_per_part
    out = []
    # The artifacts cut their files at the candidates, so those are the only splits they serve.
    splits = sorted({0, limits.max_split, *(c for c in cuts if c <= limits.max_split)})
    for split in splits:
        inside = [c for c in cuts if c <= split]
        edge = _placed(inside, edge_cost, first=0, last=split, n=n, placement=limits.placement)
        beyond = cuts[len(inside) :]
        cloud = _placed(beyond, cloud_cost, first=split, last=k, n=n, placement=limits.placement)
        for threshold in limits.thresholds:
            point = OperatingPoint(split, edge, cloud, threshold)
            out.append(_figures(point, tables, masks, heads))
    return out


def with_overhead(figures: PointFigures, overhead_ms: float) -> PointFigures:
    """`figures` with `overhead_ms` more on every path: the per-request serving time outside
    the model calls and the link, which every request pays wherever it is answered."""
    if overhead_ms == 0.0:
        return figures
    return replace(
        figures,
        compute_ms=figures.compute_ms + overhead_ms,
        paths=tuple(replace(p, compute_ms=p.compute_ms + overhead_ms) for p in figures.paths),
    )


def with_tail(figures: PointFigures, tail: float) -> PointFigures:
    """`figures` with every path's time scaled by `tail`, the measured ratio of a served
    request's time to its path's prediction at the objective's quantile: `within` then tests
    the path's slow requests against the deadline, not its typical one. The mean is kept."""
    if tail == 1.0:
        return figures
    return replace(
        figures, paths=tuple(replace(p, compute_ms=p.compute_ms * tail) for p in figures.paths)
    )


def route_figures(
    tables: Tables,
    candidates: Sequence[CandidateExit],
    final_correct: Sequence[bool],
    thresholds: Sequence[float],
    route: OperatingPoint,
) -> list[PointFigures]:
    """The figures of one route (`route`'s split and exits, its threshold ignored) at every
    threshold, whether or not the placement would choose those exits: a pinned baseline's."""
    masks = _masks(candidates, final_correct, thresholds)
    heads = {c.cut_index: (c.edge_head_ms, c.cloud_head_ms) for c in candidates}
    return [
        _figures(
            OperatingPoint(route.split, route.edge_exits, route.cloud_exits, threshold),
            tables,
            masks,
            heads,
        )
        for threshold in thresholds
    ]


def _figures(
    point: OperatingPoint, t: Tables, m: _Masks, heads: dict[int, tuple[float, float]]
) -> PointFigures:
    """Walk the samples down the point's exits: who answers where, right or wrong, how fast."""
    remaining, right, compute = m.everyone, 0, 0.0
    head_ms = 0.0
    paths: list[tuple[int, float, bool]] = []  # (samples, compute ms, offloaded)
    for cut in point.edge_exits:
        head_ms += heads[cut][0]
        answered = remaining & m.confident[(cut, point.threshold)]
        right += (answered & m.correct[cut]).bit_count()
        compute += answered.bit_count() * (t.edge_ms(cut) + head_ms)
        paths.append((answered.bit_count(), t.edge_ms(cut) + head_ms, False))
        remaining &= ~answered
    k, split = t.num_cuts, point.split
    offloaded = remaining.bit_count() if split < k else 0
    edge_ms = t.edge_ms(split) + head_ms  # what every request that goes on has run at the edge
    cloud_total = 0.0
    cloud_head_ms = 0.0
    for cut in point.cloud_exits:
        cloud_head_ms += heads[cut][1]
        answered = remaining & m.confident[(cut, point.threshold)]
        right += (answered & m.correct[cut]).bit_count()
        cloud_total += answered.bit_count() * (t.cloud_ms(split, cut) + cloud_head_ms)
        paths.append((answered.bit_count(), edge_ms + t.cloud_ms(split, cut) + cloud_head_ms, True))
        remaining &= ~answered
    right += (remaining & m.final).bit_count()
    final_cloud_ms = t.cloud_ms(split, k) + cloud_head_ms if split < k else 0.0
    cloud_total += remaining.bit_count() * final_cloud_ms
    if split == k:
        compute += remaining.bit_count() * edge_ms
        paths.append((remaining.bit_count(), edge_ms, False))
    else:
        compute += offloaded * edge_ms + cloud_total
        paths.append((remaining.bit_count(), edge_ms + final_cloud_ms, True))
    n = m.samples
    return PointFigures(
        point=point,
        accuracy=right / n,
        compute_ms=compute / n,
        offload_rate=offloaded / n,
        transfer_bytes=t.transfer_bytes[split] if split < k else 0,
        cloud_ms=cloud_total / n,
        paths=tuple(AnswerPath(count / n, ms, off) for count, ms, off in paths),
    )
