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
from collections.abc import Awaitable, Callable

from aiohttp import web

from inferedge.core.manifest import parse_set_prefix
from inferedge.core.point_text import point_label
from inferedge.dnn.slowdown import set_hold
from inferedge.runtime.adaptation import adaptation_handler, read_space
from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.edge_batching import EdgeBatcher
from inferedge.runtime.edge_setup import Edge, build_edge
from inferedge.runtime.http import EDGE_INFERENCE, make_app
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.runtime.partition_loading import load_partition
from inferedge.runtime.pool_member import PoolMember, oip_answerer
from inferedge.runtime.serve_config import ServeConfig
from inferedge.runtime.stage_member import stage_answerer
from inferedge.runtime.tuning_setup import ActiveTuning, start_tuning
from inferedge.runtime.wiring import cloud_worker, nats_offload, reload_worker
from inferedge.storage import open_store
from inferedge.transport import QUEUE_GROUP, subject
from inferedge.transport.client import Messenger
from inferedge.transport.subjects import reload_subject, replica_subject


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


async def _join_pool(
    config: ServeConfig, messenger: Messenger, app: web.Application, namespace: str, pipeline: str
) -> PoolMember | None:
    """An edge of a site's pool: take the dispatcher's requests and send it heartbeats."""
    if config.pool is None or config.replica is None:
        return None
    inference = app[EDGE_INFERENCE]
    edge = inference.edge
    subject = replica_subject(namespace, pipeline, config.pool, config.replica)
    answer = (
        oip_answerer(inference, subject)
        if config.stage is None
        else stage_answerer(edge, *config.stage)
    )
    member = PoolMember(
        messenger,
        answer,
        lambda: edge.partition.plan_hash if edge.partition is not None else None,
        namespace=namespace,
        pipeline=pipeline,
        pool=config.pool,
        replica=config.replica,
    )
    await member.start()
    return member


def _loader(config: ServeConfig) -> Callable[[str], Awaitable[Partition]]:
    """Loads this server's part of a pinned set, verified, off the event loop."""
    store = open_store(config.store_uri)
    pins = config.pins()

    async def load(prefix: str) -> Partition:
        if prefix not in pins:
            raise PartitionError(
                f"set {prefix} is not pinned for this server (start it with --pin "
                f"{prefix}=<manifest sha256>, or let the operator roll it)"
            )
        return await asyncio.to_thread(
            load_partition,
            store,
            prefix,
            config.role,
            config.cache_dir,
            pins[prefix],
            whole_chain=config.whole_chain,
        )

    return load


def _serving(dataplane: EdgeDataplane | CloudDataplane, edge: Edge | None, adapt: str) -> str:
    """What is served, for the announcement: c_thr, or an operating space's point."""
    if edge is not None and edge.adapter is not None:
        return f"{point_label(edge.adapter.entry.figures.point)}, adapt {adapt}"
    return f"c_thr {dataplane.threshold:g}"


async def serve(config: ServeConfig, announce: Callable[[str], None]) -> None:
    """Serve until SIGTERM or SIGINT; `announce` gets one line once requests can be served."""
    set_hold(config.emulated_hold)
    load = _loader(config)
    where = parse_set_prefix(config.prefix)
    partition = await load(str(where))
    if config.stage is not None:  # before the broker: a wrong stage is the one line said
        partition.stage_steps(*config.stage)
    manifest = partition.manifest
    space = None
    if config.role == "edge" and manifest.space is not None:
        space = read_space(manifest, config.cache_dir / where.plan_hash / where.set_id)
    calibrated = manifest.calibration.threshold if manifest.calibration else None
    threshold = config.threshold if config.threshold is not None else (calibrated or 1.0)
    namespace, pipeline = where.namespace, where.pipeline
    offloads = subject(namespace, pipeline, "offload")
    messenger = await Messenger.connect(
        config.nats_url,
        name=f"inferedge-{config.role}",
        retry_in_background=config.role == "edge",
    )
    dataplane: EdgeDataplane | CloudDataplane
    service = None
    batcher = edge = None
    if config.role == "edge":
        offload = nats_offload(messenger, offloads, config.encoding)
        edge = build_edge(config, partition, threshold, offload, space)
        batcher = edge.batcher
        dataplane = batcher.dataplane
        edge.start()
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
    if edge is not None and edge.adapter is not None:
        app.router.add_get("/adaptation", adaptation_handler(edge.adapter))
    member = await _join_pool(config, messenger, app, namespace, pipeline)
    runner, port = await _listen(app, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    site = "" if member is None else f", pool {config.pool} replica {config.replica}"
    if member is not None and config.stage is not None:
        site += f", stage {config.stage[0]}:{config.stage[1]}"
    announce(
        f"serving {config.role} of plan {partition.plan_hash} on http://{config.host}:{port} "
        f"({_serving(dataplane, edge, config.adapt)}{site})"
    )
    try:
        await stop.wait()
    finally:
        # In this order: no new work in, what is in flight answered, then the parts it used.
        for close in (
            member.aclose if member is not None else None,
            reloads.stop,
            service.stop if service is not None else None,
            runner.cleanup,
            tuning.aclose if tuning is not None else None,
            edge.aclose if edge is not None else None,
            dataplane.aclose,
            messenger.close,
        ):
            if close is not None:
                await close()
