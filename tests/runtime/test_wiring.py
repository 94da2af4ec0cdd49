"""Edge and cloud dataplanes talking through a real nats-server."""

from __future__ import annotations

from collections.abc import Callable

import nats
import numpy as np
import pytest

from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.wiring import cloud_worker, nats_offload
from inferedge.transport import EmbeddedNats, subject
from inferedge.transport.client import Messenger
from tests.runtime.conftest import Exported

NEVER = 2.0  # no confidence reaches it: every request goes to the final classifier
OFFLOAD = subject("default", "main", "offload")


def edge_over(m: Messenger, part: Partition, timeout_s: float = 5.0) -> EdgeDataplane:
    return EdgeDataplane(
        part, threshold=NEVER, offload=nats_offload(m, OFFLOAD), offload_timeout_s=timeout_s
    )


def cloud_plane(part: Partition) -> CloudDataplane:
    return CloudDataplane(part, batch_policy=BatchPolicy(8, 2.0), threshold=NEVER)


@pytest.mark.asyncio
async def test_offloads_are_answered_by_the_cloud_over_nats(
    messenger: Messenger,
    edge_part: Partition,
    cloud_part: Partition,
    exported: Exported,
    images: Callable[[int], np.ndarray],
) -> None:
    cloud = cloud_plane(cloud_part)
    service = await messenger.serve(OFFLOAD, "inferedge-workers", cloud_worker(cloud))
    x = images(6)
    answers = await edge_over(messenger, edge_part).infer(x)
    assert [a.prediction for a in answers] == exported.predict(x)
    assert {a.location for a in answers} == {"cloud"}
    assert not any(a.degraded for a in answers)
    assert all(a.timings["transfer_ms"] >= 0 for a in answers)
    await service.stop()
    await cloud.aclose()


@pytest.mark.asyncio
async def test_no_cloud_degrades_as_unreachable(
    messenger: Messenger, edge_part: Partition, images: Callable[[int], np.ndarray]
) -> None:
    answers = await edge_over(messenger, edge_part).infer(images(2))
    assert all(a.degraded and a.location == "edge" for a in answers)
    assert {a.reason for a in answers} == {"unreachable"}


@pytest.mark.asyncio
async def test_plan_mismatch_degrades_and_the_worker_keeps_serving(
    messenger: Messenger,
    edge_part: Partition,
    exported: Exported,
    images: Callable[[int], np.ndarray],
) -> None:
    other = cloud_plane(exported.load("other", "cloud"))
    service = await messenger.serve(OFFLOAD, "inferedge-workers", cloud_worker(other))
    answers = await edge_over(messenger, edge_part).infer(images(2))
    assert {a.reason for a in answers} == {"plan_mismatch"}
    # the same worker, swapped to the main plan, answers the next request
    other.swap(exported.load("main", "cloud"))
    answers = await edge_over(messenger, edge_part).infer(images(2))
    assert not any(a.degraded for a in answers)
    assert service.failed >= 1
    await service.stop()
    await other.aclose()


@pytest.mark.asyncio
async def test_a_malformed_offload_gets_an_error_reply(
    server: EmbeddedNats,
    messenger: Messenger,
    edge_part: Partition,
    cloud_part: Partition,
    images: Callable[[int], np.ndarray],
) -> None:
    cloud = cloud_plane(cloud_part)
    service = await messenger.serve(OFFLOAD, "inferedge-workers", cloud_worker(cloud))
    raw = await nats.connect(server.url)
    try:
        reply = await raw.request(OFFLOAD, b"\x00" * 10, timeout=5, headers={"X": "y"})
        assert "Inferedge-Error" in (reply.headers or {})
    finally:
        await raw.close()
    answers = await edge_over(messenger, edge_part).infer(images(1))
    assert not answers[0].degraded
    await service.stop()
    await cloud.aclose()


@pytest.mark.asyncio
async def test_cloud_replicas_share_offloads(
    messenger: Messenger,
    edge_part: Partition,
    exported: Exported,
    images: Callable[[int], np.ndarray],
) -> None:
    clouds = [cloud_plane(exported.load("main", "cloud")) for _ in range(2)]
    services = [
        await messenger.serve(OFFLOAD, "inferedge-workers", cloud_worker(c)) for c in clouds
    ]
    edge = edge_over(messenger, edge_part)
    for seed in range(24):
        (answer,) = await edge.infer(images(1, seed))
        assert not answer.degraded
    assert all(s.handled > 0 for s in services)
    assert sum(s.handled for s in services) == 24
    for s, c in zip(services, clouds, strict=True):
        await s.stop()
        await c.aclose()
