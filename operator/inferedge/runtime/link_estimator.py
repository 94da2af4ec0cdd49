"""The edge's estimate of its link, from its own offloads and from light probes.

Each offload tells the edge how long its activation spent on the link: the round trip less the
time the cloud reports it spent (`transfer_ms`), for a known number of bytes. A probe (a few
bytes, answered at once) gives the round-trip time alone. So the RTT comes from the probes, and
each offload gives a bandwidth sample: its bits over its transfer time less the RTT estimate.

Each series goes through river's ADWIN (adaptive windowing, Bifet and Gavaldà 2007), and the
estimate is the mean of ADWIN's window, which drops everything before a change it detects: a
steady link gives a steady estimate however noisy its samples, and a changed one is followed a
few samples after the change. We use river's ADWIN rather than a hand-written CUSUM or moving
average because it bounds false alarms (`delta`) without a window length or threshold to tune,
and is the estimator and the change detector in one. Bandwidth is tracked in log space: its
changes are ratios (20 to 1 Mbps), and noise on a transfer time is proportional to it.

A sample that is not a finite, positive measurement is counted and dropped, never raised: the
estimate is fed from the serving path.
"""

from __future__ import annotations

import math
from collections import Counter

from river.drift import ADWIN

from inferedge.core.link import Link

# Below this many ms of transfer time (after the RTT), a sample says only "fast": it counts at
# this time, so one lucky sample cannot claim an unbounded bandwidth.
MIN_TRANSFER_MS = 0.05


class LinkEstimator:
    """Bandwidth and RTT as the edge measures them; `initial` (the declared link) until then."""

    def __init__(self, initial: Link, *, delta: float = 0.002) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta: expected 0 < delta < 1, got {delta}")
        # clock=1: test for a change at every sample (samples come at most a few hundred a
        # second, and a late switch costs deadlines)
        self._log_bandwidth = ADWIN(delta=delta, clock=1)
        self._rtt = ADWIN(delta=delta, clock=1)
        self._initial = initial
        self.changes = 0
        """How many changes ADWIN detected, in either series."""
        self.dropped: Counter[str] = Counter()
        """Samples dropped, by reason."""

    @property
    def estimate(self) -> Link:
        """The link as estimated now."""
        bandwidth = (
            math.exp(self._log_bandwidth.estimation)
            if self._log_bandwidth.width
            else self._initial.bandwidth_mbps
        )
        rtt = self._rtt.estimation if self._rtt.width else self._initial.rtt_ms
        return Link(bandwidth_mbps=bandwidth, rtt_ms=max(rtt, 0.0))

    def offload(self, wire_bytes: int, transfer_ms: float) -> bool:
        """Count one offload; True if the bandwidth estimate has just changed course."""
        if not isinstance(wire_bytes, int) or wire_bytes <= 0:
            self.dropped["bytes"] += 1
            return False
        if not math.isfinite(transfer_ms) or transfer_ms < 0:
            self.dropped["transfer_ms"] += 1
            return False
        on_wire_ms = max(transfer_ms - self.estimate.rtt_ms, MIN_TRANSFER_MS)
        mbps = wire_bytes * 8.0 / (on_wire_ms * 1e3)
        return self._update(self._log_bandwidth, math.log(mbps))

    def probe(self, rtt_ms: float) -> bool:
        """Count one probe's round trip; True if the RTT estimate has just changed course."""
        if not math.isfinite(rtt_ms) or rtt_ms < 0:
            self.dropped["rtt_ms"] += 1
            return False
        return self._update(self._rtt, rtt_ms)

    def _update(self, series: ADWIN, value: float) -> bool:
        series.update(value)
        if series.drift_detected:
            self.changes += 1
            return True
        return False
