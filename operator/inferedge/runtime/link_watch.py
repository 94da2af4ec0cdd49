"""The edge's offloads as link measurements: each one times its round trip, takes off the time
the cloud reports it spent, and gives the estimator (`runtime.link_estimator`) its bytes on the
wire and that transfer time; a probe (`runtime.link_probe`) gives its round trip (rtt) or its
bytes (bandwidth). The estimate goes to /metrics and to whoever follows it (`runtime.adaptation`).

It wraps the offload below the coalescer, where a group of requests crosses the link as the one
message it is, and above the emulated link, whose delay is part of what it measures. A failed
offload measures nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from inferedge.core.link import Link
from inferedge.runtime.emulation import WIRE_BYTES_PER_BYTE
from inferedge.runtime.link_estimator import LinkEstimator
from inferedge.runtime.messages import CloudAnswer, Offload, OffloadContext
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.policy import PolicyError


def watched_link(
    offload: Offload,
    estimator: LinkEstimator,
    metrics: Metrics,
    encoding: str = "raw",
    *,
    on_estimate: Callable[[Link], object] | None = None,
    on_answer: Callable[[OffloadContext, CloudAnswer], object] | None = None,
) -> Offload:
    """`offload`, feeding `estimator` with every offload and probe that is answered,
    `on_estimate` with the estimate after each, and `on_answer` with each offload's (not
    probe's) context and answer."""
    if encoding not in WIRE_BYTES_PER_BYTE:
        raise PolicyError(
            f"encoding must be one of {', '.join(WIRE_BYTES_PER_BYTE)}, got {encoding!r}"
        )
    factor = WIRE_BYTES_PER_BYTE[encoding]

    async def watched(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        sent = time.perf_counter()
        answer = await offload(activation, context)
        round_trip_ms = (time.perf_counter() - sent) * 1e3
        if context.probe == "rtt":
            changed = estimator.probe(round_trip_ms)
        else:
            changed = estimator.offload(
                math.ceil(activation.nbytes * factor), round_trip_ms - answer.cloud_ms
            )
        if context.probe is None and on_answer is not None:
            on_answer(context, answer)
        estimate = estimator.estimate
        metrics.link(estimate.bandwidth_mbps, estimate.rtt_ms, changed=changed)
        if on_estimate is not None:
            on_estimate(estimate)
        return answer

    return watched
