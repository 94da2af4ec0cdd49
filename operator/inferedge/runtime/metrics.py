"""Prometheus metrics of one partition server, in a registry of its own.

Each server (and each test) gets a fresh `CollectorRegistry` instead of the process-global one,
so an edge and a cloud dataplane can share a process without their series colliding.

`inferedge_offload_ratio` is a gauge computed at scrape time from the server's own counts
(offloaded samples / answered samples since start); dashboards that want a windowed ratio use
`rate(inferedge_offloads_total[5m]) / rate(inferedge_requests_total[5m])` instead.
"""

from __future__ import annotations

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

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
