"""The operating space and the configuration map, checked against a per-sample walk written
independently of the bit-set arithmetic, and against brute force over every point."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferedge.core.config_map import (
    AccuracyFloor,
    Deadline,
    Objective,
    Priorities,
    build_map,
    choose,
)
from inferedge.core.errors import PlanningError
from inferedge.core.link import Link
from inferedge.core.operating_space import (
    CandidateExit,
    OperatingPoint,
    PointFigures,
    SpaceLimits,
    enumerate_space,
)
from inferedge.core.planner import Tables, build_tables
from inferedge.core.synthetic import synthetic_exits, synthetic_profile

THRESHOLDS = (0.5, 0.7, 0.9)


def tables(num_cuts: int, seed: int, edge_ms_per_gflop: float = 60.0) -> Tables:
    edge = synthetic_profile(num_cuts, seed=seed, ms_per_gflop=edge_ms_per_gflop)
    cloud = synthetic_profile(num_cuts, seed=seed, ms_per_gflop=6.0)
    return build_tables(edge, cloud, 1)


def candidates(
    t: Tables, cuts: list[int], samples: int, seed: int
) -> tuple[list[CandidateExit], list[bool]]:
    return synthetic_exits(t.num_cuts, cuts, samples=samples, seed=seed)


def walk(
    point: OperatingPoint,
    t: Tables,
    exits: dict[int, CandidateExit],
    final: list[bool],
    link: Link,
) -> tuple[list[float], float]:
    """Each sample's latency, and the accuracy, one sample at a time."""
    k, split = t.num_cuts, point.split
    latencies, right = [], 0
    for i in range(len(final)):
        head_ms, answered = 0.0, False
        for cut in point.edge_exits:
            head_ms += exits[cut].edge_head_ms
            if exits[cut].confidence[i] >= point.threshold:
                latencies.append(t.edge_ms(cut) + head_ms)
                right += exits[cut].correct[i]
                answered = True
                break
        if answered:
            continue
        at_edge = t.edge_ms(split) + head_ms
        if split == k:
            latencies.append(at_edge)
            right += final[i]
            continue
        shipped = at_edge + link.transfer_ms(t.transfer_bytes[split])
        cloud_head = 0.0
        for cut in point.cloud_exits:
            cloud_head += exits[cut].cloud_head_ms
            if exits[cut].confidence[i] >= point.threshold:
                latencies.append(shipped + t.cloud_ms(split, cut) + cloud_head)
                right += exits[cut].correct[i]
                answered = True
                break
        if not answered:
            latencies.append(shipped + t.cloud_ms(split, k) + cloud_head)
            right += final[i]
    return latencies, right / len(final)


links = st.builds(
    Link,
    bandwidth_mbps=st.floats(0.05, 500.0),
    rtt_ms=st.floats(0.0, 300.0),
)


