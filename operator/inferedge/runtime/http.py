"""A thin HTTP face for a dataplane: Open Inference Protocol v2 paths and Prometheus /metrics.

The protocol's shapes are pydantic models (`inferedge.runtime.oip`); decoding and encoding are
in `inferedge.runtime.oip_codec` and run off the event loop (`inferedge.runtime.decoding`);
decisions live in the dataplane. Every error answers with the OIP error body
`{"error": "<one line>"}`: 4xx for a bad request (the line names the field and what was
expected), 404 an unknown model, version or path, 503 a server that cannot answer now (not
loaded, the cloud failed with no exit to fall back on, or the edge's request queue is full).

Readiness means "can answer": an edge with its partition loaded is ready even while its broker
is down (it answers from its exits, degraded); a cloud also needs its broker, the only way its
work arrives. The broker's state has its own endpoint and metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel

from inferedge import __version__
from inferedge.core.errors import one_line
from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.decoding import Decoder
from inferedge.runtime.edge_batching import EdgeBatcher
from inferedge.runtime.edge_inference import INPUT_NAME, EdgeInference, Unavailable
from inferedge.runtime.metrics import CONTENT_TYPE
from inferedge.runtime.oip import (
    EXTENSIONS,
    INFERENCE_HEADER,
    BrokerState,
    ErrorResponse,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from inferedge.runtime.oip_codec import (
    DATATYPE,
    OUTPUTS,
    Limits,
    Refused,
)
from inferedge.runtime.partition import Partition

log = logging.getLogger(__name__)

SERVER_NAME: Final = "inferedge"
EDGE_INFERENCE: Final = web.AppKey("edge_inference", EdgeInference)
"""An edge's app holds its request answerer here, for the server's other ways in."""
LINGER_S: Final = 2.0
"""After refusing a body it did not read, the server reads and drops the rest for this long
(a client still sending then sees the answer, not a reset), then closes (aiohttp: 10 s)."""

Dataplane = EdgeDataplane | CloudDataplane


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json(exclude_none=True), status=status,
        content_type="application/json",
    )  # fmt: skip


def oip_errors(refused: Callable[[str, str], None]) -> Middleware:
    """Answer every failure with an OIP error body; `refused(reason, line)` counts a refusal."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer every failure, aiohttp's own included (404, 405), with an OIP error body."""
        try:
            return await handler(request)
        except Refused as exc:
            status, reason, message = exc.status, exc.reason, str(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            status, message = exc.status, f"{request.method} {request.path}: {exc.reason}"
            reason = f"http_{status}"
        except Exception as exc:  # a bug: the server answers 500 and lives on
            log.exception("%s %s failed", request.method, request.path)
            return _json(ErrorResponse(error=one_line(exc)), 500)
        refused(reason, f"{request.method} {request.path}: {message}")
        response = _json(ErrorResponse(error=message), status)
        if status in (408, 413):  # the rest of the body was never read: do not reuse the socket
            response.force_close()
        return response

    return middleware


def model_metadata(model_name: str, dataplane: Dataplane, partition: Partition) -> ModelMetadata:
    """OIP v2 model metadata, with the plan and the live threshold in `parameters`."""
    plan = partition.manifest.plan
    parameters: dict[str, object] = {
        "location": partition.part,
        "plan_hash": partition.plan_hash,
        "threshold": dataplane.threshold,
        "confidence": partition.kind,
        "split": plan.split,
        "final_cut": plan.final_cut,
        "exits": [
            {"exit_index": partition.exit_index_of(e.cut_index), "part": e.part,
             "cut_index": e.cut_index, "name": e.name}
            for e in partition.exits
        ],
    }  # fmt: skip
    if isinstance(dataplane, CloudDataplane):
        policy = dataplane.batch_policy
        parameters["max_batch_size"] = policy.max_batch_size
        parameters["max_wait_ms"] = policy.max_wait_ms
    name = INPUT_NAME if partition.part == "edge" else "activation"
    return ModelMetadata(
        name=model_name,
        versions=[partition.plan_hash],
        platform=f"{partition.manifest.framework}/{partition.manifest.format}",
        inputs=[MetadataTensor(name=name, datatype=DATATYPE, shape=[-1, *partition.input_shape])],
        outputs=[MetadataTensor(name=n, datatype=t, shape=[-1]) for n, (t, _) in OUTPUTS.items()],
        parameters=parameters,
    )


async def read_body(request: web.Request, limits: Limits) -> bytearray:
    """The whole body, or a 413 past the size limit, or a 408 when it trickles in too slowly.

    Read chunk by chunk into one buffer: aiohttp's `read()` ends with a copy of the whole body,
    which holds the GIL (and so the event loop) for tens of ms at 50 MB.
    """
    limit = limits.max_body_bytes
    too_large = Refused(413, "body_too_large", f"body: expected at most {limit} bytes, got more")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()

    async def read() -> None:
        while chunk := await request.content.readany():
            if len(body) + len(chunk) > limit:
                raise too_large
            body.extend(chunk)

    try:
        await asyncio.wait_for(read(), limits.body_timeout_s)
    except TimeoutError:
        raise Refused(408, "body_timeout", f"body: expected the whole body within "
                      f"{limits.body_timeout_s:g} s, got it too slowly") from None  # fmt: skip
    return body


class _Endpoints:
    """The OIP handlers of one dataplane, served as one model."""

    def __init__(
        self,
        dataplane: Dataplane,
        model_name: str,
        broker_connected: Callable[[], bool] | None,
        limits: Limits,
        inference: EdgeInference | None,
    ) -> None:
        self.dataplane = dataplane
        self.model_name = model_name
        self.broker_connected = broker_connected
        self.limits = limits
        self.inference = inference

    def can_answer(self) -> bool:
        """Ready: a partition is loaded, and a cloud (whose work comes over NATS) is connected."""
        if not self.dataplane.ready:
            return False
        connected = self.broker_connected
        return isinstance(self.dataplane, EdgeDataplane) or connected is None or connected()

    def served(self, request: web.Request) -> Partition:
        """The partition serving the model (and version) `request` names, or a 404 or 503."""
        name, expected = request.match_info["name"], self.model_name
        if name != expected:
            raise Refused(404, "unknown_model", f"model: expected {expected!r}, got {name!r}")
        partition = self.dataplane.partition
        if partition is None:
            raise Refused(503, "not_ready", f"model {expected!r} is not loaded yet")
        version, plan = request.match_info.get("version"), partition.plan_hash
        if version is not None and version != plan:
            raise Refused(404, "unknown_version", f"version: expected {plan!r}, got {version!r}")
        return partition

    async def server_metadata(self, _: web.Request) -> web.Response:
        """`GET /v2`."""
        return _json(ServerMetadata(name=SERVER_NAME, version=__version__,
                                    extensions=list(EXTENSIONS)))  # fmt: skip

    async def live(self, _: web.Request) -> web.Response:
        """`GET /v2/health/live`."""
        return _json(ServerLive(live=True))

    async def ready(self, _: web.Request) -> web.Response:
        """`GET /v2/health/ready`."""
        ok = self.can_answer()
        return _json(ServerReady(ready=ok), 200 if ok else 503)

    async def broker(self, _: web.Request) -> web.Response:
        """`GET /v2/health/broker`: 200 while connected, 503 (and the state) while not."""
        up = self.broker_connected is not None and self.broker_connected()
        degraded = not up and isinstance(self.dataplane, EdgeDataplane)
        return _json(BrokerState(connected=up, degraded=degraded), 200 if up else 503)

    async def model_metadata(self, request: web.Request) -> web.Response:
        """`GET /v2/models/{name}[/versions/{version}]`."""
        return _json(model_metadata(self.model_name, self.dataplane, self.served(request)))

    async def model_ready(self, request: web.Request) -> web.Response:
        """`GET /v2/models/{name}[/versions/{version}]/ready`."""
        self.served(request)
        ok = self.can_answer()
        return _json(ModelReady(name=self.model_name, ready=ok), 200 if ok else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        """`GET /metrics`, the Prometheus text format."""
        body = self.dataplane.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def infer(self, request: web.Request) -> web.Response:
        """`POST /v2/models/{name}[/versions/{version}]/infer`, edge only."""
        assert self.inference is not None  # the route exists for an edge only
        started = time.perf_counter()
        partition = self.served(request)
        body = await read_body(request, self.limits)
        try:
            encoded = await self.inference.answer(
                partition, body, request.headers.get(INFERENCE_HEADER), started
            )
        except Unavailable as exc:
            return _json(ErrorResponse(error=str(exc)), 503)
        if encoded.json_length is None:
            return web.Response(body=encoded.payload, content_type="application/json")
        return web.Response(
            body=encoded.payload, content_type="application/octet-stream",
            headers={INFERENCE_HEADER: str(encoded.json_length)},
        )  # fmt: skip


def make_app(
    dataplane: Dataplane,
    *,
    model_name: str,
    broker_connected: Callable[[], bool] | None = None,
    limits: Limits | None = None,
    decoder: Decoder | None = None,
    batcher: EdgeBatcher | None = None,
) -> web.Application:
    """The aiohttp application serving `dataplane` as the OIP model `model_name`.

    `broker_connected` reports the entrypoint's broker (NATS) connection: it is published as
    `GET /v2/health/broker` and `inferedge_broker_connected`, and gates a cloud's readiness
    (not an edge's). Inference (`POST /v2/models/{name}/infer`) is served by an edge
    dataplane only: the cloud takes its work as offloads from the edge. `limits` bound every
    infer request; `decoder` (tests) replaces the default off-loop decoder. An edge's
    `batcher` (over this `dataplane`) runs its inferences, batching those that arrive while it
    is busy; without one, each runs on its own.
    """
    limits = limits or Limits()
    decoder = decoder or Decoder(limits)
    app = web.Application(
        client_max_size=limits.max_body_bytes,
        middlewares=[oip_errors(dataplane.metrics.refused)],
        # Also closes a connection whose request headers have not all arrived by then.
        handler_args={"keepalive_timeout": limits.header_timeout_s, "lingering_time": LINGER_S},
    )

    async def close_decoder(_: web.Application) -> None:
        await decoder.aclose()

    app.on_cleanup.append(close_decoder)
    if broker_connected is not None:
        dataplane.metrics.watch_broker(broker_connected)
    inference = None
    if isinstance(dataplane, EdgeDataplane):
        inference = EdgeInference(dataplane, model_name, decoder, batcher)
        app[EDGE_INFERENCE] = inference
    endpoints = _Endpoints(dataplane, model_name, broker_connected, limits, inference)
    router = app.router
    router.add_get("/v2", endpoints.server_metadata)
    router.add_get("/v2/health/live", endpoints.live)
    router.add_get("/v2/health/ready", endpoints.ready)
    if broker_connected is not None:
        router.add_get("/v2/health/broker", endpoints.broker)
    router.add_get("/metrics", endpoints.metrics)
    for model in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        router.add_get(model, endpoints.model_metadata)
        router.add_get(f"{model}/ready", endpoints.model_ready)
        if isinstance(dataplane, EdgeDataplane):
            router.add_post(f"{model}/infer", endpoints.infer)
    return app
