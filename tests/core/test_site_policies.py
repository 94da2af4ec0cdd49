"""The comparison policies: which version each serves, and a pipeline over the pools."""

from __future__ import annotations

import pytest

from inferedge.core.distribution import DistributionError, Pool, VersionFigures
from inferedge.core.site_policies import (
    fastest_version,
    most_accurate_version,
    pipeline_over_pools,
)
from inferedge.core.synthetic import synthetic_profile

FIG = VersionFigures


def site() -> list[Pool]:
    return [
        Pool("nano", 1, {"big": FIG(10, 0.98), "small": FIG(40, 0.90), "mid": FIG(20, 0.95)}),
        Pool("pi4", 2, {"big": FIG(4, 0.98), "small": FIG(16, 0.90), "mid": FIG(8, 0.95)}),
    ]


def test_the_fastest_and_the_most_accurate_version() -> None:
    assert fastest_version(site()) == "small"
    assert most_accurate_version(site()) == "big"


def test_a_version_missing_from_a_pool_is_never_chosen() -> None:
    pools = [*site(), Pool("xu4", 1, {"mid": FIG(9, 0.95)})]
    assert fastest_version(pools) == "mid"
    assert most_accurate_version(pools) == "mid"
    with pytest.raises(DistributionError, match="no version is in every pool"):
        fastest_version([*pools, Pool("odd", 1, {"other": FIG(1, 0.5)})])


def _times(profile: object) -> list[float]:
    return [s.at(1).median_ms for s in profile.segments]  # type: ignore[attr-defined]


def test_the_pipeline_makes_its_slowest_stage_as_fast_as_it_can() -> None:
    fast = synthetic_profile(8, ms_per_gflop=10)
    slow = synthetic_profile(8, ms_per_gflop=40)
    n = len(fast.segments)
    plan = pipeline_over_pools([fast, slow], [1, 1], range(n + 1), {}, network_mbps=1e9, hop_ms=0.0)
    times = [_times(fast), _times(slow)]
    # Brute force over every cut and both orders: the plan's slowest stage is the smallest.
    best = min(
        max(sum(times[first][:k]), sum(times[1 - first][k:]))
        for k in range(1, n)
        for first in (0, 1)
    )
    assert max(plan.stage_ms) == pytest.approx(best)
    assert plan.rate == pytest.approx(1000.0 / best)
    assert plan.stages[0][0] == 0
    assert plan.stages[-1][1] == n
    assert plan.stages[0][1] == plan.stages[1][0]
    # The slow board takes the smaller part of the model.
    slow_stage = plan.stages[plan.pools.index(1)]
    assert sum(times[0][slice(*slow_stage)]) <= sum(times[0]) / 2 + max(times[0])


def test_exits_lighten_the_stages_after_them() -> None:
    profile = synthetic_profile(6, ms_per_gflop=10)
    n = len(profile.segments)
    steps = (0, 2, 4, n)
    free = {"network_mbps": 1e9, "hop_ms": 0.0}
    none = pipeline_over_pools([profile] * 3, [1, 1, 1], steps, {}, **free)
    half = pipeline_over_pools([profile] * 3, [1, 1, 1], steps, {2: 0.5}, **free)
    assert none.stages == half.stages == ((0, 2), (2, 4), (4, n))
    assert none.reach == (1.0, 1.0, 1.0)
    assert half.reach == (1.0, 0.5, 0.5)
    ms = _times(profile)
    assert none.rate == pytest.approx(1000.0 / max(sum(ms[0:2]), sum(ms[2:4]), sum(ms[4:])))
    assert half.rate == pytest.approx(1000.0 / max(sum(ms[0:2]), sum(ms[2:4]) / 2, sum(ms[4:]) / 2))
    assert half.rate >= none.rate


def test_hops_cost_their_transfer_and_replicas_multiply_a_stage() -> None:
    profile = synthetic_profile(6, ms_per_gflop=10)
    cuts = range(len(profile.segments) + 1)
    free = pipeline_over_pools([profile] * 3, [1, 1, 1], cuts, {}, network_mbps=1e9, hop_ms=0.0)
    slow_net = pipeline_over_pools([profile] * 3, [1, 1, 1], cuts, {}, network_mbps=1.0, hop_ms=5.0)
    assert slow_net.rate < free.rate
    doubled = pipeline_over_pools([profile] * 3, [2, 2, 2], cuts, {}, network_mbps=1e9, hop_ms=0.0)
    assert doubled.rate == pytest.approx(2 * free.rate)
    assert len(free.stages) == 3
    assert all(a < b for a, b in free.stages)
    assert sorted(free.pools) == [0, 1, 2]


@pytest.mark.parametrize(
    ("replicas", "steps", "named"),
    [
        ([1], (0, 2, 4), "one profile and one replica count"),
        ([1, 0], (0, 2, 4), "live replica"),
        ([1, 1], (0, 4), "1 steps to share"),
        ([1, 1], (1, 2, 4), "from cut 0"),
    ],
)
def test_a_bad_pipeline_is_refused(replicas: list[int], steps: tuple[int, ...], named: str) -> None:
    profile = synthetic_profile(4, ms_per_gflop=10)
    assert len(profile.segments) == 4
    with pytest.raises(DistributionError, match=named):
        pipeline_over_pools([profile, profile], replicas, steps, {})