@settings(max_examples=40, deadline=None)
@given(
    num_cuts=st.integers(2, 12),
    seed=st.integers(0, 10_000),
    link=links,
    data=st.data(),
)
def test_every_points_figures_match_a_per_sample_walk(
    num_cuts: int, seed: int, link: Link, data: st.DataObject
) -> None:
    t = tables(num_cuts, seed)
    cuts = data.draw(st.lists(st.integers(1, num_cuts - 1), unique=True, max_size=7), "cuts")
    exits, final = candidates(t, sorted(cuts), samples=37, seed=seed)
    max_split = data.draw(st.integers(0, num_cuts), "max_split")
    space = enumerate_space(
        t, exits, final, SpaceLimits(max_split=max_split, thresholds=THRESHOLDS)
    )
    served_splits = {0, max_split, *(c for c in cuts if c <= max_split)}
    assert sorted({f.point.split for f in space}) == sorted(served_splits)
    assert len(space) == len(served_splits) * len(THRESHOLDS)
    by_cut = {e.cut_index: e for e in exits}
    for figures in space:
        point = figures.point
        assert len(point.edge_exits) <= 3
        assert len(point.cloud_exits) <= 3
        assert all(c <= point.split for c in point.edge_exits)
        assert all(point.split < c < num_cuts for c in point.cloud_exits)
        latencies, accuracy = walk(point, t, by_cut, final, link)
        mean = sum(latencies) / len(latencies)
        assert figures.latency_ms(link) == pytest.approx(mean, rel=1e-9, abs=1e-9)
        assert figures.accuracy == pytest.approx(accuracy)
        assert sum(p.share for p in figures.paths) == pytest.approx(1.0)
        for bound in sorted(latencies)[:: max(len(latencies) // 4, 1)]:
            # between two samples' latencies, so float rounding cannot flip one
            deadline = bound * (1 + 1e-9) + 1e-9
            share = sum(x <= deadline for x in latencies) / len(latencies)
            assert figures.within(link, deadline) == pytest.approx(share)


def brute_force(space: list[PointFigures], link: Link, objective: Objective) -> tuple[float, ...]:
    """The value an optimal choice must reach, from every point in turn."""
    rows = [(p.accuracy, p.latency_ms(link), p.cloud_ms) for p in space]
    if isinstance(objective, Deadline) and objective.quantile is not None:
        share = [p.within(link, objective.deadline_ms) for p in space]
        meets = [r for r, s in zip(rows, share, strict=True) if s >= objective.quantile]
        if not meets:
            return (max(share),)
        best = max(r[0] for r in meets)
        return (best, min(r[1] for r in meets if r[0] == best))
    if isinstance(objective, Deadline):
        meets = [r for r in rows if r[1] <= objective.deadline_ms]
        if not meets:
            return (min(r[1] for r in rows),)
        best = max(r[0] for r in meets)
        return (best, min(r[1] for r in meets if r[0] == best))
    assert isinstance(objective, AccuracyFloor)
    enough = [r for r in rows if r[0] >= objective.min_accuracy]
    if not enough:
        return (max(r[0] for r in rows),)
    return (min(r[1] for r in enough),)


def value(
    chosen: PointFigures, link: Link, objective: Objective, feasible: bool
) -> tuple[float, ...]:
    if isinstance(objective, Deadline) and objective.quantile is not None and not feasible:
        return (chosen.within(link, objective.deadline_ms),)
    if isinstance(objective, Deadline):
        return (
            (chosen.accuracy, chosen.latency_ms(link)) if feasible else (chosen.latency_ms(link),)
        )
    return (chosen.latency_ms(link),) if feasible else (chosen.accuracy,)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    deadline=st.floats(1.0, 3000.0),
    floor=st.floats(0.0, 1.0),
)
def test_the_map_reaches_the_brute_force_optimum_in_every_state(
    seed: int, deadline: float, floor: float
) -> None:
    t = tables(8, seed)
    exits, final = candidates(t, [1, 2, 4, 6, 7], samples=50, seed=seed)
    space = enumerate_space(t, exits, final, SpaceLimits(max_split=8, thresholds=THRESHOLDS))
    bandwidths, rtts = (0.1, 1.0, 8.0, 100.0), (0.0, 40.0, 200.0)
    for objective in (Deadline(deadline), Deadline(deadline, quantile=0.9), AccuracyFloor(floor)):
        mapped = build_map(space, bandwidths, rtts, objective)
        assert len(mapped.entries) == len(bandwidths) * len(rtts)
        for entry in mapped.entries:
            want = brute_force(space, entry.link, objective)
            got = value(entry.figures, entry.link, objective, entry.feasible)
            assert got == pytest.approx(want)
            assert entry.latency_ms == pytest.approx(entry.figures.latency_ms(entry.link))


def test_a_slow_link_keeps_the_work_at_the_edge_and_a_fast_one_sends_it_on() -> None:
    t = tables(10, seed=3)
    exits, final = candidates(t, [2, 5, 8], samples=200, seed=3)
    space = enumerate_space(t, exits, final, SpaceLimits(max_split=10))
    objective = AccuracyFloor(0.0)  # the fastest point, whatever it answers
    slow = choose(space, Link(bandwidth_mbps=0.01, rtt_ms=500.0), objective)
    fast = choose(space, Link(bandwidth_mbps=10_000.0, rtt_ms=0.0), objective)
    assert slow.figures.offload_rate == 0.0
    assert fast.figures.point.split < slow.figures.point.split or fast.figures.offload_rate > 0
    assert fast.latency_ms < slow.latency_ms


def test_an_objective_nothing_meets_is_marked_infeasible_with_the_nearest_point() -> None:
    t = tables(6, seed=1)
    exits, final = candidates(t, [2, 4], samples=40, seed=1)
    space = enumerate_space(t, exits, final, SpaceLimits(max_split=6))
    link = Link(bandwidth_mbps=1.0, rtt_ms=50.0)
    rushed = choose(space, link, Deadline(1e-6))
    assert not rushed.feasible
    assert rushed.latency_ms == min(p.latency_ms(link) for p in space)
    perfect = choose(space, link, AccuracyFloor(1.0))
    if not perfect.feasible:
        assert perfect.figures.accuracy == max(p.accuracy for p in space)
    cheap = choose(space, link, AccuracyFloor(0.0, minimise="cloud_cost"))
    assert cheap.figures.cloud_ms == min(p.cloud_ms for p in space)


def test_priorities_keep_each_metric_near_its_best_before_the_next() -> None:
    t = tables(8, seed=5)
    exits, final = candidates(t, [1, 3, 5, 7], samples=60, seed=5)
    space = enumerate_space(t, exits, final, SpaceLimits(max_split=8))
    link = Link(bandwidth_mbps=5.0, rtt_ms=30.0)
    accurate_first = choose(space, link, Priorities(order=("accuracy", "latency")))
    best_accuracy = max(p.accuracy for p in space)
    assert accurate_first.figures.accuracy >= best_accuracy * 0.99
    near = [p for p in space if p.accuracy >= best_accuracy * 0.99]
    assert accurate_first.latency_ms == min(p.latency_ms(link) for p in near)
    limit = sorted(p.latency_ms(link) for p in space)[len(space) // 2]
    capped = choose(space, link, Priorities(order=("accuracy",), max_latency_ms=limit))
    assert capped.feasible
    assert capped.latency_ms <= limit


def test_lookup_reads_the_nearest_state_bandwidth_by_ratio() -> None:
    t = tables(6, seed=2)
    exits, final = candidates(t, [2, 4], samples=30, seed=2)
    space = enumerate_space(t, exits, final, SpaceLimits(max_split=6))
    mapped = build_map(space, (1.0, 8.0, 20.0), (10.0, 50.0), Deadline(500.0))

    def read(bandwidth: float, rtt: float) -> tuple[float, float]:
        link = mapped.lookup(Link(bandwidth_mbps=bandwidth, rtt_ms=rtt)).link
        return link.bandwidth_mbps, link.rtt_ms

    assert read(0.97, 12.0) == (1.0, 10.0)  # a little under a state is that state
    assert read(2.5, 31.0) == (1.0, 50.0)  # 2.5 is 2.5x above 1 and 3.2x below 8
    assert read(3.0, 29.0) == (8.0, 10.0)
    assert read(0.01, 400.0) == (1.0, 50.0)
    assert read(900.0, 0.0) == (20.0, 10.0)
    assert read(8.0, 30.0) == (8.0, 50.0)  # halfway: the worse state


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: build_map(s, (), (1.0,), Deadline(10)), "bandwidths_mbps: expected finite"),
        (lambda s: build_map(s, (2.0, 1.0), (1.0,), Deadline(10)), "strictly ascending"),
        (lambda s: build_map(s, (1.0,), (-1.0,), Deadline(10)), "rtts_ms: expected finite non-neg"),
        (lambda s: build_map(s, (float("inf"),), (1.0,), Deadline(10)), "bandwidths_mbps"),
        (lambda s: build_map(s, (1.0,), (1.0,), Deadline(0)), "deadline_ms: expected > 0"),
        (lambda s: build_map(s, (1.0,), (1.0,), Deadline(9, 0)), "quantile: expected 0 <"),
        (lambda s: build_map(s, (1.0,), (1.0,), AccuracyFloor(1.5)), "min_accuracy: expected 0..1"),
        (lambda s: build_map(s, (1.0,), (1.0,), Priorities(order=())), "order: expected distinct"),
        (lambda s: build_map([], (1.0,), (1.0,), Deadline(10)), "the operating space is empty"),
    ],
)
def test_bad_grids_and_objectives_are_refused_in_one_line(call: object, message: str) -> None:
    t = tables(4, seed=0)
    exits, final = candidates(t, [2], samples=10, seed=0)
    space = enumerate_space(t, exits, final, SpaceLimits(max_split=4))
    with pytest.raises(PlanningError, match=message):
        call(space)  # type: ignore[operator]


def test_bad_candidates_and_limits_are_refused_naming_what() -> None:
    t = tables(5, seed=0)
    exits, final = candidates(t, [2, 3], samples=10, seed=0)
    with pytest.raises(PlanningError, match=r"max_split: expected 0\.\.5, got 6"):
        enumerate_space(t, exits, final, SpaceLimits(max_split=6))
    far, _ = candidates(t, [2, 5], samples=10, seed=0)
    with pytest.raises(PlanningError, match=r"expected distinct cuts in 1\.\.4, got \[2, 5\]"):
        enumerate_space(t, far, final, SpaceLimits(max_split=5))
    with pytest.raises(PlanningError, match="cut 2: expected 9 samples"):
        enumerate_space(t, exits, final[:9], SpaceLimits(max_split=5))
