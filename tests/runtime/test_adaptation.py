"""The edge's adapter and prober: it starts on the map's point for the declared link, moves with
hysteresis (or at once, as the oracle), swaps point and c_thr together between requests, and
probes the link when no offload measures it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import numpy as np
import pytest
import pytest_asyncio

from inferedge.core.link import Link
from inferedge.core.link_switch import SwitchPolicy
from inferedge.core.operating_space import OperatingPoint
from inferedge.core.space import LinkGrid, ObjectiveSpec, SpaceInputs
from inferedge.runtime.adaptation import (
    CLOUD_WINDOW,
    MIN_CLOUD_ANSWERS,
    MIN_TAIL_REQUESTS,
    Adapter,
)
from inferedge.runtime.cloud import CloudDataplane
from inferedge.runtime.dataplane import EdgeDataplane
from inferedge.runtime.link_estimator import LinkEstimator
from inferedge.runtime.link_probe import LinkProber, probe_bytes
from inferedge.runtime.link_watch import watched_link
from inferedge.runtime.messages import CloudAnswer, OffloadContext
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.step_timings import REQUEST
from tests.factories import profile
from tests.runtime.conftest import Exported, made_up_space
from tests.runtime.helpers import direct_offload

SLOW = Link(bandwidth_mbps=1.0, rtt_ms=50.0)
FAST = Link(bandwidth_mbps=100.0, rtt_ms=0.0)


@pytest.fixture(scope="module")
def space(exported: Exported) -> Partition:
    return exported.load("space", "cloud")


@pytest.fixture(scope="module")
def edge_space(exported: Exported) -> Partition:
    return exported.load("space", "edge")


def inputs(exported: Exported, link: Link = SLOW) -> SpaceInputs:
    """A space file whose profiles make the best point depend on the link: a slow edge, a fast
    cloud, and 40 kB at every cut (320 ms at 1 Mbps, 3.2 ms at 100)."""
    plan = exported.plans["space"]
    k = plan.final_cut
    edge = profile([3.0] * k, acts=[40_000] * (k + 1), name="edge")
    cloud = profile([0.1] * k, acts=[40_000] * (k + 1), name="cloud")
    base = made_up_space(plan, edge, cloud)
    return base.model_copy(
        update={
            "edge": edge,
            "cloud": cloud,
            "objective": ObjectiveSpec(kind="deadline", deadline_ms=40.0),
            "grid": LinkGrid(bandwidths_mbps=(1.0, 100.0), rtts_ms=(0.0, 50.0)),
            "link": link,
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def edge_on(partition: Partition, cloud: CloudDataplane) -> EdgeDataplane:
    return EdgeDataplane(
        partition, threshold=1.0, offload=direct_offload(cloud), offload_timeout_s=5.0
    )


@pytest_asyncio.fixture
async def edge(edge_space: Partition, space: Partition) -> AsyncIterator[EdgeDataplane]:
    """An edge on the space, offloading straight to a cloud on it; both closed after."""
    cloud = CloudDataplane(space, batch_policy=BatchPolicy(), threshold=1.0)
    edge = edge_on(edge_space, cloud)
    yield edge
    await edge.aclose()
    await cloud.aclose()


@pytest.mark.asyncio
async def test_it_starts_on_the_declared_links_point_and_moves_with_hysteresis(
    exported: Exported, edge_space: Partition, edge: EdgeDataplane
) -> None:
    clock = Clock()
    space_file = inputs(exported)
    adapter = Adapter(edge, edge_space, space_file, policy=SwitchPolicy(3, 1.0), clock=clock)
    slow = adapter.map.lookup(SLOW).figures.point
    fast = adapter.map.lookup(FAST).figures.point
    assert slow != fast, "the made-up profiles must make the link matter"
    assert edge.partition is not None
    assert edge.partition.point == slow
    assert edge.threshold == slow.threshold
    clock.now = 5.0
    assert [adapter.observe(FAST) for _ in range(3)] == [False, False, True]
    assert edge.partition.point == fast
    assert edge.threshold == fast.threshold
    clock.now = 5.5  # within the dwell: three confirmations are not enough
    assert not any(adapter.observe(SLOW) for _ in range(5))
    clock.now = 6.5
    assert adapter.observe(SLOW)
    report = adapter.report()
    assert (report.mode, report.switches, report.point.split) == ("follow", 2, slow.split)
    assert report.link == SLOW
    text = edge.metrics.exposition().decode()
    assert "inferedge_operating_switches_total 2.0" in text
    assert f"inferedge_operating_split {float(slow.split)}" in text


@pytest.mark.asyncio
async def test_off_keeps_its_point_and_the_oracle_moves_at_once(
    exported: Exported, edge_space: Partition, space: Partition
) -> None:
    cloud = CloudDataplane(space, batch_policy=BatchPolicy(), threshold=1.0)
    static = edge_on(edge_space, cloud)
    off = Adapter(static, edge_space, inputs(exported), mode="off")
    assert not any(off.observe(FAST) for _ in range(10))
    oracle_edge = edge_on(edge_space, cloud)
    oracle = Adapter(oracle_edge, edge_space, inputs(exported), mode="oracle")
    assert oracle.observe(FAST)
    assert oracle_edge.partition is not None
    assert oracle_edge.partition.point == oracle.map.lookup(FAST).figures.point
    for dataplane in (static, oracle_edge, cloud):
        await dataplane.aclose()


@pytest.mark.asyncio
async def test_measured_step_times_rebuild_the_map_and_move_the_point(
    exported: Exported, edge_space: Partition, edge: EdgeDataplane
) -> None:
    adapter = Adapter(edge, edge_space, inputs(exported, FAST), mode="follow")
    assert adapter.correct({}) is False  # nothing measured yet
    before = adapter.entry.figures.point
    # The edge turns out 50x slower than profiled on every segment it ran.
    k = exported.plans["space"].final_cut
    measured = {("segment", a, a + 1): 50 * 3.0 for a in range(k)}
    adapter.correct(measured)
    after = adapter.entry.figures.point
    assert adapter.corrections == 1
    assert adapter.report().edge_time_factor == pytest.approx(50.0)
    assert edge.partition is not None
    assert edge.partition.point == after
    assert after.split <= before.split  # a slower edge keeps less of the work
    assert "inferedge_operating_corrections_total 1.0" in edge.metrics.exposition().decode()


def test_a_partition_records_its_single_row_calls(
    edge_space: Partition, images: Callable[[int], np.ndarray]
) -> None:
    view = edge_space.at(OperatingPoint(3, (2,), (), 1.5))
    view.run_edge(images(1), threshold=1.5)
    view.run_edge(images(4), threshold=1.5)  # batches of more than one row are not recorded
    seen = view.timings.snapshot()
    assert {("segment", 0, 1), ("segment", 2, 3), ("head", 2, 2)} <= set(seen)
    assert edge_space.timings is view.timings


class HeldCloud:
    """Direct offloads to a cloud, held until released; records the points they named."""

    def __init__(self, cloud: CloudDataplane) -> None:
        self.cloud = cloud
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.points: list[object] = []

    async def __call__(self, activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        self.points.append(context.point)
        self.arrived.set()
        await self.release.wait()
        return await self.cloud.handle(
            activation, context.plan_hash, context.threshold, point=context.point
        )


@pytest.mark.asyncio
async def test_a_request_in_flight_across_a_switch_finishes_on_its_own_point(
    exported: Exported, edge_space: Partition, space: Partition
) -> None:
    cloud = CloudDataplane(space, batch_policy=BatchPolicy(), threshold=1.0)
    held = HeldCloud(cloud)
    edge = EdgeDataplane(edge_space, threshold=1.0, offload=held, offload_timeout_s=30.0)
    adapter = Adapter(edge, edge_space, inputs(exported, FAST), mode="oracle")
    before = adapter.entry.figures.point
    assert before.split < exported.plans["space"].final_cut, "FAST must offload"
    adapter.observe(FAST)
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    # c_thr above 1: no exit answers, so the request offloads and its answer is the model's
    edge.swap(edge.partition, threshold=1.5)  # type: ignore[arg-type]
    request = asyncio.create_task(edge.infer(x))
    await held.arrived.wait()
    assert adapter.observe(SLOW)
    assert edge.partition is not None
    assert edge.partition.point != before
    held.release.set()
    answers = await request
    assert held.points == [before]
    assert [a.prediction for a in answers] == exported.predict(x)
    await edge.aclose()
    await cloud.aclose()


async def _instant(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    return CloudAnswer(
        plan_hash=context.plan_hash, rows=(), queue_ms=0.0, compute_ms=0.0, batch_size=1
    )


async def _down(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    raise ConnectionError("no route to the cloud")


@pytest.mark.asyncio
async def test_a_probe_pair_measures_the_rtt_and_the_bandwidth() -> None:
    estimator = LinkEstimator(Link(bandwidth_mbps=10.0, rtt_ms=20.0))
    metrics = Metrics()
    sent: list[tuple[str | None, int]] = []

    async def recorded(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        sent.append((context.probe, activation.nbytes))
        return await _instant(activation, context)

    clock = Clock()
    prober = LinkProber(
        watched_link(recorded, estimator, metrics),
        estimate=lambda: estimator.estimate,
        plan_hash=lambda: "0" * 16,
        metrics=metrics,
        interval_s=0.5,
        clock=clock,
    )
    assert not prober.due
    clock.now = 0.6
    assert prober.due
    assert await prober.probe()
    assert sent == [("rtt", 16), ("bandwidth", probe_bytes(Link(bandwidth_mbps=10.0), 20.0))]
    # An instant cloud: the round trip is well under the declared 20 ms.
    assert estimator.estimate.rtt_ms < 20.0
    text = metrics.exposition().decode()
    assert 'inferedge_link_probes_total{kind="rtt"} 1.0' in text
    assert 'inferedge_link_probes_total{kind="bandwidth"} 1.0' in text
    prober.measured()
    assert not prober.due


@pytest.mark.asyncio
async def test_a_failed_probe_is_counted_not_raised() -> None:
    metrics = Metrics()
    prober = LinkProber(
        _down, estimate=Link, plan_hash=lambda: "0" * 16, metrics=metrics, interval_s=0.5
    )
    assert not await prober.probe()
    assert 'inferedge_link_probes_total{kind="failed"} 1.0' in metrics.exposition().decode()
    with pytest.raises(ValueError, match="must be > 0"):
        LinkProber(_down, estimate=Link, plan_hash=str, metrics=metrics, interval_s=0)


def test_a_bandwidth_probe_takes_about_its_target_time_within_bounds() -> None:
    assert probe_bytes(Link(bandwidth_mbps=8.0), 20.0) == 20_000
    assert probe_bytes(Link(bandwidth_mbps=0.05), 20.0) == 2048
    assert probe_bytes(Link(bandwidth_mbps=10_000.0), 20.0) == 256 * 1024


def cloud_answer(ms: float, batch_size: int = 1) -> CloudAnswer:
    """The cloud's answer to one offload, reporting `ms` of compute."""
    return CloudAnswer(plan_hash="p", rows=(), queue_ms=0.0, compute_ms=ms, batch_size=batch_size)


