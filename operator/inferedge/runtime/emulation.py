"""An emulated network link for the edge's offloads: bandwidth and round-trip time.

`inferedge run` serves the edge and the cloud on one machine, where the loopback is far faster
than the LTE or WiFi link a DeviceProfile declares. Wrapping the edge's `Offload` adds what that
link would cost on top of the real transfer: half the RTT and the serialisation time on the way
up, half the RTT on the way back (answers are a few hundred bytes), the same model the planner
predicts with (`core.link.Link.transfer_ms`).

The link can also follow a trace (`core.link_trace`): each offload pays the link of the moment
it leaves, counted from `origin` (Unix seconds, so processes can share it), or from the first
offload when no origin is given.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np

from inferedge.core.link import Link
from inferedge.core.link_trace import LinkTrace
from inferedge.runtime.messages import CloudAnswer, Offload, OffloadContext
from inferedge.runtime.policy import PolicyError

# Bytes on the wire per activation byte for each wire encoding (float32 raw, fp16, int8).
WIRE_BYTES_PER_BYTE = {"raw": 1.0, "fp16": 0.5, "int8": 0.25}


class LinkSchedule:
    """The emulated link of the moment: a fixed link, or a trace's link counted from `origin`
    (Unix seconds), or from the first time it is asked when no origin is given."""

    def __init__(self, link: Link | LinkTrace, origin: float | None = None) -> None:
        self.link = link
        self._origin = origin

    def now(self) -> Link:
        """The link as it is at this moment."""
        if isinstance(self.link, Link):
            return self.link
        if self._origin is None:
            self._origin = time.time()
        return self.link.at(time.time() - self._origin)


def emulated_link(
    offload: Offload,
    link: Link | LinkTrace | LinkSchedule,
    encoding: str = "raw",
    origin: float | None = None,
) -> Offload:
    """`offload` as if sent over `link` (or the trace's link of the moment): it returns no
    sooner than the link would allow."""
    if encoding not in WIRE_BYTES_PER_BYTE:
        raise PolicyError(
            f"encoding must be one of {', '.join(WIRE_BYTES_PER_BYTE)}, got {encoding!r}"
        )
    factor = WIRE_BYTES_PER_BYTE[encoding]
    schedule = link if isinstance(link, LinkSchedule) else LinkSchedule(link, origin)

    async def over_link(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        current = schedule.now()
        half_rtt_s = current.rtt_ms / 2000.0
        nbytes = math.ceil(activation.nbytes * factor)
        up_s = half_rtt_s + nbytes * 8.0 / (current.bandwidth_mbps * 1e6)
        await asyncio.sleep(up_s)
        # The way up spent part of the edge's budget: the cloud gets what is left of it.
        left_s = max(context.timeout_s - up_s, 0.001)
        answer = await offload(activation, context.model_copy(update={"timeout_s": left_s}))
        await asyncio.sleep(half_rtt_s)
        return answer

    return over_link
