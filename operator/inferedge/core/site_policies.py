"""The policies a site's distribution is compared with, beside the policy itself.

- `round_robin`: one version (the model itself) everywhere, equal shares: the site saturates
  when its slowest pool does;
- `fastest_version`: the version the whole site serves fastest, shares by each pool's speed;
- `most_accurate`: the most accurate version, shares by speed;
- `model_partition`: the model cut into consecutive stages, one per pool, each request going
  through the boards in turn (a pipeline over boards) and leaving at the first confident exit:
  the site's rate is that of the stage that saturates first (`pipeline_over_pools` chooses
  the order and the cuts; the dispatcher serves it, `runtime.site_pipeline`).

Pure: the choices are made from the exploration table's pools and the profiles, so the
benchmark serves what they name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
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
    """A model cut into one stage per pool: which pool runs which cuts, in request order."""

    pools: tuple[int, ...]
    """The pools in stage order (indices into the inputs)."""
    stages: tuple[tuple[int, int], ...]
    """Each stage's first and last cut: the first starts at 0, the last ends at the model's
    final cut, each starts where the one before ended."""
    stage_ms: tuple[float, ...]
    """Each stage's compute for one request that reaches it, then its hop to the next."""
    reach: tuple[float, ...]
    """The share of requests that reach each stage (the rest left at an earlier exit)."""
    rate: float
    """Requests a second: the stage that saturates first bounds it (its replicas in
    parallel, taking only the requests that reach it)."""


def pipeline_over_pools(
    profiles: Sequence[MeasuredProfile],
    replicas: Sequence[int],
    boundaries: Sequence[int],
    exit_shares: Mapping[int, float],
    *,
    network_mbps: float = 100.0,
    hop_ms: float = 0.5,
) -> PipelinePlan:
    """The best pipeline of one model over the pools (`profiles[i]` is the model on pool i's
    class, `replicas[i]` its replicas): every pool one stage, in the order and with the cuts
    that make the stage saturating first as fast as it can be.

    A stage starts and ends at `boundaries`, the cuts the served part's steps start and end at
    (its exits and its ends, from 0 to the final cut), so the exits keep working: a request
    leaves at the first confident exit, and `exit_shares` (cut -> share of all requests
    answered there, at the calibrated threshold) says how many reach each later stage. Each
    hop ships the activation at its cut over `network_mbps` plus `hop_ms`."""
    stages = len(profiles)
    if len(replicas) != stages or not profiles:
        raise DistributionError("pipeline: expected one profile and one replica count per pool")
    cuts = sorted(set(boundaries))
    n_segments = len(profiles[0].segments)
    if any(len(p.segments) != n_segments for p in profiles):
        raise DistributionError("pipeline: the profiles are of different models")
    if not cuts or cuts[0] != 0 or cuts[-1] != n_segments:
        raise DistributionError(
            f"pipeline: the boundaries must run from cut 0 to the final cut {n_segments}"
        )
    if stages > len(cuts) - 1:
        raise DistributionError(
            f"pipeline: {stages} pools but the served model has {len(cuts) - 1} steps to share"
        )
    if any(r < 1 for r in replicas):
        raise DistributionError("pipeline: every pool needs a live replica")
    ms = [[s.at(1).median_ms for s in p.segments] for p in profiles]
    out_bytes = [c.activation_bytes for c in profiles[0].cut_points]
    best: PipelinePlan | None = None
    for inner in itertools.combinations(cuts[1:-1], stages - 1):
        spans = tuple(itertools.pairwise((0, *inner, n_segments)))
        reach = tuple(
            max(1.0 - sum(s for c, s in exit_shares.items() if c <= a), 0.0) for a, _ in spans
        )
        for order in itertools.permutations(range(stages)):
            times = []
            for k, (pool, (a, b)) in enumerate(zip(order, spans, strict=True)):
                last = k == stages - 1
                hop = 0.0 if last else hop_ms + out_bytes[b] * 8 / (network_mbps * 1e3)
                times.append(sum(ms[pool][a:b]) + hop)
            rate = min(
                1000.0 * replicas[pool] / (t * share) if t * share > 0 else math.inf
                for pool, t, share in zip(order, times, reach, strict=True)
            )
            if best is None or rate > best.rate:
                best = PipelinePlan(tuple(order), spans, tuple(times), reach, rate)
    assert best is not None
    return best
