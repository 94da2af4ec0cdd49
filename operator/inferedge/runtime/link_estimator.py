"""The edge's estimate of its link, from its own offloads and from light probes.

Each offload tells the edge how long its activation spent on the link: the round trip less the
time the cloud reports it spent (`transfer_ms`), for a known number of bytes. A probe (a few
bytes, answered at once) gives the round-trip time alone. So the RTT comes from the probes, and
each offload gives a bandwidth sample: its bits over its transfer time less the RTT estimate.

Each series goes through river's ADWIN (adaptive windowing, Bifet and Gavaldà 2007), which
decides when the link has changed and then drops every sample from before the change: a steady
link gives a steady estimate however noisy its samples, and a changed one is followed a few
samples after the change. We use river's ADWIN rather than a hand-written CUSUM or moving
average because it bounds false alarms (`delta`) without a window length or threshold to tune.
The estimate is the median of the last `RECENT` samples in ADWIN's window, not its mean: one
sample that waited behind a stalled process (a 2 KB probe measured at 0.07 Mbps on a 1 Mbps
link, in an `inferedge run`) pulled the mean of a short window down by 40 % and moved the edge
to a point that missed its deadline for two seconds; the median does not move for it.
Bandwidth is tracked in log space: its changes are ratios (20 to 1 Mbps), and noise on a
transfer time is proportional to it.

`delta` is 0.05, above river's 0.002: a false alarm only restarts the window (the switch
policy, `core.link_switch`, still waits for confirmations before the edge moves), while every
sample of delay keeps the edge on a point for the old link. On a 1 to 8 Mbps rise seen through
probes 5 a second (simulated with the noise those probes showed), 0.05 cuts after 8-9 samples
where 0.002 needs 12-13.

A sample that is not a finite, positive measurement is counted and dropped, never raised: the
estimate is fed from the serving path.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, deque

from river.drift import ADWIN

from inferedge.core.link import Link

# Below this many ms of transfer time (after the RTT), a sample says only "fast": it counts at
# this time, so one lucky sample cannot claim an unbounded bandwidth.
MIN_TRANSFER_MS = 0.05

RECENT = 64
"""Samples (at most) the estimate is the median of."""

KEPT_AFTER_CHANGE = 5
"""Samples kept when a change is detected. river's ADWIN restarts its window empty at the next
sample; the last few samples (a detection takes 8 or more after the change) are of the new
link, so the estimate follows it at once instead of from one new sample."""


class _Series:
    """One measured quantity: ADWIN over its samples, and the recent ones still in its window."""

    def __init__(self, delta: float) -> None:
        # clock=1: test for a change at every sample (samples come at most a few hundred a
        # second, and a late switch costs deadlines)
        self._adwin = ADWIN(delta=delta, clock=1)
        self._recent: deque[float] = deque(maxlen=RECENT)

    @property
    def median(self) -> float | None:
        """The median of the recent samples in the window, None before the first."""
        return statistics.median(self._recent) if self._recent else None

    def update(self, value: float) -> bool:
        """Add a sample; True if ADWIN has just detected a change (and dropped what came before)."""
        self._adwin.update(value)
        self._recent.append(value)
        if not self._adwin.drift_detected:
            return False
        for _ in range(len(self._recent) - KEPT_AFTER_CHANGE):
            self._recent.popleft()
        return True


class LinkEstimator:
    """Bandwidth and RTT as the edge measures them; `initial` (the declared link) until then."""

    def __init__(self, initial: Link, *, delta: float = 0.05) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta: expected 0 < delta < 1, got {delta}")
        self._log_bandwidth = _Series(delta)
        self._rtt = _Series(delta)
        self._initial = initial
        self.changes = 0
        """How many changes ADWIN detected, in either series."""
        self.dropped: Counter[str] = Counter()
        """Samples dropped, by reason."""

    @property
    def estimate(self) -> Link:
        """The link as estimated now."""
        log_bandwidth, rtt = self._log_bandwidth.median, self._rtt.median
        return Link(
            bandwidth_mbps=(
                self._initial.bandwidth_mbps if log_bandwidth is None else math.exp(log_bandwidth)
            ),
            rtt_ms=self._initial.rtt_ms if rtt is None else max(rtt, 0.0),
        )

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

    def _update(self, series: _Series, value: float) -> bool:
        if series.update(value):
            self.changes += 1
            return True
        return False
