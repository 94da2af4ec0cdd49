"""The edge's offloads feed its link estimate, and /metrics shows it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from inferedge.core.link import Link
from inferedge.runtime.emulation import emulated_link
from inferedge.runtime.link_estimator import LinkEstimator
from inferedge.runtime.link_watch import watched_link
from inferedge.runtime.messages import CloudAnswer, OffloadContext
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.policy import PolicyError

CONTEXT = OffloadContext(plan_hash="0" * 16, threshold=0.5, timeout_s=5.0)


async def _cloud(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    await asyncio.sleep(0.003)  # the compute it reports: taken off the round trip
    return CloudAnswer(
        plan_hash=context.plan_hash, rows=(), queue_ms=0, compute_ms=3.0, batch_size=1
    )


async def _down(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    raise ConnectionError("no route to the cloud")


@pytest.mark.asyncio
async def test_offloads_over_a_link_give_its_bandwidth_on_metrics() -> None:
    link = Link(bandwidth_mbps=64.0, rtt_ms=0.0)
    metrics = Metrics()
    estimator = LinkEstimator(Link(bandwidth_mbps=1.0, rtt_ms=0.0))
    offload = watched_link(emulated_link(_cloud, link), estimator, metrics)
    activation = np.zeros((1, 128, 32, 32), np.float32)  # 512 KiB: 66 ms at 64 Mbps
    for _ in range(12):
        await offload(activation, CONTEXT)
    estimate = estimator.estimate.bandwidth_mbps
    # an emulated offload never takes less than the link allows, so the estimate is never
    # above it; a loaded machine's late wake-ups can only pull it down
    assert 32.0 <= estimate <= 64.0 * 1.02
    text = metrics.exposition().decode()
    assert f"inferedge_link_bandwidth_mbps {estimate}" in text
    assert "inferedge_link_changes_total" in text


@pytest.mark.asyncio
async def test_a_failed_offload_measures_nothing_and_fails_as_it_did() -> None:
    estimator = LinkEstimator(Link())
    offload = watched_link(_down, estimator, Metrics())
    with pytest.raises(ConnectionError):
        await offload(np.zeros((1, 4), np.float32), CONTEXT)
    assert estimator.estimate == Link()
    with pytest.raises(PolicyError, match="encoding must be one of"):
        watched_link(_down, estimator, Metrics(), "zip")
