"""The configuration map: for each link state of a grid, the best operating point (Edgent's
configuration map, with SPINN's objectives).

An objective is one of:
- `Deadline`: the most accurate point whose mean latency meets the deadline, or (with a
  `quantile`) that answers at least that share of requests within it, each on its own (Edgent's
  per-request bound); ties go to the faster. When none meets it, the fastest point (the one
  closest to the quantile), marked infeasible.
- `AccuracyFloor`: among the points at least that accurate, the fastest, or the one the cloud
  bills least (`minimise="cloud_cost"`); ties go to the more accurate, then the faster. When
  none is accurate enough, the most accurate, marked infeasible.
- `Priorities` (SPINN): hard limits on latency and accuracy, then the metrics in the given order,
  each kept within a relative tolerance of its best before the next decides.

Per state the work is one pass over the space's link-free figures (`core.operating_space`):
a point's latency there is `compute + offload * (rtt + bytes * 8 / bandwidth)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from inferedge.core.errors import PlanningError
from inferedge.core.link import Link
from inferedge.core.operating_space import PointFigures

Metric = Literal["accuracy", "latency", "cloud_cost"]


@dataclass(frozen=True)
class Deadline:
    """The most accuracy within a latency bound (ms): on the mean (`quantile` None), or met by
    at least that share of the requests, each on its own (Edgent's per-request bound, for
    answers whose latency depends on where they exit)."""

    deadline_ms: float
    quantile: float | None = None


@dataclass(frozen=True)
class AccuracyFloor:
    """The least latency, or cloud cost, at an accuracy of at least `min_accuracy` (0..1)."""

    min_accuracy: float
    minimise: Literal["latency", "cloud_cost"] = "latency"


@dataclass(frozen=True)
class Priorities:
    """SPINN-style: hard limits, then metrics in order, each within `tolerance` of its best."""

    order: tuple[Metric, ...]
    max_latency_ms: float | None = None
    min_accuracy: float | None = None
    tolerance: float = 0.01


Objective = Deadline | AccuracyFloor | Priorities


@dataclass(frozen=True)
class MapEntry:
    """The point chosen for one link state, its latency there, and whether it meets the goal."""

    link: Link
    figures: PointFigures
    latency_ms: float
    feasible: bool


@dataclass(frozen=True)
class ConfigurationMap:
    """The best point per state of a bandwidth x RTT grid (entries bandwidth-major)."""

    bandwidths_mbps: tuple[float, ...]
    rtts_ms: tuple[float, ...]
    entries: tuple[MapEntry, ...]

    def entry(self, bandwidth_index: int, rtt_index: int) -> MapEntry:
        """The entry of one grid state."""
        return self.entries[bandwidth_index * len(self.rtts_ms) + rtt_index]

    def cell(self, link: Link) -> tuple[int, int]:
        """The grid state a measured link is read as: the nearest bandwidth by ratio (in log
        space, as bandwidths vary) and the nearest RTT. Not the next one down: an estimate a
        few percent under a grid bandwidth (protocol overhead counts against it) would then
        be read as the state below, which on a geometric grid is half as fast or worse. Halfway
        between two states, the worse one (lower bandwidth, higher RTT)."""
        log_bw = math.log(link.bandwidth_mbps)
        b = min(
            range(len(self.bandwidths_mbps)),
            key=lambda i: (abs(math.log(self.bandwidths_mbps[i]) - log_bw), i),
        )
        r = min(range(len(self.rtts_ms)), key=lambda i: (abs(self.rtts_ms[i] - link.rtt_ms), -i))
        return b, r

    def lookup(self, link: Link) -> MapEntry:
        """The entry for a measured link, read as `cell` reads it."""
        return self.entry(*self.cell(link))


def _check_grid(values: Sequence[float], name: str, positive: bool) -> tuple[float, ...]:
    grid = tuple(float(v) for v in values)
    low_ok = all(math.isfinite(v) and (v > 0 if positive else v >= 0) for v in grid)
    if not grid or not low_ok or any(b <= a for a, b in pairwise(grid)):
        bound = "finite positive" if positive else "finite non-negative"
        raise PlanningError(
            f"{name}: expected {bound} values, strictly ascending, got {list(grid)}"
        )
    return grid


def _check_objective(objective: Objective) -> None:
    if isinstance(objective, Deadline) and not objective.deadline_ms > 0:
        raise PlanningError(f"deadline_ms: expected > 0, got {objective.deadline_ms}")
    quantile = objective.quantile if isinstance(objective, Deadline) else None
    if quantile is not None and not 0 < quantile <= 1:
        raise PlanningError(f"quantile: expected 0 < quantile <= 1, got {quantile}")
    if isinstance(objective, AccuracyFloor) and not 0 <= objective.min_accuracy <= 1:
        raise PlanningError(f"min_accuracy: expected 0..1, got {objective.min_accuracy}")
    if isinstance(objective, Priorities):
        order = objective.order
        if not order or len(set(order)) != len(order):
            raise PlanningError(f"order: expected distinct metrics, got {list(order)}")
        if not 0 <= objective.tolerance < 1:
            raise PlanningError(
                f"tolerance: expected 0 <= tolerance < 1, got {objective.tolerance}"
            )


def build_map(
    space: Sequence[PointFigures],
    bandwidths_mbps: Sequence[float],
    rtts_ms: Sequence[float],
    objective: Objective,
) -> ConfigurationMap:
    """The best point of `space` for every (bandwidth, RTT) of the grid under `objective`."""
    if not space:
        raise PlanningError("the operating space is empty")
    bandwidths = _check_grid(bandwidths_mbps, "bandwidths_mbps", positive=True)
    rtts = _check_grid(rtts_ms, "rtts_ms", positive=False)
    _check_objective(objective)
    points = _Columns.of(space)
    entries = tuple(
        _choose(points, Link(bandwidth_mbps=b, rtt_ms=r), objective)
        for b in bandwidths
        for r in rtts
    )
    return ConfigurationMap(bandwidths, rtts, entries)


@dataclass(frozen=True)
class _Columns:
    """The space as columns, so one state's latencies are one comprehension."""

    figures: tuple[PointFigures, ...]
    accuracy: tuple[float, ...]
    compute: tuple[float, ...]
    offload: tuple[float, ...]
    offload_bytes: tuple[float, ...]
    cloud: tuple[float, ...]

    @classmethod
    def of(cls, space: Sequence[PointFigures]) -> _Columns:
        return cls(
            tuple(space),
            tuple(p.accuracy for p in space),
            tuple(p.compute_ms for p in space),
            tuple(p.offload_rate for p in space),
            tuple(p.offload_rate * p.transfer_bytes for p in space),
            tuple(p.cloud_ms for p in space),
        )

    def latencies(self, link: Link) -> list[float]:
        per_byte = 8.0 / (link.bandwidth_mbps * 1e6) * 1e3
        rtt = link.rtt_ms
        return [
            c + o * rtt + ob * per_byte
            for c, o, ob in zip(self.compute, self.offload, self.offload_bytes, strict=True)
        ]


