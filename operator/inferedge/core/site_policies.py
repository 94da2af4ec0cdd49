"""The policies a site's distribution is compared with, beside the policy itself.

- `round_robin`: one version (the model itself) everywhere, equal shares: the site saturates
  when its slowest pool does;
- `fastest_version`: the version the whole site serves fastest, shares by each pool's speed;
- `most_accurate`: the most accurate version, shares by speed;
- `model_partition`: the model cut into consecutive stages, one per pool, each request going
  through every board in turn (a pipeline over boards): the site's rate is its slowest stage's,
  plus each hop's transfer over the site's network. It is predicted from the profiles, not
  served (`pipeline_over_pools`).

Pure: the choices are made from the exploration table's pools and the profiles, so the
benchmark serves what they name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from inferedge.core.distribution import DistributionError, Pool
from inferedge.core.profile import MeasuredProfile


def _versions(pools: Sequence[Pool]) -> list[str]:
    shared = set.intersection(*(set(p.versions) for p in pools)) if pools else set()
    if not shared:
        raise DistributionError("pools: no version is in every pool's table")
    return sorted(shared)


def fastest_version(pools: Sequence[Pool], max_utilization: float = 0.9) -> str:
    """The version every pool has that gives the site the most capacity."""
    return max(
        _versions(pools),
        key=lambda v: (sum(p.capacity(v, max_utilization) for p in pools), v),
    )


def most_accurate_version(pools: Sequence[Pool]) -> str:
    """The version every pool has with the best accuracy (ties: the fastest)."""
    return max(
        _versions(pools),
        key=lambda v: (
            min(p.versions[v].accuracy for p in pools),
            sum(p.versions[v].throughput * p.replicas for p in pools),
        ),
    )


@dataclass(frozen=True)
class PipelinePlan:
    """A model cut into one stage per pool, in the pools' order."""

    cuts: tuple[int, ...]
    """The cut each stage ends at (the last is the model's last cut)."""
    stage_ms: tuple[float, ...]
    """Each stage's compute for one request, then its hop to the next stage."""
    rate: float
    """Requests a second: one over the slowest stage (its replicas in parallel)."""
    latency_ms: float


def pipeline_over_pools(
    profiles: Sequence[MeasuredProfile],
    replicas: Sequence[int],
    *,
    network_mbps: float = 100.0,
    hop_ms: float = 0.5,
) -> PipelinePlan:
    """The best pipeline of one model over pools in order (`profiles[i]` is the model on
    pool i's class, `replicas[i]` its replicas): the consecutive cuts that make the slowest
    stage fastest. Each hop ships the activation at the cut over `network_mbps` plus `hop_ms`.
    Every pool takes at least one segment."""
    if len(profiles) != len(replicas) or not profiles:
        raise DistributionError("pipeline: expected one profile and one replica count per pool")
    n_segments = len(profiles[0].segments)
    stages = len(profiles)
    if stages > n_segments:
        raise DistributionError(f"pipeline: {stages} pools but only {n_segments} segments")
    if any(len(p.segments) != n_segments for p in profiles):
        raise DistributionError("pipeline: the profiles are of different models")
    if any(r < 1 for r in replicas):
        raise DistributionError("pipeline: every pool needs a live replica")
    ms = [[s.at(1).median_ms for s in p.segments] for p in profiles]
    out_bytes = [c.activation_bytes for c in profiles[0].cut_points]
    best: PipelinePlan | None = None
    for inner in itertools.combinations(range(1, n_segments), stages - 1):
        ends = (*inner, n_segments)
        starts = (0, *inner)
        times = []
        for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
            compute = sum(ms[i][a:b])
            hop = 0.0 if i == stages - 1 else hop_ms + out_bytes[b] * 8 / (network_mbps * 1e3)
            times.append(compute + hop)
        rate = min(
            1000.0 * r / t if t > 0 else math.inf for r, t in zip(replicas, times, strict=True)
        )
        plan = PipelinePlan(tuple(ends), tuple(times), rate, sum(times))
        if best is None or plan.rate > best.rate:
            best = plan
    assert best is not None
    return best
