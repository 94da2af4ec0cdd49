"""The edge and cloud dataplanes wired directly: exits, offloads, failures, swaps.

The cloud's batcher on its own is tested in test_batching.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
import pytest_asyncio

from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.errors import NotReady, OffloadFailed, PlanMismatch
from inferedge.runtime.messages import CloudAnswer, Offload, OffloadContext
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.runtime.policy import BatchPolicy, PolicyError, degraded_choice
from tests.runtime.conftest import Exported
from tests.runtime.helpers import direct_offload, eventually

Images = Callable[..., np.ndarray]
NEVER = 2.0  # a threshold no confidence reaches: early exits are off


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """The current value of one series (0 when it was never touched)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest_asyncio.fixture
async def cloud(cloud_part: Partition) -> AsyncIterator[CloudDataplane]:
    plane = CloudDataplane(cloud_part, batch_policy=BatchPolicy(16, 2.0), threshold=NEVER)
    yield plane
    await plane.aclose()


def edge_for(partition: Partition, offload: Offload, threshold: float = NEVER,
             timeout_s: float = 10.0) -> EdgeDataplane:  # fmt: skip
    return EdgeDataplane(
        partition, threshold=threshold, offload=offload, offload_timeout_s=timeout_s
    )


@pytest.mark.asyncio
async def test_threshold_zero_answers_at_the_first_edge_exit(
    edge_part: Partition, cloud: CloudDataplane, images: Images
) -> None:
    edge = edge_for(edge_part, direct_offload(cloud), threshold=0.0)
    answers = await edge.infer(images(4))
    first_cut = edge_part.manifest.plan.exits[0].cut_index
    for answer in answers:
        assert (answer.location, answer.exit_index, answer.cut_index) == ("edge", 0, first_cut)
        assert not answer.degraded
        assert answer.plan_hash == edge_part.plan_hash
        assert set(answer.timings) == {"edge_ms", "edge_compute_ms", "total_ms"}
        assert 0.0 < answer.timings["edge_compute_ms"] <= answer.timings["edge_ms"]
        assert answer.timings["edge_ms"] <= answer.timings["total_ms"]
    assert value(edge.metrics, "inferedge_requests_total", location="edge", exit="0") == 4
    assert value(edge.metrics, "inferedge_offloads_total") == 0
    assert value(edge.metrics, "inferedge_offload_ratio") == 0.0


@pytest.mark.asyncio
async def test_offloaded_samples_get_the_full_models_answer(
    exported: Exported, edge_part: Partition, cloud: CloudDataplane, images: Images
) -> None:
    edge = edge_for(edge_part, direct_offload(cloud))
    x = images(5)
    answers = await edge.infer(x)
    assert [a.prediction for a in answers] == exported.predict(x)
    final = edge_part.final_exit_index
    for answer in answers:
        assert (answer.location, answer.exit_index) == ("cloud", final)
        assert answer.cut_index == edge_part.manifest.plan.final_cut
        assert set(answer.timings) == {
            "edge_ms",
            "edge_compute_ms",
            "transfer_ms",
            "cloud_ms",
            "total_ms",
        }
        assert answer.timings["cloud_ms"] <= answer.timings["total_ms"]
    assert value(edge.metrics, "inferedge_offloads_total") == 5
    assert value(edge.metrics, "inferedge_offload_ratio") == 1.0
    assert value(edge.metrics, "inferedge_activation_bytes_count") == 1  # one offload
    assert value(edge.metrics, "inferedge_activation_bytes_sum") == 5 * 4 * np.prod(
        edge_part.output_shape
    )
    assert value(cloud.metrics, "inferedge_requests_total", location="cloud", exit=str(final)) == 5
    one = await edge.infer(x[0])  # a single sample, without the batch axis
    assert one[0].prediction == answers[0].prediction


@pytest.mark.asyncio
async def test_cloud_exits_answer_early(
    edge_part: Partition, cloud: CloudDataplane, images: Images
) -> None:
    edge = edge_for(edge_part, direct_offload(cloud, edge_threshold=False))
    cloud.set_threshold(0.0)
    answers = await edge.infer(images(3))
    first_cloud_cut = edge_part.manifest.plan.cloud_exits()[0].cut_index
    assert {(a.location, a.exit_index, a.cut_index) for a in answers} == {
        ("cloud", 2, first_cloud_cut)
    }


@pytest.mark.asyncio
async def test_cloud_refuses_bad_offloads(cloud: CloudDataplane, cloud_part: Partition) -> None:
    with pytest.raises(PlanMismatch, match=r"offload is for plan '0{16}'"):
        await cloud.handle(np.zeros((1, *cloud_part.input_shape), np.float32), "0" * 16)
    assert value(cloud.metrics, "inferedge_plan_mismatch_total") == 1
    with pytest.raises(PartitionError, match="input shape must be"):
        await cloud.handle(np.zeros((1, 3, 16, 16), np.float32), cloud_part.plan_hash)
    with pytest.raises(PolicyError):
        await cloud.handle(np.zeros(cloud_part.input_shape, np.float32), cloud_part.plan_hash, -1)
    unloaded = CloudDataplane(None, batch_policy=BatchPolicy(), threshold=0.5)
    assert not unloaded.ready
    with pytest.raises(NotReady):
        await unloaded.handle(np.zeros(cloud_part.input_shape, np.float32), "0" * 16)