@pytest.mark.asyncio
async def test_the_clouds_reported_times_rebuild_the_map_once_enough_have_come(
    exported: Exported, edge_space: Partition, edge: EdgeDataplane
) -> None:
    adapter = Adapter(edge, edge_space, inputs(exported, FAST), mode="follow")
    before = adapter.entry.figures
    assert before.offload_rate > 0, "on a fast link the made-up space must offload"

    slow = 100 * before.cloud_per_offload_ms  # the cloud turns out 100x slower than profiled
    for _ in range(MIN_CLOUD_ANSWERS - 1):
        adapter.observe_cloud(before.point, cloud_answer(slow))
    adapter.observe_cloud(before.point, cloud_answer(slow, batch_size=4))  # batches do not count
    adapter.observe_cloud(None, cloud_answer(slow))  # nor do answers that name no point
    assert adapter.correct({}) is False
    adapter.observe_cloud(before.point, cloud_answer(slow))
    adapter.correct({})
    assert adapter.report().cloud_time_factor == pytest.approx(100.0)
    assert adapter.report().edge_time_factor == pytest.approx(1.0)
    # the point chosen on the old times would now miss the deadline: the edge moved off it
    assert adapter.entry.figures.point != before.point
    assert adapter.entry.feasible


@pytest.mark.asyncio
async def test_the_served_requests_tail_is_measured_at_the_objectives_quantile(
    exported: Exported, edge_space: Partition, edge: EdgeDataplane
) -> None:
    adapter = Adapter(edge, edge_space, inputs(exported, FAST), mode="follow")
    figures = adapter.entry.figures
    paths = [(i, p.compute_ms) for i, p in enumerate(figures.paths) if p.compute_ms > 0]
    assert paths
    requests = edge_space.requests
    other = replace(figures.point, threshold=figures.point.threshold / 2)
    for n in range(MIN_TAIL_REQUESTS - 1):
        index, ms = paths[n % len(paths)]
        requests.record(figures.point, index, ms * (2.0 if n % 20 == 19 else 1.1))
        requests.record(other, index, ms * 9.0)  # a point never served has no prediction
    assert adapter.correct({}) is False  # too few yet
    assert adapter.report().tail_factor == 1.0
    for n in range(MIN_TAIL_REQUESTS + 1):
        index, ms = paths[n % len(paths)]
        requests.record(figures.point, index, ms * (2.0 if n % 20 == 19 else 1.1))
    adapter.correct({})
    # 80 requests, 3 of them twice as slow as predicted: the 95th percentile is the 76th, 1.1x.
    assert adapter.report().tail_factor == pytest.approx(1.1)


