"""The deployed cloud under load, over a real nats-server: concurrent offloads are batched,
expired ones are dropped and counted, large ones are split, a full cloud refuses at once and
the edge degrades with `cloud_busy`, and an edge started without a broker serves degraded
until one appears on its URL."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import numpy as np
import pytest

from inferedge.runtime.batching import Batcher
from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.errors import DeadlineExpired
from inferedge.runtime.messages import OffloadContext
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.wiring import BUDGET, cloud_worker, nats_offload
from inferedge.transport import EmbeddedNats, RemoteError, encode, subject
from inferedge.transport.client import Messenger, Service
from tests.runtime.conftest import Exported
from tests.runtime.helpers import eventually

NEVER = 2.0  # every request goes to the cloud
OFFLOAD = subject("default", "main", "offload")
LONG_WAIT_MS = 60_000.0  # a batch only runs when full: batching does not depend on timing


def edge_over(m: Messenger, part: Partition, timeout_s: float = 60.0) -> EdgeDataplane:
    return EdgeDataplane(
        part, threshold=NEVER, offload=nats_offload(m, OFFLOAD), offload_timeout_s=timeout_s
    )


async def serve_cloud(m: Messenger, cloud: CloudDataplane, max_in_flight: int = 32) -> Service:
    """The cloud's worker as `inferedge serve cloud` runs it."""
    return await m.serve(
        OFFLOAD,
        "inferedge-workers",
        cloud_worker(cloud),
        concurrency=max_in_flight,
        max_in_flight=max_in_flight,
        refuse_when_full=True,
    )


def sample(cloud: CloudDataplane, name: str, **labels: str) -> float:
    return cloud.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.asyncio
async def test_concurrent_offloads_reach_the_batcher_together(
    messenger: Messenger,
    edge_part: Partition,
    cloud_part: Partition,
    exported: Exported,
    images: Callable[[int], np.ndarray],
) -> None:
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(8, LONG_WAIT_MS), threshold=NEVER)
    service = await serve_cloud(messenger, cloud)
    edge = edge_over(messenger, edge_part)
    xs = [row[None] for row in images(8)]
    answers = await asyncio.gather(*(edge.infer(x) for x in xs))
    assert all(a.location == "cloud" and not a.degraded for (a,) in answers)
    assert [a.prediction for (a,) in answers] == [exported.predict(x)[0] for x in xs]
    # One batch of all eight: only possible when the worker takes offloads concurrently.
    assert sample(cloud, "inferedge_batch_size_count") == 1
    assert sample(cloud, "inferedge_batch_size_sum") == 8
    await service.stop()
    await cloud.aclose()


def activation(part: Partition, rows: int, seed: int = 0) -> np.ndarray:
    shape = (rows, *part.input_shape)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.asyncio
async def test_an_offload_whose_budget_is_spent_is_dropped_and_counted(
    messenger: Messenger, cloud_part: Partition
) -> None:
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(8, 2.0), threshold=NEVER)
    service = await serve_cloud(messenger, cloud)
    headers, payload = encode(
        activation(cloud_part, 1), request_id="r1", plan_hash=cloud_part.plan_hash,
        extra={BUDGET: "0"},
    )  # fmt: skip
    with pytest.raises(RemoteError, match=r"DeadlineExpired: "):
        await messenger.request(OFFLOAD, headers, payload, timeout=30)
    assert sample(cloud, "inferedge_shed_total", reason="expired") == 1
    assert sample(cloud, "inferedge_batch_size_count") == 0  # nothing was computed
    await service.stop()
    await cloud.aclose()


@pytest.mark.asyncio
async def test_the_batcher_drops_an_offload_whose_deadline_passed_while_queued(
    cloud_part: Partition,
) -> None:
    metrics = Metrics()
    batcher = Batcher(BatchPolicy(2, LONG_WAIT_MS), metrics, 1.0)
    deadline = time.monotonic() + 0.01
    late = asyncio.create_task(
        batcher.submit(cloud_part, activation(cloud_part, 1), [NEVER], deadline)
    )
    await eventually(lambda: batcher.queued_samples == 1, "the first offload to queue")
    await eventually(lambda: time.monotonic() > deadline, "its deadline to pass")
    on_time = [
        asyncio.create_task(batcher.submit(cloud_part, activation(cloud_part, 1, s), [NEVER]))
        for s in (1, 2)
    ]
    with pytest.raises(DeadlineExpired, match="past the deadline the edge sent"):
        await late
    answers = await asyncio.gather(*on_time)
    assert [a.batch_size for a in answers] == [2, 2]  # the expired one took no seat
    assert metrics.registry.get_sample_value("inferedge_shed_total", {"reason": "expired"}) == 1
    await batcher.close()


