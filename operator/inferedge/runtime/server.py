"""`inferedge serve edge|cloud`: one partition server process.

It loads its part of a committed artifact set from the store (every file verified), connects to
NATS (credentials from the environment), serves the Open Inference Protocol over HTTP, and, for
the cloud, answers offloads in the workers' queue group, up to `max_in_flight` at once so the
batcher sees them together (one more is refused at once as busy).

The edge starts without its broker: while NATS is unreachable it answers from its exits,
degraded as `unreachable`, and connects in the background once NATS appears. The cloud still
needs its broker to start (its work only arrives over NATS, so it could not be ready anyway,
and an exit with one clear line lets its supervisor restart it). SIGTERM or SIGINT stops it cleanly:
the offload service drains, then the HTTP server and the broker connection close.

The edge answers HTTP requests through its request batcher (`build_edge`): requests that
arrive while its compute is busy run together, up to `edge_batch_size` samples.

A reload command (`inferedge reload`, or `inferedge run` between its replays) swaps in another
artifact set of the same pipeline, verified before it serves, or changes c_thr, with no restart.
Every set is pinned from the trusted side: the server loads only sets whose manifest sha256 it
was given at start (`--manifest-sha256`, `--pin`), so neither the bucket nor the bus can make
it load a set of someone else's.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from inferedge.api.tuning import KnobEmulationSpec, TuningSpec
from inferedge.core.link import Link
from inferedge.core.link_trace import LinkTrace
from inferedge.core.manifest import parse_set_prefix
from inferedge.core.roles import Role
from inferedge.runtime.clock_agent import DEFAULT_SOCKET
from inferedge.runtime.coalescing import Coalescer
from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.edge_batching import EdgeBatcher, release_at_offload
from inferedge.runtime.emulation import emulated_link
from inferedge.runtime.http import make_app
from inferedge.runtime.link_estimator import LinkEstimator
from inferedge.runtime.link_watch import watched_link
from inferedge.runtime.messages import Offload
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition, PartitionError, load_partition
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.tuning_setup import ActiveTuning, start_tuning
from inferedge.runtime.wiring import cloud_worker, nats_offload, reload_worker
from inferedge.storage import open_store
from inferedge.transport import QUEUE_GROUP, subject
from inferedge.transport.client import Messenger
from inferedge.transport.codec import Encoding
from inferedge.transport.subjects import reload_subject


@dataclass(frozen=True)
class ServeConfig:
    """Everything one partition server needs; the CLI builds it from flags and environment."""

    role: Role
    store_uri: str
    prefix: str
    manifest_sha256: str
    """The pin of `prefix`: its manifest's sha256, given by the trusted side."""
    cache_dir: Path
    nats_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    threshold: float | None = None  # None: the calibrated c_thr from the manifest
    offload_timeout_s: float = 2.0
    batch_policy: BatchPolicy = field(default_factory=BatchPolicy)
    max_in_flight: int = 128
    """Cloud only: offloads taken in at once (waiting for their batch); more get BusyError."""
    encoding: Encoding = "raw"
    compute_slowdown: float = 1.0
    emulated_link: Link | LinkTrace | None = None
    """Edge only: offloads pay this link's (or the trace's link of the moment's) bandwidth and
    RTT."""
    emulated_link_origin: float | None = None
    """When a trace's t_s=0 is (Unix seconds); None: the first offload."""
    declared_link: Link | None = None
    """Edge only: the link the plan was made for, where its link estimate starts."""
    offloads_in_flight: int = 2
    """Edge only: offload messages on the wire at once; more offloads wait and leave together."""
    edge_batch_size: int = 1
    """Edge only: samples of queued requests run together at most (1: one request at a time)."""
    edge_max_wait_ms: float = 0.0
    """Edge only: how long a batch short of `edge_batch_size` may wait for more (0: never)."""
    tuning: TuningSpec | None = None
    """Edge only: tune the batch size and clocks online (`runtime.knob_tuner`)."""
    clock_agent_socket: Path = DEFAULT_SOCKET
    emulated_knobs: KnobEmulationSpec | None = None
    """Edge only: tune an emulated device's clocks and power instead of the node's."""
    pinned_sets: Mapping[str, str] = field(default_factory=dict)
    """Other sets a reload may switch to, each prefix with its manifest's sha256."""

    def pins(self) -> dict[str, str]:
        """Every set this server may serve, by normalised prefix, with its manifest sha256."""
        pins = {str(parse_set_prefix(p)): sha for p, sha in self.pinned_sets.items()}
        return {**pins, str(parse_set_prefix(self.prefix)): self.manifest_sha256}