@pytest.mark.asyncio
async def test_plan_mismatch_degrades_to_the_most_confident_edge_exit(
    exported: Exported, edge_part: Partition, images: Images
) -> None:
    other = CloudDataplane(
        exported.load("other", "cloud"), batch_policy=BatchPolicy(), threshold=NEVER
    )
    edge = edge_for(edge_part, direct_offload(other))
    x = images(4)
    try:
        answers = await edge.infer(x)
    finally:
        await other.aclose()
    expected = [degraded_choice(c) for c in edge_part.run_edge(x, NEVER).candidates]
    for answer, choice in zip(answers, expected, strict=True):
        assert choice is not None
        assert answer.degraded
        assert answer.reason == "plan_mismatch"
        assert answer.location == "edge"
        assert (answer.exit_index, answer.prediction) == (choice.exit_index, choice.prediction)
        assert answer.confidence == choice.confidence
        assert answer.cut_index == edge_part.exit_cut(choice.exit_index)
        assert "offload_ms" in answer.timings
    assert value(edge.metrics, "inferedge_plan_mismatch_total") == 1  # one refused offload
    assert value(edge.metrics, "inferedge_degraded_total", reason="plan_mismatch") == 4
    assert value(other.metrics, "inferedge_plan_mismatch_total") == 1


