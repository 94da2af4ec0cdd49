"""A profile's served times: validated, read by the planner, the sweep and the space's
corrections in place of warm medians and FLOP estimates, for single-row requests only."""

from __future__ import annotations

import json

import pytest

from inferedge.core.errors import InfeasibleError, ProfileError
from inferedge.core.link import Link
from inferedge.core.plan import PlanRequest
from inferedge.core.planner import build_tables, make_plan
from inferedge.core.profile import (
    HeadTiming,
    MeasuredProfile,
    ServedTimes,
    dump_profile,
    parse_profile,
)
from inferedge.core.sweep import HeadCost, sweep
from inferedge.core.synthetic import synthetic_profile
from tests.core.test_sweep import observations
from tests.factories import profile

LINK = Link(bandwidth_mbps=8, rtt_ms=10)


def served(base: MeasuredProfile, ms: list[float], heads: dict[int, float]) -> MeasuredProfile:
    times = ServedTimes(
        idle_gap_ms=10.0,
        call_ms=0.5,
        segments_ms=tuple(ms),
        heads=tuple(HeadTiming(cut_index=c, ms=v) for c, v in heads.items()),
    )
    return base.model_copy(update={"served": times})


def test_served_times_round_trip_and_are_validated_against_the_profile() -> None:
    base = synthetic_profile(3, batch_sizes=(1, 4))
    good = served(base, [1.0, 2.0, 3.0], {1: 0.5, 2: 0.25})
    assert parse_profile(dump_profile(good), "p.json") == good
    raw = json.loads(dump_profile(good))
    raw["served"]["segments_ms"].pop()
    with pytest.raises(ProfileError, match=r"served.segments_ms has 2 times, expected 3"):
        parse_profile(json.dumps(raw), "p.json")
    raw = json.loads(dump_profile(good))
    raw["served"]["heads"].append({"cut_index": 3, "ms": 1.0})
    with pytest.raises(ProfileError, match=r"served.heads at cuts \[3\]: heads sit at inner"):
        parse_profile(json.dumps(raw), "p.json")
    raw = json.loads(dump_profile(good))
    raw["served"]["call_ms"] = -1
    with pytest.raises(ProfileError, match=r"^p.json: served.call_ms:"):
        parse_profile(json.dumps(raw), "p.json")


def test_a_request_of_one_row_costs_the_served_times_and_a_batch_the_warm_ones() -> None:
    base = synthetic_profile(3, batch_sizes=(1, 4))
    warm_one = [s.at(1).median_ms for s in base.segments]
    warm_four = [s.at(4).median_ms for s in base.segments]
    assert base.request_ms(1) == warm_one  # nothing served: the warm medians
    assert base.head_ms(1, 1) is None
    timed = served(base, [7.0, 8.0, 9.0], {2: 0.75})
    assert timed.request_ms(1) == [7.0, 8.0, 9.0]
    assert timed.request_ms(4) == warm_four
    assert timed.head_ms(2, 1) == 0.75
    assert timed.head_ms(1, 1) is None  # not timed there
    assert timed.head_ms(2, 4) is None  # batches are not what the served pass times


def test_the_planner_predicts_with_the_served_times() -> None:
    edge = profile([1.0] * 4, name="edge")
    cloud = profile([1.0] * 4, name="cloud")
    slow_edge = served(edge, [5.0, 1.0, 1.0, 1.0], {})
    t = build_tables(slow_edge, cloud, 1)
    assert t.edge_prefix_ms == (0.0, 5.0, 6.0, 7.0, 8.0)
    request = PlanRequest(strategy="latency", edge_exits=1, cloud_exits=0, link=LINK)
    # warm, the edge prefix to cut 4 (4 ms) is no slower than the cloud (4 ms): edge-only;
    # as served the first call alone costs 5 ms, so no prefix is
    assert make_plan(edge, cloud, request).split == 4
    with pytest.raises(InfeasibleError, match="the edge needs 5 ms to the first cut"):
        make_plan(slow_edge, cloud, request)


def test_the_sweep_charges_a_timed_head_its_time_not_its_flops() -> None:
    edge = profile([10.0] * 6, name="edge")
    cloud = profile([4.0] * 6, name="cloud")
    request = PlanRequest(strategy="latency", edge_exits=1, cloud_exits=1, link=LINK)
    plan = make_plan(edge, cloud, request)
    (edge_exit,) = plan.edge_exits()
    heavy = [HeadCost(cut_index=c, flops=plan.edge.flops, param_bytes=0) for c in range(1, 7)]
    by_flops = sweep(plan, edge, cloud, observations(plan), heavy, thresholds=(0.0,))
    timed = served(edge, [10.0] * 6, {edge_exit.cut_index: 3.0})
    # the timed profile's segments equal its warm ones, so only the head's figure differs
    by_time = sweep(plan, timed, cloud, observations(plan), heavy, thresholds=(0.0,))
    assert by_flops.rows[0].latency_ms == pytest.approx(edge_exit.latency_ms + plan.edge.compute_ms)
    assert by_time.rows[0].latency_ms == pytest.approx(edge_exit.latency_ms + 3.0)
