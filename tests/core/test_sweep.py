"""The threshold sweep: accuracy, exit shares, latency, energy and cost per c_thr."""

from __future__ import annotations

import pytest

from inferedge.core.calibration import ExitObservations, Observations
from inferedge.core.errors import InferedgeError
from inferedge.core.link import Link
from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.sweep import DEFAULT_THRESHOLDS, HeadCost, choose_threshold, sweep
from tests.factories import profile

LINK = Link(bandwidth_mbps=8, rtt_ms=10)


def setup_plan() -> tuple[Plan, object, object]:
    # 6 segments; edge 10 ms each, cloud 4 ms each: E(2) = 20 <= 24 < E(3), so split at cut 2
    edge = profile([10] * 6, name="edge", energy=[5.0] * 6)
    cloud = profile([4] * 6, name="cloud")
    request = PlanRequest(strategy="latency", edge_exits=1, cloud_exits=1, link=LINK)
    return make_plan(edge, cloud, request), edge, cloud


def obs(part: str, cut: int, conf: list[float], correct: list[bool]) -> ExitObservations:
    return ExitObservations(
        part=part,  # type: ignore[arg-type]
        cut_index=cut,
        max_softmax=tuple(conf),
        entropy=tuple(1 - c for c in conf),
        correct=tuple(correct),
    )


def observations(plan: Plan) -> Observations:
    (edge_exit,) = plan.edge_exits()
    (cloud_exit,) = plan.cloud_exits()
    return Observations(
        split="val",
        exits=(
            obs("edge", edge_exit.cut_index, [0.95, 0.4, 0.6, 0.2], [True, False, True, False]),
            obs("cloud", cloud_exit.cut_index, [0.5, 0.8, 0.3, 0.3], [True, True, False, False]),
        ),
        final=obs("cloud", plan.final_cut, [1, 1, 1, 1], [True, True, True, False]),
    )


HEADS = [HeadCost(cut_index=c, flops=0, param_bytes=10) for c in range(1, 7)]


def test_threshold_walks_exits_in_path_order() -> None:
    plan, edge, cloud = setup_plan()
    assert plan.split == 2
    assert [e.cut_index for e in plan.exits] == [2, 4]
    report = sweep(plan, edge, cloud, observations(plan), HEADS, thresholds=(0.0, 0.55, 1.0))  # type: ignore[arg-type]
    low, mid, high = report.rows
    assert low.exit_shares == (1.0, 0.0, 0.0)  # everyone leaves at the first exit
    assert low.accuracy == 0.5
    assert low.offload_rate == 0.0
    # c = 0.55: samples 0 and 2 leave at the edge exit, sample 1 at the cloud exit, 3 at the end
    assert mid.exit_shares == (0.5, 0.25, 0.25)
    assert mid.accuracy == 0.75
    assert mid.offload_rate == 0.5
    assert high.exit_shares == (0.0, 0.0, 1.0)
    assert high.accuracy == 0.75
    assert report.exit_accuracy == (0.5, 0.5, 0.75)


def test_latency_energy_and_cost_follow_the_paths() -> None:
    plan, edge, cloud = setup_plan()
    report = sweep(plan, edge, cloud, observations(plan), HEADS, thresholds=(0.55,))  # type: ignore[arg-type]
    (row,) = report.rows
    edge_exit, cloud_exit = plan.exits
    expected = (2 * edge_exit.latency_ms + cloud_exit.latency_ms + plan.final_latency_ms) / 4
    assert row.latency_ms == pytest.approx(expected)
    # the edge exit sits at the split, so every request runs both edge segments (5 mJ each)
    assert row.edge_energy_mj == pytest.approx(10.0)
    assert row.transfer_bytes == pytest.approx(plan.transfer_bytes / 2)
    assert row.cloud_usd_per_million > 0
    assert report.edge_only.latency_ms == pytest.approx(60.0)
    assert report.edge_only.edge_energy_mj == pytest.approx(30.0)
    assert report.edge_only.offload_rate == 0.0
    assert report.cloud_only.offload_rate == 1.0
    assert report.cloud_only.latency_ms == pytest.approx(LINK.transfer_ms(1000) + 24.0)
    assert report.split_no_exits.latency_ms == pytest.approx(plan.final_latency_ms)
    assert report.split_no_exits.accuracy == 0.75


def test_head_flops_add_latency_at_the_parts_rate() -> None:
    plan, edge, cloud = setup_plan()
    heavy = [HeadCost(cut_index=c, flops=plan.edge.flops, param_bytes=0) for c in range(1, 7)]
    light = sweep(plan, edge, cloud, observations(plan), HEADS, thresholds=(0.0,))  # type: ignore[arg-type]
    slow = sweep(plan, edge, cloud, observations(plan), heavy, thresholds=(0.0,))  # type: ignore[arg-type]
    # a head as costly as the whole edge part doubles the edge time of the first exit
    assert slow.rows[0].latency_ms == pytest.approx(light.rows[0].latency_ms + plan.edge.compute_ms)


def test_oracle_takes_the_first_correct_exit() -> None:
    plan, edge, cloud = setup_plan()
    report = sweep(plan, edge, cloud, observations(plan), HEADS)  # type: ignore[arg-type]
    assert report.oracle.exit_shares == (0.5, 0.25, 0.25)
    assert report.oracle.accuracy == 0.75
    assert len(report.rows) == len(DEFAULT_THRESHOLDS) == 13
    assert report.rows[0].threshold == 0.30
    assert report.rows[-1].threshold == 0.90


def test_choose_threshold_minimises_latency_within_the_target() -> None:
    plan, edge, cloud = setup_plan()
    report = sweep(plan, edge, cloud, observations(plan), HEADS, thresholds=(0.0, 0.55, 1.0))  # type: ignore[arg-type]
    assert choose_threshold(report, 0.75).threshold == 0.55
    assert choose_threshold(report, 0.5).threshold == 0.0
    with pytest.raises(InferedgeError, match=r"no threshold reaches target accuracy 0\.9000"):
        choose_threshold(report, 0.9)


def test_observations_must_match_the_plan() -> None:
    plan, edge, cloud = setup_plan()
    wrong = observations(plan).model_copy(update={"exits": observations(plan).exits[:1]})
    with pytest.raises(InferedgeError, match="do not match plan"):
        sweep(plan, edge, cloud, wrong, HEADS)  # type: ignore[arg-type]


def test_observations_validate_lengths_and_order() -> None:
    with pytest.raises(ValueError, match="one entry per sample"):
        ExitObservations(part="edge", cut_index=1, max_softmax=(0.5,), entropy=(), correct=(True,))
    a = obs("edge", 3, [0.5], [True])
    b = obs("edge", 2, [0.5], [True])
    with pytest.raises(ValueError, match="path order"):
        Observations(split="val", exits=(a, b), final=obs("cloud", 5, [1], [True]))


def test_entropy_confidence_is_one_minus_entropy() -> None:
    o = ExitObservations(
        part="edge", cut_index=1, max_softmax=(0.9,), entropy=(0.25,), correct=(True,)
    )
    assert o.confidence("entropy") == (0.75,)
    assert o.confidence("max_softmax") == (0.9,)