async def _hang(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _refused(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    raise ConnectionRefusedError("connection refused")


async def _broken(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    raise RuntimeError("remote failure")


async def _cloud_loading(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    raise NotReady("no partition loaded yet")


async def _too_short(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    return CloudAnswer(plan_hash=context.plan_hash, rows=(), queue_ms=0, compute_ms=0,
                       batch_size=1)  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("offload", "reason"),
    [(_hang, "timeout"), (_refused, "unreachable"), (_broken, "error"),
     (_cloud_loading, "cloud_not_ready"), (_too_short, "invalid_answer")],
)  # fmt: skip
async def test_offload_failures_degrade(
    edge_part: Partition, images: Images, offload: Offload, reason: str
) -> None:
    edge = edge_for(edge_part, offload, timeout_s=0.05)
    x = images(3)
    answers = await asyncio.wait_for(edge.infer(x), 5.0)
    expected = [degraded_choice(c) for c in edge_part.run_edge(x, NEVER).candidates]
    assert [(a.exit_index, a.prediction) for a in answers] == [
        (c.exit_index, c.prediction) for c in expected if c is not None
    ]
    assert all(a.degraded and a.reason == reason and a.location == "edge" for a in answers)
    assert value(edge.metrics, "inferedge_degraded_total", reason=reason) == 3
    assert (
        value(edge.metrics, "inferedge_requests_total", location="edge", exit="0")
        + value(edge.metrics, "inferedge_requests_total", location="edge", exit="1")
        == 3
    )


@pytest.mark.asyncio
async def test_no_edge_exit_to_fall_back_on_fails_the_request(
    exported: Exported, images: Images
) -> None:
    edge = edge_for(exported.load("no-edge-exit", "edge"), _refused)
    with pytest.raises(OffloadFailed, match="no exit to answer instead"):
        await edge.infer(images(2))
    assert value(edge.metrics, "inferedge_failed_total", reason="unreachable") == 2


@pytest.mark.asyncio
async def test_threshold_changes_live_and_running_requests_keep_theirs(
    edge_part: Partition, cloud: CloudDataplane, images: Images
) -> None:
    release = asyncio.Event()
    offloads: list[OffloadContext] = []

    async def gated(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        offloads.append(context)
        await release.wait()
        return await direct_offload(cloud)(activation, context)

    edge = edge_for(edge_part, gated)
    running = asyncio.create_task(edge.infer(images(2)))
    await eventually(lambda: bool(offloads), "the request to offload")
    edge.set_threshold(0.0)
    assert edge.threshold == 0.0
    quick = await edge.infer(images(2))  # the new threshold: answered at the first exit
    assert {a.exit_index for a in quick} == {0}
    release.set()
    slow = await asyncio.wait_for(running, 5.0)
    assert {a.location for a in slow} == {"cloud"}  # started under the old threshold
    assert offloads[0].threshold == NEVER
    with pytest.raises(PolicyError):
        edge.set_threshold(float("nan"))
    assert edge.threshold == 0.0


@pytest.mark.asyncio
async def test_hot_swap_under_load_fails_no_request(
    exported: Exported, edge_part: Partition, cloud: CloudDataplane, images: Images
) -> None:
    new_edge, new_cloud = exported.load("other", "edge"), exported.load("other", "cloud")
    release = asyncio.Event()
    held: list[OffloadContext] = []
    wired = direct_offload(cloud)

    async def slow_link(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        if not release.is_set():
            held.append(context)
            await release.wait()
        return await wired(activation, context)

    x = images(64, seed=3)
    # The first exit's median confidence: about half the samples stay on the edge.
    first_exit = sorted(c[0].confidence for c in edge_part.run_edge(x, NEVER).candidates)
    edge = edge_for(edge_part, slow_link, threshold=first_exit[32])
    finished: list[int] = []

    async def client(i: int) -> list[str]:
        answers = await edge.infer(x[i % 64 : i % 64 + 1])
        finished.append(i)
        return [f"{a.plan_hash}:{a.reason}" for a in answers]

    before = [asyncio.create_task(client(i)) for i in range(64)]
    await eventually(lambda: len(held) >= 4, "offloads to be on the wire")
    # The recommended rollout order: the cloud first, then the edge.
    cloud.swap(new_cloud)
    edge.swap(new_edge)
    in_flight = 64 - len(finished)
    release.set()
    after = [asyncio.create_task(client(i)) for i in range(64, 96)]
    results = await asyncio.wait_for(asyncio.gather(*before, *after), 30.0)
    old, new = edge_part.plan_hash, new_edge.plan_hash
    assert in_flight >= 4
    assert all(len(rs) == 1 for rs in results)  # every request answered, none raised
    outcomes = [rs[0] for rs in results]
    # Requests keep the partition they started with, and the swapped cloud still answers the
    # old plan's offloads: nothing is refused, nothing degrades.
    assert set(outcomes[:64]) == {f"{old}:None"}
    assert set(outcomes[64:]) == {f"{new}:None"}
    assert cloud.plan_hashes == (new, old)
    assert value(cloud.metrics, "inferedge_plan_mismatch_total") == 0
    assert cloud.partition is new_cloud
    assert edge.partition is new_edge


@pytest.mark.asyncio
async def test_cloud_swap_finishes_accepted_offloads_on_the_old_plan(
    exported: Exported, cloud_part: Partition, edge_part: Partition, images: Images
) -> None:
    new_cloud = exported.load("other", "cloud")
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(64, 200.0), threshold=NEVER)
    activation = edge_part.run_edge(images(3), NEVER).activation
    try:
        accepted = [asyncio.create_task(cloud.handle(activation[i], cloud_part.plan_hash))
                    for i in range(3)]  # fmt: skip
        await eventually(lambda: cloud.queued_samples == 3, "three offloads to queue")
        cloud.swap(new_cloud)
        fresh = asyncio.create_task(cloud.handle(activation[0], new_cloud.plan_hash))
        # An edge that has not swapped yet still gets answers on the old plan.
        late = asyncio.create_task(cloud.handle(activation[1], cloud_part.plan_hash))
        with pytest.raises(PlanMismatch, match="this cloud serves plan"):
            await cloud.handle(activation[0], "f" * 16)
        old_answers = await asyncio.wait_for(asyncio.gather(*accepted), 5.0)
        new_answer = await asyncio.wait_for(fresh, 5.0)
        late_answer = await asyncio.wait_for(late, 5.0)
    finally:
        await cloud.aclose()
    assert {a.plan_hash for a in old_answers} == {cloud_part.plan_hash}
    assert [a.batch_size for a in old_answers] == [3, 3, 3]  # a batch never mixes plans
    assert new_answer.plan_hash == new_cloud.plan_hash
    assert new_answer.batch_size == 1
    assert late_answer.plan_hash == cloud_part.plan_hash
    assert late_answer.batch_size == 1
    assert cloud.plan_hashes == (new_cloud.plan_hash, cloud_part.plan_hash)


@pytest.mark.asyncio
async def test_edge_without_a_partition_is_not_ready(
    edge_part: Partition, cloud_part: Partition, cloud: CloudDataplane, images: Images
) -> None:
    edge = edge_for(None, direct_offload(cloud))  # type: ignore[arg-type]
    assert not edge.ready
    with pytest.raises(NotReady):
        await edge.infer(images(1))
    with pytest.raises(PartitionError, match="the edge dataplane cannot serve the cloud part"):
        edge.swap(cloud_part)
    edge.swap(edge_part)
    assert edge.ready
    assert len(await edge.infer(images(1))) == 1
    with pytest.raises(PartitionError, match="offload_timeout_s must be > 0"):
        edge_for(edge_part, direct_offload(cloud), timeout_s=0)


@pytest.mark.asyncio
async def test_closed_dataplanes_refuse_new_work(
    edge_part: Partition, cloud_part: Partition, images: Images
) -> None:
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(), threshold=NEVER)
    edge = edge_for(edge_part, direct_offload(cloud))
    assert len(await edge.infer(images(1))) == 1
    await cloud.aclose()
    await edge.aclose()
    with pytest.raises(NotReady, match="shut down"):
        await edge.infer(images(1))
    with pytest.raises(NotReady, match="shut down"):
        await cloud.handle(np.zeros(cloud_part.input_shape, np.float32), cloud_part.plan_hash)
