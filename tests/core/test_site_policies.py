"""The comparison policies: which version each serves, and a pipeline over the pools."""

from __future__ import annotations

import itertools

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


def test_the_pipeline_makes_its_slowest_stage_as_fast_as_it_can() -> None:
    fast = synthetic_profile(8, ms_per_gflop=10)
    slow = synthetic_profile(8, ms_per_gflop=40)
    plan = pipeline_over_pools([fast, slow], [1, 1], network_mbps=1e9, hop_ms=0.0)
    times = [[s.at(1).median_ms for s in p.segments] for p in (fast, slow)]
    # Brute force over every cut: the plan's slowest stage is the smallest there is.
    best = min(max(sum(times[0][:k]), sum(times[1][k:])) for k in range(1, len(fast.segments)))
    assert max(plan.stage_ms) == pytest.approx(best)
    assert plan.rate == pytest.approx(1000.0 / best)
    assert plan.cuts[-1] == len(fast.segments)
    # The slow board takes less of the model than the fast one.
    assert sum(times[1][plan.cuts[0] :]) <= sum(times[0][: plan.cuts[0]]) + max(times[0])


def test_hops_cost_their_transfer_and_replicas_multiply_a_stage() -> None:
    profile = synthetic_profile(6, ms_per_gflop=10)
    free = pipeline_over_pools([profile] * 3, [1, 1, 1], network_mbps=1e9, hop_ms=0.0)
    slow_net = pipeline_over_pools([profile] * 3, [1, 1, 1], network_mbps=1.0, hop_ms=5.0)
    assert slow_net.rate < free.rate
    assert slow_net.stage_ms[-1] <= max(slow_net.stage_ms)
    doubled = pipeline_over_pools([profile] * 3, [2, 2, 2], network_mbps=1e9, hop_ms=0.0)
    assert doubled.rate == pytest.approx(2 * free.rate)
    assert len(free.cuts) == 3
    assert all(a < b for a, b in itertools.pairwise(free.cuts))


@pytest.mark.parametrize(
    ("replicas", "named"), [([1], "one profile and one replica count"), ([1, 0], "live replica")]
)
def test_a_bad_pipeline_is_refused(replicas: list[int], named: str) -> None:
    profile = synthetic_profile(4, ms_per_gflop=10)
    with pytest.raises(DistributionError, match=named):
        pipeline_over_pools([profile, profile], replicas)
