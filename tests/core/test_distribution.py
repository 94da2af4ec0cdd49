"""The workload distribution policy: each pool's version and share for a target rate."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferedge.core.distribution import (
    DistributionError,
    Pool,
    VersionFigures,
    by_capacity,
    distribute,
    equal_shares,
)

# A site like the paper's: a Jetson Nano, an Odroid XU4 and a Raspberry Pi 4, three versions.
ACCURACY = {"resnet50": 0.96, "resnet18": 0.93, "mobilenet": 0.88}
SPEED = {"resnet50": 1.0, "resnet18": 2.5, "mobilenet": 5.0}  # relative to resnet50


def site(nano: int = 1, xu4: int = 1, pi4: int = 1) -> list[Pool]:
    def row(base: float) -> dict[str, VersionFigures]:
        return {v: VersionFigures(base * SPEED[v], ACCURACY[v]) for v in ACCURACY}

    return [Pool("nano", nano, row(10.0)), Pool("xu4", xu4, row(6.0)), Pool("pi4", pi4, row(4.0))]


def test_a_light_target_runs_the_most_accurate_version_everywhere_shared_by_speed() -> None:
    plan = distribute(site(), 8.0)
    assert plan.met
    assert plan.rate == pytest.approx(8.0)
    assert {a.version for a in plan.assignments} == {"resnet50"}
    assert plan.accuracy == pytest.approx(0.96)
    # every board at the same utilization (8 of the 16.2 requests/s they take), none queueing
    assert [a.share for a in plan.assignments] == pytest.approx([0.5, 0.3, 0.2])
    assert sum(a.share for a in plan.assignments) == pytest.approx(1.0)
    for part in plan.assignments:
        assert part.rate <= part.capacity + 1e-9


def test_a_heavy_target_mixes_versions_and_beats_one_version_everywhere() -> None:
    # At 90 % utilization resnet50 everywhere takes 18/s and resnet18 45/s; mobilenet 90/s.
    target = 50.0
    plan = distribute(site(), target)
    assert plan.met
    assert plan.rate == pytest.approx(target)
    assert len({a.version for a in plan.assignments}) > 1
    # e.g. resnet18 on the Nano and the XU4 (36/s) and mobilenet on the Pi for the rest: 0.916
    assert plan.accuracy >= (36 * 0.93 + 14 * 0.88) / 50 - 1e-9
    for part in plan.assignments:
        assert part.rate <= part.capacity + 1e-9


def test_an_unreachable_target_serves_the_most_it_can_at_the_minimum_accuracy_and_says_so() -> None:
    plan = distribute(site(), 500.0, min_accuracy=0.9)
    assert not plan.met
    assert "500 requests/s exceeds the site's" in plan.reason
    assert "accuracy >= 0.9" in plan.reason
    # the fastest version that meets 0.9 on every board, each at 90 % of what it sustains
    assert {a.version for a in plan.assignments} == {"resnet18"}
    assert plan.rate == pytest.approx(0.9 * 2.5 * (10 + 6 + 4))
    assert plan.capacity == pytest.approx(plan.rate)


def test_the_minimum_accuracy_holds_for_every_version_in_use() -> None:
    plan = distribute(site(), 30.0, min_accuracy=0.9)
    assert plan.met
    assert all(a.accuracy >= 0.9 for a in plan.assignments)
    nothing = distribute(site(), 1.0, min_accuracy=0.99)
    assert not nothing.met
    assert nothing.assignments == ()
    assert "accuracy >= 0.99" in nothing.reason


def test_a_pool_without_live_replicas_gets_no_share() -> None:
    plan = distribute(site(nano=0), 20.0)
    assert plan.met
    assert "nano" not in {a.pool for a in plan.assignments}
    # losing the fastest board forces lighter versions for the same rate
    assert plan.accuracy < distribute(site(), 20.0).accuracy


def test_equal_accuracy_prefers_the_choice_with_more_spare_capacity() -> None:
    row = {"a": VersionFigures(10.0, 0.9), "b": VersionFigures(20.0, 0.9)}
    plan = distribute([Pool("one", 1, row)], 5.0)
    assert [a.version for a in plan.assignments] == ["b"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.floats(0.5, 50.0), st.floats(0.5, 1.0)), min_size=1, max_size=3),
        min_size=1,
        max_size=3,
    ),
    st.floats(1.0, 120.0),
)
def test_no_choice_of_versions_and_shares_is_more_accurate(
    rows: list[list[tuple[float, float]]], target: float
) -> None:
    pools = [
        Pool(f"p{i}", 1, {f"v{j}": VersionFigures(t, a) for j, (t, a) in enumerate(row)})
        for i, row in enumerate(rows)
    ]
    plan = distribute(pools, target, max_utilization=1.0)
    # Brute force: every choice of versions, with shares on a grid of tenths of the target.
    best = None
    grid = [k / 10 for k in range(11)]
    for versions in itertools.product(*(sorted(p.versions) for p in pools)):
        for shares in itertools.product(grid, repeat=len(pools)):
            if abs(sum(shares) - 1.0) > 1e-9:
                continue
            figures = [p.versions[v] for p, v in zip(pools, versions, strict=True)]
            # strictly inside capacity: a share the policy would round away is no counterexample
            if all(
                s * target <= f.throughput * (1 - 1e-9)
                for s, f in zip(shares, figures, strict=True)
            ):
                accuracy = sum(s * f.accuracy for s, f in zip(shares, figures, strict=True))
                best = accuracy if best is None else max(best, accuracy)
    if best is not None:
        assert plan.met
        assert plan.accuracy >= best - 1e-9
    if plan.met:
        assert plan.rate == pytest.approx(target)
        for part in plan.assignments:
            assert part.rate <= part.capacity * (1 + 1e-9)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: distribute([], 1.0), "pools: expected at least one"),
        (lambda: distribute(site(), 0.0), "target: expected requests/s > 0"),
        (lambda: distribute(site(), float("nan")), "target: expected requests/s > 0"),
        (lambda: distribute(site(), 1.0, min_accuracy=1.5), "min_accuracy: expected 0..1"),
        (lambda: distribute(site(), 1.0, max_utilization=0.0), "max_utilization"),
        (lambda: distribute([*site(), site()[0]], 1.0), "names must be unique"),
        (lambda: VersionFigures(0.0, 0.9), "throughput: expected requests/s > 0"),
        (lambda: VersionFigures(1.0, 1.2), "accuracy: expected 0..1"),
        (lambda: Pool("x", -1, {"v": VersionFigures(1.0, 0.9)}), "replicas must be >= 0"),
        (lambda: Pool("x", 1, {}), "has no version"),
        (
            lambda: distribute(
                [
                    Pool(f"p{i}", 1, {f"v{j}": VersionFigures(1.0, 0.9) for j in range(8)})
                    for i in range(6)
                ],
                1.0,
            ),
            "choices of versions, at most",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(call: object, fragment: str) -> None:
    with pytest.raises(DistributionError, match=fragment):
        call()  # type: ignore[operator]


def test_the_comparison_policies_spread_one_version_by_capacity_or_equally() -> None:
    fastest = by_capacity(site(), dict.fromkeys(("nano", "xu4", "pi4"), "mobilenet"), 50.0)
    assert fastest.met
    assert fastest.accuracy == pytest.approx(ACCURACY["mobilenet"])
    assert [a.share for a in fastest.assignments] == pytest.approx([0.5, 0.3, 0.2])
    # ours meets the same rate more accurately
    assert distribute(site(), 50.0).accuracy > fastest.accuracy
    # equal shares saturate on the Pi: 3 x its 0.9 x 4 x 2.5 = 27 requests/s
    robin = equal_shares(site(), "resnet18", 50.0)
    assert not robin.met
    assert robin.rate == pytest.approx(27.0)
    assert "saturate the slowest pool" in robin.reason
    # by capacity, the same version takes 45/s: the gap the paper's distribution closes
    assert by_capacity(site(), dict.fromkeys(("nano", "xu4", "pi4"), "resnet18"), 50.0).rate == (
        pytest.approx(45.0)
    )
    with pytest.raises(DistributionError, match="pool nano has no version 'vgg'"):
        by_capacity(site(), {"nano": "vgg", "xu4": "resnet18", "pi4": "resnet18"}, 1.0)
    with pytest.raises(DistributionError, match="'vgg' is not in the table of pools"):
        equal_shares(site(), "vgg", 1.0)