@pytest.mark.asyncio
async def test_a_large_offload_is_split_to_the_batch_size(
    messenger: Messenger,
    edge_part: Partition,
    cloud_part: Partition,
    exported: Exported,
    images: Callable[[int], np.ndarray],
) -> None:
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(8, 2.0), threshold=NEVER)
    service = await serve_cloud(messenger, cloud)
    x = images(20)
    answers = await edge_over(messenger, edge_part).infer(x)
    assert [a.prediction for a in answers] == exported.predict(x)
    assert not any(a.degraded for a in answers)
    assert sample(cloud, "inferedge_split_offloads_total") == 1
    assert sample(cloud, "inferedge_batch_size_count") == 3  # 8 + 8 + 4
    assert sample(cloud, "inferedge_batch_size_bucket", le="8.0") == 3  # none above 8
    # The answer states the limit, so an edge that groups offloads can keep within it.
    activation = edge_part.run_edge(x, NEVER).activation
    context = OffloadContext(plan_hash=cloud_part.plan_hash, threshold=NEVER, timeout_s=60.0)
    answer = await nats_offload(messenger, OFFLOAD)(activation, context)
    assert (len(answer.rows), answer.batch_size, answer.max_batch_size) == (20, 8, 8)
    await service.stop()
    await cloud.aclose()


@pytest.mark.parametrize("bound", ["queued_samples", "in_flight"])
@pytest.mark.asyncio
async def test_a_full_cloud_refuses_at_once_and_the_edge_degrades_as_cloud_busy(
    bound: str,
    messenger: Messenger,
    edge_part: Partition,
    cloud_part: Partition,
    images: Callable[[int], np.ndarray],
) -> None:
    queued, in_flight = (4, 32) if bound == "queued_samples" else (256, 1)
    policy = BatchPolicy(8, LONG_WAIT_MS, max_queued_samples=queued)
    cloud = CloudDataplane(cloud_part, batch_policy=policy, threshold=NEVER)
    service = await serve_cloud(messenger, cloud, max_in_flight=in_flight)
    edge = edge_over(messenger, edge_part)
    waiting = asyncio.create_task(edge.infer(images(4)))  # waits for a full batch
    await eventually(lambda: cloud.accepted_samples == 4, "the first offload to be accepted")
    (answer,) = await edge.infer(images(2)[1:])  # long before the edge's 60 s timeout
    assert answer.degraded
    assert (answer.location, answer.reason) == ("edge", "cloud_busy")
    assert (
        edge.metrics.registry.get_sample_value("inferedge_degraded_total", {"reason": "cloud_busy"})
        == 1
    )
    if bound == "queued_samples":
        assert sample(cloud, "inferedge_shed_total", reason="cloud_busy") == 1
    else:
        assert messenger.refusals.counts["busy"] == 1
    await cloud.aclose()  # the waiting offload is answered (not ready), none hangs
    assert {a.reason for a in await waiting} == {"cloud_not_ready"}
    await service.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.asyncio
async def test_an_edge_started_without_a_broker_serves_degraded_then_offloads(
    edge_part: Partition, cloud_part: Partition, images: Callable[[int], np.ndarray]
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    edge_side = await Messenger.connect(url, retry_in_background=True, reconnect_wait_s=0.05)
    assert not edge_side.is_connected
    edge = edge_over(edge_side, edge_part)
    (answer,) = await edge.infer(images(1))
    assert answer.degraded
    assert answer.reason == "unreachable"
    async with EmbeddedNats(port=port) as broker:
        await edge_side.wait_connected(30)
        async with await Messenger.connect(broker.url) as cloud_side:
            cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(8, 2.0), threshold=NEVER)
            service = await serve_cloud(cloud_side, cloud)
            (answer,) = await edge.infer(images(1))
            assert answer.location == "cloud"
            assert not answer.degraded
            await service.stop()
            await cloud.aclose()
        await edge_side.close()


@pytest.mark.asyncio
async def test_a_service_asked_for_before_the_broker_is_subscribed_once_it_is_up() -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    waiting = await Messenger.connect(url, retry_in_background=True, reconnect_wait_s=0.05)

    async def echo(headers: dict[str, str], payload: object) -> tuple[dict[str, str], bytes]:
        return {}, b"pong"

    await waiting.serve("test.deferred", None, echo)
    async with EmbeddedNats(port=port) as broker:
        try:
            await waiting.wait_connected(30)
            async with await Messenger.connect(broker.url) as asker:
                _, reply = await asker.request("test.deferred", {}, b"ping", timeout=10)
                assert reply == b"pong"
        finally:
            await waiting.close()  # while the broker is up: a failure must not hang the loop
