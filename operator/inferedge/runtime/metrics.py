"""Prometheus metrics of one partition server, in a registry of its own.

Each server (and each test) gets a fresh `CollectorRegistry` instead of the process-global one,
so an edge and a cloud dataplane can share a process without their series colliding.

`inferedge_offload_ratio` is a gauge computed at scrape time from the server's own counts
(offloaded samples / answered samples since start); dashboards that want a windowed ratio use
`rate(inferedge_offloads_total[5m]) / rate(inferedge_requests_total[5m])` instead.

Refused requests are counted by reason (`inferedge_refused_total{reason}`) and logged at most
once per reason every `RateLimitedLog.interval_s`, so a client that keeps sending bad requests
cannot flood the log.

The cloud counts the offloads it answered without computing them, by reason
(`inferedge_shed_total{reason}`: `expired`, `cloud_busy`), the offloads it split into
batch-sized pieces, and what its NATS connection refused or dropped
(`inferedge_bus_refused_total{reason}`, read from the transport's own counts at scrape time).

The edge's batcher records the samples of each batch it ran and each request's wait in its
queue (`inferedge_edge_batch_size`, `inferedge_edge_queue_seconds`); a request its full queue
turned away is counted as refused, reason `edge_busy`.

An edge that tunes its knobs publishes each window's outcome: `inferedge_tuning_cost`,
`inferedge_tuning_energy_joules_per_request{source}` (`emulated` or `measured`, never mixed),
`inferedge_tuning_latency_seconds`, `inferedge_tuning_knob{knob}` (`cpu_khz`, `gpu_khz`,
`batch`), `inferedge_tuning_converged` and `inferedge_tuning_windows_total`.

The edge estimates its link from its offloads (runtime.link_watch): `inferedge_link_bandwidth_mbps`,
`inferedge_link_rtt_seconds` and `inferedge_link_changes_total` (changes its detector saw).
An edge serving an operating space publishes the point it serves (`inferedge_operating_split`,
`inferedge_operating_threshold`), its moves (`inferedge_operating_switches_total`), the maps
it rebuilt from its measured times (`inferedge_operating_corrections_total`) and the
probes it sent when no offload measured the link (`inferedge_link_probes_total{kind}`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from inferedge.transport.refusals import RateLimitedLog

__all__ = ["CONTENT_TYPE", "Metrics", "RateLimitedLog"]

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
        self.edge_batch_size = Histogram(
            "inferedge_edge_batch_size",
            "Samples per batch the edge ran (requests queued while it was busy run together).",
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.edge_queue_seconds = Histogram(
            "inferedge_edge_queue_seconds",
            "Time a request waited in the edge's batcher before its batch ran.",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.tuning_cost = Gauge(
            "inferedge_tuning_cost",
            "The tuner's cost 1/2 (E/E0 + L/L0) over its last window (1 at the maximum settings).",
            registry=reg,
        )
        self.tuning_energy = Gauge(
            "inferedge_tuning_energy_joules_per_request",
            "Energy per request over the tuner's last window, by source (emulated|measured).",
            ["source"],
            registry=reg,
        )
        self.tuning_latency = Gauge(
            "inferedge_tuning_latency_seconds",
            "Mean latency (arrival to answer) over the tuner's last window.",
            registry=reg,
        )
        self.tuning_knob = Gauge(
            "inferedge_tuning_knob",
            "The knob values being served: cpu_khz, gpu_khz, batch.",
            ["knob"],
            registry=reg,
        )
        self.tuning_converged = Gauge(
            "inferedge_tuning_converged",
            "1 once the optimiser calls itself converged, 0 while it explores.",
            registry=reg,
        )
        self.tuning_windows = Counter(
            "inferedge_tuning_windows", "Windows the tuner measured.", registry=reg
        )
        self.link_bandwidth = Gauge(
            "inferedge_link_bandwidth_mbps",
            "The edge's estimate of its uplink bandwidth, from its offloads (Mbit/s).",
            registry=reg,
        )
        self.link_rtt = Gauge(
            "inferedge_link_rtt_seconds",
            "The edge's estimate of its round-trip time to the cloud.",
            registry=reg,
        )
        self.link_changes = Counter(
            "inferedge_link_changes",
            "Changes of the link the edge's change detector (ADWIN) saw.",
            registry=reg,
        )
        self.operating_split = Gauge(
            "inferedge_operating_split",
            "The cut the edge splits at now (an operating space's point).",
            registry=reg,
        )
        self.operating_threshold = Gauge(
            "inferedge_operating_threshold",
            "The c_thr of the operating point served now.",
            registry=reg,
        )
        self.operating_switches = Counter(
            "inferedge_operating_switches",
            "Moves of the edge to another operating point as the link changed.",
            registry=reg,
        )
        self.objective_unmet = Counter(
            "inferedge_objective_unmet",
            "Samples answered on an operating point that cannot meet the pipeline's objective on "
            "the link as estimated (none can), by the objective missed (deadline, accuracy).",
            ["reason"],
            registry=reg,
        )
        self.operating_corrections = Counter(
            "inferedge_operating_corrections",
            "Configuration maps rebuilt from the edge's measured segment and head times.",
            registry=reg,
        )
        self.link_probes = Counter(
            "inferedge_link_probes",
            "Probes of the link sent while no offload measured it, by kind (rtt, bandwidth).",
            ["kind"],
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
        self.shed = Counter(
            "inferedge_shed",
            "Offloads the cloud answered without computing them, by reason: expired (their "
            "deadline passed before compute) or cloud_busy (refused at admission).",
            ["reason"],
            registry=reg,
        )
        self.split_offloads = Counter(
            "inferedge_split_offloads",
            "Offloads larger than max_batch_size that the cloud ran in batch-sized pieces.",
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

    def tuned(
        self, cost: float, energy_j: float, latency_s: float, *, emulated: bool, converged: bool
    ) -> None:
        """Publish one tuning window's outcome."""
        self.tuning_windows.inc()
        self.tuning_cost.set(cost)
        self.tuning_energy.labels(source="emulated" if emulated else "measured").set(energy_j)
        self.tuning_latency.set(latency_s)
        self.tuning_converged.set(1.0 if converged else 0.0)

    def link(self, bandwidth_mbps: float, rtt_ms: float, *, changed: bool) -> None:
        """Publish the edge's link estimate after an offload or a probe."""
        self.link_bandwidth.set(bandwidth_mbps)
        self.link_rtt.set(rtt_ms / 1000.0)
        if changed:
            self.link_changes.inc()

    def knobs(self, values: Mapping[str, float]) -> None:
        """Publish the knob values being served."""
        for knob, value in values.items():
            self.tuning_knob.labels(knob=knob).set(value)

    def watch_broker(self, connected: Callable[[], bool]) -> None:
        """Report `connected()` as inferedge_broker_connected at every scrape."""
        self.broker_connected.set_function(lambda: 1.0 if connected() else 0.0)

    def watch_bus(self, counts: Mapping[str, int]) -> None:
        """Report `counts` (the transport's refusals and drops by reason, read live) as
        inferedge_bus_refused_total{reason} at every scrape."""
        self.registry.register(_BusCollector(counts))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class _BusCollector(Collector):
    """The transport's counts, which it keeps as plain integers (it may not import this)."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "inferedge_bus_refused",
            "Messages the server's NATS side refused or dropped, by reason: busy (in-flight "
            "bound), reassembly_busy, reassembly_evicted, slow_consumer (past the pending "
            "limits), or the error class of a refused message.",
            labels=["reason"],
        )
        for reason, count in sorted(self._counts.items()):
            family.add_metric([reason], float(count))
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())