def build_edge(
    config: ServeConfig, partition: Partition, threshold: float, offload: Offload
) -> EdgeBatcher:
    """The edge's dataplane (`EdgeBatcher.dataplane`) behind its request batcher, offloading
    through `offload` (the transport) as `config` says: what `serve` serves over HTTP, and the
    handle through which the batch size and wait are changed while serving."""
    if config.emulated_link is not None:
        offload = emulated_link(
            offload, config.emulated_link, config.encoding, config.emulated_link_origin
        )
    metrics = Metrics()
    initial = config.declared_link or (
        config.emulated_link if isinstance(config.emulated_link, Link) else Link()
    )
    offload = watched_link(offload, LinkEstimator(initial), metrics, config.encoding)
    # Coalesced before the link: a group crosses it as the one message it is.
    offload = Coalescer(offload, max_in_flight=config.offloads_in_flight)
    dataplane = EdgeDataplane(
        partition,
        threshold=threshold,
        # The next batch computes while this one waits for the cloud.
        offload=release_at_offload(offload),
        offload_timeout_s=config.offload_timeout_s,
        metrics=metrics,
        compute_slowdown=config.compute_slowdown,
    )
    return EdgeBatcher(
        dataplane, batch_size=config.edge_batch_size, max_wait_ms=config.edge_max_wait_ms
    )


async def _tune(
    config: ServeConfig, batcher: EdgeBatcher | None, app: web.Application, pipeline: str
) -> ActiveTuning | None:
    """Start the edge's knob tuner when `config` asks for one, its report at GET /tuning."""
    if batcher is None or config.tuning is None:
        return None
    tuning = await start_tuning(
        config.tuning,
        batcher,
        pipeline=pipeline,
        emulation=config.emulated_knobs,
        agent_socket=config.clock_agent_socket,
        started=time.perf_counter(),
    )
    if tuning is not None:
        app.router.add_get("/tuning", tuning.handle)
    return tuning


async def _listen(app: web.Application, config: ServeConfig) -> tuple[web.AppRunner, int]:
    """Serve `app` on the configured address; the runner and the port it got."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def serve(config: ServeConfig, announce: Callable[[str], None]) -> None:
    """Serve until SIGTERM or SIGINT; `announce` gets one line once requests can be served."""
    store = open_store(config.store_uri)
    pins = config.pins()

    async def load(prefix: str) -> Partition:
        if prefix not in pins:
            raise PartitionError(
                f"set {prefix} is not pinned for this server (start it with --pin "
                f"{prefix}=<manifest sha256>, or let the operator roll it)"
            )
        return await asyncio.to_thread(
            load_partition, store, prefix, config.role, config.cache_dir, pins[prefix]
        )

    partition = await load(str(parse_set_prefix(config.prefix)))
    manifest = partition.manifest
    calibrated = manifest.calibration.threshold if manifest.calibration else None
    threshold = config.threshold if config.threshold is not None else (calibrated or 1.0)
    where = parse_set_prefix(config.prefix)
    namespace, pipeline = where.namespace, where.pipeline
    offloads = subject(namespace, pipeline, "offload")
    messenger = await Messenger.connect(
        config.nats_url,
        name=f"inferedge-{config.role}",
        retry_in_background=config.role == "edge",
    )
    dataplane: EdgeDataplane | CloudDataplane
    service = None
    batcher = None
    if config.role == "edge":
        offload = nats_offload(messenger, offloads, config.encoding)
        batcher = build_edge(config, partition, threshold, offload)
        dataplane = batcher.dataplane
    else:
        dataplane = CloudDataplane(
            partition,
            batch_policy=config.batch_policy,
            threshold=threshold,
            compute_slowdown=config.compute_slowdown,
        )
        service = await messenger.serve(
            offloads,
            QUEUE_GROUP,
            cloud_worker(dataplane),
            concurrency=config.max_in_flight,
            max_in_flight=config.max_in_flight,
            refuse_when_full=True,
        )
    dataplane.metrics.watch_bus(messenger.refusals.counts)
    reloads = await messenger.serve(
        reload_subject(namespace, pipeline, config.role),
        None,
        reload_worker(dataplane, config.role, f"{namespace}/{pipeline}", load),
    )
    app = make_app(
        dataplane,
        model_name=pipeline,
        broker_connected=lambda: messenger.is_connected,
        batcher=batcher,
    )
    tuning = await _tune(config, batcher, app, f"{namespace}/{pipeline}")
    runner, port = await _listen(app, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    announce(
        f"serving {config.role} of plan {partition.plan_hash} on http://{config.host}:{port} "
        f"(c_thr {threshold:g})"
    )
    try:
        await stop.wait()
    finally:
        await reloads.stop()
        if service is not None:
            await service.stop()
        await runner.cleanup()
        if tuning is not None:
            await tuning.aclose()
        if batcher is not None:
            await batcher.aclose()
        await dataplane.aclose()
        await messenger.close()
