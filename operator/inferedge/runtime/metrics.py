"""Prometheus metrics of one partition server, in a registry of its own.

Each server (and each test) gets a fresh `CollectorRegistry` instead of the process-global one,
so an edge and a cloud dataplane can share a process without their series colliding.

`inferedge_offload_ratio` is a gauge computed at scrape time from the server's own counts
(offloaded samples / answered samples since start); dashboards that want a windowed ratio use
`rate(inferedge_offloads_total[5m]) / rate(inferedge_requests_total[5m])` instead.

Refused requests are counted by reason (`inferedge_refused_total{reason}`) and logged at most
once per reason every `RateLimitedLog.interval_s`, so a client that keeps sending bad requests
cannot flood the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
# 5 ms (a cached edge exit) to 10 s (a cold cloud behind a slow link).
_LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BYTES_BUCKETS: Final = tuple(float(1 << p) for p in range(10, 28, 2))  # 1 KiB .. 128 MiB
_BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

log = logging.getLogger("inferedge.runtime.http")


class RateLimitedLog:
    """One warning per reason per `interval_s`; the next one says how many were left out."""

    def __init__(
        self,
        logger: logging.Logger = log,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, reason: str, message: str) -> bool:
        """Log `message` for `reason` unless one was logged within the interval; True if it was."""
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval_s:
            self._skipped[reason] = self._skipped.get(reason, 0) + 1
            return False
        self._last[reason] = now
        skipped = self._skipped.pop(reason, 0)
        more = f" ({skipped} more since the last one)" if skipped else ""
        self.logger.warning("refused (%s): %s%s", reason, message, more)
        return True


class Metrics:
    """The series both servers expose on /metrics; each dataplane records into one of these."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "inferedge_requests",
            "Samples answered, by where (edge|cloud) and which exit (path index) answered.",
            ["location", "exit"],
            registry=reg,
        )
        self.offloads = Counter(
            "inferedge_offloads", "Samples the edge sent to the cloud.", registry=reg
        )
        self.degraded = Counter(
            "inferedge_degraded",
            "Samples answered by the most confident edge exit because the cloud did not answer.",
            ["reason"],
            registry=reg,
        )
        self.failed = Counter(
            "inferedge_failed",
            "Samples that got no answer at all, by reason.",
            ["reason"],
            registry=reg,
        )
        self.plan_mismatch = Counter(
            "inferedge_plan_mismatch",
            "Offloads refused because the edge's plan hash is not the cloud's (counted on both).",
            registry=reg,
        )
        self.activation_bytes = Histogram(
            "inferedge_activation_bytes",
            "Bytes of split activations per offload (edge: sent, cloud: received).",
            buckets=_BYTES_BUCKETS,
            registry=reg,
        )
        self.latency = Histogram(
            "inferedge_latency_seconds",
            "Time to answer a request, by where it was answered.",
            ["location"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "inferedge_batch_size",
            "Samples per batch the cloud ran.",
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.queue_seconds = Histogram(
            "inferedge_queue_seconds",
            "Time an offload waited in the cloud's batcher before its batch ran.",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.refusals = Counter(
            "inferedge_refused",
            "Requests refused before the dataplane (bad input, too large, too slow), by reason.",
            ["reason"],
            registry=reg,
        )
        self.broker_connected = Gauge(
            "inferedge_broker_connected",
            "1 while the server's broker (NATS) connection is up; 0 when down or not watched.",
            registry=reg,
        )
        self.refusal_log = RateLimitedLog()
        self._answered = 0
        self._offloaded = 0
        ratio = Gauge(
            "inferedge_offload_ratio",
            "Offloaded samples / answered samples since the server started.",
            registry=reg,
        )
        ratio.set_function(lambda: self._offloaded / self._answered if self._answered else 0.0)

    def answered(self, location: str, exit_index: int, seconds: float) -> None:
        """Count one answered sample and its latency."""
        self._answered += 1
        self.requests.labels(location=location, exit=str(exit_index)).inc()
        self.latency.labels(location=location).observe(seconds)

    def offloaded(self, samples: int, nbytes: int) -> None:
        """Count an offload of `samples` samples carrying `nbytes` of activations."""
        self._offloaded += samples
        self.offloads.inc(samples)
        self.activation_bytes.observe(nbytes)

    def refused(self, reason: str, message: str) -> None:
        """Count a refused request and log it, rate-limited per reason."""
        self.refusals.labels(reason=reason).inc()
        self.refusal_log(reason, message)

    def watch_broker(self, connected: Callable[[], bool]) -> None:
        """Report `connected()` as inferedge_broker_connected at every scrape."""
        self.broker_connected.set_function(lambda: 1.0 if connected() else 0.0)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
