"""Light probes of the edge's link for the spells when no offload measures it.

An edge that answers everything itself (an edge-only point, chosen because the link is poor)
sends no offload, so without probes it would never see the link recover. Whenever no
measurement has come for `interval_s`, the prober sends a pair through the same path offloads
take (the emulated link, the watch that feeds the estimator, NATS): an `rtt` probe of a few
bytes, then a `bandwidth` probe sized to take about `target_ms` on the link as estimated now,
so it costs a poor link as little as a good one. The cloud answers probes at once.

A probe that fails (a timeout, no cloud) is counted and forgotten: the next interval tries again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Final

import numpy as np

from inferedge.core.errors import InferedgeError
from inferedge.core.link import Link
from inferedge.runtime.messages import PROBE_KINDS, Offload, OffloadContext, ProbeKind
from inferedge.runtime.metrics import Metrics

log = logging.getLogger(__name__)

RTT_PROBE_BYTES: Final = 16
MIN_PROBE_BYTES: Final = 2048
MAX_PROBE_BYTES: Final = 256 * 1024


def probe_bytes(estimate: Link, target_ms: float) -> int:
    """Bytes a bandwidth probe carries: about `target_ms` on the estimated link, a multiple of
    4 (float32 samples), within MIN_PROBE_BYTES..MAX_PROBE_BYTES."""
    wanted = estimate.bandwidth_mbps * 1e6 / 8.0 * target_ms / 1e3
    clamped = min(max(wanted, MIN_PROBE_BYTES), MAX_PROBE_BYTES)
    return math.ceil(clamped / 4.0) * 4


class LinkProber:
    """Probes the link through `offload` whenever `interval_s` passed with no measurement."""

    def __init__(
        self,
        offload: Offload,
        *,
        estimate: Callable[[], Link],
        plan_hash: Callable[[], str],
        metrics: Metrics,
        interval_s: float = 0.5,
        target_ms: float = 20.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval_s > 0 or not target_ms > 0 or not timeout_s > 0:
            raise ValueError("interval_s, target_ms and timeout_s must be > 0")
        self._offload = offload
        self._estimate = estimate
        self._plan_hash = plan_hash
        self._metrics = metrics
        self.interval_s = interval_s
        self._target_ms = target_ms
        self._timeout_s = timeout_s
        self._clock = clock
        self._last = clock()

    def measured(self) -> None:
        """Note that a measurement (an offload or a probe) just came."""
        self._last = self._clock()

    @property
    def due(self) -> bool:
        """Whether `interval_s` has passed without a measurement."""
        return self._clock() - self._last >= self.interval_s

    async def probe(self) -> bool:
        """Send one rtt probe and one bandwidth probe; False when one failed."""
        for kind in PROBE_KINDS:
            if not await self._send(kind):
                return False
        return True

    async def _send(self, kind: ProbeKind) -> bool:
        nbytes = (
            RTT_PROBE_BYTES if kind == "rtt" else probe_bytes(self._estimate(), self._target_ms)
        )
        context = OffloadContext(
            plan_hash=self._plan_hash(), threshold=1.0, timeout_s=self._timeout_s, probe=kind
        )
        payload = np.zeros((1, nbytes // 4), np.float32)
        try:
            await asyncio.wait_for(self._offload(payload, context), self._timeout_s)
        except (TimeoutError, ConnectionError, InferedgeError) as exc:
            self._metrics.link_probes.labels(kind="failed").inc()
            log.debug("link probe (%s) failed: %s", kind, exc)
            return False
        self._metrics.link_probes.labels(kind=kind).inc()
        return True

    async def run(self) -> None:
        """Probe whenever due, until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s / 2)
            if self.due:
                await self.probe()
                self.measured()