@pytest.mark.asyncio
async def test_a_few_slow_cloud_answers_do_not_move_the_clouds_factor(
    exported: Exported, edge_space: Partition, edge: EdgeDataplane
) -> None:
    adapter = Adapter(edge, edge_space, inputs(exported, FAST), mode="follow")
    point = adapter.entry.figures.point
    expected = adapter.entry.figures.cloud_per_offload_ms

    def answer(ratio: float) -> CloudAnswer:
        return cloud_answer(ratio * expected)

    # Rare offloads that find the cloud idle report it 3x slower; most say 1.2x.
    for ratio in [1.2] * 6 + [3.0] * 5:
        adapter.observe_cloud(point, answer(ratio))
    adapter.correct({})
    assert adapter.report().cloud_time_factor == pytest.approx(1.2)
    # Once most recent answers say so, the factor follows them.
    for _ in range(CLOUD_WINDOW):
        adapter.observe_cloud(point, answer(3.0))
    adapter.correct({})
    assert adapter.report().cloud_time_factor == pytest.approx(3.0)


@pytest.mark.asyncio
async def test_the_watched_link_hands_each_offloads_answer_on_but_no_probes() -> None:
    seen: list[tuple[str | None, float]] = []

    async def cloud(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        return CloudAnswer(plan_hash="p", rows=(), queue_ms=0.0, compute_ms=2.0, batch_size=1)

    offload = watched_link(
        cloud,
        LinkEstimator(FAST),
        Metrics(),
        on_answer=lambda context, answer: seen.append((context.probe, answer.compute_ms)),
    )
    row = np.zeros((1, 4), dtype=np.float32)
    await offload(row, OffloadContext(plan_hash="p", threshold=1.0, timeout_s=1.0))
    await offload(row, OffloadContext(plan_hash="p", threshold=1.0, timeout_s=1.0, probe="rtt"))
    assert seen == [(None, 2.0)]


@pytest.mark.asyncio
async def test_a_pinned_edge_keeps_its_route_on_any_link_and_after_corrections(
    exported: Exported, edge_space: Partition, edge: EdgeDataplane
) -> None:
    k = exported.plans["space"].final_cut
    cloud_only = OperatingPoint(0, (), (), 0.0)
    adapter = Adapter(edge, edge_space, inputs(exported, SLOW), mode="off", pin=cloud_only)
    assert adapter.entry.figures.point.split == 0
    assert not adapter.observe(FAST)
    adapter.correct({("segment", a, a + 1): 50 * 3.0 for a in range(k)})
    assert edge.partition is not None
    assert (edge.partition.point.split, edge.partition.point.edge_exits) == (0, ())
    assert adapter.entry.figures.point.cloud_exits == ()
    with pytest.raises(PartitionError, match=r"pinned point: split 99: expected one of the"):
        Adapter(edge, edge_space, inputs(exported), mode="off", pin=OperatingPoint(99, (), (), 0))


@pytest.mark.asyncio
async def test_a_measured_request_overhead_alone_rebuilds_the_map(
    exported: Exported, edge_space: Partition, edge: EdgeDataplane
) -> None:
    adapter = Adapter(edge, edge_space, inputs(exported, SLOW), mode="follow")
    before = adapter.entry.latency_ms
    adapter.correct({REQUEST: 4.0})
    assert adapter.corrections == 1
    assert adapter.report().overhead_ms == 4.0
    assert adapter.entry.latency_ms >= before  # every point pays it


@pytest.mark.asyncio
async def test_answers_on_a_point_that_cannot_meet_the_objective_are_counted(
    exported: Exported,
    edge_space: Partition,
    edge: EdgeDataplane,
    images: Callable[[int], np.ndarray],
) -> None:
    hopeless = inputs(exported, SLOW).model_copy(
        update={"objective": ObjectiveSpec(kind="deadline", deadline_ms=0.01)}
    )
    adapter = Adapter(edge, edge_space, hopeless, mode="follow")
    assert not adapter.entry.feasible
    assert edge.unmet == "deadline"
    await edge.infer(images(2))
    text = edge.metrics.exposition().decode()
    assert 'inferedge_objective_unmet_total{reason="deadline"} 2.0' in text
    feasible = Adapter(edge, edge_space, inputs(exported, FAST), mode="follow")
    assert feasible.entry.feasible
    assert edge.unmet is None  # a point that meets it counts nothing
