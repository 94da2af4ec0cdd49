"""`inferedge serve dispatcher`: a site's ingress, the same OIP v2 API as an edge's.

Clients send `POST /v2/models/<pipeline>/infer` here exactly as to one edge (Triton's and
KServe's clients work unchanged); the dispatcher sends each request to a replica of one pool
(`runtime.dispatcher`) and relays its answer; a site served as a pipeline over its pools sends
it through every stage instead (`runtime.site_pipeline`). It also serves the OIP health and
metadata paths, `/metrics`, and `GET /distribution`: the target, each pool's version, share,
live replicas and measured throughput, and every decision of the shares with its cause and
time.

It takes the replicas' heartbeats on `P.beat` over NATS, signed in as the `dispatcher`
identity (credentials from INFEREDGE_NATS_* variables), and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from inferedge import __version__
from inferedge.api.site import DecisionRecord, PoolState, SiteConfig, SiteStatus
from inferedge.runtime.decoding import Decoder
from inferedge.runtime.dispatcher import Forwarded, Site
from inferedge.runtime.http import SERVER_NAME, oip_errors, read_body
from inferedge.runtime.metrics import CONTENT_TYPE
from inferedge.runtime.oip import (
    EXTENSIONS,
    INFERENCE_HEADER,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from inferedge.runtime.oip_codec import DATATYPE, OUTPUTS, Limits, Refused
from inferedge.runtime.site_metrics import SiteMetrics
from inferedge.runtime.site_pipeline import PipelineSite
from inferedge.transport.client import Messenger
from inferedge.transport.subjects import subject


def _json(body: str, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def site_status(site: Site) -> SiteStatus:
    """What `GET /distribution` says."""
    d = site.state.distribution
    parts = {a.pool: a for a in d.assignments}
    pools = []
    for table_row, pool in zip(site.state.pools, site.config.pools, strict=True):
        part = parts.get(pool.name)
        share = site.dispatcher.shares.get(pool.name, 0.0)
        replicas = site.replicas.of(pool.name)
        pools.append(
            PoolState(
                name=pool.name,
                version=pool.version,
                share=share,
                assigned_rate=part.rate if part and site.fixed is None else share * d.target,
                table_throughput=table_row.versions[pool.version].throughput,
                measured_throughput=site.measured.get(pool.name),
                replicas=len(replicas),
                in_flight=sum(site.in_flight.get(r, 0) for r in replicas),
                answered=site.answered.get(pool.name, 0),
            )
        )
    decisions = tuple(
        DecisionRecord.model_validate({**vars(x), "shares": dict(x.shares)}) for x in site.decisions
    )
    return SiteStatus(
        target_rate=site.state.target,
        planned_rate=d.rate,
        accuracy=d.accuracy,
        met=d.met,
        reason=d.reason,
        cause=site.state.cause,
        pools=tuple(pools),
        decisions=decisions,
        retried=site.retried,
        stages=site.config.stages,
    )


class Forwarder(Protocol):
    """Answers one OIP v2 infer body: `Site` by shares, `PipelineSite` through its stages."""

    async def forward(self, body: bytes | bytearray, header: str | None) -> Forwarded: ...


def make_site_app(
    site: Site, limits: Limits | None = None, forwarder: Forwarder | None = None
) -> web.Application:
    """The dispatcher's aiohttp application for `site` (requests go through `forwarder`,
    by default the site's shares)."""
    limits = limits or Limits(max_body_bytes=site.config.max_body_bytes)
    forwarding: Forwarder = forwarder or site
    app = web.Application(
        client_max_size=limits.max_body_bytes, middlewares=[oip_errors(site.metrics.refused)]
    )
    model_name = site.config.pipeline

    def check_model(request: web.Request) -> None:
        name = request.match_info["name"]
        if name != model_name:
            raise Refused(404, "unknown_model", f"model: expected {model_name!r}, got {name!r}")

    async def server_metadata(_: web.Request) -> web.Response:
        meta = ServerMetadata(name=SERVER_NAME, version=__version__, extensions=list(EXTENSIONS))
        return _json(meta.model_dump_json(exclude_none=True))

    async def live(_: web.Request) -> web.Response:
        return _json(ServerLive(live=True).model_dump_json())

    async def ready(_: web.Request) -> web.Response:
        return _json(ServerReady(ready=site.ready).model_dump_json(), 200 if site.ready else 503)

    async def model_metadata(request: web.Request) -> web.Response:
        check_model(request)
        meta = ModelMetadata(
            name=model_name,
            versions=sorted({p.version for p in site.config.pools}),
            platform="inferedge/site",
            inputs=[
                MetadataTensor(
                    name="input", datatype=DATATYPE, shape=[-1, *site.config.input_shape]
                )
            ],
            outputs=[
                MetadataTensor(name=n, datatype=t, shape=[-1]) for n, (t, _) in OUTPUTS.items()
            ],
            parameters={"pools": [p.name for p in site.config.pools]},
        )
        return _json(meta.model_dump_json(exclude_none=True))

    async def model_ready(request: web.Request) -> web.Response:
        check_model(request)
        body = ModelReady(name=model_name, ready=site.ready).model_dump_json()
        return _json(body, 200 if site.ready else 503)

    async def infer(request: web.Request) -> web.Response:
        check_model(request)
        body = await read_body(request, limits)
        answer = await forwarding.forward(body, request.headers.get(INFERENCE_HEADER))
        if answer.json_length is None:
            return web.Response(
                body=answer.payload, status=answer.status, content_type="application/json"
            )
        return web.Response(
            body=answer.payload, status=answer.status,
            content_type="application/octet-stream",
            headers={INFERENCE_HEADER: str(answer.json_length)},
        )  # fmt: skip

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=site.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def distribution(_: web.Request) -> web.Response:
        return _json(site_status(site).model_dump_json(by_alias=True))

    router = app.router
    router.add_get("/v2", server_metadata)
    router.add_get("/v2/health/live", live)
    router.add_get("/v2/health/ready", ready)
    router.add_get("/v2/models/{name}", model_metadata)
    router.add_get("/v2/models/{name}/ready", model_ready)
    router.add_post("/v2/models/{name}/infer", infer)
    router.add_get("/metrics", metrics)
    router.add_get("/distribution", distribution)
    return app


