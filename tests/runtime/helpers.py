"""Wiring and waiting helpers for the dataplane tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from inferedge.runtime.dataplane import CloudDataplane
from inferedge.runtime.messages import CloudAnswer, Offload, OffloadContext

WAIT_LIMIT_S = 10.0


def direct_offload(cloud: CloudDataplane, *, edge_threshold: bool = True) -> Offload:
    """Connect an edge straight to `cloud`, as the NATS transport will.

    With `edge_threshold` the cloud tests its exits against the edge's c_thr; without it, the
    cloud uses its own threshold.
    """

    async def offload(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        threshold = context.threshold if edge_threshold else None
        return await cloud.handle(activation, context.plan_hash, threshold, point=context.point)

    return offload


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until `condition()` holds; fail after WAIT_LIMIT_S."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_LIMIT_S:.0f} s waiting for {what}")
        await asyncio.sleep(0.001)  # poll interval of a bounded wait