def choose(space: Sequence[PointFigures], link: Link, objective: Objective) -> MapEntry:
    """The best point of `space` for one link state under `objective`."""
    if not space:
        raise PlanningError("the operating space is empty")
    _check_objective(objective)
    return _choose(_Columns.of(space), link, objective)


def _choose(columns: _Columns, link: Link, objective: Objective) -> MapEntry:
    latency = columns.latencies(link)
    accuracy, cloud = columns.accuracy, columns.cloud
    everyone = range(len(latency))
    if isinstance(objective, Deadline) and objective.quantile is not None:
        bound = objective.deadline_ms
        within = [f.within(link, bound) for f in columns.figures]
        meets = [i for i in everyone if within[i] >= objective.quantile]
        if meets:
            best = max(meets, key=lambda i: (accuracy[i], -latency[i]))
            return _entry(columns, best, link, latency, True)
        closest = max(everyone, key=lambda i: (within[i], -latency[i]))
        return _entry(columns, closest, link, latency, False)
    if isinstance(objective, Deadline):
        meets = [i for i in everyone if latency[i] <= objective.deadline_ms]
        if meets:
            best = max(meets, key=lambda i: (accuracy[i], -latency[i]))
            return _entry(columns, best, link, latency, True)
        return _entry(columns, min(everyone, key=lambda i: latency[i]), link, latency, False)
    if isinstance(objective, AccuracyFloor):
        enough = [i for i in everyone if accuracy[i] >= objective.min_accuracy]
        if not enough:
            best = max(everyone, key=lambda i: (accuracy[i], -latency[i]))
            return _entry(columns, best, link, latency, False)
        if objective.minimise == "latency":
            best = min(enough, key=lambda i: (latency[i], -accuracy[i]))
        else:
            best = min(enough, key=lambda i: (cloud[i], -accuracy[i], latency[i]))
        return _entry(columns, best, link, latency, True)
    return _prioritised(columns, objective, link, latency)


def _prioritised(
    columns: _Columns, objective: Priorities, link: Link, latency: list[float]
) -> MapEntry:
    accuracy, cloud = columns.accuracy, columns.cloud
    allowed = [
        i
        for i in range(len(latency))
        if (objective.max_latency_ms is None or latency[i] <= objective.max_latency_ms)
        and (objective.min_accuracy is None or accuracy[i] >= objective.min_accuracy)
    ]
    feasible = bool(allowed)
    kept = allowed or list(range(len(latency)))
    # score: lower is better for every metric
    scores = {
        "accuracy": [-a for a in accuracy],
        "latency": latency,
        "cloud_cost": list(cloud),
    }
    for metric in objective.order:
        score = scores[metric]
        best = min(score[i] for i in kept)
        slack = abs(best) * objective.tolerance
        kept = [i for i in kept if score[i] <= best + slack]
    last = scores[objective.order[-1]]
    chosen = min(kept, key=lambda i: (last[i], latency[i], -accuracy[i]))
    return _entry(columns, chosen, link, latency, feasible)


def _entry(
    columns: _Columns, index: int, link: Link, latency: list[float], feasible: bool
) -> MapEntry:
    return MapEntry(link, columns.figures[index], latency[index], feasible)