async def serve_site(
    config: SiteConfig,
    nats_url: str | None,
    host: str,
    port: int,
    announce: Callable[[str], None],
) -> None:
    """Serve the site until SIGTERM or SIGINT; `announce` gets one line once it listens."""
    messenger = await Messenger.connect(nats_url, name="inferedge-dispatcher")
    site = Site(config, messenger, SiteMetrics())
    beats = await messenger.serve(
        subject(config.namespace, config.pipeline, "beat"), None, site.take_beat,
        concurrency=1, max_in_flight=256,
    )  # fmt: skip
    sweeper = asyncio.create_task(site.sweep_forever(), name="inferedge-sweeper")
    limits = Limits(max_body_bytes=config.max_body_bytes)
    decoder = Decoder(limits)
    chain = PipelineSite(site, decoder) if config.stages is not None else None
    runner = web.AppRunner(make_site_app(site, limits, chain), access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, host, port)
    await tcp.start()
    bound = int(runner.addresses[0][1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pools = ", ".join(f"{p.name} ({p.version})" for p in config.pools)
    if config.stages is not None:
        pools = " -> ".join(f"{s.pool} {s.start}:{s.end}" for s in config.stages)
        pools = f"a pipeline {pools}"
    announce(f"serving dispatcher of {config.pipeline} on http://{host}:{bound} (pools {pools})")
    try:
        await stop.wait()
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await runner.cleanup()
        await decoder.aclose()
        await beats.stop()
        await messenger.close()
