"""Emulated links: an offload costs what the planner says it would."""

from __future__ import annotations

import time

import numpy as np
import pytest

from inferedge.core.link import Link
from inferedge.runtime.emulation import emulated_link
from inferedge.runtime.messages import CloudAnswer, OffloadContext
from inferedge.runtime.policy import PolicyError

CONTEXT = OffloadContext(plan_hash="0" * 16, threshold=0.5, timeout_s=5.0)


async def _instant(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    return CloudAnswer(plan_hash=context.plan_hash, rows=(), queue_ms=0, compute_ms=0, batch_size=1)


@pytest.mark.asyncio
@pytest.mark.parametrize(("encoding", "share"), [("raw", 1.0), ("fp16", 0.5), ("int8", 0.25)])
async def test_an_offload_takes_at_least_what_the_link_model_predicts(
    encoding: str, share: float
) -> None:
    link = Link(bandwidth_mbps=8.0, rtt_ms=30.0)
    activation = np.zeros((1, 64, 16, 16), np.float32)  # 64 KiB
    offload = emulated_link(_instant, link, encoding)
    started = time.perf_counter()
    answer = await offload(activation, CONTEXT)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert answer.plan_hash == CONTEXT.plan_hash
    assert elapsed_ms >= link.transfer_ms(int(activation.nbytes * share)) - 0.5


def test_an_unknown_encoding_is_refused() -> None:
    with pytest.raises(PolicyError, match="encoding must be one of raw, fp16, int8"):
        emulated_link(_instant, Link(), "zip")
