"""The split strategies, exit placement in parts, predictions and the plan hash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferedge.core.errors import InfeasibleError, PlanningError
from inferedge.core.link import Link
from inferedge.core.plan import PlanRequest
from inferedge.core.planner import baseline_plan, build_tables, make_plan
from inferedge.core.profile import MeasuredProfile
from inferedge.core.synthetic import synthetic_profile
from tests.factories import profile

MB = 1_000_000


FAST_LINK = Link(bandwidth_mbps=1e6, rtt_ms=0.0)


def test_latency_split_is_the_deepest_prefix_no_slower_than_the_cloud() -> None:
    edge = profile([2, 2, 2, 2, 2], name="edge")
    cloud = profile([1, 1, 1, 1, 1], name="cloud")  # whole model: 5 ms in the cloud
    plan = make_plan(edge, cloud, PlanRequest(strategy="latency", edge_exits=0, cloud_exits=0))
    assert plan.split == 2  # E(2) = 4 <= 5 < E(3) = 6


def test_latency_split_infeasible_names_both_times() -> None:
    edge = profile([10, 1], name="edge")
    cloud = profile([1, 1], name="cloud")
    with pytest.raises(InfeasibleError, match="strategy latency: the edge needs 10 ms"):
        make_plan(edge, cloud, PlanRequest(strategy="latency"))


def test_memory_split_respects_the_fraction() -> None:
    # prefix needs: 10+1, 30+1, 60+1, 100+1 of 101 in total
    edge = profile([1, 1, 1, 1], params=[10, 20, 30, 40], peaks=[1, 1, 1, 1])
    plan = make_plan(edge, edge, PlanRequest(strategy="memory", memory_fraction=0.7))
    assert plan.split == 3
    assert plan.edge.memory_bytes == 61
    assert plan.cloud.param_bytes == 40


def test_memory_split_infeasible_message_matches_the_docs() -> None:
    edge = profile([1, 1], params=[9, 90], peaks=[0, 1])
    with pytest.raises(InfeasibleError) as err:
        make_plan(edge, edge, PlanRequest(strategy="memory", memory_fraction=0.05))
    assert str(err.value) == (
        "no cut point satisfies memory fraction 0.05: smallest prefix needs 0.09"
    )


def test_memory_split_must_fit_the_edge_device() -> None:
    edge = profile([1, 1, 1], params=[100, 100, 100], peaks=[0, 0, 0], memory=250)
    plan = make_plan(edge, edge, PlanRequest(strategy="memory", memory_fraction=1.0))
    assert plan.split == 2
    tiny = profile([1, 1, 1], params=[100, 100, 100], peaks=[0, 0, 0], memory=50)
    with pytest.raises(InfeasibleError, match="fits the edge device"):
        make_plan(tiny, tiny, PlanRequest(strategy="memory", memory_fraction=1.0))


def test_min_latency_trades_compute_against_transfer() -> None:
    # the activation after segment 2 is tiny; everything else is large
    acts = [10 * MB, 10 * MB, 1000, 10 * MB, 40]
    edge = profile([5, 5, 5, 5], acts=acts, name="edge")
    cloud = profile([1, 1, 1, 1], acts=acts, name="cloud")
    link = Link(bandwidth_mbps=10, rtt_ms=1)
    plan = make_plan(edge, cloud, PlanRequest(strategy="min-latency", link=link))
    assert plan.split == 2
    assert plan.transfer_bytes == 1000
    assert plan.final_latency_ms == pytest.approx(10 + 1 + 1000 * 8 / 10e6 * 1e3 + 2)


def test_min_latency_may_choose_cloud_only_or_edge_only() -> None:
    edge = profile([50, 50], acts=[100, 100, 4], name="edge")
    cloud = profile([1, 1], acts=[100, 100, 4], name="cloud")
    assert make_plan(edge, cloud, PlanRequest(strategy="min-latency", link=FAST_LINK)).split == 0
    slow = Link(bandwidth_mbps=0.001, rtt_ms=1000)
    plan = make_plan(edge, cloud, PlanRequest(strategy="min-latency", link=slow))
    assert plan.split == 2
    assert plan.transfer_bytes == 0
    assert plan.cloud.empty
    assert plan.cloud_usd_per_million == 0.0


def brute_force_latency(
    edge: MeasuredProfile, cloud: MeasuredProfile, link: Link, end: int
) -> float:
    """min over p of E(p) + T(p) + C(p, end), written the slow, obvious way."""
    best = float("inf")
    for p in range(end + 1):
        e = sum(s.measurements[0].median_ms for s in edge.segments[:p])
        c = sum(s.measurements[0].median_ms for s in cloud.segments[p:end])
        t = link.transfer_ms(edge.cut_points[p].activation_bytes) if p < end else 0.0
        best = min(best, e + t + c)
    return best


latencies = st.lists(st.floats(0.01, 50.0), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(latencies, st.data())
def test_min_latency_matches_brute_force(edge_ms: list[float], data: st.DataObject) -> None:
    k = len(edge_ms)
    cloud_ms = data.draw(st.lists(st.floats(0.01, 50.0), min_size=k, max_size=k))
    acts = data.draw(st.lists(st.integers(1, 5 * MB), min_size=k + 1, max_size=k + 1))
    link = Link(bandwidth_mbps=data.draw(st.floats(0.5, 1000)), rtt_ms=data.draw(st.floats(0, 80)))
    edge = profile(edge_ms, acts=acts, name="edge")
    cloud = profile(cloud_ms, acts=acts, name="cloud")
    plan = make_plan(edge, cloud, PlanRequest(strategy="min-latency", link=link))
    assert plan.final_latency_ms == pytest.approx(brute_force_latency(edge, cloud, link, k))


@settings(max_examples=150, deadline=None)
@given(latencies, st.data())
def test_deadline_matches_edgent_algorithm_1(edge_ms: list[float], data: st.DataObject) -> None:
    k = len(edge_ms)
    cloud_ms = data.draw(st.lists(st.floats(0.01, 50.0), min_size=k, max_size=k))
    acts = data.draw(st.lists(st.integers(1, 5 * MB), min_size=k + 1, max_size=k + 1))
    accs = data.draw(st.lists(st.floats(0.1, 0.9), min_size=k - 1, max_size=k - 1))
    deadline = data.draw(st.floats(0.5, 400))
    link = Link(bandwidth_mbps=20, rtt_ms=10)
    edge = profile(edge_ms, acts=acts, name="edge")
    cloud = profile(cloud_ms, acts=acts, name="cloud")
    exit_acc = {i + 1: a for i, a in enumerate(accs)}
    request = PlanRequest(
        strategy="deadline",
        deadline_ms=deadline,
        link=link,
        exit_accuracy=exit_acc,
        final_accuracy=0.95,
    )
    # Edgent: walk exits from the most accurate down; the first whose best partition meets the
    # deadline wins (ties in accuracy: the faster one).
    ranked = sorted(
        range(1, k + 1),
        key=lambda e: (-(exit_acc.get(e, 0.95)), brute_force_latency(edge, cloud, link, e)),
    )
    expected = next(
        (e for e in ranked if brute_force_latency(edge, cloud, link, e) <= deadline), None
    )
    if expected is None:
        with pytest.raises(InfeasibleError, match="no exit choice meets deadline"):
            make_plan(edge, cloud, request)
        return
    plan = make_plan(edge, cloud, request)
    assert plan.estimated_accuracy == pytest.approx(exit_acc.get(expected, 0.95))
    assert plan.final_latency_ms == pytest.approx(brute_force_latency(edge, cloud, link, expected))
    assert plan.final_latency_ms <= deadline


def test_deadline_truncates_and_places_exits_before_the_truncation() -> None:
    edge = profile([10, 10, 10, 10, 10, 10], name="edge")
    cloud = profile([1, 1, 1, 1, 1, 30], name="cloud")
    request = PlanRequest(
        strategy="deadline",
        deadline_ms=20,
        link=FAST_LINK,
        exit_accuracy={5: 0.8},
        final_accuracy=0.9,
        edge_exits=2,
        cloud_exits=3,
    )
    plan = make_plan(edge, cloud, request)
    assert plan.final_cut == 5
    assert plan.estimated_accuracy == pytest.approx(0.8)
    assert all(e.cut_index < plan.final_cut for e in plan.exits)
    assert any("truncates" in note for note in plan.notes)


def test_deadline_estimates_need_valid_cut_indices() -> None:
    edge = profile([1, 1, 1])
    request = PlanRequest(strategy="deadline", deadline_ms=10, exit_accuracy={7: 0.5})
    with pytest.raises(PlanningError, match="exit_accuracy names cut 7"):
        make_plan(edge, edge, request)


def test_deadline_needs_a_deadline() -> None:
    with pytest.raises(ValueError, match="needs deadline_ms"):
        PlanRequest(strategy="deadline")


@pytest.mark.parametrize("strategy", ["latency", "memory", "min-latency", "deadline"])
@pytest.mark.parametrize("placement", ["linear", "pareto"])
@pytest.mark.parametrize(("n_edge", "n_cloud"), [(0, 0), (1, 2), (3, 3)])
def test_exits_never_straddle_the_split(
    strategy: str, placement: str, n_edge: int, n_cloud: int
) -> None:
    edge = synthetic_profile(60, seed=3, ms_per_gflop=50, device_name="edge")
    cloud = synthetic_profile(60, seed=3, ms_per_gflop=5, device_name="cloud")
    request = PlanRequest(
        strategy=strategy,  # type: ignore[arg-type]
        placement=placement,  # type: ignore[arg-type]
        edge_exits=n_edge,
        cloud_exits=n_cloud,
        deadline_ms=400.0,
    )
    plan = make_plan(edge, cloud, request)
    edge_cuts = [e.cut_index for e in plan.edge_exits()]
    cloud_cuts = [e.cut_index for e in plan.cloud_exits()]
    assert all(1 <= c <= plan.split for c in edge_cuts)
    assert all(plan.split < c < plan.final_cut for c in cloud_cuts)
    assert len(edge_cuts) <= n_edge
    assert len(cloud_cuts) <= n_cloud
    assert edge_cuts == sorted(set(edge_cuts))
    assert cloud_cuts == sorted(set(cloud_cuts))
    latencies = [e.latency_ms for e in plan.exits] + [plan.final_latency_ms]
    assert latencies == sorted(latencies)


def test_linear_placement_spaces_exits_evenly_by_flops() -> None:
    edge = profile([1] * 12, name="edge")  # equal FLOPs per segment
    cloud = profile([0.1] * 12, name="cloud")
    request = PlanRequest(
        strategy="min-latency", link=FAST_LINK, edge_exits=0, cloud_exits=3, placement="linear"
    )
    plan = make_plan(edge, cloud, request)
    assert plan.split == 0
    assert [e.cut_index for e in plan.cloud_exits()] == [3, 6, 9]


def test_pareto_placement_crowds_exits_early() -> None:
    edge = profile([1] * 40, name="edge")
    cloud = profile([0.1] * 40, name="cloud")
    base = {"strategy": "min-latency", "link": FAST_LINK, "edge_exits": 0, "cloud_exits": 3}
    linear = make_plan(edge, cloud, PlanRequest(**base, placement="linear"))  # type: ignore[arg-type]
    pareto = make_plan(edge, cloud, PlanRequest(**base, placement="pareto"))  # type: ignore[arg-type]
    lin = [e.cut_index for e in linear.cloud_exits()]
    par = [e.cut_index for e in pareto.cloud_exits()]
    assert lin == [10, 20, 30]
    assert all(p < q for p, q in zip(par, lin, strict=True))
    assert par[0] < 5


def test_the_last_edge_exit_sits_at_the_split() -> None:
    edge = profile([1, 1, 1, 1, 1, 1], name="edge")
    cloud = profile([1, 1, 1, 1, 1, 1], name="cloud")
    plan = make_plan(edge, cloud, PlanRequest(strategy="latency", edge_exits=2, cloud_exits=0))
    assert plan.split == 6
    # edge-only: the final classifier is at the split, so no exit may sit there
    assert [e.cut_index for e in plan.edge_exits()] == [2, 4]
    half = profile([1, 1, 1, 1, 1, 1], name="cloud-fast")
    fast_cloud = profile([0.5] * 6, name="cloud")
    plan = make_plan(half, fast_cloud, PlanRequest(strategy="latency", edge_exits=2))
    assert plan.split == 3
    assert [e.cut_index for e in plan.edge_exits()][-1] == 3


def test_too_few_cut_points_is_noted_not_hidden() -> None:
    edge = profile([1, 1, 1], name="edge")
    cloud = profile([0.5, 0.5, 0.5], name="cloud")
    plan = make_plan(edge, cloud, PlanRequest(strategy="latency", edge_exits=3, cloud_exits=3))
    assert any("room for" in note for note in plan.notes)


def test_plan_is_deterministic_and_its_hash_covers_decisions_only() -> None:
    edge = synthetic_profile(30, seed=1, ms_per_gflop=40, device_name="edge")
    cloud = synthetic_profile(30, seed=1, ms_per_gflop=4, device_name="cloud")
    request = PlanRequest(strategy="latency", placement="pareto", edge_exits=2, cloud_exits=2)
    first, second = make_plan(edge, cloud, request), make_plan(edge, cloud, request)
    assert first == second
    assert first.hash == second.hash
    assert len(first.hash) == 16
    # same decisions, other predictions (a slower link): same hash
    slower = request.model_copy(update={"link": Link(bandwidth_mbps=1, rtt_ms=90)})
    assert make_plan(edge, cloud, slower).hash == first.hash
    # other exits: another hash
    other = request.model_copy(update={"placement": "linear"})
    assert make_plan(edge, cloud, other).hash != first.hash


def test_profiles_of_different_models_are_refused() -> None:
    with pytest.raises(PlanningError, match="different models"):
        make_plan(synthetic_profile(5, seed=1), synthetic_profile(6, seed=1), PlanRequest())


def test_parts_and_cost_are_reported() -> None:
    edge = profile([4, 4, 4, 4], params=[1, 2, 3, 4], peaks=[5, 9, 2, 1], name="edge")
    cloud = profile([1, 1, 1, 1], params=[1, 2, 3, 4], peaks=[5, 9, 2, 1], name="cloud")
    plan = make_plan(edge, cloud, PlanRequest(strategy="latency", edge_exits=0, cloud_exits=0))
    assert plan.split == 1
    assert (plan.edge.first_segment, plan.edge.last_segment) == (1, 1)
    assert (plan.cloud.first_segment, plan.cloud.last_segment) == (2, 4)
    assert plan.edge.memory_bytes == 1 + 5
    assert plan.cloud.memory_bytes == 9 + 9
    assert plan.cloud.compute_ms == pytest.approx(3.0)
    assert plan.cloud_usd_per_million == pytest.approx(
        PlanRequest().cost_model.usd_per_million(3.0, 18)
    )
    assert plan.edge.energy_mj is None  # never invented


def test_tables_use_the_requested_batch_size() -> None:
    edge = synthetic_profile(5, batch_sizes=(1, 4))
    tables = build_tables(edge, edge, 4)
    assert tables.transfer_bytes[1] == edge.cut_points[1].activation_bytes * 4


def test_baseline_plans_put_the_whole_model_on_one_side_without_exits() -> None:
    edge = profile([2, 2, 2], acts=[8000, 1000, 1000, 40], name="edge")
    cloud = profile([1, 1, 1], acts=[8000, 1000, 1000, 40], name="cloud")
    link = Link(bandwidth_mbps=8, rtt_ms=10)
    request = PlanRequest(link=link, edge_exits=2, cloud_exits=1)
    edge_only = baseline_plan(edge, cloud, request, on_edge=True)
    assert (edge_only.split, edge_only.exits) == (3, ())
    assert edge_only.final_latency_ms == pytest.approx(6.0)
    assert edge_only.transfer_ms == 0
    cloud_only = baseline_plan(edge, cloud, request, on_edge=False)
    assert (cloud_only.split, cloud_only.exits) == (0, ())
    # The raw input crosses the link, then the cloud runs every segment.
    assert cloud_only.final_latency_ms == pytest.approx(link.transfer_ms(8000) + 3.0)
