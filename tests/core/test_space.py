"""The space plan and the space file: which exits are trained, how deep the edge may go, which
points the files serve, and the file's validation."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from inferedge.core.calibration import ExitObservations, Observations
from inferedge.core.link import Link
from inferedge.core.plan import PlanRequest
from inferedge.core.planner import build_tables
from inferedge.core.point_text import parse_point
from inferedge.core.profile import HeadTiming, MeasuredProfile, ServedTimes
from inferedge.core.space import (
    LinkGrid,
    ObjectiveSpec,
    SpaceError,
    SpaceInputs,
    corrected,
    dump_space,
    edge_factor,
    parse_space,
    space_inputs,
)
from inferedge.core.space_plan import deepest_split, make_space_plan, stops
from tests.factories import profile

EDGE_MS = [4.0, 3.0, 6.0, 2.0, 5.0, 1.0]
CLOUD_MS = [0.5, 0.4, 0.8, 0.3, 0.6, 0.2]


def pair(memory: int = 10**12) -> tuple[MeasuredProfile, MeasuredProfile]:
    params = [1000, 2000, 4000, 8000, 16000, 32000]
    edge = profile(EDGE_MS, params=params, peaks=[100] * 6, memory=memory, name="edge")
    cloud = profile(CLOUD_MS, params=params, peaks=[100] * 6, name="cloud")
    return edge, cloud


def test_a_head_at_every_inner_cut_and_the_deepest_split() -> None:
    edge, cloud = pair()
    plan = make_space_plan(edge, cloud, PlanRequest(), candidate_count=None)
    assert [e.cut_index for e in plan.exits] == [1, 2, 3, 4, 5]
    assert plan.split == plan.final_cut == 6
    assert all(e.part == "edge" for e in plan.exits)
    assert "operating space: 5 candidate exits" in plan.notes[0]


def test_the_edges_memory_bounds_the_split_and_exits_beyond_are_the_clouds() -> None:
    # Prefix memory: parameters so far plus the peak; 7000 + 100 fits 7100, 15000 does not.
    edge, cloud = pair(memory=7100)
    plan = make_space_plan(edge, cloud, PlanRequest(), candidate_count=None)
    assert plan.split == 3
    assert [(e.cut_index, e.part) for e in plan.exits] == [
        (1, "edge"), (2, "edge"), (3, "edge"), (4, "cloud"), (5, "cloud"),
    ]  # fmt: skip
    assert plan.transfer_bytes == 1000
    t = build_tables(edge, cloud, 1)
    assert deepest_split(t, 50) == 0
    assert deepest_split(t, None) == 6


def test_a_spread_subset_and_the_stops_it_makes() -> None:
    edge, cloud = pair(memory=7100)
    plan = make_space_plan(edge, cloud, PlanRequest(), candidate_count=2)
    cuts = [e.cut_index for e in plan.exits]
    assert len(cuts) == 2
    assert stops(cuts, plan.split, plan.final_cut) == tuple(sorted({0, *cuts, 3, 6}))
    with pytest.raises(Exception, match="candidate count"):
        make_space_plan(edge, cloud, PlanRequest(), candidate_count=0)


def observations(cuts: list[int], n: int = 8) -> Observations:
    def exit_(cut: int, part: str = "edge") -> ExitObservations:
        return ExitObservations(
            part=part,  # type: ignore[arg-type]
            cut_index=cut,
            max_softmax=tuple((i + cut) % n / n for i in range(n)),
            entropy=tuple(0.5 for _ in range(n)),
            correct=tuple(i % 2 == 0 for i in range(n)),
        )

    return Observations(split="val", exits=tuple(exit_(c) for c in cuts), final=exit_(6))


def inputs(served: ServedTimes | None = None) -> SpaceInputs:
    """The made-up space; `served` gives its edge profile served times."""
    edge, cloud = pair(memory=7100)
    if served is not None:
        edge = edge.model_copy(update={"served": served})
    plan = make_space_plan(edge, cloud, PlanRequest(), candidate_count=None)
    return space_inputs(
        plan,
        (edge, cloud),
        observations([1, 2, 3, 4, 5]),
        {c: 500 for c in range(1, 6)},
        confidence="max_softmax",
        objective=ObjectiveSpec(kind="deadline", deadline_ms=20.0),
        grid=LinkGrid(bandwidths_mbps=(1.0, 10.0), rtts_ms=(0.0, 40.0)),
    )


def test_the_space_file_gives_points_at_the_stops_and_a_map() -> None:
    space = inputs()
    assert space.max_split == 3
    assert [c.cut_index for c in space.candidates] == [1, 2, 3, 4, 5]
    # Heads cost their FLOPs at the whole model's rate on each side (6000 FLOPs in all).
    assert space.candidates[0].edge_head_ms == pytest.approx(500 * sum(EDGE_MS) / 6000)
    assert space.candidates[0].cloud_head_ms == pytest.approx(500 * sum(CLOUD_MS) / 6000)
    points = space.points()
    assert {p.point.split for p in points} == {0, 1, 2, 3}
    table = space.configuration_map(points)
    assert len(table.entries) == 4
    assert table.lookup(Link(bandwidth_mbps=10.0, rtt_ms=0.0)).figures in points
    again = parse_space(dump_space(space), "space.json")
    assert again == space


def test_observations_of_other_exits_are_refused() -> None:
    edge, cloud = pair(memory=7100)
    plan = make_space_plan(edge, cloud, PlanRequest(), candidate_count=None)
    kwargs = {
        "confidence": "max_softmax",
        "objective": ObjectiveSpec(kind="deadline", deadline_ms=20.0),
        "grid": LinkGrid(bandwidths_mbps=(1.0,), rtts_ms=(0.0,)),
    }
    with pytest.raises(SpaceError, match=r"exits \[1, 2\] are not of the plan's"):
        space_inputs(plan, (edge, cloud), observations([1, 2]), {}, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SpaceError, match=r"no head FLOPs for the exits at cuts \[5\]"):
        space_inputs(
            plan, (edge, cloud), observations([1, 2, 3, 4, 5]), {c: 1 for c in range(1, 5)},
            **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"schema_version": "inferedge.io/space/v0"}, "re-export"),
        ({"max_split": -1}, "max_split"),
        ({"final_correct": []}, "final_correct"),
        ({"objective": {"kind": "deadline"}}, "needs deadline_ms"),
        ({"grid": {"bandwidths_mbps": [], "rtts_ms": [0]}}, "bandwidths_mbps"),
    ],
)
def test_a_malformed_space_file_is_refused_naming_the_field(
    change: dict[str, object], fragment: str
) -> None:
    space = inputs()
    data = {**space.model_dump(mode="json"), **change}
    with pytest.raises(SpaceError, match=fragment) as caught:
        parse_space(json.dumps(data), "s3://b/space.json")
    assert "\n" not in str(caught.value)
    assert "s3://b/space.json" in str(caught.value)


def test_objectives_need_their_bounds() -> None:
    with pytest.raises(ValidationError, match="needs min_accuracy"):
        ObjectiveSpec(kind="accuracy")
    with pytest.raises(ValidationError, match="distinct metrics"):
        ObjectiveSpec(kind="priorities", order=("latency", "latency"))
    assert ObjectiveSpec(kind="priorities").objective().order == ("accuracy", "latency")


def test_measured_times_correct_the_edge_profile_and_its_heads() -> None:
    space = inputs()
    # Segments 1 and 2 (the step from cut 0 to 2) took 3x their profile; nothing else was seen.
    measured = {(0, 2): 3 * (EDGE_MS[0] + EDGE_MS[1])}
    fixed = corrected(space, measured, {1: 0.5})
    times = [s.at(1).median_ms for s in fixed.edge.segments]
    assert times == pytest.approx([3 * ms for ms in EDGE_MS])  # the unseen ones: the median
    assert fixed.candidates[0].edge_head_ms == 0.5
    factor = 0.5 / space.candidates[0].edge_head_ms
    assert fixed.candidates[1].edge_head_ms == pytest.approx(
        space.candidates[1].edge_head_ms * factor
    )
    assert edge_factor(space, fixed) == pytest.approx(3.0)
    assert fixed.cloud == space.cloud
    # a slower edge never makes a point faster
    before = {p.point: p.compute_ms for p in space.points()}
    assert all(p.compute_ms >= before[p.point] - 1e-9 for p in fixed.points())
    assert corrected(space, {}, {}) == space


def test_a_served_profile_gives_the_space_its_served_times_and_corrects_them() -> None:
    served_ms = [2 * ms for ms in EDGE_MS]
    space = inputs(
        ServedTimes(
            idle_gap_ms=10.0,
            call_ms=0.1,
            segments_ms=tuple(served_ms),
            heads=(HeadTiming(cut_index=2, ms=0.75),),
        )
    )
    # The timed head costs its time; the others their FLOPs at the served whole-model rate.
    assert space.candidates[1].edge_head_ms == 0.75
    assert space.candidates[0].edge_head_ms == pytest.approx(500 * sum(served_ms) / 6000)
    # Measured at 1.5x the served time of segments 1-2: the served times are what is scaled.
    fixed = corrected(space, {(0, 2): 1.5 * (served_ms[0] + served_ms[1])}, {})
    assert fixed.edge.request_ms(1) == pytest.approx([1.5 * ms for ms in served_ms])
    assert edge_factor(space, fixed) == pytest.approx(1.5)


def test_the_clouds_factor_scales_its_segments_and_heads_and_leaves_the_edge() -> None:
    space = inputs()
    fixed = corrected(space, {}, {}, cloud_factor=2.0)
    assert fixed.cloud.request_ms(1) == pytest.approx([2 * ms for ms in CLOUD_MS])
    assert [c.cloud_head_ms for c in fixed.candidates] == pytest.approx(
        [2 * c.cloud_head_ms for c in space.candidates]
    )
    assert fixed.edge == space.edge
    slower = {p.point: p.cloud_ms for p in fixed.points()}
    assert all(slower[p.point] == pytest.approx(2 * p.cloud_ms) for p in space.points())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5/2,4/7", (5, (2, 4), (7,))),
        ("12/-/-", (12, (), ())),
        ("0//", (0, (), ())),
        ("3/1,2/-", (3, (1, 2), ())),
    ],
)
def test_a_points_text_parses_with_or_without_dashes(
    text: str, expected: tuple[int, tuple[int, ...], tuple[int, ...]]
) -> None:
    point = parse_point(text, 0.5)
    assert (point.split, point.edge_exits, point.cloud_exits, point.threshold) == (*expected, 0.5)


@pytest.mark.parametrize("text", ["5/2", "x/-/-", "5/a/-", "5/-/-/-", "1/" + "1," * 40 + "1/-"])
def test_a_malformed_points_text_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"^expected 'split/edge exits/cloud exits' \(e.g. "):
        parse_point(text)


def test_a_measured_overhead_is_paid_on_every_path_of_every_point() -> None:
    space = inputs()
    assert space.overhead_ms == 0.0
    fixed = corrected(space, {}, {}, overhead_ms=2.5)
    assert fixed.overhead_ms == 2.5
    for before, after in zip(space.points(), fixed.points(), strict=True):
        assert after.point == before.point
        assert after.compute_ms == pytest.approx(before.compute_ms + 2.5)
        assert [p.compute_ms for p in after.paths] == pytest.approx(
            [p.compute_ms + 2.5 for p in before.paths]
        )
    link = Link(bandwidth_mbps=10.0, rtt_ms=0.0)
    assert fixed.configuration_map().lookup(link).latency_ms >= (
        space.configuration_map().lookup(link).latency_ms
    )
    assert corrected(fixed, {}, {}).overhead_ms == 2.5  # kept unless measured anew


def test_a_measured_tail_tests_each_path_slower_against_the_deadline() -> None:
    space = inputs()
    tailed = corrected(space, {}, {}, tail_factor=1.5)
    assert tailed.tail_factor == 1.5
    for before, after in zip(space.points(), tailed.points(), strict=True):
        assert after.compute_ms == before.compute_ms  # the mean is what it was
        assert [p.compute_ms for p in after.paths] == pytest.approx(
            [p.compute_ms * 1.5 for p in before.paths]
        )
    # At 1 Mbps the plain map's point makes the deadline only on its paths' typical request:
    # with the tail measured at 2x the map moves to a point whose slow requests make it too.
    link = Link(bandwidth_mbps=1.0, rtt_ms=0.0)
    bound = space.objective.deadline_ms
    assert bound is not None
    twice = corrected(space, {}, {}, tail_factor=2.0)
    plain, slow = space.configuration_map().lookup(link), twice.configuration_map().lookup(link)
    assert slow.figures.point != plain.figures.point
    assert slow.feasible
    assert slow.figures.within(link, bound) >= 0.95
    stretched = next(p for p in twice.points() if p.point == plain.figures.point)
    assert stretched.within(link, bound) < 0.95
    # A ratio under 1 is the typical request's bias, which the step times correct: kept at 1.
    assert corrected(space, {}, {}, tail_factor=0.7).tail_factor == 1.0
    assert corrected(tailed, {}, {}).tail_factor == 1.5  # kept unless measured anew
